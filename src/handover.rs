//! What a root `graced -k graceful|restart` hands the running server: every site's certificate and key file, opened here.
//!
//! The server runs wholly as its own unprivileged user, so it cannot open a key that stays
//! `root:root 0600` (`/etc/ssl/private`, certbot's `live/`). The generated units run
//! `ExecReload=+graced -k graceful --wait …` with full privileges: that process reads the
//! same configuration, opens each file as root, and passes the descriptors with its
//! request over the control socket (`graced_lifecycle::handover`). The server reads the
//! renewed files through them, checks them like any others, and keeps nothing open.
//! Nothing is copied to disk, and the server's user never gains access to the path.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use graced_config::{Config, Secret};
use graced_lifecycle::handover::HandedFile;

/// The files to hand over: every site's certificate and key given as a path, when this
/// process is root (anyone else can open nothing the server could not). A file that
/// cannot be opened is left out with a warning; the server then reads the path itself and
/// reports what it finds.
pub fn files_for(config: &Config) -> Vec<HandedFile> {
    if !rustix::process::geteuid().is_root() {
        return Vec::new();
    }
    let mut paths: Vec<&Path> = Vec::new();
    for tls in config.sites.iter().filter_map(|s| s.tls.as_ref()) {
        for secret in [&tls.certificate, &tls.key] {
            if let Secret::File(path) = secret
                && !paths.contains(&path.as_path())
            {
                paths.push(path);
            }
        }
    }
    paths
        .into_iter()
        .filter_map(|path| match open_regular(path) {
            Ok(file) => Some(HandedFile { label: path.display().to_string(), fd: file.into() }),
            Err(err) => {
                eprintln!("graced: warning: cannot open {} to hand it over: {err}", path.display());
                None
            }
        })
        .collect()
}

/// Opens `path` for reading without blocking on a FIFO; only a regular file is kept.
fn open_regular(path: &Path) -> std::io::Result<File> {
    let file =
        OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32).open(path)?;
    if file.metadata()?.is_file() { Ok(file) } else { Err(std::io::Error::other("not a regular file")) }
}
