//! `graced-acme`: gets and renews the certificates of sites with `acme = {…}` (run by
//! graced-acme.service, with network, as its own user), or — with `--reload`, run as root
//! by the same unit afterwards — reloads graced when a certificate was installed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Parser;
use graced::logging::{self, message_id};
use graced_acme::{Options, Outcome};
use graced_config::Config;

/// Certificates from ACME for graced's sites that ask for them.
#[derive(Debug, Parser)]
#[command(name = "graced-acme", version, about)]
struct Cli {
    /// graced's configuration file [default: /etc/graced/graced.toml]
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Order now, even when not due or during a back-off after failures
    #[arg(long)]
    force: bool,
    /// Do not order: reload graced if a certificate was installed since the last reload
    #[arg(long)]
    reload: bool,
    /// With --reload: graced's unit, reloaded with `systemctl reload UNIT` (its ExecReload=
    /// hands the new files over and fails when the reload fails)
    #[arg(long, value_name = "UNIT", default_value = "graced.service")]
    unit: String,
    /// With --reload: run COMMAND (split at spaces) instead of `systemctl reload UNIT`
    #[arg(long, value_name = "COMMAND")]
    reload_command: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            tracing::error!("{}", logging::error_chain(err.as_ref()));
            eprintln!("graced-acme: {}", logging::error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let config = Config::locate(cli.config.as_deref()).context("graced's configuration")?;
    let _log = logging::init(config.server.log_level);
    if cli.reload {
        let command = cli.reload_command.clone().unwrap_or_else(|| format!("systemctl reload {}", cli.unit));
        return reload(&config, &command);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcomes =
        runtime.block_on(graced_acme::run(&config, Options { force: cli.force, now: SystemTime::now() }));
    let when = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let mut failed = false;
    for outcome in outcomes {
        match outcome {
            Outcome::Installed { site, not_after, renewed } => tracing::info!(
                message_id = message_id::ACME_INSTALLED,
                site = %site,
                not_after = %when(not_after),
                "{site}: {} certificate installed, valid until {}; graced serves it after its reload",
                if renewed { "renewed" } else { "first" },
                when(not_after)
            ),
            Outcome::NotDue { site, at, by_ari } => tracing::info!(
                site = %site,
                "{site}: not due before {} ({})",
                when(at),
                if by_ari { "the CA's renewal window" } else { "two thirds of its lifetime" }
            ),
            Outcome::BackingOff { site, until, error } => {
                tracing::info!(site = %site, retry = %when(until), "{site}: backing off until {} after: {error}", when(until))
            }
            Outcome::Failed { site, error, retry } => {
                failed = true;
                tracing::error!(
                    message_id = message_id::ACME_FAILED,
                    site = %site,
                    retry = %when(retry),
                    "{}; the current certificate keeps serving; next try at {}",
                    logging::error_chain(&error),
                    when(retry)
                );
            }
        }
    }
    Ok(u8::from(failed))
}

/// Runs `command` when a certificate awaits its reload; the marker goes only once it worked.
fn reload(config: &Config, command: &str) -> anyhow::Result<u8> {
    if !graced_acme::reload_pending(config) {
        return Ok(0);
    }
    let mut words = command.split_whitespace();
    let program = words.next().context("--reload-command is empty")?;
    let status = std::process::Command::new(program).args(words).status();
    match status {
        Ok(status) if status.success() => {
            let marker = graced_acme::reload_marker(config);
            std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
            tracing::info!("graced reloaded ({command}): it serves the new certificates");
            Ok(0)
        }
        failed => {
            let why = match failed {
                Ok(status) => status.to_string(),
                Err(err) => err.to_string(),
            };
            tracing::error!(
                message_id = message_id::ACME_RELOAD_FAILED,
                "{command}: {why}; graced keeps serving the previous certificates, the reload stays pending"
            );
            Ok(1)
        }
    }
}
