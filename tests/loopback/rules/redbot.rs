//! REDbot (PyPI `redbot`, mnot's HTTP linter, which nobody here wrote) against a redirect
//! rule's response, a site's error page, a clean URL, the SPA fallback and a listing, through
//! `redbot_check.py` (shared with `http::redbot`): no note at its "warning" or "bad" level. The summaries are printed
//! (`--nocapture` shows them). `.ci/run` installs REDbot; without it the test fails.

use std::io::Write;
use std::process::Command;

use graced_testsupport::site::Site;

use crate::GRACED;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/loopback/http/redbot_check.py");

#[test]
fn redbot_finds_nothing_wrong_with_redirects_error_pages_and_fallbacks() {
    let installed = Command::new("python3")
        .args(["-c", "import redbot.resource, thor, httplint"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(installed, "python3 with REDbot is needed: python3 -m pip install redbot (.ci/run does)");
    let site = Site::new(GRACED);
    site.write_config(
        "error_pages = { 404 = \"/404.html\" }\nclean_urls = true\nspa_fallback = \"/index.html\"\n\
         directory_listing = true\n\n[[site.redirect]]\nfrom = \"/old/**\"\nto = \"/new/$1\"\nstatus = 308\n",
    );
    // Pages longer than REDbot's range sample (96 bytes), or its range check asks for all of it.
    let page =
        |title: &str| format!("<!doctype html><title>{title}</title><p>{}</p>\n", "Some text. ".repeat(40));
    site.put("www/404.html", page("Not found").as_bytes());
    site.put("www/about.html", page("About").as_bytes());
    site.put("www/index.html", page("App").as_bytes());
    site.put("www/files/a.txt", b"a\n");
    let server = site.start(&[]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let mut failures = Vec::new();
    for (path, headers) in [
        ("/old/page.html?x=1", &[][..]),
        ("/missing.css", &[][..]),
        ("/about", &[][..]),
        ("/app/route", &["Accept: text/html"][..]),
        ("/files/", &[][..]),
    ] {
        let out =
            Command::new("python3").arg(SCRIPT).arg(format!("{base}{path}")).args(headers).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let _ = writeln!(std::io::stdout().lock(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            failures.push(format!("{path} {headers:?}:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "REDbot findings:\n{}", failures.join("\n"));
}
