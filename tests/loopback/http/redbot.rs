//! REDbot (PyPI `redbot`, mnot's HTTP linter, which nobody here wrote) run through
//! `redbot_check.py` against the real binary: an on-the-fly compressed resource, a
//! precompressed one, the identity response of a negotiable resource, a ranged resource, a
//! redirect and an error page. No note may be at REDbot's "warning" or "bad" level.
//! The summary of each run is printed (`--nocapture` shows it).
//!
//! Without REDbot the test prints `SKIP:` and passes, except under `CI=true` or
//! `GRACED_E2E_REQUIRE=1` (`.ci/run` installs it).

use std::io::Write;
use std::process::Command;

use graced_testsupport::site::Site;

use super::compression::html;
use crate::GRACED;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/loopback/http/redbot_check.py");

#[test]
fn redbot_finds_nothing_wrong_with_compressed_ranged_redirect_and_error_responses() {
    if !redbot_installed() {
        return;
    }
    let site = Site::new(GRACED);
    site.write_config("[site.compression]\nprecompressed = true\non_the_fly = true\n");
    let page = html(100 * 1024);
    site.put("www/page.html", &page);
    site.put("www/side.css", &html(20_000));
    let gz = Command::new("gzip").args(["-k", "-9"]).arg(site.path("www/side.css")).status().unwrap();
    assert!(gz.success());
    site.put("www/data.bin", &graced_testsupport::pattern::pattern(64 * 1024, super::SEED));
    site.put("www/dir/index.html", b"<p>index</p>");
    let server = site.start(&[]);
    let base = format!("http://127.0.0.1:{}", server.port);
    lint(
        &base,
        &[
            ("/page.html", &["Accept-Encoding: gzip"][..]),
            ("/page.html", &["Accept-Encoding: br, zstd"][..]),
            ("/page.html", &[][..]),
            ("/side.css", &["Accept-Encoding: gzip"][..]),
            ("/data.bin", &[][..]),
            ("/dir", &[][..]),
            ("/missing.html", &["Accept-Encoding: gzip"][..]),
            // The on-the-fly variants again, now from the cache: with Content-Length, and REDbot's
            // range check over the compressed bytes (the first responses had neither).
            ("/page.html", &["Accept-Encoding: gzip"][..]),
            ("/page.html", &["Accept-Encoding: br, zstd"][..]),
        ],
    );
}

/// Runs REDbot on `base` + each path with its request headers, prints each summary, and fails
/// with every response that has a note at REDbot's "warning" or "bad" level.
pub(crate) fn lint(base: &str, cases: &[(&str, &[&str])]) {
    let mut failures = Vec::new();
    for (path, headers) in cases {
        let out =
            Command::new("python3").arg(SCRIPT).arg(format!("{base}{path}")).args(*headers).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let _ = writeln!(std::io::stdout().lock(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            failures.push(format!("{path} {headers:?}:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "REDbot findings:\n{}", failures.join("\n"));
}

/// Whether `python3` has REDbot; else a SKIP line, or a failure where every test must run.
pub(crate) fn redbot_installed() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import redbot.resource, thor, httplint"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        let reason = "python3 with the redbot package is not installed (python3 -m pip install redbot)";
        assert!(!required(), "the REDbot test must run here (CI / GRACED_E2E_REQUIRE), but: {reason}");
        let _ = writeln!(std::io::stderr().lock(), "SKIP: {reason}");
    }
    found
}

/// Whether a missing tool must fail the test instead of skipping it (CI runs them all).
fn required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("GRACED_E2E_REQUIRE")
}
