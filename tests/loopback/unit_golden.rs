//! The unit generator end to end: golden files, `systemd-analyze verify`/`security`, and graced-generator.
//!
//! Golden files live in `tests/golden/CASE/` next to the case's `graced.toml`;
//! `UPDATE_GOLDEN=1 cargo test --test loopback unit_golden` rewrites them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graced_config::Config;
use graced_unit::{Bundle, Kind, Options, build};

fn golden_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(case)
}

/// Builds the bundle of a golden case; `binary` replaces the packaged /usr/sbin/graced.
fn case_bundle(case: &str, systemd: u32, template: bool, binary: Option<&Path>) -> Bundle {
    let config =
        Config::load(&golden_dir(case).join("graced.toml")).expect("the case's configuration is valid");
    let mut options = if template {
        Options { kind: Kind::Template, ..Options::new("/etc/graced/instances/site.toml") }
    } else {
        Options::new("/etc/graced/graced.toml")
    };
    if let Some(binary) = binary {
        options.binary = binary.to_owned();
    }
    build(&config, systemd, &options).expect("the case builds")
}

/// Compares `bundle` with the unit files in `dir`, or rewrites them when UPDATE_GOLDEN=1.
fn check_golden(dir: &Path, bundle: &Bundle) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut stale: BTreeSet<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".service") || n.ends_with(".socket") || n.ends_with(".timer"))
        .collect();
    let mut problems = Vec::new();
    for file in &bundle.files {
        stale.remove(&file.name);
        let path = dir.join(&file.name);
        let actual = file.to_string();
        match fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            _ if update => fs::write(&path, &actual).unwrap(),
            Ok(expected) => {
                let line = expected
                    .lines()
                    .zip(actual.lines())
                    .position(|(e, a)| e != a)
                    .map_or_else(|| expected.lines().count().min(actual.lines().count()) + 1, |i| i + 1);
                problems.push(format!("{} differs from line {line}; generated:\n{actual}", path.display()));
            }
            Err(_) => problems.push(format!("{} is missing; generated:\n{actual}", path.display())),
        }
    }
    for name in stale {
        if update {
            fs::remove_file(dir.join(&name)).unwrap();
        } else {
            problems.push(format!("{} is no longer generated", dir.join(&name).display()));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nrun with UPDATE_GOLDEN=1 to accept the new output",
        problems.join("\n")
    );
}

#[test]
fn golden_one_listener_systemd_252() {
    check_golden(&golden_dir("one-listener-252"), &case_bundle("one-listener-252", 252, false, None));
}

#[test]
fn golden_one_listener_systemd_254() {
    check_golden(&golden_dir("one-listener-254"), &case_bundle("one-listener-254", 254, false, None));
}

#[test]
fn golden_several_listeners() {
    check_golden(&golden_dir("several-listeners"), &case_bundle("several-listeners", 252, false, None));
}

#[test]
fn golden_acme() {
    let bundle = case_bundle("acme", 252, false, None);
    check_golden(&golden_dir("acme"), &bundle);
    let names: Vec<&str> = bundle.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "graced.service",
            "graced.socket",
            "graced-https.socket",
            "graced-acme.service",
            "graced-acme.timer"
        ]
    );
    assert_eq!(bundle.enable_links().iter().filter(|l| l.dir == "timers.target.wants").count(), 1);
}

#[test]
fn golden_template() {
    check_golden(&golden_dir("template"), &case_bundle("template", 252, true, None));
}

#[test]
fn reload_form_follows_the_systemd_version() {
    let old = case_bundle("one-listener-252", 252, false, None).files[0].to_string();
    assert!(
        old.contains("Type=notify\n") && !old.contains("notify-reload") && !old.contains("ReloadSignal=")
    );
    assert!(old.contains("ExecReload=/usr/sbin/graced -k graceful --wait -f /etc/graced/graced.toml\n"));
    let new = case_bundle("one-listener-252", 253, false, None).files[0].to_string();
    assert!(new.contains("Type=notify-reload\n") && new.contains("ReloadSignal=SIGUSR1\n"));
    assert!(
        new.contains(
            "ExecReload=/usr/sbin/graced -k graceful --wait --signalled -f /etc/graced/graced.toml\n"
        )
    );
}

// --- systemd-analyze -------------------------------------------------------------------

/// `systemd-analyze`, or None after printing a visible SKIP line.
fn systemd_analyze(test: &str) -> Option<&'static str> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => Some("systemd-analyze"),
        _ => {
            println!("SKIP: {test}: systemd-analyze is not installed");
            eprintln!("SKIP: {test}: systemd-analyze is not installed");
            None
        }
    }
}

/// Writes every case's units (running the built graced) into one directory each; cases for
/// a newer systemd than this host's are left out (with a SKIP line), as the host's systemd
/// rightly does not know their directives.
fn verifiable_cases(test: &str) -> Vec<(String, tempfile::TempDir, Bundle)> {
    let binary = Path::new(crate::GRACED);
    let host = graced::unit::detect_systemd_version().unwrap_or(graced_unit::FALLBACK_SYSTEMD);
    let cases = [
        ("one-listener-252", 252, false),
        ("one-listener-254", 254, false),
        ("several-listeners", 252, false),
        ("template", 252, true),
        ("acme", 252, false),
    ];
    let mut out = Vec::new();
    for (case, systemd, template) in cases {
        if systemd > host {
            println!("SKIP: {test}: {case} targets systemd {systemd}, this host has {host}");
            continue;
        }
        let bundle = case_bundle(case, systemd, template, Some(binary));
        let dir = tempfile::tempdir().unwrap();
        for file in &bundle.files {
            // A template is verified through an instance of it.
            let name = file.name.replace("@.", "@site.");
            fs::write(dir.path().join(name), file.to_string()).unwrap();
        }
        out.push((case.to_owned(), dir, bundle));
    }
    out
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn systemd_analyze_verify_accepts_every_unit() {
    let Some(analyze) = systemd_analyze("systemd_analyze_verify_accepts_every_unit") else { return };
    for (case, dir, _) in verifiable_cases("systemd_analyze_verify_accepts_every_unit") {
        let mut files: Vec<PathBuf> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let names: Vec<String> =
            files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
        let output = Command::new(analyze).args(["verify", "--man=no"]).args(&files).output().unwrap();
        let report = text(&output);
        // Complaints about units of this host (not ours) are not ours to fix.
        let ours: Vec<&str> = report
            .lines()
            .filter(|line| {
                names.iter().any(|n| line.contains(n.as_str()))
                    || line.contains(&*dir.path().to_string_lossy())
            })
            .collect();
        assert!(output.status.success() && ours.is_empty(), "verify {case} ({}):\n{report}", names.join(" "));
    }
}

/// The overall exposure from `systemd-analyze security` output.
fn exposure(report: &str) -> f64 {
    let line =
        report.lines().find(|l| l.contains("Overall exposure level")).expect("an overall exposure line");
    let value = line.split(':').nth(1).unwrap().split_whitespace().next().unwrap();
    value.parse().unwrap()
}

#[test]
fn systemd_analyze_security_exposure_is_at_most_1_0() {
    let Some(analyze) = systemd_analyze("systemd_analyze_security_exposure_is_at_most_1_0") else { return };
    for (case, dir, bundle) in verifiable_cases("systemd_analyze_security_exposure_is_at_most_1_0") {
        let service = bundle.files[0].name.replace("@.", "@site.");
        assert!(service.ends_with(".service"));
        let output = Command::new(analyze)
            .args(["security", "--offline=true", "--threshold=10", "--no-pager"])
            .arg(dir.path().join(&service))
            .output()
            .unwrap();
        let report = text(&output);
        let score = exposure(&report);
        println!("{case}: {service}: exposure {score}");
        assert!(output.status.success() && score <= 1.0, "{case}: exposure {score} > 1.0:\n{report}");
    }
}

#[test]
fn systemd_analyze_security_of_graced_acme_is_at_most_2_0() {
    let test = "systemd_analyze_security_of_graced_acme_is_at_most_2_0";
    let Some(analyze) = systemd_analyze(test) else { return };
    let (_, dir, _) = verifiable_cases(test).into_iter().find(|(case, ..)| case == "acme").unwrap();
    let output = Command::new(analyze)
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(dir.path().join("graced-acme.service"))
        .output()
        .unwrap();
    let report = text(&output);
    let score = exposure(&report);
    println!("acme: graced-acme.service: exposure {score}");
    assert!(
        output.status.success() && score <= 2.0,
        "graced-acme.service: exposure {score} > 2.0:\n{report}"
    );
}

// --- graced-generator ------------------------------------------------------------------

/// Instance configurations: `good.toml`, `broken.toml` and a file that is not one.
/// The fixture instance configurations, copied to a directory the generator accepts
/// wherever the checkout is: it (rightly) refuses configurations under /tmp or /var/tmp,
/// which a `PrivateTmp=yes` service cannot see. /dev/shm is neither.
struct Instances {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl std::ops::Deref for Instances {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

fn instances() -> Instances {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    for entry in fs::read_dir(golden_dir("generator")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().to_owned();
    Instances { _dir: dir, path }
}

fn generator(instances: &Path) -> Command {
    let mut command = Command::new(crate::GENERATOR);
    command.env("GRACED_INSTANCES_DIR", instances).env("GRACED_SYSTEMD_VERSION", "252");
    command
}

fn listing(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            names.extend(listing(&entry.path()).into_iter().map(|n| format!("{name}/{n}")));
        } else {
            names.insert(name);
        }
    }
    names
}

#[test]
fn generator_writes_good_instances_and_reports_broken_ones() {
    let instances = instances();
    let out = tempfile::tempdir().unwrap();
    let [normal, early, late] = ["normal", "early", "late"].map(|d| out.path().join(d));
    for dir in [&normal, &early, &late] {
        fs::create_dir(dir).unwrap();
    }
    let output = generator(&instances).arg("--no-kmsg-log").args([&normal, &early, &late]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success(), "a broken instance makes the generator fail");
    assert!(stderr.lines().all(|l| l.starts_with("graced-generator: ")), "{stderr}");
    assert!(stderr.contains("broken.toml") && stderr.contains("soon"), "{stderr}");
    assert!(!stderr.contains("good.toml"), "{stderr}");

    let expected: BTreeSet<String> = [
        "graced@good.service",
        "graced@good.socket",
        "graced-admin@good.socket",
        "sockets.target.wants/graced@good.socket",
    ]
    .map(String::from)
    .into();
    assert_eq!(listing(&normal), expected);
    assert!(listing(&early).is_empty() && listing(&late).is_empty());

    let link = normal.join("sockets.target.wants/graced@good.socket");
    assert_eq!(fs::read_link(&link).unwrap(), normal.join("graced@good.socket"));
    let service = fs::read_to_string(normal.join("graced@good.service")).unwrap();
    let config = instances.join("good.toml");
    assert!(service.contains(&format!("SourcePath={}\n", config.display())), "{service}");
    assert!(service.contains(&format!("ExecStart=/usr/sbin/graced -f {}\n", config.display())), "{service}");
    assert!(service.contains("RuntimeDirectory=graced-good\n"), "{service}");
    assert!(service.contains("Sockets=graced@good.socket graced-admin@good.socket\n"), "{service}");
    let socket = fs::read_to_string(normal.join("graced@good.socket")).unwrap();
    assert!(
        socket.contains("Wants=graced-admin@good.socket\n") && socket.contains("WantedBy=sockets.target\n")
    );
}

#[test]
fn generator_dry_run_prints_and_writes_nothing() {
    let instances = instances();
    let out = tempfile::tempdir().unwrap();
    let output = generator(&instances).arg("--dryrun").arg(out.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(listing(out.path()).is_empty(), "--dryrun wrote files");
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("---")).collect();
    let normal = out.path().display();
    assert_eq!(
        headers,
        [
            format!("---{normal}/graced@good.service---"),
            format!("---{normal}/graced@good.socket---"),
            format!("---{normal}/graced-admin@good.socket---"),
            format!("---{normal}/sockets.target.wants/graced@good.socket -> {normal}/graced@good.socket---"),
        ],
        "{stdout}"
    );
    assert!(stdout.contains("ListenStream=[::1]:8182\n"), "{stdout}");
    assert!(stderr.contains("graced-generator: ") && stderr.contains("broken.toml"), "{stderr}");
}

#[test]
fn generator_without_instances_does_nothing() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("no-such-dir");
    let output =
        generator(&missing).arg("--no-kmsg-log").args([out.path(), out.path(), out.path()]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(listing(out.path()).is_empty());
}
