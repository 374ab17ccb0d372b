//! `[[site.access]]`: IP allow/deny and basic auth (bcrypt from an htpasswd file) by path,
//! checked against the decoded request path and the resolved file (no way around a rule
//! through clean URLs or percent-encoding), successful checks cached, a warning when a
//! plain-HTTP listener carries the passwords.

use std::time::Duration;

use base64::Engine as _;
use graced_testsupport::process::{StderrLog, cpu_seconds};
use graced_testsupport::site::Site;

use super::{get, must};
use crate::GRACED;

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[test]
fn ip_rules_deny_first_then_allow() {
    let site = Site::new(GRACED);
    site.write_config(
        "[[site.access]]\npath = \"/internal/**\"\nallow = [\"127.0.0.0/8\", \"::1\"]\n\n\
         [[site.access]]\npath = \"/blocked/**\"\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.1\"]\n\n\
         [[site.access]]\npath = \"/ten/**\"\nallow = [\"10.0.0.0/8\"]\n",
    );
    for dir in ["internal", "blocked", "ten"] {
        site.put(&format!("www/{dir}/a.txt"), b"a");
    }
    let server = site.start(&[]);
    assert_eq!(get(server.port, "/internal/a.txt", &[]).status, 200);
    assert_eq!(get(server.port, "/blocked/a.txt", &[]).status, 403);
    assert_eq!(get(server.port, "/ten/a.txt", &[]).status, 403);
    assert_eq!(get(server.port, "/%74en/a.txt", &[]).status, 403, "percent-encoding does not get around it");
    assert_eq!(get(server.port, "/ten/../ten/a.txt", &[]).status, 403);
    assert_eq!(get(server.port, "/", &[]).status, 200);
}

#[test]
fn basic_auth_guards_every_name_of_a_path_and_caches_good_passwords() {
    let site = Site::new(GRACED);
    let hash = bcrypt::hash("correct horse", 8).unwrap();
    site.put("htpasswd", format!("# graced users\nalice:{hash}\n").as_bytes());
    site.write_config(
        "clean_urls = true\n\n[[site.access]]\npath = \"/admin/**\"\nhtpasswd = \"htpasswd\"\nrealm = \"Admin area\"\n",
    );
    site.put("www/admin/index.html", b"secret page\n");
    let mut server = site.start(&[]);
    let log = StderrLog::capture(&mut server);
    let port = server.port;
    assert!(
        log.wait_for("basic auth on a plain-HTTP listener", Duration::from_secs(5)),
        "no warning about passwords over plain HTTP: {}",
        log.text()
    );

    for path in ["/admin/", "/admin/index.html", "/%61dmin/", "/admin"] {
        let r = get(port, path, &[]);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(must(&r, "www-authenticate"), "Basic realm=\"Admin area\", charset=\"UTF-8\"", "{path}");
        assert!(!r.text().contains("secret"), "{path}");
        let r = get(port, path, &[("Authorization", &basic("alice", "wrong"))]);
        assert_eq!(r.status, 401, "{path} with a wrong password");
        let r = get(port, path, &[("Authorization", &basic("mallory", "correct horse"))]);
        assert_eq!(r.status, 401, "{path} with an unknown user");
    }
    let good = basic("alice", "correct horse");
    let r = get(port, "/admin/", &[("Authorization", &good)]);
    assert_eq!((r.status, r.text().as_str()), (200, "secret page\n"));
    // `/admin` is served admin/index.html by clean_urls: the resolved file is guarded too.
    let r = get(port, "/admin", &[("Authorization", &good)]);
    assert_eq!((r.status, r.text().as_str()), (200, "secret page\n"));

    // curl, a real client.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-u", "alice:correct horse", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/admin/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "secret page\n200");

    // A bcrypt check costs real CPU; a cached one does not. One uncached check (a new
    // password is not in the cache: wrong ones never are) against 50 cached ones.
    let pid = server.pid();
    let before = cpu_seconds(pid);
    for _ in 0..3 {
        assert_eq!(get(port, "/admin/", &[("Authorization", &basic("alice", "not it"))]).status, 401);
    }
    let uncached = (cpu_seconds(pid) - before) / 3.0;
    let before = cpu_seconds(pid);
    for _ in 0..50 {
        assert_eq!(get(port, "/admin/", &[("Authorization", &good)]).status, 200);
    }
    let cached = cpu_seconds(pid) - before;
    let _ = std::io::Write::write_all(
        &mut std::io::stdout().lock(),
        format!("one bcrypt check {uncached:.3}s CPU; 50 cached checks {cached:.3}s CPU\n").as_bytes(),
    );
    assert!(
        cached < uncached * 5.0,
        "50 cached checks took {cached:.3}s of CPU, one bcrypt check {uncached:.3}s: not cached"
    );
}

#[test]
fn an_unreadable_or_weak_htpasswd_is_refused_by_the_check() {
    let site = Site::new(GRACED);
    site.write_config("[[site.access]]\npath = \"/a/**\"\nhtpasswd = \"missing-htpasswd\"\n");
    let (code, out) = site.run(&["-t"]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("graced.toml:14:12: htpasswd "), "{out}");
    assert!(out.contains("missing-htpasswd: No such file"), "{out}");
    site.put("missing-htpasswd", b"bob:$apr1$salt$md5hash\n");
    let (code, out) = site.run(&["-t"]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("missing-htpasswd:1: user \"bob\": not a bcrypt or argon2 hash"), "{out}");
}

#[test]
fn an_htpasswd_credential_is_read_at_check_start_and_reload() {
    let site = Site::new(GRACED);
    site.write_config("[[site.access]]\npath = \"/admin/**\"\nhtpasswd = \"credential:site-users\"\n");
    site.put("www/admin/index.html", b"secret page\n");
    // Outside a service there is no credentials directory: -t says where and why.
    let (code, out) = site.run(&["-t"]);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("graced.toml:14:12: htpasswd credential \"site-users\": no credentials directory"),
        "{out}"
    );

    site.put("creds/site-users", format!("alice:{}\n", bcrypt::hash("one", 4).unwrap()).as_bytes());
    let creds = site.path("creds");
    let server = site.start(&[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())]);
    let port = server.port;
    assert_eq!(get(port, "/admin/", &[]).status, 401);
    assert_eq!(get(port, "/admin/", &[("Authorization", &basic("alice", "one"))]).status, 200);

    // A reload reads it again (a changed password), and a broken one is refused.
    site.put("creds/site-users", format!("alice:{}\n", bcrypt::hash("two", 4).unwrap()).as_bytes());
    let (code, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(get(port, "/admin/", &[("Authorization", &basic("alice", "one"))]).status, 401);
    assert_eq!(get(port, "/admin/", &[("Authorization", &basic("alice", "two"))]).status, 200);
    site.put("creds/site-users", b"alice:plaintext\n");
    let (code, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("htpasswd credential \"site-users\":1: user \"alice\": not a bcrypt or argon2 hash"),
        "{out}"
    );
    assert_eq!(get(port, "/admin/", &[("Authorization", &basic("alice", "two"))]).status, 200);
}
