//! The [`Checker`]: raw values → typed configuration, collecting *every* problem as a diagnostic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::address::parse_address;
use crate::compression;
use crate::diagnostic::ConfigError;
use crate::diagnostic::{self, Diagnostic};
use crate::model::{
    Acme, BUILTIN_DEMO_ROOT, CREDENTIAL_PREFIX, Checks, Config, HSTS_DEFAULT, ListenAddress, Listener, Root,
    Secret, Site, SiteTls, Source,
};
use crate::raw::{RawConfig, RawHsts, RawListen, RawSite};
use crate::tls_rules::{self, SiteSpans, TlsSpans};

mod acme;
mod rules;
mod tables;

/// Parses and validates TOML `text` (what [`Config::from_toml_with`] does).
pub(crate) fn config(source: Source, text: &str, checks: Checks) -> Result<Config, ConfigError> {
    let file = source.display_name();
    let raw: RawConfig = toml::from_str(text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim_end().trim_end_matches('.').to_owned();
        let hint = syntax_hint(&message);
        ConfigError::Invalid(vec![Diagnostic::at(&file, text, span, message, hint)])
    })?;
    let base = match &source {
        Source::File(path) => path.parent().map(Path::to_owned).unwrap_or_default(),
        Source::Embedded => PathBuf::from("/"),
    };
    let mut check =
        Checker { file: &file, text, base: &base, checks, problems: Vec::new(), tls: TlsSpans::default() };
    let server = check.server(raw.server);
    let limits = check.limits(raw.limits);
    let listeners = check.listeners(raw.listen);
    let acme = check.acme(&raw.acme);
    let sites = check.sites(raw.site, &acme);
    let tls = check.tls(raw.tls);
    let http2 = check.http2(raw.http2);
    for problem in tls_rules::cross_check(&check.tls) {
        check.problems.push(Diagnostic::at(
            &file,
            text,
            problem.at,
            problem.message,
            Some(problem.hint.into()),
        ));
    }
    if check.problems.is_empty() {
        Ok(Config { source, server, limits, listeners, sites, tls, http2, acme })
    } else {
        Err(ConfigError::Invalid(check.problems))
    }
}

/// Collects every problem while converting raw values.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    base: &'a Path,
    checks: Checks,
    problems: Vec<Diagnostic>,
    /// Where the TLS keys are, for the rules between listeners and sites.
    tls: TlsSpans,
}

impl Checker<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>, hint: &str) {
        let hint = (!hint.is_empty()).then(|| hint.to_owned());
        self.problems.push(Diagnostic::at(self.file, self.text, at.span(), message, hint));
    }

    fn problem_at_top(&mut self, message: impl Into<String>, hint: &str) {
        self.problems.push(Diagnostic::at(self.file, self.text, 0..0, message, Some(hint.into())));
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.problem(
                    value,
                    "a duration of zero is not allowed here",
                    "give a positive duration such as \"30s\"",
                );
                default
            }
            Ok(d) if d > Duration::from_secs(24 * 3600) => {
                self.problem(
                    value,
                    format!("duration {:?} is longer than a day", value.get_ref()),
                    "give at most \"24h\"",
                );
                default
            }
            Ok(d) => d,
            Err(err) => {
                self.problem(
                    value,
                    format!("invalid duration {:?}: {err}", value.get_ref()),
                    "write durations like \"500ms\", \"30s\" or \"2min\"",
                );
                default
            }
        }
    }

    fn count(
        &mut self,
        value: &Option<Spanned<i64>>,
        default: usize,
        range: std::ops::RangeInclusive<i64>,
    ) -> usize {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        if range.contains(&n) {
            n as usize
        } else {
            self.problem(
                value,
                format!("{n} is out of range"),
                &format!("give a number from {} to {}", range.start(), range.end()),
            );
            default
        }
    }

    fn absolute(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }

    fn listeners(&mut self, raw: Vec<RawListen>) -> Vec<Listener> {
        if raw.is_empty() {
            self.problem_at_top(
                "no [[listen]] table",
                "add one, e.g. [[listen]] name = \"http\" address = \"0.0.0.0:80\"",
            );
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut addresses: HashMap<ListenAddress, usize> = HashMap::new();
        let mut out = Vec::new();
        for l in raw {
            let name = l.name.get_ref().clone();
            // It becomes FileDescriptorName= and part of a socket unit's name.
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid_name {
                self.problem(&l.name, format!("listener name {name:?} is not usable as a socket name"), "use 1-64 letters, digits, '_', '.' or '-' (it becomes FileDescriptorName= and part of a unit name)");
            }
            let (line, _) = diagnostic::line_column(self.text, l.name.span().start);
            if let Some(first) = names.insert(name.clone(), line) {
                self.problem(
                    &l.name,
                    format!("duplicate listener name {name:?} (first defined on line {first})"),
                    "give each [[listen]] its own name",
                );
            }
            let address = match parse_address(l.address.get_ref()) {
                Ok(ListenAddress::Unix(p)) if !p.is_absolute() => {
                    self.problem(
                        &l.address,
                        "a Unix socket path must be absolute",
                        "write it as \"/run/graced/http.sock\"",
                    );
                    None
                }
                Ok(a) => Some(a),
                Err(err) => {
                    self.problem(&l.address, err.to_string(), err.hint());
                    None
                }
            };
            if let Some(address) = &address {
                let (line, _) = diagnostic::line_column(self.text, l.address.span().start);
                if let Some(first) = addresses.insert(address.clone(), line) {
                    self.problem(
                        &l.address,
                        format!("address {address} is already used by the listener on line {first}"),
                        "each address may be listened on once",
                    );
                }
            }
            let backlog = self.count(&l.backlog, 511, 1..=65_535) as u32;
            let socket_mode =
                l.socket_mode.as_ref().and_then(|m| match u32::from_str_radix(m.get_ref(), 8) {
                    Ok(mode) if mode <= 0o777 => Some(mode),
                    _ => {
                        self.problem(
                            m,
                            format!("socket_mode {:?} is not an octal permission", m.get_ref()),
                            "write it like \"0660\"",
                        );
                        None
                    }
                });
            let tls = l.tls.as_ref().is_some_and(|t| *t.get_ref());
            if let Some(at) = l.tls.as_ref().filter(|_| tls) {
                self.tls.tls_listeners.push(at.span());
            }
            let h2c = l.h2c.as_ref().is_some_and(|h| *h.get_ref());
            if let Some(at) = l.h2c.as_ref().filter(|_| h2c && tls) {
                self.problem(
                    at,
                    "h2c is cleartext HTTP/2, but this listener is TLS",
                    "remove h2c: on a TLS listener HTTP/2 is negotiated by ALPN ([http2] enabled)",
                );
            }
            let status = crate::status_rules::check(&l, address.as_ref());
            if !tls && !status.on {
                self.tls.plain_listeners += 1;
            }
            for problem in status.problems {
                self.problems.push(Diagnostic::at(
                    self.file,
                    self.text,
                    problem.at,
                    problem.message,
                    Some(problem.hint.into()),
                ));
            }
            if let Some(address) = address {
                out.push(Listener {
                    name,
                    address,
                    backlog,
                    ipv6_only: l.ipv6_only,
                    no_delay: l.no_delay.unwrap_or(true),
                    socket_mode,
                    tls,
                    h2c,
                    status: status.on,
                });
            }
        }
        out
    }

    /// A site's `certificate` and `key`: both or neither.
    fn site_tls(&mut self, s: &RawSite) -> Option<SiteTls> {
        match (&s.certificate, &s.key) {
            (Some(certificate), Some(key)) => {
                Some(SiteTls { certificate: self.secret(certificate), key: self.secret(key) })
            }
            (None, None) => None,
            (Some(at), None) | (None, Some(at)) => {
                self.problem(at, "a site needs both certificate and key", "set both, or neither");
                None
            }
        }
    }

    fn secret(&mut self, value: &Spanned<String>) -> Secret {
        match value.get_ref().strip_prefix(CREDENTIAL_PREFIX) {
            Some(name) => {
                if let Some(problem) = tls_rules::credential_name_problem(name) {
                    self.problem(value, problem, "use 1-255 printable ASCII characters without '/' or ':', as in LoadCredential=NAME:PATH");
                }
                Secret::Credential(name.to_owned())
            }
            None => Secret::File(self.absolute(value.get_ref())),
        }
    }

    fn sites(&mut self, raw: Vec<RawSite>, acme_table: &Acme) -> Vec<Site> {
        if raw.is_empty() {
            self.problem_at_top("no [[site]] table", "add one, e.g. [[site]] root = \"/srv/www\"");
        }
        let mut hosts_seen: HashMap<String, usize> = HashMap::new();
        let mut default_line: Option<usize> = None;
        let mut out = Vec::new();
        for mut s in raw {
            let mut hosts = Vec::new();
            for h in s.hosts.as_ref().map(|h| h.get_ref().as_slice()).unwrap_or_default() {
                let host = h.get_ref().trim_end_matches('.').to_ascii_lowercase();
                let valid = !host.is_empty()
                    && host.len() <= 253
                    && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.*[]:".contains(c));
                if !valid {
                    self.problem(
                        h,
                        format!("{:?} is not a host name", h.get_ref()),
                        "write host names without scheme, port or path, e.g. \"example.org\"",
                    );
                    continue;
                }
                let (line, _) = diagnostic::line_column(self.text, h.span().start);
                if let Some(first) = hosts_seen.insert(host.clone(), line) {
                    self.problem(
                        h,
                        format!("host {host:?} is already served by the site on line {first}"),
                        "a host name may belong to one site only",
                    );
                }
                hosts.push(host);
            }
            let is_default = hosts.is_empty();
            if is_default {
                let at = s.hosts.as_ref().map(|h| h.span()).unwrap_or(s.root.span());
                let (line, _) = diagnostic::line_column(self.text, at.start);
                if let Some(first) = default_line {
                    self.problems.push(Diagnostic::at(
                        self.file,
                        self.text,
                        at,
                        format!("a second default site (the first is on line {first})"),
                        Some("give this site hosts = [...], or remove one".into()),
                    ));
                }
                default_line = Some(line);
            }
            let root = if s.root.get_ref() == BUILTIN_DEMO_ROOT {
                Root::BuiltinDemo
            } else {
                let path = self.absolute(s.root.get_ref());
                match std::fs::metadata(&path) {
                    _ if self.checks == Checks::WithoutFilesystem => {}
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => self.problem(
                        &s.root,
                        format!("document root {} is not a directory", path.display()),
                        "point root at a directory",
                    ),
                    Err(err) => self.problem(
                        &s.root,
                        format!("document root {}: {err}", path.display()),
                        "create the directory or correct the path",
                    ),
                }
                Root::Dir(path)
            };
            let mut tls = self.site_tls(&s);
            let acme = self.site_acme(&s, &hosts, acme_table).map(|(acme, files)| {
                tls = Some(files);
                acme
            });
            let mut index = Vec::new();
            for i in s.index.take().unwrap_or_else(|| vec![Spanned::new(0..0, "index.html".to_owned())]) {
                let name = i.get_ref();
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    self.problem(
                        &i,
                        format!("index {name:?} is not a file name"),
                        "list plain file names such as \"index.html\"",
                    );
                } else {
                    index.push(name.clone());
                }
            }
            let https_redirect = s.https_redirect.as_ref().is_some_and(|r| *r.get_ref());
            self.tls.sites.push(SiteSpans {
                certificate: s.certificate.as_ref().filter(|_| tls.is_some()).map(Spanned::span),
                acme: s.acme.as_ref().filter(|_| acme.is_some()).map(Spanned::span),
                https_redirect: s.https_redirect.as_ref().filter(|_| https_redirect).map(Spanned::span),
                hsts: s
                    .hsts
                    .as_ref()
                    .filter(|h| !matches!(h.get_ref(), RawHsts::On(false)))
                    .map(Spanned::span),
            });
            let hsts = match s.hsts.as_ref().map(|h| h.get_ref()) {
                None | Some(RawHsts::On(false)) => None,
                Some(RawHsts::On(true)) => Some(HSTS_DEFAULT.to_owned()),
                Some(RawHsts::Value(value)) => Some(value.clone()),
            };
            let mut compression_problems = Vec::new();
            let compression = compression::check(s.compression.as_ref(), &mut compression_problems);
            for p in compression_problems {
                let hint = Some(p.hint.to_owned());
                self.problems.push(Diagnostic::at(self.file, self.text, p.at, p.message, hint));
            }
            let rules = self.site_rules(&mut s, &root, &hosts);
            out.push(Site {
                rules,
                hosts,
                root,
                index,
                hidden_files: s.hidden_files.unwrap_or(false),
                is_default,
                tls,
                acme,
                https_redirect,
                hsts,
                compression,
            });
        }
        if default_line.is_none()
            && let Some(first) = out.first_mut()
        {
            first.is_default = true;
        }
        out
    }
}

/// What to do about a TOML syntax or type error, by its message.
fn syntax_hint(message: &str) -> Option<String> {
    Some(if message.starts_with("unknown field") {
        "remove the key or correct its spelling; the reference is in README.md".into()
    } else if message.starts_with("invalid type") {
        "check the value's type: strings are quoted, numbers are not".into()
    } else if message.starts_with("missing field") {
        "add the key to this table".into()
    } else if message.starts_with("duplicate key") {
        "each key may appear once per table".into()
    } else {
        "this is not valid TOML here: check quotes, brackets and `key = value` (see https://toml.io)".into()
    })
}
