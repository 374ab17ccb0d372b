//! Everything a running server is asked — by a signal or over the control socket — as one stream; composes `signal` and `control`.

use std::io;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::command::Request;
use crate::control::{self, Pending, Reply};
use crate::handover::HandedFile;
use crate::signal::{SignalEntry, Signals};

/// Why the inbox could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] io::Error),
    #[error("cannot create the control socket {}: {source}", path.display())]
    Control {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One thing the server was asked.
#[derive(Debug)]
pub enum Asked {
    /// A signal of the table (nobody waits for an answer).
    Signal(&'static SignalEntry),
    /// A control-socket client, waiting for [`Asked::answer`].
    Control(Pending),
}

impl Asked {
    pub fn request(&self) -> Request {
        match self {
            Asked::Signal(entry) => Request::Command(entry.command),
            Asked::Control(pending) => pending.request,
        }
    }

    /// The files a control client passed with its request (a signal carries none).
    pub fn take_files(&mut self) -> Vec<HandedFile> {
        match self {
            Asked::Signal(_) => Vec::new(),
            Asked::Control(pending) => std::mem::take(&mut pending.files),
        }
    }

    /// Answers a control client; a signal has nobody to answer.
    pub fn answer(self, reply: Reply) {
        if let Asked::Control(pending) = self {
            pending.answer(reply);
        }
    }
}

/// The signal handlers and the control socket. Dropping it removes the socket file.
pub struct Inbox {
    signals: Signals,
    requests: mpsc::Receiver<Pending>,
    busy: control::Busy,
    path: PathBuf,
    /// Whether dropping removes the socket file (not once a successor has bound its own there).
    owns_path: bool,
}

impl Inbox {
    /// Installs the signal handlers (do it before READY=1), then binds the control socket
    /// next to `pid_file`, whose lock the caller holds. Needs a tokio runtime.
    pub fn open(pid_file: &Path) -> Result<Inbox, InboxError> {
        let signals = Signals::install().map_err(InboxError::Signals)?;
        let path = control::socket_path(pid_file);
        let (tx, requests) = mpsc::channel(16);
        let busy =
            control::serve(&path, tx).map_err(|source| InboxError::Control { path: path.clone(), source })?;
        Ok(Inbox { signals, requests, busy, path, owns_path: true })
    }

    /// The next signal or request. Cancel-safe.
    pub async fn next(&mut self) -> Asked {
        tokio::select! {
            entry = self.signals.recv() => Asked::Signal(entry),
            Some(pending) = self.requests.recv() => Asked::Control(pending),
        }
    }

    /// The signals alone (while draining, or to handle a signal already delivered).
    pub fn signals(&mut self) -> &mut Signals {
        &mut self.signals
    }

    /// Waits (at most `timeout`) until the replies already given are written: call it
    /// before the runtime ends, or an answer given last (`-k upgrade --wait`) is cut.
    pub async fn settle(&self, timeout: std::time::Duration) {
        self.busy.settle(timeout).await;
    }

    /// The control socket's path.
    pub fn control_path(&self) -> &Path {
        &self.path
    }
}

impl Inbox {
    /// After a hand-over: the control socket's path is the successor's now, so dropping
    /// leaves it alone; requests already queued, and any that still arrive on this
    /// process's (unlinked) socket, are answered with `why`.
    pub fn hand_over(&mut self, why: &str) {
        self.owns_path = false;
        self.requests.close();
        while let Ok(pending) = self.requests.try_recv() {
            pending.answer(Err(why.to_owned()));
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if self.owns_path {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
