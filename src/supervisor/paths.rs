//! Where graced's pid file is (the configuration's `pid_file`, else the toolkit's default for the name `graced`), its credentials directory, and the binary it was started from.

use std::path::{Path, PathBuf};

use graced_config::Config;

/// The pid file a configuration asks for: its `pid_file`, else [`default_pid_file`].
pub fn pid_file_path(config: &Config) -> PathBuf {
    config.server.pid_file.clone().unwrap_or_else(default_pid_file)
}

/// The pid file a configuration file names even when the file does not validate, so
/// that `-k` can still reach the running server (which then reports the errors itself).
pub fn pid_file_path_lenient(config_file: &Path) -> PathBuf {
    let named = std::fs::read_to_string(config_file).ok().and_then(|text| {
        let table: toml::Table = toml::from_str(&text).ok()?;
        let path = table.get("server")?.get("pid_file")?.as_str()?.to_owned();
        Some(config_file.parent().unwrap_or(Path::new("/")).join(path))
    });
    named.unwrap_or_else(default_pid_file)
}

/// `$RUNTIME_DIRECTORY/graced.pid` (systemd's `RuntimeDirectory=`), else
/// `/run/graced/graced.pid` for root and `$XDG_RUNTIME_DIR/graced/graced.pid` (or
/// `/tmp/graced-UID/graced.pid`) for others.
pub fn default_pid_file() -> PathBuf {
    graced_lifecycle::pidfile::default_path("graced")
}

/// `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`), read once at start: where
/// `credential:NAME` certificates and keys are.
pub fn credentials_directory() -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
}

/// The path this process's binary was started from and its arguments, read once at start:
/// what a binary upgrade runs. Read now, while `/proc/self/exe` still names the file;
/// once a package replaces the binary it names the deleted old inode (`… (deleted)`),
/// and the path is what the upgrade wants — the binary installed there now.
pub fn own_command() -> (Option<PathBuf>, Vec<std::ffi::OsString>) {
    let exe = std::fs::read_link("/proc/self/exe").ok().map(|path| {
        let text = path.to_string_lossy();
        match text.strip_suffix(" (deleted)") {
            Some(stripped) => PathBuf::from(stripped),
            None => path,
        }
    });
    (exe, std::env::args_os().skip(1).collect())
}
