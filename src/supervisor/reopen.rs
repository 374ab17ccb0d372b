//! `-k reopen-logs [--wait]`: a new generation with the same configuration and freshly
//! opened logs; with `--wait`, the answer comes once the old generation's last request has
//! ended and its log file is flushed and closed (Apache's USR1 cannot tell a logrotate
//! script that; Apache's own document suggests waiting 15 minutes).

use std::future::Future;

use graced_http::Generation;
use graced_http::access_log::AccessLogSink;

use super::error::ReloadError;
use super::state::Supervisor;

impl Supervisor {
    /// Opens the access log again and makes a generation that writes to it serve new
    /// requests. Returns what to answer now and a future that resolves once the old log is
    /// closed. A log that cannot be opened changes nothing.
    pub(super) fn reopen_logs(
        &mut self,
    ) -> Result<(String, impl Future<Output = String> + Send + use<>), ReloadError> {
        let access_log =
            AccessLogSink::open(&self.config.server.access_log, crate::logging::journal_connected())
                .map_err(ReloadError::AccessLog)?
                .with_format(self.config.server.access_log_format);
        let old = self.server.current();
        // Every live generation may write to the old file (one from before a reload still
        // finishing requests too): wait for all of them.
        let live = self.server.live_generations();
        let in_flight: usize = live.iter().map(|g| g.in_flight()).sum();
        let closing: Vec<_> = live.iter().map(|g| g.access_log.closed()).collect();
        drop(live);
        let old_id = old.id;
        let id = self.generations.take_next();
        let mut generation = Generation::new(id, old.config.clone(), access_log).with_origin("reopen-logs");
        if let Some(tls) = &old.tls {
            generation = generation.with_tls(tls.clone());
        }
        drop(old);
        self.server.install(generation);
        self.generations.switched(id);
        tracing::info!(
            generation = id,
            "logs reopened: generation {id} writes the new files; the old ones close when the \
             {in_flight} requests in flight on generation {old_id} and older finish"
        );
        let started = std::time::Instant::now();
        let done = async move {
            for closed in closing {
                closed.await;
            }
            format!(
                "logs reopened (generation {id}); the old files closed after {} ms",
                started.elapsed().as_millis()
            )
        };
        Ok((
            format!(
                "logs reopened (generation {id}); the old files close when the requests on generation {old_id} and older finish"
            ),
            done,
        ))
    }
}
