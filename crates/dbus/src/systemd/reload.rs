//! The reload: a `ReloadUnit` job, its `JobRemoved`, and the generation now serving.

use std::time::Duration;

use super::unit::GracedUnit;
use super::watch::Event;
use crate::error::{ControlError, call_failed};
use crate::status::{self, ServerStatus};

/// How long a successful reload may take to show its new generation in StatusText.
const GENERATION_GRACE: Duration = Duration::from_secs(2);

impl GracedUnit {
    /// Reloads the unit (`ReloadUnit(unit, "replace")`, which runs the unit's
    /// `ExecReload=`, i.e. `graced -k graceful --wait`) and waits for the job's
    /// `JobRemoved`. On `done`, returns the generation now serving, read from StatusText.
    /// Otherwise fails with [`ControlError::ReloadFailed`] carrying the server's StatusText
    /// (`reload failed, still serving generation N: FILE:LINE:COL: …`).
    pub async fn reload(&self, timeout: Duration) -> Result<u64, ControlError> {
        let mut watch = self.watch().await?;
        let before = self.snapshot().await?;
        if !before.is_running() {
            return Err(ControlError::NotRunning(format!(
                "{} is not running ({})",
                self.name,
                before.state()
            )));
        }
        let old_generation = status::parse(&before.status_text).generation();
        let job = self
            .manager
            .reload_unit(self.name.clone(), "replace".into())
            .await
            .map_err(call_failed(&format!("ReloadUnit({})", self.name)))?;
        tracing::debug!(unit = %self.name, %job, "reload job queued");
        let deadline = tokio::time::Instant::now() + timeout;
        // StatusTexts seen while the job ran, oldest first.
        let mut seen: Vec<String> = Vec::new();
        let result = loop {
            let event = tokio::select! {
                event = self.next_event(&mut watch) => event?,
                () = tokio::time::sleep_until(deadline) => return Err(ControlError::Timeout(format!(
                    "the reload job of {} did not finish within {}s; it goes on in systemd",
                    self.name,
                    timeout.as_secs()
                ))),
            };
            match event {
                Event::Status(text) => seen.push(text),
                Event::JobRemoved { job: removed, result } if removed == job => break result,
                _ => {}
            }
        };
        let after = self.snapshot().await?;
        if result != "done" {
            let report = seen
                .iter()
                .rev()
                .chain(std::iter::once(&after.status_text))
                .find(|text| matches!(status::parse(text), ServerStatus::ReloadFailed { .. }));
            return Err(ControlError::ReloadFailed(match report {
                Some(text) => text.clone(),
                None => format!(
                    "the reload job of {} ended with result \"{result}\" (status: {})",
                    self.name, after.status_text
                ),
            }));
        }
        let newer = |text: &str| {
            status::parse(text)
                .generation()
                .filter(|g| old_generation.is_none_or(|old| *g > old))
                .filter(|_| matches!(status::parse(text), ServerStatus::Serving { .. }))
        };
        if let Some(generation) =
            std::iter::once(&after.status_text).chain(seen.iter().rev()).find_map(|text| newer(text))
        {
            return Ok(generation);
        }
        // The job is done, but systemd may still hold the server's READY=1/STATUS= in its
        // queue: give the new generation a moment to show.
        let grace = tokio::time::Instant::now() + GENERATION_GRACE;
        loop {
            tokio::select! {
                event = self.next_event(&mut watch) => {
                    if let Event::Status(text) = event?
                        && let Some(generation) = newer(&text)
                    {
                        return Ok(generation);
                    }
                }
                () = tokio::time::sleep_until(grace) => break,
            }
        }
        let now = self.service.status_text().await.map_err(call_failed(&self.context("reading")))?;
        status::parse(&now).generation().ok_or_else(|| {
            ControlError::Systemd(format!(
                "the reload job of {} succeeded, but its status names no generation: {now:?}",
                self.name
            ))
        })
    }
}
