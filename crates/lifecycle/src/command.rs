//! The bottom of the toolkit: what a server can be asked ([`Command`], [`Request`]), as words on the wire and on the command line.
//!
//! Every other module may import this one; it imports none of them.

use std::fmt;
use std::str::FromStr;

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
    /// Stop accepting, remove the pid file, drain until a timeout, exit 0.
    GracefulStop,
    /// Start the binary installed at the path this one was started from with the same
    /// listeners; once it serves, hand it the main PID and the pid file, then drain and exit.
    Upgrade,
}

impl Command {
    /// Every command, in the order the protocol lists them.
    pub const ALL: [Command; 5] =
        [Command::Reload, Command::Restart, Command::Stop, Command::GracefulStop, Command::Upgrade];

    /// The word for it (apachectl's `-k` words, also the control-socket request line).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Reload => "graceful",
            Command::Restart => "restart",
            Command::Stop => "stop",
            Command::GracefulStop => "graceful-stop",
            Command::Upgrade => "upgrade",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no [`Command`] (or no [`Request`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command {0:?}")]
pub struct UnknownCommand(pub String);

impl FromStr for Command {
    type Err = UnknownCommand;

    fn from_str(word: &str) -> Result<Command, UnknownCommand> {
        Command::ALL.into_iter().find(|c| c.as_str() == word).ok_or_else(|| UnknownCommand(word.to_owned()))
    }
}

/// The answer to a [`Request`]: `Ok(text)` or `Err(text)` — the wire form, where outcomes become text.
pub type Reply = Result<String, String>;

/// What a control-socket client asks for: one request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Carry out a command and answer with its outcome.
    Command(Command),
    /// A one-line status.
    Status,
    /// The result of the reload a signal already asked for (systemd ≥ 253 sends
    /// `ReloadSignal=` first, then runs `ExecReload=`, which asks this).
    AwaitReload,
    /// Reopen the log files (no signal does only this). `wait`: answer once every request
    /// that was writing to the old files has finished and the old files are closed.
    ReopenLogs { wait: bool },
}

impl Request {
    /// The request line's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Command(command) => command.as_str(),
            Request::Status => "status",
            Request::AwaitReload => "await-reload",
            Request::ReopenLogs { wait: false } => "reopen-logs",
            Request::ReopenLogs { wait: true } => "reopen-logs --wait",
        }
    }
}

impl FromStr for Request {
    type Err = UnknownCommand;

    fn from_str(line: &str) -> Result<Request, UnknownCommand> {
        let line = line.trim();
        match line {
            "status" => Ok(Request::Status),
            "await-reload" => Ok(Request::AwaitReload),
            "reopen-logs" => Ok(Request::ReopenLogs { wait: false }),
            "reopen-logs --wait" => Ok(Request::ReopenLogs { wait: true }),
            _ => line.parse().map(Request::Command),
        }
    }
}

/// Which kind of reload a command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadKind {
    /// USR1 / `graceful`: in-flight work finishes on the old generation.
    Graceful,
    /// HUP / `restart`: in-flight work is aborted first.
    Hard,
}

impl ReloadKind {
    /// The reload `command` asks for, if it asks for one.
    pub fn of(command: Command) -> Option<ReloadKind> {
        match command {
            Command::Reload => Some(ReloadKind::Graceful),
            Command::Restart => Some(ReloadKind::Hard),
            Command::Stop | Command::GracefulStop | Command::Upgrade => None,
        }
    }

    /// `reload` or `restart`, for messages.
    pub fn verb(self) -> &'static str {
        match self {
            ReloadKind::Graceful => "reload",
            ReloadKind::Hard => "restart",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_reads_back_from_its_line() {
        let all = Command::ALL.into_iter().map(Request::Command).chain([
            Request::Status,
            Request::AwaitReload,
            Request::ReopenLogs { wait: false },
            Request::ReopenLogs { wait: true },
        ]);
        for request in all {
            assert_eq!(format!("{}\n", request.as_str()).parse::<Request>(), Ok(request));
        }
        assert!("reload".parse::<Request>().is_err());
    }
}
