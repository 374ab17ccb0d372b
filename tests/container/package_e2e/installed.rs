//! The packages installed under a real systemd: serve, reload, catalog, gracectl, upgrade under load, nothing left after removal.

use super::*;

// Container side: serve, reload, upgrade under load, nothing left.

fn addr() -> SocketAddr {
    HTTP.parse().unwrap()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The page the packaged configuration serves at / (root = "builtin:demo").
fn demo_page() -> Vec<u8> {
    fs::read(Path::new(ROOT).join("demo/index.html")).expect("demo/index.html")
}

fn main_pid(c: &Container) -> u32 {
    c.prop("graced.service", "MainPID").parse().unwrap()
}

/// Runs `argv` inside, which must succeed; returns how long it took.
fn timed(c: &Container, argv: &[&str]) -> Duration {
    let t = Instant::now();
    let out = c.exec(argv);
    let took = t.elapsed();
    assert!(out.success(), "{argv:?}: {out}");
    took
}

/// curl inside serves the demo page, which activates graced.service; it runs as graced.
/// Returns how long the first request (with the activation) took.
fn check_serves(c: &Container) -> Duration {
    assert_eq!(c.prop("graced.socket", "ActiveState"), "active");
    assert_eq!(
        c.prop("graced.service", "ActiveState"),
        "inactive",
        "the service waits for its first connection"
    );
    let t = Instant::now();
    let out = c.exec(&["curl", "-fsS", "--max-time", "30", "http://127.0.0.1/"]);
    let took = t.elapsed();
    assert!(out.success(), "curl http://127.0.0.1/: {out}");
    assert!(
        out.stdout.as_bytes() == demo_page(),
        "curl got something else than the demo page:\n{}",
        out.stdout
    );
    let p = c.show("graced.service", &["ActiveState", "SubState", "User", "MainPID"]);
    assert_eq!(
        (p["ActiveState"].as_str(), p["SubState"].as_str(), p["User"].as_str()),
        ("active", "running", "graced")
    );
    let uid = c.must(&["id", "-u", "graced"]).trim().to_owned();
    let status = c.must(&["cat", &format!("/proc/{}/status", p["MainPID"])]);
    let real = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().next());
    assert_eq!(real, Some(uid.as_str()), "graced runs as the graced user");
    took
}

/// `systemctl reload graced` works (same process, new generation) and `journalctl -x`
/// explains the lifecycle messages with the catalog's text. Returns the reload's duration.
fn check_reload_and_catalog(c: &Container) -> Duration {
    let pid = main_pid(c);
    let took = timed(c, &["systemctl", "reload", "graced"]);
    assert_eq!(main_pid(c), pid, "a reload keeps the process");
    assert_eq!(c.prop("graced.service", "ActiveState"), "active");
    let journal = c.journal(&["-x", "-u", "graced.service", "-o", "short-monotonic"]);
    for text in [
        "Subject: graced started serving",
        "Subject: graced reloaded its configuration",
        "Defined-By: graced",
        "now serves every new request",
    ] {
        assert!(journal.contains(text), "journalctl -x -u graced lacks {text:?}:\n{journal}");
    }
    took
}

/// This machine is a Docker image: its /usr/sbin/policy-rc.d exits 101, which makes
/// deb-systemd-invoke refuse every start, stop and restart (the container's root is an
/// overlay of the host's). A real system has none; remove it inside (the host keeps it).
fn allow_service_actions(c: &Container) {
    c.must(&["rm", "-f", "/usr/sbin/policy-rc.d"]);
}

/// `gracectl status graced` as root: the system bus activates graced-dbus.service from the
/// packaged activation file, the packaged policy lets root call it. Returns its answer.
fn check_gracectl(c: &Container) -> String {
    let out = c.exec(&["gracectl", "--json", "status", "graced"]);
    assert!(out.success(), "gracectl status graced (D-Bus activation of the packaged helper): {out}");
    assert_eq!(c.prop("graced-dbus.service", "ActiveState"), "active", "the bus activated the helper");
    out.stdout.trim().to_owned()
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failures: BTreeMap<String, u64>,
    examples: Vec<String>,
    connections: u64,
    slowest: Duration,
}

impl Tally {
    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn record(&mut self, result: Result<http::Response, http::Failure>, expected: &[u8], took: Duration) {
        self.slowest = self.slowest.max(took);
        let kind = match result {
            Ok(r) if r.status == 200 && r.body == expected => {
                self.ok += 1;
                return;
            }
            Ok(r) => format!("HTTP {} ({} bytes)", r.status, r.body.len()),
            Err(f) => f.to_string(),
        };
        let key = kind.split(':').next().unwrap_or("").to_owned();
        *self.failures.entry(key).or_default() += 1;
        if self.examples.len() < 5 {
            self.examples.push(kind);
        }
    }
}

/// Two clients requesting / without pause: one connection per request, and one keep-alive
/// connection (a close between requests or `Connection: close` means reconnect, not failure).
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<(&'static str, std::thread::JoinHandle<Tally>)>,
}

impl Load {
    fn start(c: &Container) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let expected = Arc::new(demo_page());
        let clients = [("new connection per request", false), ("keep-alive", true)]
            .into_iter()
            .map(|(name, keep_alive)| {
                let (stop, expected) = (stop.clone(), expected.clone());
                let handle = c.spawn_in_netns(move || {
                    let mut tally = Tally::default();
                    let mut conn = KeepAlive::new(addr());
                    while !stop.load(Ordering::SeqCst) {
                        let t = Instant::now();
                        let result = if keep_alive {
                            conn.get("/")
                        } else {
                            tally.connections += 1;
                            http::get(addr(), "/")
                        };
                        tally.record(result, &expected, t.elapsed());
                    }
                    if keep_alive {
                        tally.connections = conn.connections;
                    }
                    tally
                });
                (name, handle)
            })
            .collect();
        Load { stop, clients }
    }

    fn finish(mut self) -> Vec<(&'static str, Tally)> {
        self.stop.store(true, Ordering::SeqCst);
        std::mem::take(&mut self.clients).into_iter().map(|(name, h)| (name, h.join().unwrap())).collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Installs the newer package with `argv` while the two clients run; asserts that not one
/// request failed, that graced.service was handed over to the new binary in place
/// (`graced -k upgrade --wait` in the maintainer script: a new MainPID, no restart) and
/// that graced.socket was left alone. Returns a report line.
fn upgrade_under_load(c: &Container, argv: &[&str]) -> String {
    let socket_since = c.prop("graced.socket", "ActiveEnterTimestampMonotonic");
    let before = main_pid(c);
    let restarts = c.prop("graced.service", "NRestarts");
    let since_start = c.prop("graced.service", "ActiveEnterTimestampMonotonic");
    let load = Load::start(c);
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let out = c.exec(argv);
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let tallies = load.finish();
    assert!(out.success(), "{argv:?}: {out}");
    let after = main_pid(c);
    assert!(
        after != 0 && after != before,
        "the upgrade restarted graced.service (MainPID {before} → {after})"
    );
    let exe = c.must(&["readlink", &format!("/proc/{after}/exe")]);
    assert_eq!(exe.trim(), "/usr/sbin/graced", "the new process runs the installed binary");
    // Handed over, not restarted: the unit never left active (the time it entered it and the
    // restart count are those of the old process), and graced logged the hand-over.
    assert_eq!(c.prop("graced.service", "NRestarts"), restarts);
    assert_eq!(
        c.prop("graced.service", "ActiveEnterTimestampMonotonic"),
        since_start,
        "the upgrade restarted graced.service instead of handing over: {out}"
    );
    let journal = c.journal(&["-u", "graced.service", "-o", "cat"]);
    assert!(journal.contains(&format!("binary upgrade complete: pid {after} ")), "{journal}");
    assert_eq!(
        c.prop("graced.socket", "ActiveEnterTimestampMonotonic"),
        socket_since,
        "the upgrade must not restart graced.socket (it would close the listener)"
    );
    let mut report = vec![format!(
        "`{}` took {} (handed over in place: MainPID {before} → {after}, NRestarts {restarts})",
        argv.join(" "),
        ms(took)
    )];
    for (name, tally) in &tallies {
        report.push(format!(
            "{name}: {} requests ok, {} failed {:?}, {} connections, slowest {}",
            tally.ok,
            tally.failed(),
            tally.failures,
            tally.connections,
            ms(tally.slowest)
        ));
    }
    for (name, tally) in &tallies {
        assert!(tally.ok > 0, "{name}: no request succeeded");
        assert_eq!(
            tally.failed(),
            0,
            "{name}: failed requests {:?}, e.g. {:?}",
            tally.failures,
            tally.examples
        );
    }
    report.join("; ")
}

/// After removal: no listener, no unit, no enablement, no configuration, no runtime
/// directory, no process and no file of the graced accounts (which stay, as Debian and
/// Fedora leave system accounts), no catalog entry. Returns a report line.
fn check_nothing_left(c: &Container) -> String {
    let refused = c.in_netns(|| matches!(http::get(addr(), "/"), Err(http::Failure::Refused)));
    assert!(refused, "nothing may listen on {HTTP} any more");
    for unit in ["graced.socket", "graced.service", "graced-dbus.service"] {
        let p = c.show(unit, &["LoadState", "ActiveState"]);
        assert_eq!((p["LoadState"].as_str(), p["ActiveState"].as_str()), ("not-found", "inactive"), "{unit}");
    }
    // (graced-e2e.target is the container's own boot target.)
    let files = c.systemctl(&["list-unit-files", "--no-legend", "graced.*", "graced@*", "graced-dbus*"]);
    assert!(files.stdout.trim().is_empty(), "unit files left: {}", files.stdout);
    let left = c.sh("ls -d /etc/graced /run/graced /usr/share/graced /usr/lib/systemd/system/graced[.@-]* \
         /etc/systemd/system/graced[.@]* /etc/systemd/system/graced-dbus* \
         /etc/systemd/system/*/graced[.@-]* /run/systemd/generator*/graced[.@-]* \
         /var/lib/systemd/deb-systemd-helper-enabled/graced[.@-]* \
         /var/lib/systemd/deb-systemd-helper-enabled/*/graced[.@-]* \
         /var/lib/systemd/deb-systemd-helper-masked/graced[.@-]* 2>/dev/null");
    assert!(left.stdout.trim().is_empty(), "left behind:\n{}", left.stdout);
    let procs = c.must(&["find", "/proc", "-mindepth", "1", "-maxdepth", "1", "-user", "graced"]);
    assert!(procs.trim().is_empty(), "processes of graced left: {procs}");
    // Every file system the container can write, less the trees of this build (huge, and
    // outside anything graced or the package may touch).
    let t = Instant::now();
    let mut prune = vec!["/proc".to_owned(), "/sys".into(), "/root/.cargo".into(), "/root/.rustup".into()];
    prune.push(harness::STATE_BASE.to_owned());
    prune.push(ROOT.to_owned());
    prune.push(target_dir().to_string_lossy().into_owned());
    let prune = prune.iter().map(|p| format!("-path '{p}'")).collect::<Vec<_>>().join(" -o ");
    let owned = c.sh(&format!(
        "find / /run /tmp /var/tmp /dev/shm -xdev \\( {prune} \\) -prune -o \
         \\( -user graced -o -group graced -o -group graced-admin \\) -print"
    ));
    let scan = t.elapsed();
    assert!(owned.stdout.trim().is_empty(), "files of the graced accounts left:\n{}", owned.stdout);
    let catalog = c.must(&["journalctl", "--list-catalog"]);
    assert!(
        !catalog.contains("6c3b9f2a1e7d4c0f8a52d9e4b7a1c3"),
        "graced's catalog entries are still indexed"
    );
    format!(
        "nothing left (units, links, /etc/graced, /run/graced, processes, catalog; file scan {})",
        ms(scan)
    )
}

// The tests.

#[test]
fn deb_installs_serves_upgrades_and_purges() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tools = [
        ("dpkg-buildpackage", "dpkg-dev"),
        ("dh_installsysusers", "debhelper"),
        ("help2man", "help2man"),
        ("lintian", "lintian"),
        ("curl", "curl"),
    ];
    if prerequisites("package_e2e deb", &tools).is_none() {
        return;
    }
    let (bins, release) = release_binaries();
    let out = work_dir("deb");
    let (old, built_old) = build("build-deb", &bins, &out, &[]);
    let version =
        |deb: &Path| host("dpkg-deb", &["-f", deb.to_str().unwrap(), "Version"], &[]).trim().to_owned();
    let old = Package { version: version(&old), path: old, took: built_old };
    let newer = format!("{}+e2e1", old.version);
    let (new, built_new) = build("build-deb", &bins, &out, &["--version", &newer]);
    let new = Package { version: version(&new), path: new, took: built_new };
    assert_eq!(new.version, newer);
    host("dpkg", &["--compare-versions", &new.version, "gt", &old.version], &[]);

    // The files: every path with its mode, root:root, nothing else; the conffile; lintian.
    let docs = ["README.md.gz", "ARCHITECTURE.md.gz", "changelog.Debian.gz", "copyright"];
    let mut extra: Vec<(&str, String)> =
        docs.iter().map(|d| ("-rw-r--r--", format!("/usr/share/doc/graced/{d}"))).collect();
    extra.push(("-rw-r--r--", "/usr/share/lintian/overrides/graced".into()));
    extra.push(("-rw-r--r--", "/usr/share/zsh/vendor-completions/_graced".into()));
    let files = check_listing("dpkg-deb -c", &deb_listing(&old.path), &extra);
    let conffiles = host("dpkg-deb", &["-I", old.path.to_str().unwrap(), "conffiles"], &[]);
    let mut conffiles: Vec<&str> = conffiles.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    conffiles.sort_unstable();
    assert_eq!(conffiles, ["/etc/graced/graced.toml", "/etc/logrotate.d/graced"]);
    let (warnings, overridden) = lintian(&old.path);

    let Some(c) = Container::boot_or_skip("pkg-deb", Duration::from_secs(300)) else { return };
    allow_service_actions(&c);
    c.push(&old.path, "/var/tmp/pkg/graced-old.deb", 0o644);
    c.push(&new.path, "/var/tmp/pkg/graced-new.deb", 0o644);

    // Install: the socket enabled and listening, the accounts made, the demo page served.
    let install = timed(&c, &["dpkg", "-i", "/var/tmp/pkg/graced-old.deb"]);
    assert_eq!(c.exec(&["systemctl", "is-enabled", "graced.socket"]).stdout.trim(), "enabled");
    // graced-acme ships disabled: no site of the packaged configuration asks for ACME.
    assert_eq!(c.exec(&["systemctl", "is-enabled", "graced-acme.timer"]).stdout.trim(), "disabled");
    c.must(&["getent", "passwd", "graced"]);
    c.must(&["getent", "group", "graced-admin"]);
    let first = check_serves(&c);
    let reload = check_reload_and_catalog(&c);
    let status = check_gracectl(&c);

    // Upgrade to the newer build while clients request without pause.
    let upgrade = upgrade_under_load(&c, &["dpkg", "-i", "/var/tmp/pkg/graced-new.deb"]);
    let installed = c.must(&["dpkg-query", "-W", "-f=${Version}", "graced"]);
    assert_eq!(installed, new.version);
    assert_eq!(c.exec(&["systemctl", "is-enabled", "graced.socket"]).stdout.trim(), "enabled");

    // Purge.
    let purge = timed(&c, &["dpkg", "--purge", "graced"]);
    assert!(!c.exec(&["dpkg", "-s", "graced"]).success(), "graced is still known to dpkg");
    let left = check_nothing_left(&c);

    for line in [
        format!(
            "release build {} (reused when fresh); build-deb {} then {} (bumped {})",
            ms(release),
            ms(old.took),
            ms(new.took),
            new.version
        ),
        format!(
            "dpkg-deb -c: {files} files as expected (modes, root/root), conffile /etc/graced/graced.toml; \
             lintian: 0 errors, {} warnings {warnings:?}, {overridden} overridden",
            warnings.len()
        ),
        format!(
            "boot {}; dpkg -i {}: graced.socket enabled+active; first request (activation) {}; \
             systemctl reload {}; journalctl -x shows the catalog",
            ms(c.boot_time),
            ms(install),
            ms(first),
            ms(reload)
        ),
        format!("gracectl --json status graced (bus-activated helper): {status}"),
        format!("upgrade: {upgrade}"),
        format!("dpkg --purge {}: {left}", ms(purge)),
    ] {
        harness::visible(&format!("FIGURES[deb]: {line}"));
    }
}

#[test]
fn rpm_installs_serves_upgrades_and_erases() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tools = [("rpmbuild", "rpm"), ("rpm", "rpm"), ("help2man", "help2man"), ("curl", "curl")];
    if prerequisites("package_e2e rpm", &tools).is_none() {
        return;
    }
    let (bins, release) = release_binaries();
    let out = work_dir("rpm");
    let (old, built_old) = build("build-rpm", &bins, &out, &["--release", "1"]);
    let (new, built_new) = build("build-rpm", &bins, &out, &["--release", "2"]);
    let query = |rpm: &Path, what: &str| host("rpm", &["-qp", what, rpm.to_str().unwrap()], &[]);
    let old = Package { version: query(&old, "--qf=%{VERSION}-%{RELEASE}"), path: old, took: built_old };
    let new = Package { version: query(&new, "--qf=%{VERSION}-%{RELEASE}"), path: new, took: built_new };
    let upstream = old.version.split('-').next().unwrap().to_owned();

    let mut extra: Vec<(&str, String)> = ["README.md", "ARCHITECTURE.md"]
        .iter()
        .map(|d| ("-rw-r--r--", format!("/usr/share/doc/graced-{upstream}/{d}")))
        .collect();
    extra.push(("-rw-r--r--", format!("/usr/share/licenses/graced-{upstream}/copyright")));
    extra.push(("-rw-r--r--", "/usr/share/zsh/site-functions/_graced".into()));
    let files = check_listing("rpm -qplv", &rpm_listing(&old.path), &extra);
    assert_eq!(query(&old.path, "-c").trim(), "/etc/graced/graced.toml\n/etc/logrotate.d/graced");
    let scripts = query(&old.path, "--scripts");
    for part in [
        "preinstall scriptlet",
        "systemd-sysusers --replace=/usr/lib/sysusers.d/graced.conf",
        "postinstall scriptlet",
        "systemctl --no-reload preset graced.socket",
        "preuninstall scriptlet",
        "systemctl --no-reload disable --now graced.socket graced.service graced-dbus.service",
        "postuninstall scriptlet",
        "systemctl try-restart graced-dbus.service",
        "journalctl --update-catalog",
        "posttrans scriptlet",
        "/usr/sbin/graced -k upgrade --wait",
    ] {
        assert!(scripts.contains(part), "rpm -qp --scripts lacks {part:?}:\n{scripts}");
    }

    let Some(c) = Container::boot_or_skip("pkg-rpm", Duration::from_secs(300)) else { return };
    c.push(&old.path, "/var/tmp/pkg/graced-old.rpm", 0o644);
    c.push(&new.path, "/var/tmp/pkg/graced-new.rpm", 0o644);

    // %systemd_post semantics: enabled by preset, not started; the admin starts it.
    let install = timed(&c, &["rpm", "-i", "--nodeps", "--force-debian", "/var/tmp/pkg/graced-old.rpm"]);
    assert_eq!(c.exec(&["systemctl", "is-enabled", "graced.socket"]).stdout.trim(), "enabled");
    assert_eq!(c.exec(&["systemctl", "is-enabled", "graced-acme.timer"]).stdout.trim(), "disabled");
    assert_eq!(c.prop("graced.socket", "ActiveState"), "inactive", "%systemd_post starts nothing");
    c.must(&["getent", "passwd", "graced"]);
    c.must(&["getent", "group", "graced-admin"]);
    c.must(&["systemctl", "start", "graced.socket"]);
    let first = check_serves(&c);
    let reload = check_reload_and_catalog(&c);
    let status = check_gracectl(&c);

    let upgrade =
        upgrade_under_load(&c, &["rpm", "-U", "--nodeps", "--force-debian", "/var/tmp/pkg/graced-new.rpm"]);
    let installed = c.must(&["rpm", "-q", "--qf=%{VERSION}-%{RELEASE}", "graced"]);
    assert_eq!(installed, new.version);

    let erase = timed(&c, &["rpm", "-e", "--nodeps", "graced"]);
    assert!(!c.exec(&["rpm", "-q", "graced"]).success(), "graced is still known to rpm");
    let left = check_nothing_left(&c);

    for line in [
        format!(
            "release build {} (reused when fresh); build-rpm {} then {} ({} → {})",
            ms(release),
            ms(old.took),
            ms(new.took),
            old.version,
            new.version
        ),
        format!(
            "rpm -qplv: {files} files as expected (modes, root/root), %config /etc/graced/graced.toml and /etc/logrotate.d/graced; scriptlets present"
        ),
        format!(
            "boot {}; rpm -i {}: graced.socket enabled by preset; first request (activation) {}; \
             systemctl reload {}; journalctl -x shows the catalog",
            ms(c.boot_time),
            ms(install),
            ms(first),
            ms(reload)
        ),
        format!("gracectl --json status graced (bus-activated helper): {status}"),
        format!("upgrade: {upgrade}"),
        format!("rpm -e {}: {left}", ms(erase)),
    ] {
        harness::visible(&format!("FIGURES[rpm]: {line}"));
    }
}
