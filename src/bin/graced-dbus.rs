//! `graced-dbus`: the bus-activated helper serving org.graced.Control1 on the system bus.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use graced_dbus::{self as dbus, HelperOptions};

/// Serve org.graced.Control1: graceful-stop, reload and status of graced units, through
/// systemd's D-Bus API. Started by D-Bus activation; who may call it is set by the bus policy.
#[derive(Debug, Parser)]
#[command(name = "graced-dbus", version)]
struct Args {
    /// Exit after this long without calls ("0" never exits); the bus starts it again on demand.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Connect to the bus at this D-Bus address instead of the system bus (for tests).
    #[arg(long, value_name = "ADDRESS")]
    address: Option<String>,
    /// Log debug messages too.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_max_level(if args.verbose { tracing::Level::DEBUG } else { tracing::Level::INFO })
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match runtime.context("cannot start the async runtime").and_then(|rt| rt.block_on(serve(args))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("graced-dbus: {}", graced::logging::error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let (bus, which) = match &args.address {
        Some(address) => {
            (zbus::connection::Builder::address(address.as_str()), format!("the bus at {address}"))
        }
        None => (zbus::connection::Builder::system(), "the system bus".to_owned()),
    };
    let options = HelperOptions {
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        ..HelperOptions::default()
    };
    dbus::run(bus, options).await.with_context(|| format!("serving on {which}"))?;
    Ok(())
}
