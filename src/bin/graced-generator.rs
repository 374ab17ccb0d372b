//! graced-generator: a systemd generator turning each /etc/graced/instances/NAME.toml into graced@NAME units.
//!
//! Installed as /usr/lib/systemd/system-generators/graced-generator, systemd runs it at
//! boot and on every `systemctl daemon-reload` with three output directories (see
//! systemd.generator(7)); only the first ("normal") is used. For each instance it writes
//! `graced@NAME.service`, `graced@NAME.socket` (plus `graced-LISTENER@NAME.socket` for
//! further listeners) with `SourcePath=` naming the configuration, and enables the socket
//! with a `sockets.target.wants/` symlink, as generated units cannot be `systemctl enable`d.
//! A broken configuration is reported (to /dev/kmsg, else the journal socket, and stderr) and
//! skipped; the others are still generated, and the exit status is then 1, like Quadlet.
//!
//! `GRACED_INSTANCES_DIR` and `GRACED_SYSTEMD_VERSION` override the instance directory and
//! the target systemd version (tests, debugging).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use graced_config::{Config, ListenAddress};
use graced_unit::model::Body;
use graced_unit::{Artifact, Bundle, DEFAULT_BINARY, DEFAULT_NAME, FALLBACK_SYSTEMD, Kind, Options, Origin};

const INSTANCES_DIR: &str = "/etc/graced/instances";
const NORMAL_DIR: &str = "/run/systemd/generator";

/// Generates graced@NAME units from /etc/graced/instances/NAME.toml.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Print what would be written, and write nothing (problems go to stderr).
    #[arg(long, alias = "dry-run")]
    dryrun: bool,
    /// Report problems on stderr even when /dev/kmsg is writable.
    #[arg(long)]
    no_kmsg_log: bool,
    /// The normal, early and late output directories; units go into the first.
    #[arg(value_name = "DIR", num_args = 0..=3)]
    dirs: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log = Log::open(args.dryrun || args.no_kmsg_log);
    let Some(normal) = args.dirs.first().cloned().or_else(|| args.dryrun.then(|| PathBuf::from(NORMAL_DIR)))
    else {
        log.error("expected the output directories (normal-dir [early-dir late-dir]) or --dryrun");
        return ExitCode::FAILURE;
    };
    let instances_dir =
        std::env::var_os("GRACED_INSTANCES_DIR").map_or_else(|| PathBuf::from(INSTANCES_DIR), PathBuf::from);
    let systemd = systemd_version(&log);
    let mut generator = Generator { log, normal, dryrun: args.dryrun, failed: false };
    generator.run(&instances_dir, systemd);
    if generator.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The target systemd: `GRACED_SYSTEMD_VERSION`, else the installed one, else the fallback.
fn systemd_version(log: &Log) -> u32 {
    if let Some(text) = std::env::var_os("GRACED_SYSTEMD_VERSION") {
        match text.to_string_lossy().parse() {
            Ok(version) => return version,
            Err(_) => log.error(&format!("ignoring GRACED_SYSTEMD_VERSION={}: not a number", text.display())),
        }
    }
    match graced::unit::detect_systemd_version() {
        Ok(version) => version,
        Err(err) => {
            log.error(&format!(
                "cannot tell systemd's version ({}); writing units for {FALLBACK_SYSTEMD}",
                graced::logging::error_chain(err.as_ref())
            ));
            FALLBACK_SYSTEMD
        }
    }
}

struct Generator {
    log: Log,
    normal: PathBuf,
    dryrun: bool,
    failed: bool,
}

impl Generator {
    fn fail(&mut self, message: &str) {
        self.log.error(message);
        self.failed = true;
    }

    fn run(&mut self, instances_dir: &Path, systemd: u32) {
        let entries = match std::fs::read_dir(instances_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) => return self.fail(&format!("cannot read {}: {err}", instances_dir.display())),
        };
        let mut configs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml") && path.is_file())
            .filter(|path| !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        configs.sort();

        // Conflicts between instances: the second one is skipped.
        let mut runtime_dirs: HashMap<String, String> =
            HashMap::from([(DEFAULT_NAME.to_owned(), format!("{DEFAULT_NAME}.service"))]);
        let mut addresses: HashMap<ListenAddress, String> = HashMap::new();
        for path in configs {
            let instance = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let skipped = format!("{}: skipped", path.display());
            let config = match Config::load_with(&path, graced_config::Checks::WithoutFilesystem) {
                Ok(config) => config,
                Err(err) => {
                    self.fail(&format!("{skipped}:\n{err}"));
                    continue;
                }
            };
            let options = Options {
                name: DEFAULT_NAME.to_owned(),
                binary: PathBuf::from(DEFAULT_BINARY),
                config_path: path.clone(),
                kind: Kind::Instance(instance.clone()),
                origin: Origin::Generator,
                source_path: Some(path.clone()),
                documentation: Vec::new(),
            };
            let bundle = match graced_unit::build(&config, systemd, &options) {
                Ok(bundle) => bundle,
                Err(err) => {
                    self.fail(&format!("{skipped}: {err}"));
                    continue;
                }
            };
            let unit = format!("{DEFAULT_NAME}@{instance}.service");
            let runtime_dir = runtime_directory(&bundle);
            if let Some(other) = runtime_dirs.get(&runtime_dir) {
                self.fail(&format!(
                    "{skipped}: its runtime directory /run/{runtime_dir} is already {other}'s"
                ));
                continue;
            }
            if let Some((address, other)) =
                config.listeners.iter().find_map(|l| addresses.get(&l.address).map(|o| (&l.address, o)))
            {
                self.fail(&format!("{skipped}: {address} is already a listener of {other}"));
                continue;
            }
            runtime_dirs.insert(runtime_dir, unit.clone());
            addresses.extend(config.listeners.iter().map(|l| (l.address.clone(), unit.clone())));
            if let Err(err) = self.emit(&bundle) {
                self.fail(&format!("{}: {err}", path.display()));
            }
        }
    }

    /// Writes (or, dry, prints) the files and the enabling symlinks.
    fn emit(&self, bundle: &Bundle) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        for file in &bundle.files {
            let path = self.normal.join(&file.name);
            if self.dryrun {
                write!(stdout, "---{}---\n{file}", path.display())?;
            } else {
                std::fs::write(&path, file.to_string()).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
                })?;
            }
        }
        for link in bundle.enable_links() {
            let dir = self.normal.join(&link.dir);
            let (from, to) = (dir.join(&link.unit), self.normal.join(&link.unit));
            if self.dryrun {
                writeln!(stdout, "---{} -> {}---", from.display(), to.display())?;
                continue;
            }
            std::fs::create_dir_all(&dir)?;
            match std::fs::remove_file(&from) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            std::os::unix::fs::symlink(&to, &from)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot link {}: {e}", from.display())))?;
        }
        Ok(())
    }
}

fn runtime_directory(bundle: &Bundle) -> String {
    bundle
        .files
        .iter()
        .find_map(|file| match &file.artifact {
            Artifact::Unit(unit) => match &unit.body {
                Body::Service(service) => Some(service.runtime_directory.clone()),
                Body::Socket(_) | Body::Oneshot(_) | Body::Timer(_) => None,
            },
            _ => None,
        })
        .expect("a bundle has a service")
}

/// Where problems go: the kernel log (there is no syslog during early boot); where
/// /dev/kmsg cannot be written (containers), the journal's native socket, which
/// exists at `daemon-reload`; and always stderr too (a terminal for `--dryrun`; systemd
/// itself points a generator's stderr at /dev/null).
struct Log {
    kmsg: Option<std::fs::File>,
    journal: Option<std::os::unix::net::UnixDatagram>,
}

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

impl Log {
    fn open(stderr_only: bool) -> Log {
        if stderr_only {
            return Log { kmsg: None, journal: None };
        }
        let kmsg = std::fs::OpenOptions::new().write(true).open("/dev/kmsg").ok();
        let journal = if kmsg.is_some() {
            None
        } else {
            std::os::unix::net::UnixDatagram::unbound().ok().filter(|s| s.connect(JOURNAL_SOCKET).is_ok())
        };
        Log { kmsg, journal }
    }

    /// One record per line, each prefixed, at priority "err".
    fn error(&self, message: &str) {
        for line in message.lines() {
            if let Some(kmsg) = &self.kmsg {
                // One write(2) per record, as /dev/kmsg requires.
                let _ = (&*kmsg).write_all(format!("<3>graced-generator: {line}\n").as_bytes());
            } else if let Some(journal) = &self.journal {
                let record = format!("PRIORITY=3\nSYSLOG_IDENTIFIER=graced-generator\nMESSAGE={line}\n");
                let _ = journal.send(record.as_bytes());
            }
            eprintln!("graced-generator: {line}");
        }
    }
}
