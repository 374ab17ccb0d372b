//! The one table from Unix signals to lifecycle commands (the README repeats it verbatim).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What the server is asked to do, by a signal or over the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Close listeners, abort in-flight requests, exit 0.
    Stop,
    /// Abort in-flight requests, reread and validate the config, reopen logs, new generation.
    Restart,
    /// Reread and validate the config, reopen logs; new requests take the new generation,
    /// in-flight ones finish on theirs; no connection is closed.
    Reload,
    /// Stop accepting, remove the pid file, drain until `graceful_shutdown_timeout`, exit 0.
    GracefulStop,
}

/// | signal    | `graced -k`   | command        |
/// |-----------|---------------|----------------|
/// | TERM, INT | stop          | Stop           |
/// | HUP       | restart       | Restart        |
/// | USR1      | graceful      | Reload         |
/// | WINCH     | graceful-stop | GracefulStop   |
pub const TABLE: &[(&str, i32, Command)] = &[
    ("TERM", libc::SIGTERM, Command::Stop),
    ("INT", libc::SIGINT, Command::Stop),
    ("HUP", libc::SIGHUP, Command::Restart),
    ("USR1", libc::SIGUSR1, Command::Reload),
    ("WINCH", libc::SIGWINCH, Command::GracefulStop),
];

/// The signal that asks a running server for `command` (used by `graced -k`).
pub fn signal_for(command: Command) -> i32 {
    TABLE.iter().find(|(_, _, c)| *c == command).map(|(_, n, _)| *n).expect("every command has a signal")
}

/// Every signal of [`TABLE`], installed. Must be created before READY=1: the default
/// action of USR1, HUP and WINCH-less terminals would otherwise kill or ignore.
pub struct Signals {
    streams: Vec<(Signal, &'static str, Command)>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let streams = TABLE
            .iter()
            .map(|(name, number, command)| Ok((signal(SignalKind::from_raw(*number))?, *name, *command)))
            .collect::<std::io::Result<_>>()?;
        Ok(Signals { streams })
    }

    /// The next signal received, as (name, command).
    pub async fn recv(&mut self) -> (&'static str, Command) {
        let futures = self.streams.iter_mut().map(|(stream, name, command)| {
            let (name, command) = (*name, *command);
            Box::pin(async move {
                stream.recv().await;
                (name, command)
            })
        });
        futures_select_all(futures).await
    }
}

/// Waits for the first of several futures (a tiny `select_all`, to avoid a futures dependency).
async fn futures_select_all<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) -> F::Output {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for future in futures.iter_mut() {
            if let std::task::Poll::Ready(output) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready(output);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_exactly_one_kill_signal() {
        assert_eq!(signal_for(Command::Stop), libc::SIGTERM);
        assert_eq!(signal_for(Command::Restart), libc::SIGHUP);
        assert_eq!(signal_for(Command::Reload), libc::SIGUSR1);
        assert_eq!(signal_for(Command::GracefulStop), libc::SIGWINCH);
    }
}
