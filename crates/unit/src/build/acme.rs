//! graced-acme.service and graced-acme.timer, for a configuration where a site says
//! `acme = {…}`: a oneshot job with the network (to reach the CA) as its own dynamic user,
//! its state in `StateDirectory=`, its HTTP-01 answers in `RuntimeDirectory=` (readable by
//! graced), everything else locked down; then, as root, the reload that makes graced
//! serve what it installed. The timer runs it twice a day, randomised, and after boot.

use std::path::{Component, Path};
use std::time::Duration;

use super::hardening::sandbox;
use super::options::Kind;
use super::paths::Paths;
use super::plan::Plan;
use crate::error::Error;
use crate::model::*;

/// At most this long per run: instant-acme's polls end well before (90 s each).
const TIMEOUT: Duration = Duration::from_secs(600);
/// Twice a day, as Let's Encrypt asks of clients, spread by the randomised delay.
const ON_CALENDAR: &str = "*-*-* 00,12:00:00";
const RANDOMIZED_DELAY: Duration = Duration::from_secs(3600);
const ON_BOOT: Duration = Duration::from_secs(300);

impl Plan<'_> {
    /// The two units, when a site asks for ACME (or `always`: the packaged, disabled
    /// pair) and the units are plain (not a template or an instance: one graced-acme
    /// serves one graced).
    pub(super) fn acme(&self, always: bool) -> Result<Option<[File; 2]>, Error> {
        let config = self.config;
        let asked = always || config.sites.iter().any(|s| s.acme.is_some());
        if self.options.kind != Kind::Plain || !asked {
            return Ok(None);
        }
        let state = below(&config.acme.state_directory, "/var/lib")
            .ok_or_else(|| directory_error("state_directory", &config.acme.state_directory))?;
        let runtime = below(&config.acme.challenge_directory, "/run")
            .and_then(|r| {
                Path::new(&r).components().next().map(|c| c.as_os_str().to_string_lossy().into_owned())
            })
            .filter(|r| !config.acme.challenge_directory.ends_with(r))
            .ok_or_else(|| directory_error("challenge_directory", &config.acme.challenge_directory))?;
        let stem = format!("{}-acme", self.options.name);
        let acme_binary = Path::new(&self.exec.program).with_file_name("graced-acme");
        let program = acme_binary.to_string_lossy().into_owned();
        let config_args = vec!["-f".to_owned(), self.exec.config.clone()];
        let reload = Command {
            privileged: true,
            program: program.clone(),
            args: [config_args.clone(), vec!["--reload".into(), "--unit".into(), self.names.service.clone()]]
                .concat(),
        };
        let service = OneshotSection {
            exec_start: Command { privileged: false, program, args: config_args },
            exec_stop_post: vec![reload],
            timeout_start: TIMEOUT,
            account: Account::Dynamic { group: None },
            state_directory: state,
            runtime_directory: runtime,
            runtime_directory_mode: 0o755,
            syslog_identifier: stem.clone(),
            umask: 0o022,
            sandbox: acme_sandbox(self.systemd, &self.paths),
        };
        let unit = |description: &str, after: Vec<String>| UnitSection {
            description: description.to_owned(),
            documentation: self.options.documentation.clone(),
            source_path: self.source_path.clone(),
            wants: after.clone(),
            after,
            ..UnitSection::default()
        };
        let service_file = File {
            name: format!("{stem}.service"),
            artifact: Artifact::Unit(UnitFile {
                header: self.header.clone(),
                unit: unit(
                    "graced's certificates from ACME (HTTP-01 answered by graced)",
                    vec!["network-online.target".to_owned()],
                ),
                body: Body::Oneshot(Box::new(service)),
                install: None,
            }),
        };
        let timer_file = File {
            name: format!("{stem}.timer"),
            artifact: Artifact::Unit(UnitFile {
                header: self.header.clone(),
                unit: unit("graced's certificates from ACME, twice a day", Vec::new()),
                body: Body::Timer(TimerSection {
                    on_calendar: ON_CALENDAR.to_owned(),
                    on_boot: ON_BOOT,
                    randomized_delay: RANDOMIZED_DELAY,
                    persistent: true,
                }),
                install: Some(InstallSection { wanted_by: vec!["timers.target".to_owned()] }),
            }),
        };
        Ok(Some([service_file, timer_file]))
    }
}

/// graced's sandbox with the network opened (the CA), its paths left to its directories.
fn acme_sandbox(systemd: u32, paths: &Paths) -> Sandbox {
    Sandbox {
        bind_paths: Vec::new(),
        bind_read_only_paths: Vec::new(),
        ip_address_deny_any: false,
        private_network: false,
        // A dynamic user's files are its own; PrivateUsers= would map graced's config owner away.
        private_users: true,
        read_write_paths: Vec::new(),
        restrict_address_families: vec![AddressFamily::Unix, AddressFamily::Inet, AddressFamily::Inet6],
        ..sandbox(systemd, paths)
    }
}

/// `path` relative to `base` when it is a normal path strictly below it.
fn below(path: &Path, base: &str) -> Option<String> {
    let relative = path.strip_prefix(base).ok()?;
    let normal = relative.components().all(|c| matches!(c, Component::Normal(_)));
    (normal && !relative.as_os_str().is_empty()).then(|| relative.to_string_lossy().into_owned())
}

fn directory_error(what: &'static str, path: &Path) -> Error {
    let (under, directive, example) = match what {
        "state_directory" => ("/var/lib", "StateDirectory=", "\"/var/lib/graced-acme\""),
        _ => ("/run", "RuntimeDirectory=", "\"/run/graced-acme/challenges\""),
    };
    Error::AcmeDirectory { what, path: path.to_owned(), under, directive, example }
}
