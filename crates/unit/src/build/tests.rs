//! Unit tests of the pure builder: each rule the units encode, one test each.

use std::path::PathBuf;
use std::time::Duration;

use super::socket::listen_tcp;
use super::*;
use crate::model::WantsLink;
use graced_config::{AccessLog, ListenAddress, Listener, Root, Site, Source};

const BASE: &str = r#"
[server]
graceful_shutdown_timeout = "30s"

[[listen]]
name = "http"
address = "127.0.0.1:8080"

[[site]]
root = "builtin:demo"
"#;

fn config(text: &str) -> Config {
    Config::from_toml(Source::File(PathBuf::from("/etc/graced/graced.toml")), text)
        .expect("valid test config")
}

fn base() -> Config {
    config(BASE)
}

fn render(config: &Config, systemd: u32, options: &Options) -> Vec<(String, String)> {
    let bundle = build(config, systemd, options).expect("builds");
    bundle.files.iter().map(|f| (f.name.clone(), f.to_string())).collect()
}

fn service_text(config: &Config) -> String {
    render(config, 252, &Options::new("/etc/graced/graced.toml")).remove(0).1
}

fn error(config: &Config, options: &Options) -> Error {
    build(config, 252, options).expect_err("should be refused")
}

fn plain() -> Options {
    Options::new("/etc/graced/graced.toml")
}

#[test]
fn one_listener_is_one_service_and_one_socket() {
    let files = render(&base(), 252, &plain());
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["graced.service", "graced.socket"]);
    let (service, socket) = (&files[0].1, &files[1].1);
    assert!(!service.contains("[Install]"), "the service is never enabled itself");
    assert!(service.contains("Requires=graced.socket\nAfter=graced.socket\n"));
    assert!(socket.contains("FileDescriptorName=http\n") && socket.contains("WantedBy=sockets.target\n"));
    assert!(!socket.contains("Service="), "graced.socket activates graced.service by name");
}

#[test]
fn stop_timeout_is_the_drain_plus_a_margin() {
    assert!(service_text(&base()).contains("TimeoutStopSec=35s\n"));
}

#[test]
fn limit_nofile_grows_with_max_connections_up_to_nr_open() {
    let mut config = base();
    config.limits.max_connections = 100;
    assert!(service_text(&config).contains("LimitNOFILE=264\n"));
    config.limits.max_connections = 1_000_000;
    assert!(service_text(&config).contains("LimitNOFILE=1048576\n"));
}

#[test]
fn no_user_means_a_dynamic_user() {
    let text = service_text(&base());
    assert!(text.contains("DynamicUser=yes\n") && !text.contains("User=graced"));
    let mut config = base();
    config.server.user = Some("web".into());
    let text = service_text(&config);
    assert!(text.contains("User=web\n") && !text.contains("DynamicUser") && !text.contains("Group="));
}

#[test]
fn watchdog_only_when_configured() {
    assert!(!service_text(&base()).contains("WatchdogSec"));
    let mut config = base();
    config.server.watchdog = Some(Duration::from_millis(2500));
    assert!(service_text(&config).contains("WatchdogSec=2500ms\n"));
}

#[test]
fn fd_store_only_when_configured_and_from_systemd_254_on() {
    let text = |config: &Config, v| render(config, v, &plain()).remove(0).1;
    assert!(!base().server.fd_store, "off by default");
    for v in [252, 254, 257] {
        assert!(!text(&base(), v).contains("FileDescriptorStore"), "{v}: off unless configured");
    }
    let mut config = config(&BASE.replace("[server]\n", "[server]\nfd_store = true\n"));
    assert!(config.server.fd_store, "`[server] fd_store = true` is read");
    // 252 has no FileDescriptorStorePreserve= and no $FDSTORE, which tells the server to store.
    assert!(!text(&config, 252).contains("FileDescriptorStore"));
    assert!(!text(&config, 253).contains("FileDescriptorStore"));
    for v in [254, 257] {
        let t = text(&config, v);
        assert!(t.contains("FileDescriptorStoreMax=1\nFileDescriptorStorePreserve=yes\n"), "{v}: {t}");
    }
    // one stored fd per listener
    config.listeners.push(Listener { name: "alt".into(), ..config.listeners[0].clone() });
    assert!(text(&config, 257).contains("FileDescriptorStoreMax=2\n"));
}

#[test]
fn too_old_systemd_is_refused_and_private_ipc_needs_248() {
    assert!(matches!(build(&base(), 246, &plain()), Err(Error::SystemdTooOld { version: 246 })));
    let text = |v| render(&base(), v, &plain()).remove(0).1;
    assert!(!text(247).contains("PrivateIPC"));
    assert!(text(248).contains("PrivateIPC=yes\n"));
}

#[test]
fn pid_file_sets_the_runtime_directory() {
    let mut config = base();
    config.server.pid_file = Some("/run/www/main/graced.pid".into());
    assert!(service_text(&config).contains("RuntimeDirectory=www/main\n"));
    assert!(service_text(&base()).contains("RuntimeDirectory=graced\n"));
}

#[test]
fn pid_file_outside_a_run_subdirectory_is_refused() {
    for path in
        ["/var/run/graced/graced.pid", "/run/graced.pid", "/run/graced/../graced.pid", "/tmp/x/graced.pid"]
    {
        let mut config = base();
        config.server.pid_file = Some(path.into());
        assert!(matches!(error(&config, &plain()), Error::PidFileOutsideRun { .. }), "{path}");
    }
}

#[test]
fn template_instances_get_their_own_runtime_directory() {
    let options = Options { kind: Kind::Template, ..Options::new("/etc/graced/sites/main.toml") };
    let files = render(&base(), 252, &options);
    assert_eq!(files[0].0, "graced@.service");
    assert_eq!(files[1].0, "graced@.socket");
    let service = &files[0].1;
    assert!(service.contains("RuntimeDirectory=graced-%i\n"));
    assert!(service.contains("ExecStart=/usr/sbin/graced -f /etc/graced/sites/%i.toml\n"));
    assert!(service.contains("Sockets=graced@%i.socket\n"));
    assert!(service.contains("SyslogIdentifier=graced@%i\n"));

    let mut config = base();
    config.server.pid_file = Some("/run/graced/graced.pid".into());
    assert!(matches!(error(&config, &options), Error::PidFileInTemplate { .. }));
}

#[test]
fn instances_are_named_after_their_configuration() {
    let options = Options {
        kind: Kind::Instance("blog".into()),
        origin: Origin::Generator,
        source_path: Some("/etc/graced/instances/blog.toml".into()),
        ..Options::new("/etc/graced/instances/blog.toml")
    };
    let files = render(&base(), 252, &options);
    assert_eq!(files[0].0, "graced@blog.service");
    assert!(files[0].1.contains("SourcePath=/etc/graced/instances/blog.toml\n"));
    assert!(files[0].1.contains("RuntimeDirectory=graced-blog\n"));
    assert!(files[0].1.starts_with("# Generated by graced-generator from /etc/graced/instances/blog.toml"));
    assert!(files[1].1.contains("SourcePath=/etc/graced/instances/blog.toml\n"));

    for bad in ["", "-x", ".x", "a b", "a@b", "a/b"] {
        let options = Options { kind: Kind::Instance(bad.into()), ..plain() };
        assert!(matches!(error(&base(), &options), Error::InvalidInstance { .. }), "{bad:?}");
    }
}

#[test]
fn further_listeners_get_socket_units_of_their_own() {
    let config = config(
        r#"
        [[listen]]
        name = "http"
        address = "[::]:80"
        [[listen]]
        name = "local"
        address = "/run/graced-local.sock"
        socket_mode = "0600"
        [[site]]
        root = "builtin:demo"
        "#,
    );
    let files = render(&config, 252, &plain());
    assert_eq!(files[2].0, "graced-local.socket");
    assert!(files[1].1.contains("Wants=graced-local.socket\n"));
    let local = &files[2].1;
    assert!(local.contains("PartOf=graced.socket\n") && local.contains("Service=graced.service\n"));
    assert!(local.contains("SocketMode=0600\n") && local.contains("RemoveOnStop=yes\n"));
    assert!(!local.contains("NoDelay") && !local.contains("[Install]"));

    let bundle = build(&config, 252, &plain()).unwrap();
    assert_eq!(
        bundle.enable_links(),
        [WantsLink { dir: "sockets.target.wants".into(), unit: "graced.socket".into() }]
    );
}

#[test]
fn listener_names_must_fit_in_unit_names() {
    let mut config = base();
    config.listeners[0].name = "web+tls".into();
    assert!(matches!(error(&config, &plain()), Error::ListenerName { .. }));
}

#[test]
fn unix_listener_inside_the_runtime_directory_is_refused() {
    let mut config = base();
    config.listeners[0].address = ListenAddress::Unix("/run/graced/http.sock".into());
    assert!(matches!(error(&config, &plain()), Error::SocketInRuntimeDirectory { .. }));
}

#[test]
fn unix_only_servers_may_not_create_internet_sockets() {
    let mut config = base();
    config.listeners[0].address = ListenAddress::Unix("/run/graced.sock".into());
    assert!(service_text(&config).contains("RestrictAddressFamilies=AF_UNIX\n"));
    assert!(service_text(&base()).contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"));
}

#[test]
fn tcp_addresses_render_as_systemd_reads_them() {
    let addr = |text: &str| listen_tcp(&text.parse().unwrap());
    assert_eq!(addr("0.0.0.0:80"), "0.0.0.0:80");
    assert_eq!(addr("[::]:80"), "[::]:80");
    assert_eq!(addr("[fe80::1%2]:80"), "[fe80::1]:80%%2");
}

#[test]
fn specific_addresses_bind_before_the_network_is_up() {
    let mut config = base();
    let text = |config: &Config| render(config, 252, &plain()).remove(1).1;
    assert!(!text(&config).contains("FreeBind"), "loopback is always there");
    config.listeners[0].address = ListenAddress::Tcp("192.0.2.1:80".parse().unwrap());
    assert!(text(&config).contains("FreeBind=yes\n"));
}

#[test]
fn ipv6_only_is_written_for_ipv6_addresses_only() {
    let mut config = base();
    config.listeners[0].ipv6_only = Some(true);
    let text = |config: &Config| render(config, 252, &plain()).remove(1).1;
    assert!(!text(&config).contains("BindIPv6Only"));
    config.listeners[0].address = ListenAddress::Tcp("[::]:80".parse().unwrap());
    assert!(text(&config).contains("BindIPv6Only=ipv6-only\n"));
}

#[test]
fn document_roots_under_home_are_bound_in_read_only() {
    let mut config = base();
    config.sites.push(Site { root: Root::Dir("/home/alice/www".into()), ..config.sites[0].clone() });
    let text = service_text(&config);
    assert!(text.contains("ProtectHome=tmpfs\n") && text.contains("BindReadOnlyPaths=/home/alice/www\n"));
    assert!(text.contains("RequiresMountsFor=/home/alice/www\n"));
    assert!(service_text(&base()).contains("ProtectHome=yes\n"));
}

#[test]
fn paths_under_tmp_are_refused() {
    let mut config = base();
    config.sites[0].root = Root::Dir("/tmp/www".into());
    assert!(matches!(error(&config, &plain()), Error::HiddenByPrivateTmp { .. }));
    assert!(matches!(
        error(&base(), &Options::new("/var/tmp/graced.toml")),
        Error::HiddenByPrivateTmp { .. }
    ));
}

#[test]
fn access_log_files_get_a_writable_directory() {
    let with_log = |path: &str| {
        let mut config = base();
        config.server.access_log = AccessLog::File(path.into());
        config
    };
    let text = service_text(&with_log("/var/log/graced/access.log"));
    assert!(text.contains("LogsDirectory=graced\n") && !text.contains("ReadWritePaths"));
    let text = service_text(&with_log("/srv/logs/access.log"));
    assert!(text.contains("ReadWritePaths=/srv/logs\n") && text.contains("RequiresMountsFor=/srv/logs\n"));
    let text = service_text(&with_log("/run/graced/access.log"));
    assert!(!text.contains("ReadWritePaths") && !text.contains("LogsDirectory"));
    let text = service_text(&with_log("/home/web/logs/access.log"));
    assert!(text.contains("BindPaths=/home/web/logs\n") && text.contains("ProtectHome=tmpfs\n"));
    assert!(matches!(error(&with_log("/var/log/access.log"), &plain()), Error::AccessLogInVarLog { .. }));
}

#[test]
fn paths_are_escaped_or_refused() {
    let text = render(&base(), 252, &Options::new("/etc/graced/100%.toml")).remove(0).1;
    assert!(text.contains("ExecStart=/usr/sbin/graced -f /etc/graced/100%%.toml\n"));
    assert!(matches!(error(&base(), &Options::new("/etc/my graced.toml")), Error::UnsupportedPath { .. }));
    assert!(matches!(error(&base(), &Options::new("graced.toml")), Error::RelativePath { .. }));
}

#[test]
fn rendering_is_stable() {
    let config = base();
    assert_eq!(render(&config, 254, &plain()), render(&config, 254, &plain()));
}

const TLS: &str = r#"
[[listen]]
name = "https"
address = "127.0.0.1:8443"
tls = true

[[site]]
root = "builtin:demo"
hosts = ["a.example"]
certificate = "/etc/letsencrypt/live/a.example/fullchain.pem"
key = "/etc/letsencrypt/live/a.example/privkey.pem"

[[site]]
root = "builtin:demo"
hosts = ["b.example"]
certificate = "/etc/letsencrypt/live/a.example/fullchain.pem"
key = "credential:b.key"
"#;

#[test]
fn tls_files_are_credentials_and_the_reload_hands_renewed_ones_over() {
    let config = config(TLS);
    for systemd in [252, 257] {
        let service = render(&config, systemd, &plain()).remove(0).1;
        let credentials: Vec<&str> = service.lines().filter(|l| l.starts_with("LoadCredential")).collect();
        assert_eq!(
            credentials,
            [
                "LoadCredential=etc_letsencrypt_live_a.example_fullchain.pem:/etc/letsencrypt/live/a.example/fullchain.pem",
                "LoadCredential=etc_letsencrypt_live_a.example_privkey.pem:/etc/letsencrypt/live/a.example/privkey.pem",
            ],
            "one per distinct path; credential:NAME is the operator's drop-in ({systemd})"
        );
        // notify-reload would signal before the files are handed over: never with TLS files.
        assert!(service.contains("Type=notify\n"), "{systemd}: {service}");
        assert!(!service.contains("ReloadSignal="), "{systemd}");
        assert!(
            service.contains("ExecReload=+/usr/sbin/graced -k graceful --wait -f /etc/graced/graced.toml\n"),
            "{systemd}: root opens the files at reload"
        );
        assert!(service.contains("DynamicUser=yes\n"), "the server itself stays unprivileged");
    }
}

#[test]
fn credentials_alone_keep_the_usual_reload() {
    let text = TLS
        .replace("\"/etc/letsencrypt/live/a.example/fullchain.pem\"", "\"credential:a.pem\"")
        .replace("\"/etc/letsencrypt/live/a.example/privkey.pem\"", "\"credential:a.key\"");
    let service = render(&config(&text), 257, &plain()).remove(0).1;
    assert!(!service.contains("LoadCredential"), "{service}");
    assert!(service.contains("Type=notify-reload\n") && service.contains("ExecReload=/usr/sbin/graced"));
}

#[test]
fn credential_names_that_clash_or_overflow_are_refused() {
    let clash = TLS.replace("credential:b.key", "/etc/letsencrypt/live/a.example_privkey.pem");
    let err = error(&config(&clash), &plain());
    assert!(matches!(err, Error::CredentialClash { .. }), "{err}");
    assert!(err.to_string().contains("etc_letsencrypt_live_a.example_privkey.pem"), "{err}");
    let long = TLS.replace("credential:b.key", &format!("/etc/{}", "k".repeat(260)));
    assert!(matches!(error(&config(&long), &plain()), Error::CredentialPath { .. }));
}
