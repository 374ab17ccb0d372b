//! `graced unit`: print or write the units for a configuration; ask the installed systemd its version.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, bail};

use graced_config::{Config, Source};
use graced_unit::{Bundle, DEFAULT_BINARY, DEFAULT_NAME, Kind, Options, Origin, build};

/// `graced unit [-f FILE] [--systemd-version N|auto] [--out DIR|-] [--name NAME] [--template]`.
#[derive(Debug, Clone, clap::Args)]
pub struct UnitArgs {
    /// The systemd the units are for: a version number, or `auto` to ask the installed one
    /// (Type=notify-reload from 253 on; below, a waiting ExecReload=).
    #[arg(long, value_name = "N|auto", default_value = "auto")]
    pub systemd_version: SystemdVersion,
    /// Write the files into DIR instead of printing them (`-`: print to stdout).
    #[arg(long, value_name = "DIR|-", default_value = "-")]
    pub out: PathBuf,
    /// Unit name: NAME.service, NAME.socket (and NAME-LISTENER.socket for further listeners).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME)]
    pub name: String,
    /// Write templates NAME@.service / NAME@.socket; instance I reads DIR/I.toml, DIR being
    /// the configuration's directory.
    #[arg(long)]
    pub template: bool,
    /// The server binary the units run.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_BINARY)]
    pub binary: PathBuf,
    /// The configuration path the units pass to `-f` (default: the configuration read, made absolute).
    #[arg(long, value_name = "PATH")]
    pub unit_config: Option<PathBuf>,
    /// Write the D-Bus helper's files instead: the system bus policy (validated first),
    /// the activation file and graced-dbus.service, laid out under DIR as installed
    /// (usr/share/dbus-1/…, usr/lib/systemd/system/…). graced-dbus is taken to sit
    /// beside --binary.
    #[arg(long)]
    pub dbus: bool,
    /// With --dbus: the group whose members may call the helper (besides root).
    #[arg(long, value_name = "GROUP", default_value = graced_unit::dbus::DEFAULT_ADMIN_GROUP)]
    pub admin_group: String,
}

/// `--systemd-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemdVersion {
    Auto,
    Version(u32),
}

impl FromStr for SystemdVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(SystemdVersion::Auto);
        }
        s.parse()
            .map(SystemdVersion::Version)
            .map_err(|_| format!("{s:?} is neither a version number nor \"auto\""))
    }
}

impl fmt::Display for SystemdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemdVersion::Auto => f.write_str("auto"),
            SystemdVersion::Version(n) => write!(f, "{n}"),
        }
    }
}

/// Runs `graced unit`.
pub fn run(config: &Config, config_path: &Path, args: &UnitArgs) -> anyhow::Result<()> {
    if args.dbus {
        return write_dbus_files(args);
    }
    let systemd = match args.systemd_version {
        SystemdVersion::Version(n) => n,
        SystemdVersion::Auto => detect_systemd_version()
            .context("cannot tell the installed systemd's version; give --systemd-version N")?,
    };
    let unit_config = match &args.unit_config {
        Some(path) => path.clone(),
        None => std::path::absolute(config_path)
            .with_context(|| format!("cannot make {} absolute", config_path.display()))?,
    };
    if config.source == Source::Embedded {
        eprintln!(
            "graced unit: warning: no configuration file was read (the embedded default was used); \
             the units pass -f {}, which must exist",
            unit_config.display()
        );
    }
    let options = Options {
        name: args.name.clone(),
        binary: args.binary.clone(),
        config_path: unit_config,
        kind: if args.template { Kind::Template } else { Kind::Plain },
        origin: Origin::Command,
        source_path: None,
        documentation: Vec::new(),
    };
    let bundle = build(config, systemd, &options)
        .with_context(|| format!("cannot generate units from {}", config.source.display_name()))?;
    if args.out == Path::new("-") {
        print_bundle(&bundle, None)
    } else {
        write_bundle(&bundle, &args.out)?;
        let socket = &bundle.files.iter().find(|f| f.name.ends_with(".socket")).expect("a socket").name;
        let socket = socket.replace("@.", "@INSTANCE.");
        eprintln!("enable with: systemctl daemon-reload && systemctl enable --now {socket}");
        Ok(())
    }
}

/// `graced unit --dbus`: the D-Bus helper's files, printed or written under `args.out`
/// (each written to a temporary name and renamed, so dbus-daemon's directory watch never
/// reads half a policy).
fn write_dbus_files(args: &UnitArgs) -> anyhow::Result<()> {
    let bin_dir = args.binary.parent().unwrap_or(Path::new("/usr/sbin"));
    let files = graced_unit::dbus::bundle(&args.admin_group, bin_dir)
        .context("the generated bus policy does not validate")?;
    for (install_path, text) in files {
        if args.out == Path::new("-") {
            print!("---{install_path}---\n{text}");
            continue;
        }
        let path = args.out.join(install_path.trim_start_matches('/'));
        let dir = path.parent().expect("install paths have a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let temporary = path.with_extension("graced-tmp");
        std::fs::write(&temporary, text).with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Prints every file as `---NAME---` followed by its text (Quadlet's dry-run format);
/// `dir` prefixes the names.
pub fn print_bundle(bundle: &Bundle, dir: Option<&Path>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for file in &bundle.files {
        let name = match dir {
            Some(dir) => dir.join(&file.name).display().to_string(),
            None => file.name.clone(),
        };
        let written = write!(out, "---{name}---\n{file}");
        match written {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("cannot write to stdout")?,
        }
    }
    Ok(())
}

/// Writes every file of `bundle` into `dir` (created if missing).
pub fn write_bundle(bundle: &Bundle, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for file in &bundle.files {
        let path = dir.join(&file.name);
        std::fs::write(&path, file.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The installed systemd's version, from `systemctl --version` (or, failing that,
/// `systemd --version`; only ever with `--version`).
pub fn detect_systemd_version() -> anyhow::Result<u32> {
    let candidates: [(&str, &[&str]); 3] = [
        ("systemctl", &["--version"]),
        ("/usr/lib/systemd/systemd", &["--version"]),
        ("/lib/systemd/systemd", &["--version"]),
    ];
    let mut tried = Vec::new();
    for (program, args) in candidates {
        match Command::new(program).args(args).output() {
            Ok(output) if output.status.success() => {
                let text = String::from_utf8_lossy(&output.stdout);
                if let Some(version) = parse_systemd_version(&text) {
                    return Ok(version);
                }
                tried.push(format!("{program}: unexpected output {:?}", text.lines().next().unwrap_or("")));
            }
            Ok(output) => tried.push(format!("{program}: {}", output.status)),
            Err(err) => tried.push(format!("{program}: {err}")),
        }
    }
    bail!("{}", tried.join("; "))
}

/// `systemd 252 (252.38-1~deb12u1)` → 252 (the first line of `systemctl --version`).
pub fn parse_systemd_version(text: &str) -> Option<u32> {
    let rest = text.lines().next()?.trim().strip_prefix("systemd ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_first_line() {
        assert_eq!(parse_systemd_version("systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT"), Some(252));
        assert_eq!(parse_systemd_version("systemd 257 (257.7-1)\n"), Some(257));
        assert_eq!(parse_systemd_version("systemd 254-rc1\n"), Some(254));
        assert_eq!(parse_systemd_version("bash 5.2\n"), None);
        assert_eq!(parse_systemd_version(""), None);
    }

    #[test]
    fn systemd_version_argument() {
        assert_eq!("auto".parse(), Ok(SystemdVersion::Auto));
        assert_eq!("253".parse(), Ok(SystemdVersion::Version(253)));
        assert!("latest".parse::<SystemdVersion>().is_err());
    }
}
