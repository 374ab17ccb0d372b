//! What the caller decides: unit names, install paths, template or instance ([`Options`]).

use std::path::PathBuf;

/// Where the packaged binary lives.
pub const DEFAULT_BINARY: &str = "/usr/sbin/graced";
/// The unit name of the packaged server.
pub const DEFAULT_NAME: &str = "graced";

/// Which family of units to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `NAME.service`, `NAME.socket`.
    Plain,
    /// `NAME@.service`, `NAME@.socket`: instances read `DIR/%i.toml`, DIR being the
    /// configuration's directory.
    Template,
    /// `NAME@INSTANCE.service`, `NAME@INSTANCE.socket`: a template specialised for one
    /// instance configuration (the generator's output).
    Instance(String),
}

/// Who writes the units; only changes the header comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `graced unit`.
    Command,
    /// `graced-generator`, at boot and on `systemctl daemon-reload`.
    Generator,
}

/// Where things are installed and what to call them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Unit name stem (`graced`).
    pub name: String,
    /// Absolute path of the server binary.
    pub binary: PathBuf,
    /// Absolute path the units pass to `-f`.
    pub config_path: PathBuf,
    pub kind: Kind,
    pub origin: Origin,
    /// `SourcePath=`: the file the units were generated from (generator output only).
    pub source_path: Option<PathBuf>,
    /// `Documentation=` URLs.
    pub documentation: Vec<String>,
}

impl Options {
    /// The packaged layout (`/usr/sbin/graced`, unit `graced`) for a configuration at `config_path`.
    pub fn new(config_path: impl Into<PathBuf>) -> Options {
        Options {
            name: DEFAULT_NAME.to_owned(),
            binary: PathBuf::from(DEFAULT_BINARY),
            config_path: config_path.into(),
            kind: Kind::Plain,
            origin: Origin::Command,
            source_path: None,
            documentation: Vec::new(),
        }
    }
}
