//! The paths the sandbox must let through: runtime directory, document roots, logs.

use std::path::{Component, Path, PathBuf};

use graced_config::{AccessLog, Config, ListenAddress, Root};

use super::options::{Kind, Options};
use super::text::unit_path;
use crate::error::Error;
use crate::model::{AddressFamily, ProtectHome};

/// The directory under /run that holds the pid file and the control socket.
pub(super) fn runtime_directory(config: &Config, options: &Options) -> Result<String, Error> {
    let Some(pid_file) = &config.server.pid_file else {
        // The server falls back to $RUNTIME_DIRECTORY/graced.pid.
        return Ok(match &options.kind {
            Kind::Plain => options.name.clone(),
            // Not NAME/INSTANCE: stopping NAME.service would remove /run/NAME and with it
            // every running instance's pid file and control socket.
            Kind::Template => format!("{}-%i", options.name),
            Kind::Instance(i) => format!("{}-{i}", options.name),
        });
    };
    if options.kind == Kind::Template {
        return Err(Error::PidFileInTemplate { path: pid_file.clone() });
    }
    let outside = || Error::PidFileOutsideRun { path: pid_file.clone() };
    let relative = pid_file.strip_prefix("/run").map_err(|_| outside())?;
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(outside());
    }
    let dir = relative.parent().filter(|d| !d.as_os_str().is_empty()).ok_or_else(outside)?;
    unit_path(dir, "pid_file directory")
}

/// What the sandbox must let through, from the configuration's paths.
pub(super) struct Paths {
    pub(super) runtime_directory_abs: PathBuf,
    pub(super) read_only_binds: Vec<String>,
    pub(super) binds: Vec<String>,
    pub(super) read_write: Vec<String>,
    pub(super) logs_directory: Option<String>,
    pub(super) mounts: Vec<String>,
    pub(super) protect_home: ProtectHome,
    pub(super) families: Vec<AddressFamily>,
}

/// Invisible under `ProtectHome=`: bound back in one by one with `ProtectHome=tmpfs`.
pub(super) const HOME_DIRS: [&str; 3] = ["/home", "/root", "/run/user"];
/// Private and empty under `PrivateTmp=yes`.
pub(super) const TMP_DIRS: [&str; 2] = ["/tmp", "/var/tmp"];

pub(super) fn under_any(path: &Path, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter().map(PathBuf::from).find(|d| path.starts_with(d))
}

impl Paths {
    pub(super) fn new(config: &Config, options: &Options, runtime_directory: &str) -> Result<Paths, Error> {
        let mut paths = Paths {
            runtime_directory_abs: Path::new("/run").join(runtime_directory),
            read_only_binds: Vec::new(),
            binds: Vec::new(),
            read_write: Vec::new(),
            logs_directory: None,
            mounts: Vec::new(),
            protect_home: ProtectHome::Yes,
            families: vec![AddressFamily::Unix],
        };
        let config_dir = options.config_path.parent().unwrap_or(Path::new("/"));
        paths.readable("configuration", config_dir, false)?;
        for site in &config.sites {
            if let Root::Dir(root) = &site.root {
                paths.readable("document root", root, true)?;
            }
        }
        if let AccessLog::File(file) = &config.server.access_log {
            paths.writable_log(file)?;
        }
        if config.listeners.iter().any(|l| matches!(l.address, ListenAddress::Tcp(_))) {
            // Accepting on an inherited socket needs no socket(2), so AF_UNIX alone (journal,
            // notify, control socket) would do; AF_INET/AF_INET6 are kept so that nothing
            // the server does with its listeners can fail on the filter.
            paths.families.extend([AddressFamily::Inet, AddressFamily::Inet6]);
        }
        if paths.protect_home == ProtectHome::Tmpfs {
            dedup(&mut paths.read_only_binds);
            dedup(&mut paths.binds);
        }
        dedup(&mut paths.mounts);
        Ok(paths)
    }

    pub(super) fn readable(&mut self, what: &'static str, path: &Path, mount: bool) -> Result<(), Error> {
        if let Some(dir) = under_any(path, &TMP_DIRS) {
            return Err(Error::HiddenByPrivateTmp { what, path: path.to_owned(), dir });
        }
        let text = unit_path(path, what)?;
        if under_any(path, &HOME_DIRS).is_some() {
            self.protect_home = ProtectHome::Tmpfs;
            self.read_only_binds.push(text.clone());
        }
        if mount {
            self.mounts.push(text);
        }
        Ok(())
    }

    pub(super) fn writable_log(&mut self, file: &Path) -> Result<(), Error> {
        let what = "access_log directory";
        let dir = file.parent().unwrap_or(Path::new("/"));
        if let Some(tmp) = under_any(dir, &TMP_DIRS) {
            return Err(Error::HiddenByPrivateTmp { what, path: file.to_owned(), dir: tmp });
        }
        if dir.starts_with(&self.runtime_directory_abs) {
            return Ok(());
        }
        if let Ok(relative) = dir.strip_prefix("/var/log") {
            if relative.as_os_str().is_empty() {
                return Err(Error::AccessLogInVarLog { path: file.to_owned() });
            }
            // systemd creates it, owned by the service's user (also a dynamic one).
            self.logs_directory = Some(unit_path(relative, what)?);
            return Ok(());
        }
        let text = unit_path(dir, what)?;
        if under_any(dir, &HOME_DIRS).is_some() {
            self.protect_home = ProtectHome::Tmpfs;
            self.binds.push(text.clone());
        } else {
            self.read_write.push(text.clone());
        }
        self.mounts.push(text);
        Ok(())
    }
}

pub(super) fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|item| seen.insert(item.clone()));
}
