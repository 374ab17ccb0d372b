//! Unit tests of loading and validation: every error names its line and column.

mod props;

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(Source::File(PathBuf::from("/etc/graced/t.toml")), text)
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(err) => err.diagnostics().iter().map(|d| d.to_string()).collect(),
    }
}

const MINIMAL: &str = "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n\n[[site]]\nroot = \"/\"\n";

#[test]
fn the_documented_shape_parses() {
    let text = r#"
[server]
graceful_shutdown_timeout = "30s"
pid_file = "/run/graced/graced.pid"
access_log = "journal"
user = "graced"

[[listen]]
name = "http"
address = "0.0.0.0:80"

[[site]]
hosts = ["Example.org."]
root = "/"
index = ["index.html"]
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.server.graceful_shutdown_timeout, Duration::from_secs(30));
    assert_eq!(config.server.pid_file.as_deref(), Some(Path::new("/run/graced/graced.pid")));
    assert_eq!(config.server.access_log, AccessLog::Journal);
    assert_eq!(config.server.user.as_deref(), Some("graced"));
    assert_eq!(config.listeners[0].address, ListenAddress::Tcp("0.0.0.0:80".parse().unwrap()));
    assert_eq!(config.listeners[0].backlog, 511);
    assert_eq!(config.sites[0].hosts, vec!["example.org"]);
    // The only site is the default even though it names hosts.
    assert!(config.sites[0].is_default);
    assert_eq!(config.limits, Limits::default());
}

#[test]
fn the_embedded_default_is_valid_and_serves_the_demo_on_8080() {
    let config = Config::embedded_default();
    assert_eq!(config.listeners[0].address, ListenAddress::Tcp("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(config.sites[0].root, Root::BuiltinDemo);
}

#[test]
fn a_type_error_names_line_and_column() {
    let text = "[server]\n\n\n\n\n\ngraceful_shutdown_timeout = 30\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("/etc/graced/t.toml:7:29: invalid type"), "{}", errs[0]);
    assert!(errs[0].contains("hint:"), "{}", errs[0]);
}

#[test]
fn unknown_keys_are_errors() {
    let errs = errors("[server]\nlisten = 80\n");
    assert!(errs[0].starts_with("/etc/graced/t.toml:2:1: unknown field `listen`"), "{}", errs[0]);
    let errs = errors("[[listen]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\nport = 1\n");
    assert!(errs[0].starts_with("/etc/graced/t.toml:4:1: unknown field `port`"), "{}", errs[0]);
    let errs = errors("[sever]\n");
    assert!(errs[0].contains("unknown field `sever`"), "{}", errs[0]);
}

#[test]
fn bad_addresses_are_located() {
    for (address, needle) in [
        ("\"localhost\"", "has no port"),
        ("\"300.1.1.1:80\"", "is not an IP address"),
        ("\"[::1]\"", "is not an IP address"),
        ("\"127.0.0.1:0\"", "port 0"),
        ("\"unix:relative.sock\"", "must be absolute"),
    ] {
        let text = MINIMAL.replace("\"127.0.0.1:8080\"", address);
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("/etc/graced/t.toml:3:11: "), "{}", errs[0]);
        assert!(errs[0].contains(needle), "{}", errs[0]);
    }
}

#[test]
fn ipv6_and_unix_addresses_parse() {
    assert_eq!(parse_address("[::]:80").unwrap(), ListenAddress::Tcp("[::]:80".parse().unwrap()));
    assert_eq!(parse_address("/run/g.sock").unwrap(), ListenAddress::Unix("/run/g.sock".into()));
    assert_eq!(parse_address("unix:/run/g.sock").unwrap(), ListenAddress::Unix("/run/g.sock".into()));
}

#[test]
fn duplicate_listeners_are_errors_with_the_first_line() {
    let text = format!("{MINIMAL}\n[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "/etc/graced/t.toml:9:8: duplicate listener name \"http\" (first defined on line 2)"
        ),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with(
            "/etc/graced/t.toml:10:11: address 127.0.0.1:8080 is already used by the listener on line 3"
        ),
        "{}",
        errs[1]
    );
}

#[test]
fn a_missing_document_root_is_an_error() {
    let text = MINIMAL.replace("root = \"/\"", "root = \"/nonexistent/graced-test\"");
    let errs = errors(&text);
    assert!(
        errs[0].starts_with("/etc/graced/t.toml:6:8: document root /nonexistent/graced-test: No such file"),
        "{}",
        errs[0]
    );
    let text = MINIMAL.replace("root = \"/\"", "root = \"/etc/passwd\"");
    assert!(errors(&text)[0].contains("is not a directory"));
}

#[test]
fn relative_roots_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let path = dir.path().join("graced.toml");
    std::fs::write(&path, MINIMAL.replace("root = \"/\"", "root = \"www\"")).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.sites[0].root, Root::Dir(dir.path().join("www")));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "[server]\ngraceful_shutdown_timeout = \"soon\"\nlog_level = \"loud\"\naccess_log = \"syslog\"\n\n[limits]\nmax_connections = 0\nkeepalive_timeout = \"0s\"\n";
    let errs = errors(text);
    let joined = errs.join("\n");
    assert!(joined.contains("t.toml:2:29: invalid duration \"soon\""), "{joined}");
    assert!(joined.contains("t.toml:3:13: unknown log_level"), "{joined}");
    assert!(joined.contains("t.toml:4:14: unknown access_log"), "{joined}");
    assert!(joined.contains("t.toml:7:19: 0 is out of range"), "{joined}");
    assert!(joined.contains("t.toml:8:21: a duration of zero"), "{joined}");
    assert!(joined.contains("t.toml:1:1: no [[listen]] table"), "{joined}");
    assert!(joined.contains("t.toml:1:1: no [[site]] table"), "{joined}");
}

#[test]
fn virtual_hosts_choose_sites_and_fall_back_to_the_default() {
    let text = r#"
[[listen]]
name = "http"
address = "127.0.0.1:8080"
[[site]]
hosts = ["a.example"]
root = "/"
[[site]]
root = "/tmp"
[[site]]
hosts = ["b.example"]
root = "/"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.site_for_host(Some("a.example")).hosts, vec!["a.example"]);
    assert_eq!(config.site_for_host(Some("b.example")).hosts, vec!["b.example"]);
    assert_eq!(config.site_for_host(Some("c.example")).root, Root::Dir("/tmp".into()));
    assert_eq!(config.site_for_host(None).root, Root::Dir("/tmp".into()));
}

#[test]
fn two_default_sites_and_shared_hosts_are_errors() {
    let text = format!(
        "{MINIMAL}[[site]]\nroot = \"/\"\n[[site]]\nhosts = [\"x\"]\nroot = \"/\"\n[[site]]\nhosts = [\"X\"]\nroot = \"/\"\n"
    );
    let joined = errors(&text).join("\n");
    assert!(joined.contains("t.toml:8:8: a second default site (the first is on line 6)"), "{joined}");
    assert!(joined.contains("t.toml:13:10: host \"x\" is already served by the site on line 10"), "{joined}");
}

#[test]
fn access_log_accepts_a_path() {
    let config = parse(&format!("[server]\naccess_log = \"/var/log/graced/access.log\"\n{MINIMAL}")).unwrap();
    assert_eq!(config.server.access_log, AccessLog::File("/var/log/graced/access.log".into()));
}

#[test]
fn listener_names_must_fit_unit_names() {
    let errs = errors(&MINIMAL.replace("name = \"http\"", "name = \"web server\""));
    assert!(
        errs[0].starts_with("/etc/graced/t.toml:2:8: listener name \"web server\" is not usable"),
        "{}",
        errs[0]
    );
    assert!(parse(&MINIMAL.replace("name = \"http\"", "name = \"http-alt_2.v6\"")).is_ok());
}

#[test]
fn generators_can_skip_the_filesystem_checks() {
    let text = MINIMAL.replace("root = \"/\"", "root = \"/not-mounted-yet/www\"");
    assert!(parse(&text).is_err());
    let source = Source::File(PathBuf::from("/etc/graced/t.toml"));
    let config = Config::from_toml_with(source, &text, Checks::WithoutFilesystem).unwrap();
    assert_eq!(config.sites[0].root, Root::Dir("/not-mounted-yet/www".into()));
}

#[test]
fn workers_is_auto_or_a_count_and_anything_else_is_located() {
    assert_eq!(parse(MINIMAL).unwrap().server.workers, None, "auto by default");
    let with = |value: &str| format!("[server]\nworkers = {value}\n{MINIMAL}");
    assert_eq!(parse(&with("\"auto\"")).unwrap().server.workers, None);
    assert_eq!(parse(&with("3")).unwrap().server.workers, Some(3));
    let errs = errors(&with("0"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("/etc/graced/t.toml:2:11: workers = 0 is out of range"), "{errs:?}");
    assert!(errs[0].contains("from 1 to 1024"), "{errs:?}");
    let errs = errors(&with("\"many\""));
    assert!(errs[0].starts_with("/etc/graced/t.toml:2:11: unknown workers \"many\""), "{errs:?}");
    let errs = errors(&with("true"));
    assert!(errs[0].starts_with("/etc/graced/t.toml:2:11:"), "{errs:?}");
    assert!(errs[0].contains("expected \"auto\" or a number of worker threads"), "{errs:?}");
}

const TLS_LISTEN: &str = "[[listen]]\nname = \"https\"\naddress = \"127.0.0.1:8443\"\ntls = true\n\n";

#[test]
fn a_tls_site_parses_with_files_and_credentials() {
    let text = format!(
        "{MINIMAL}{TLS_LISTEN}[[site]]\nhosts = [\"example.org\"]\nroot = \"/\"\ncertificate = \"tls/site.pem\"\n\
         key = \"credential:site.key\"\nhttps_redirect = true\nhsts = true\n"
    );
    let config = parse(&text).unwrap();
    assert!(config.listeners[1].tls);
    let site = &config.sites[1];
    let tls = site.tls.as_ref().unwrap();
    assert_eq!(tls.certificate, Secret::File(PathBuf::from("/etc/graced/tls/site.pem")));
    assert_eq!(tls.key, Secret::Credential("site.key".into()));
    assert!(site.https_redirect);
    assert_eq!(site.hsts.as_deref(), Some(HSTS_DEFAULT));
}

#[test]
fn a_tls_listener_needs_a_site_with_a_certificate() {
    let text = format!("{MINIMAL}{TLS_LISTEN}");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "/etc/graced/t.toml:10:7: this listener has tls = true, but no [[site]] has a certificate"
        ),
        "{errors:?}"
    );
    assert!(errors[0].contains("hint:"), "{errors:?}");
}

#[test]
fn a_certificate_without_a_tls_listener_is_an_error() {
    let text = format!("{MINIMAL}certificate = \"/c.pem\"\nkey = \"/k.pem\"\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "/etc/graced/t.toml:7:15: this site has a certificate, but no [[listen]] has tls = true"
        ),
        "{errors:?}"
    );
}

#[test]
fn https_redirect_needs_a_tls_listener_and_hsts_a_certificate() {
    let text = format!("{MINIMAL}https_redirect = true\nhsts = \"max-age=60\"\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("/etc/graced/t.toml:7:18: https_redirect = true, but no [[listen]] has tls = true"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("/etc/graced/t.toml:8:8: hsts is set on a site without a certificate"),
        "{errors:?}"
    );
    // Off is off: no problem.
    parse(&format!("{MINIMAL}https_redirect = false\nhsts = false\n")).unwrap();
}

#[test]
fn credential_names_are_checked_where_written() {
    let text = format!(
        "{MINIMAL}{TLS_LISTEN}[[site]]\nhosts = [\"a.example\"]\nroot = \"/\"\ncertificate = \"credential:a/b\"\nkey = \"credential:\"\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("/etc/graced/t.toml:15:15: credential name \"a/b\" contains '/'"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("/etc/graced/t.toml:16:7: credential name \"\" is empty"), "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("LoadCredential=")), "{errors:?}");
}

#[test]
fn tls_problems_come_with_the_others_at_once() {
    let text = format!("{MINIMAL}hsts = true\n{TLS_LISTEN}[limits]\nmax_headers = 1\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn file_credential_names_are_valid_systemd_names() {
    use std::path::Path;
    assert_eq!(
        Secret::file_credential_name(Path::new("/etc/ssl/private/example.key")).as_deref(),
        Some("etc_ssl_private_example.key")
    );
    assert_eq!(
        Secret::file_credential_name(Path::new("/etc/letsencrypt/live/a b:c%d/privkey.pem")).as_deref(),
        Some("etc_letsencrypt_live_a_b_c_d_privkey.pem")
    );
    assert_eq!(Secret::file_credential_name(Path::new("/")), None);
    assert_eq!(Secret::file_credential_name(Path::new(&format!("/{}", "n".repeat(256)))), None);
    for path in ["/etc/x.pem", "/srv/ÿ/k", "/a/.."] {
        let name = Secret::file_credential_name(Path::new(path)).unwrap();
        assert_eq!(crate::tls_rules::credential_name_problem(&name), None, "{path} → {name}");
    }
}

#[test]
fn http2_settings_have_defaults_ranges_and_h2c_is_for_plain_listeners() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.http2, Http2::default());
    assert!(config.http2.enabled && config.http2.max_concurrent_streams == 128);
    let text = format!(
        "{MINIMAL}[http2]\nenabled = false\nmax_concurrent_streams = 32\nmax_pending_resets = 5\nmax_error_resets = 50\n"
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.http2,
        Http2 { enabled: false, max_concurrent_streams: 32, max_pending_resets: 5, max_error_resets: 50 }
    );
    let range = errors(&format!("{MINIMAL}[http2]\nmax_concurrent_streams = 0\n"));
    assert!(range[0].contains("0 is out of range") && range[0].contains("from 1 to 10000"), "{range:?}");
    let h2c = format!("{MINIMAL}[[listen]]\nname = \"h2c\"\naddress = \"127.0.0.1:81\"\nh2c = true\n");
    assert!(parse(&h2c).unwrap().listeners[1].h2c);
    let tls = errors(&format!("{MINIMAL}{TLS_LISTEN}h2c = true\n"));
    assert!(tls.iter().any(|e| e.contains("h2c is cleartext HTTP/2, but this listener is TLS")), "{tls:?}");
}

#[test]
fn a_status_listener_is_off_by_default_plain_and_never_public() {
    assert!(parse(MINIMAL).unwrap().listeners.iter().all(|l| !l.status));
    let unix = format!(
        "{MINIMAL}[[listen]]\nname = \"status\"\naddress = \"/run/graced/status.sock\"\nstatus = true\n"
    );
    assert!(parse(&unix).unwrap().listeners[1].status);
    let local = format!("{MINIMAL}[[listen]]\nname = \"status\"\naddress = \"[::1]:8081\"\nstatus = true\n");
    assert!(parse(&local).unwrap().listeners[1].status);
    let public = errors(&format!(
        "{MINIMAL}[[listen]]\nname = \"status\"\naddress = \"0.0.0.0:8081\"\nstatus = true\n"
    ));
    assert!(
        public.iter().any(|e| e.contains("reachable from the network") && e.contains("t.toml:10:")),
        "{public:?}"
    );
    let tls = errors(&format!("{MINIMAL}{TLS_LISTEN}status = true\n"));
    assert!(tls.iter().any(|e| e.contains("a status listener cannot be a TLS listener")), "{tls:?}");
}

#[test]
fn the_access_log_format_is_combined_or_json() {
    assert_eq!(parse(MINIMAL).unwrap().server.access_log_format, AccessLogFormat::Combined);
    let json = format!("[server]\naccess_log_format = \"json\"\n{MINIMAL}");
    assert_eq!(parse(&json).unwrap().server.access_log_format, AccessLogFormat::Json);
    let bad = errors(&format!("[server]\naccess_log_format = \"clf\"\n{MINIMAL}"));
    assert!(
        bad.iter().any(|e| e.contains("t.toml:2:21") && e.contains("unknown access_log_format \"clf\"")),
        "{bad:?}"
    );
}

const ACME_SITE: &str = "[[site]]\nhosts = [\"a.example\", \"www.a.example\"]\nroot = \"/\"\n";

#[test]
fn an_acme_site_names_the_files_graced_acme_writes() {
    let text = format!(
        "{MINIMAL}{TLS_LISTEN}[acme]\nstate_directory = \"/tmp/acme-state\"\n\n{ACME_SITE}\
         acme = {{ directory = \"https://ca.test/dir\", contact = \"mailto:a@a.example\", profile = \"shortlived\" }}\n"
    );
    let config = parse(&text).unwrap();
    let site = &config.sites[1];
    let acme = site.acme.as_ref().unwrap();
    assert_eq!(acme.directory, "https://ca.test/dir");
    assert_eq!(acme.contact.as_deref(), Some("mailto:a@a.example"));
    assert_eq!(acme.profile.as_deref(), Some("shortlived"));
    assert_eq!(acme.name, "a.example");
    assert_eq!(config.acme.challenge_directory, PathBuf::from(ACME_CHALLENGE_DIRECTORY));
    let tls = site.tls.as_ref().unwrap();
    assert_eq!(tls.certificate, Secret::File(PathBuf::from("/tmp/acme-state/a.example/fullchain.pem")));
    assert_eq!(tls.key, Secret::File(PathBuf::from("/tmp/acme-state/a.example/key.pem")));
}

#[test]
fn acme_problems_name_line_and_column() {
    let text = format!(
        "{MINIMAL}{TLS_LISTEN}[[site]]\nhosts = [\"*.a.example\"]\nroot = \"/\"\ncertificate = \"/c.pem\"\nkey = \"/k.pem\"\n\
         acme = {{ directory = \"http://ca.test/dir\", contact = \"a@a.example\", profile = \"\" }}\n"
    );
    let errors = errors(&text);
    let starts = |prefix: &str| errors.iter().any(|e| e.starts_with(prefix));
    assert!(
        starts("/etc/graced/t.toml:15:15: this site has acme = {…} and its own certificate"),
        "{errors:?}"
    );
    assert!(
        starts("/etc/graced/t.toml:17:8: acme = {…} cannot get a certificate for \"*.a.example\""),
        "{errors:?}"
    );
    assert!(
        starts("/etc/graced/t.toml:17:22: ACME directory \"http://ca.test/dir\" is not an https:// URL"),
        "{errors:?}"
    );
    assert!(starts("/etc/graced/t.toml:17:54: contact is not a mailto: address"), "{errors:?}");
    assert!(starts("/etc/graced/t.toml:17:79: profile is empty"), "{errors:?}");
}

#[test]
fn an_acme_site_needs_a_plain_and_a_tls_listener() {
    let only_tls = format!(
        "[[listen]]\nname = \"https\"\naddress = \"127.0.0.1:8443\"\ntls = true\n\n{ACME_SITE}\
         acme = {{ directory = \"https://ca.test/dir\" }}\n"
    );
    let errors_tls = errors(&only_tls);
    assert!(errors_tls[0].contains("no plain-HTTP [[listen]] answers HTTP-01"), "{errors_tls:?}");
    let only_plain = format!("{MINIMAL}{ACME_SITE}acme = {{ directory = \"https://ca.test/dir\" }}\n");
    let errors_plain = errors(&only_plain);
    assert!(errors_plain[0].contains("acme = {…}, but no [[listen]] has tls = true"), "{errors_plain:?}");
}
