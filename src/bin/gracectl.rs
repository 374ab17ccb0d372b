//! `gracectl`: graceful-stop, reload and status of graced units through the graced-dbus helper.

use std::process::ExitCode;

use clap::Parser;
use graced_dbus::client::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gracectl: cannot start the async runtime: {err}");
            return ExitCode::from(client::EXIT_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(client::run(&cli)))
}
