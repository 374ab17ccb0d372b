//! The command lines of the service: the binary and the `-f` argument, as unit-file text.

use std::path::Path;

use super::options::{Kind, Options};
use super::text::unit_path;
use crate::error::Error;
use crate::model::Command;

/// The command lines.
pub(super) struct Exec {
    pub(super) program: String,
    /// Unit-file text for `-f`.
    pub(super) config: String,
    /// The same for comments.
    pub(super) config_display: String,
}

impl Exec {
    pub(super) fn new(options: &Options) -> Result<Exec, Error> {
        let program = unit_path(&options.binary, "binary")?;
        if !options.binary.is_absolute() {
            return Err(Error::RelativePath { what: "binary", path: options.binary.clone() });
        }
        if !options.config_path.is_absolute() {
            return Err(Error::RelativePath { what: "configuration", path: options.config_path.clone() });
        }
        let (config, config_display) = match options.kind {
            Kind::Template => {
                let dir = options.config_path.parent().unwrap_or(Path::new("/"));
                let dir_text = unit_path(dir, "configuration directory")?;
                let sep = if dir_text.ends_with('/') { "" } else { "/" };
                (format!("{dir_text}{sep}%i.toml"), format!("{}{sep}%i.toml", dir.display()))
            }
            _ => {
                (unit_path(&options.config_path, "configuration")?, options.config_path.display().to_string())
            }
        };
        Ok(Exec { program, config, config_display })
    }

    pub(super) fn command(&self, args: &[&str]) -> Command {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push("-f".to_owned());
        args.push(self.config.clone());
        Command { privileged: false, program: self.program.clone(), args }
    }
}
