//! The `graced` command line (clap), shared with the man page and completion generators.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: a runtime failure (bind failed, already running, reload failed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: `-k` found no running server holding the pid file's lock (LSB "not running").
pub const EXIT_NOT_RUNNING: u8 = 3;
/// Exit status: `--wait` ran out of time (`-k reopen-logs --wait`; sysexits EX_TEMPFAIL).
pub const EXIT_TIMED_OUT: u8 = 75;
/// Exit status: the configuration is invalid (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// A systemd-native static web server that keeps Apache's signal contract.
#[derive(Debug, Parser)]
#[command(name = "graced", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file [default: /etc/graced/graced.toml if it exists, else the embedded default]
    #[arg(short = 'f', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Check the configuration and exit: prints "Syntax OK" or every error as FILE:LINE:COL
    #[arg(short = 't', long = "test")]
    pub test: bool,

    /// Send a command to the running server (apachectl style), or start one in the foreground
    #[arg(short = 'k', value_enum, value_name = "COMMAND")]
    pub command: Option<Command>,

    /// With -k graceful|restart: return when the new configuration serves (exit 0) or the
    /// reload failed (exit 1). With -k upgrade: when the new binary serves (0) or failed
    /// and the old one still serves (1). With -k stop|graceful-stop: when the server has exited.
    /// With -k reopen-logs: return when the old log files are closed (exit 0; 75 at --timeout).
    #[arg(long, requires = "command")]
    pub wait: bool,

    /// With -k graceful|restart --wait: the reload signal was already sent (by systemd, as
    /// `ReloadSignal=` of a `Type=notify-reload` unit); wait for that reload's outcome
    /// instead of asking for another
    #[arg(long, requires = "wait")]
    pub signalled: bool,

    /// How long --wait waits at most
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,

    #[command(subcommand)]
    pub subcommand: Option<Sub>,
}

/// `-k` commands, as apachectl has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Command {
    /// Run the server in the foreground (the same as no -k)
    Start,
    /// Stop now: in-flight requests are aborted (SIGTERM)
    Stop,
    /// Hard restart: abort in-flight requests, reread the configuration (SIGHUP)
    Restart,
    /// Graceful reload: reread the configuration; nothing in flight is disturbed (SIGUSR1)
    Graceful,
    /// Graceful stop: stop accepting, let requests finish, then exit (SIGWINCH)
    GracefulStop,
    /// Print the running server's status (generation, connections, requests)
    Status,
    /// Binary upgrade: start the binary installed at the path the server was started from
    /// with the same sockets; once it serves it becomes the main process and the old one
    /// drains (SIGUSR2). With --wait: exit 0 when the new binary serves, 1 when it could not
    /// (the old one keeps serving)
    Upgrade,
    /// Reopen the log files; with --wait, return once every request writing to the old
    /// files has finished and they are closed (for logrotate's postrotate)
    ReopenLogs,
}

impl Command {
    /// The toolkit's command it sends to a running server (`None`: start here, or ask for status).
    pub fn lifecycle(self) -> Option<graced_lifecycle::Command> {
        match self {
            Command::Start | Command::Status | Command::ReopenLogs => None,
            Command::Stop => Some(graced_lifecycle::Command::Stop),
            Command::Restart => Some(graced_lifecycle::Command::Restart),
            Command::Graceful => Some(graced_lifecycle::Command::Reload),
            Command::GracefulStop => Some(graced_lifecycle::Command::GracefulStop),
            Command::Upgrade => Some(graced_lifecycle::Command::Upgrade),
        }
    }
}

impl Cli {
    /// `--wait` (bounded by `--timeout`) as the toolkit's [`Wait`](graced_lifecycle::client::Wait).
    pub fn wait_for(&self) -> graced_lifecycle::client::Wait {
        use graced_lifecycle::client::Wait;
        if self.wait { Wait::UpTo(self.timeout) } else { Wait::No }
    }
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Print or write the systemd units for this configuration
    Unit(crate::unit::UnitArgs),
    /// Write the man page graced(8) into DIR (used when packaging)
    #[command(hide = true)]
    Manpage {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Writes `graced.8` into `dir`.
pub fn write_manpage(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    let command = Cli::command();
    let man = clap_mangen::Man::new(command).section("8");
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("graced.8"), page)
}

/// Prints the completion script for `shell` to stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "graced", &mut std::io::stdout());
}

const EXIT_CODES: &str = "\
Exit status: 0 success; 1 runtime failure (already running, bind failed, reload failed);
2 usage error; 3 no running server (-k); 75 timed out (-k reopen-logs --wait);
78 invalid configuration.";
