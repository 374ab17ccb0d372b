//! REDbot (PyPI `redbot`, mnot's HTTP linter, which nobody here wrote) against a redirect
//! rule's response, a site's error page, a clean URL, the SPA fallback and a listing, through
//! `http::redbot`'s runner: no note at its "warning" or "bad" level. The summaries are printed
//! (`--nocapture` shows them). `.ci/run` installs REDbot; without it the test prints `SKIP:`,
//! except under `CI=true` or `GRACED_E2E_REQUIRE=1`.

use graced_testsupport::site::Site;

use crate::GRACED;
use crate::http::redbot::{lint, redbot_installed};

#[test]
fn redbot_finds_nothing_wrong_with_redirects_error_pages_and_fallbacks() {
    if !redbot_installed() {
        return;
    }
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
    lint(
        &base,
        &[
            ("/old/page.html?x=1", &[][..]),
            ("/missing.css", &[][..]),
            ("/about", &[][..]),
            ("/app/route", &["Accept: text/html"][..]),
            ("/files/", &[][..]),
        ],
    );
}
