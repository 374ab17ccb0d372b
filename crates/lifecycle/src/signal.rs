//! The one table from Unix signals to lifecycle commands (the README repeats it verbatim).

use futures_util::future::select_all;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::command::Command;

/// One row of [`TABLE`].
#[derive(Debug, PartialEq, Eq)]
pub struct SignalEntry {
    /// The name without `SIG`, for messages.
    pub name: &'static str,
    pub number: i32,
    pub command: Command,
}

/// | signal    | `-k`          | command        |
/// |-----------|---------------|----------------|
/// | TERM, INT | stop          | Stop           |
/// | HUP       | restart       | Restart        |
/// | USR1      | graceful      | Reload         |
/// | WINCH     | graceful-stop | GracefulStop   |
/// | USR2      | upgrade       | Upgrade        |
pub const TABLE: &[SignalEntry] = &[
    SignalEntry { name: "TERM", number: libc::SIGTERM, command: Command::Stop },
    SignalEntry { name: "INT", number: libc::SIGINT, command: Command::Stop },
    SignalEntry { name: "HUP", number: libc::SIGHUP, command: Command::Restart },
    SignalEntry { name: "USR1", number: libc::SIGUSR1, command: Command::Reload },
    SignalEntry { name: "WINCH", number: libc::SIGWINCH, command: Command::GracefulStop },
    SignalEntry { name: "USR2", number: libc::SIGUSR2, command: Command::Upgrade },
];

/// The signal that asks a running server for `command` (the first row naming it).
pub fn signal_for(command: Command) -> &'static SignalEntry {
    TABLE.iter().find(|entry| entry.command == command).expect("every command has a signal")
}

/// Every signal of [`TABLE`], installed. Must be created before READY=1: the default
/// action of USR1, HUP and WINCH-less terminals would otherwise kill or ignore.
pub struct Signals {
    streams: Vec<(Signal, &'static SignalEntry)>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let streams = TABLE
            .iter()
            .map(|entry| Ok((signal(SignalKind::from_raw(entry.number))?, entry)))
            .collect::<std::io::Result<_>>()?;
        Ok(Signals { streams })
    }

    /// The next signal received. Cancel-safe (tokio's `Signal::recv` is).
    pub async fn recv(&mut self) -> &'static SignalEntry {
        let futures = self.streams.iter_mut().map(|(stream, entry)| {
            let entry: &'static SignalEntry = entry;
            Box::pin(async move {
                stream.recv().await;
                entry
            })
        });
        select_all(futures).await.0
    }

    /// A signal already delivered and not yet received, without waiting.
    pub async fn pending(&mut self) -> Option<&'static SignalEntry> {
        tokio::select! {
            biased;
            entry = self.recv() => Some(entry),
            _ = std::future::ready(()) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_exactly_one_kill_signal() {
        assert_eq!(signal_for(Command::Stop).number, libc::SIGTERM);
        assert_eq!(signal_for(Command::Restart).number, libc::SIGHUP);
        assert_eq!(signal_for(Command::Reload).number, libc::SIGUSR1);
        assert_eq!(signal_for(Command::GracefulStop).number, libc::SIGWINCH);
        assert_eq!(signal_for(Command::Upgrade).number, libc::SIGUSR2);
    }
}
