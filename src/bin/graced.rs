//! `graced`: run the server, check a configuration (`-t`), control a running server (`-k`), or print units.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use graced::cli::{self, Cli, Command, EXIT_CONFIG, EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK, Sub};
use graced::supervisor;
use graced_config::{Config, ConfigError};
use graced_lifecycle::{self as lifecycle, client};

/// jemalloc: it keeps small long-lived allocations (a parked connection's task and socket
/// registration) in slabs of their own size, apart from the buffers a request uses, and a
/// background thread hands pages freed for a second back to the kernel. With glibc's
/// allocator the two interleave: 10,000 parked connections kept 6.5 KiB each of partly used
/// pages that `malloc_trim` cannot return, against 2.2 KiB live (measured).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (`malloc_conf`; the crate prefixes the symbol):
/// freed pages go back to the kernel after about a second instead of ten.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf = MallocConf(c"dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string's address, as jemalloc reads `malloc_conf` (`const char *`).
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points to a constant string, read-only, for the life of the process.
unsafe impl Sync for MallocConf {}

fn main() -> ExitCode {
    // Before anything else can own fds 3..: take the sockets systemd passed us.
    // SAFETY: called once, first thing, while the process has no other threads.
    let inherited = unsafe { lifecycle::upgrade::take_from_env() };
    // Now that the environment is read: jemalloc's thread that returns freed pages while the
    // server is idle (without it, pages are returned only when allocations happen).
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!(
            "graced: jemalloc's background thread did not start ({err}); freed memory is returned less promptly"
        );
    }
    let cli = Cli::parse();
    match run(cli, inherited) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("graced: {}", graced::logging::error_chain(err.as_ref()));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

type Inherited = Result<lifecycle::upgrade::Start, lifecycle::activation::ActivationError>;

fn run(cli: Cli, mut inherited: Inherited) -> anyhow::Result<u8> {
    match &cli.subcommand {
        Some(Sub::Manpage { dir }) => {
            cli::write_manpage(dir)
                .with_context(|| format!("writing the man page into {}", dir.display()))?;
            return Ok(EXIT_OK);
        }
        Some(Sub::Completions { shell }) => {
            cli::print_completions(*shell);
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let command = cli.command.and_then(Command::lifecycle);
    let config = match Config::locate(cli.config.as_deref()) {
        Ok(config) => Some(config),
        // A reload that waits is judged by the server itself: it validates the file,
        // keeps serving, reports the errors to systemd (STATUS=, ERRNO=) and answers
        // with them. Stopping or asking for status never needs a valid file.
        Err(err) if reaches_server_anyway(&cli, command) => {
            if !cli.wait || !matches!(command, Some(lifecycle::Command::Reload | lifecycle::Command::Restart))
            {
                eprintln!("graced: warning: the configuration is invalid:\n{err}");
            }
            None
        }
        Err(err) => {
            // Started by a binary upgrade: the old process keeps serving and reports this.
            if let Ok(lifecycle::upgrade::Start { predecessor: Some(predecessor), .. }) = &mut inherited {
                let first = err.to_string().lines().next().unwrap_or_default().to_owned();
                predecessor.failed(&format!("its configuration is invalid: {first}"));
            }
            return Ok(config_error(&err));
        }
    };
    if cli.test {
        // Basic-auth users given as systemd credentials (`htpasswd = "credential:NAME"`),
        // read as the server reads them at start and at each reload.
        let mut config = config;
        if let Some(config) = &mut config
            && let Err(err) = config.load_credentials(supervisor::credentials_directory().as_deref())
        {
            return Ok(config_error(&err));
        }
        if let Some(config) = &config
            && let Some(code) = check_certificates(config)
        {
            return Ok(code);
        }
        println!("Syntax OK");
        return Ok(EXIT_OK);
    }
    let path = cli.config.clone().unwrap_or_else(|| graced_config::DEFAULT_PATH.into());
    if let (Some(Sub::Unit(args)), Some(config)) = (&cli.subcommand, &config) {
        graced::unit::run(config, &path, args)?;
        return Ok(EXIT_OK);
    }
    let pid_path = match &config {
        Some(config) => supervisor::pid_file_path(config),
        None => supervisor::pid_file_path_lenient(&path),
    };
    let outcome = match (cli.command, command) {
        (Some(Command::Status), _) => Some(client::status(&pid_path, cli.timeout).context("-k status")?),
        (Some(Command::ReopenLogs), _) => {
            Some(client::reopen_logs(&pid_path, cli.wait_for()).context("-k reopen-logs")?)
        }
        (_, Some(lifecycle::Command::Reload | lifecycle::Command::Restart)) if cli.signalled => {
            Some(client::await_reload(&pid_path, cli.timeout).context("-k … --signalled")?)
        }
        (_, Some(command)) => {
            let files = match (&config, command) {
                (Some(config), lifecycle::Command::Reload | lifecycle::Command::Restart) => {
                    graced::handover::files_for(config)
                }
                _ => Vec::new(),
            };
            Some(
                client::send_with_files(&pid_path, command, cli.wait_for(), files)
                    .with_context(|| format!("-k {command:?}"))?,
            )
        }
        _ => None,
    };
    if let Some(outcome) = outcome {
        return Ok(match outcome {
            client::Outcome::Done(text) => {
                println!("graced: {text}");
                EXIT_OK
            }
            client::Outcome::Failed(text) => {
                eprintln!("graced: {text}");
                EXIT_FAILURE
            }
            client::Outcome::NotRunning(text) => {
                eprintln!("graced: {text}");
                EXIT_NOT_RUNNING
            }
            client::Outcome::TimedOut(text) => {
                eprintln!("graced: {text}");
                cli::EXIT_TIMED_OUT
            }
        });
    }
    let mut config = config.expect("serving needs a valid configuration");
    if let Err(err) = config.load_credentials(supervisor::credentials_directory().as_deref()) {
        return Ok(config_error(&err));
    }
    let log = graced::logging::init(config.server.log_level);
    let inherited = inherited.context("socket activation")?;
    match supervisor::serve(config, inherited, log) {
        // Certificates are configuration: EX_CONFIG, as for the file itself.
        Err(supervisor::LifecycleError::Tls(errors)) => {
            eprintln!("graced: {errors}");
            Ok(EXIT_CONFIG)
        }
        other => other.map(|()| EXIT_OK).map_err(Into::into),
    }
}

/// `-k stop`, `-k graceful-stop`, `-k status`, `-k reopen-logs` and `-k graceful|restart --wait` talk to
/// the running server even when the configuration file is invalid.
fn reaches_server_anyway(cli: &Cli, command: Option<lifecycle::Command>) -> bool {
    if cli.test || cli.subcommand.is_some() {
        return false;
    }
    match command {
        // The new binary judges the configuration itself, and the old one reports it.
        Some(lifecycle::Command::Stop | lifecycle::Command::GracefulStop | lifecycle::Command::Upgrade) => {
            true
        }
        Some(lifecycle::Command::Reload | lifecycle::Command::Restart) => cli.wait,
        None => matches!(cli.command, Some(Command::Status | Command::ReopenLogs)),
    }
}

/// `-t`: loads and checks every certificate and key as the server would; prints every
/// problem and returns EX_CONFIG, or warns about certificates that expire soon.
fn check_certificates(config: &Config) -> Option<u8> {
    let credentials = graced_tls::Credentials::new(supervisor::credentials_directory());
    let (handed, serving) = (graced_tls::Handed::default(), graced_tls::Serving::default());
    let sources = graced_tls::Sources { credentials: &credentials, handed: &handed, serving: &serving };
    let now = std::time::SystemTime::now();
    let loaded = graced_tls::TlsState::new()
        .map_err(graced_tls::TlsErrors::from)
        .and_then(|state| state.load(config, &sources, now));
    match loaded {
        Ok(prepared) => {
            for c in prepared.iter().flat_map(|p| p.certificates.within(config.tls.expiry_warning, now)) {
                eprintln!("graced: warning: certificate of {}", c.describe(now));
            }
            None
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("graced: a certificate or key cannot be used; nothing was changed");
            Some(EXIT_CONFIG)
        }
    }
}

/// Prints every problem, once, and returns EX_CONFIG.
fn config_error(err: &ConfigError) -> u8 {
    eprintln!("{err}");
    if !err.diagnostics().is_empty() {
        eprintln!("graced: the configuration is invalid; nothing was changed");
    }
    EXIT_CONFIG
}
