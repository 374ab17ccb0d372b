//! `graced -t` on bad site rules: every problem at its FILE:LINE:COL with a hint, exit 78.

use graced_testsupport::site::Site;

use crate::GRACED;

#[test]
fn bad_rules_are_reported_at_their_value() {
    let site = Site::new(GRACED);
    let rules = r#"error_pages = { 404 = "/nope.html", 299 = "/index.html" }
spa_fallback = "../etc/passwd"
canonical_host = "elsewhere.test"
directory_listing = { max_entries = 0 }

[[site.headers]]
path = "/{a,b"
set = { "Bad Name" = "x", Content-Length = "1", X-Ok = "line\u0001break" }

[[site.redirect]]
from = "/a/*"
to = "//evil.example/$1"

[[site.redirect]]
from = "/b"
to = "/c"
status = 200

[[site.redirect]]
from = "/d/*"
to = "https://$1.example/"

[[site.access]]
path = "/x/**"
allow = ["10.0.0.0/33"]
"#;
    site.write_config(rules);
    let (code, out) = site.run(&["-t"]);
    assert_eq!(code, 78, "{out}");
    // The site's keys start on line 12 of the file Site writes.
    for expected in [
        "graced.toml:12:23: error page ",
        "nope.html is not a file",
        "graced.toml:12:43: error_pages key \"299\" is not an error status",
        "graced.toml:13:16: spa_fallback \"../etc/passwd\" is not a file path inside the root",
        "graced.toml:14:18: canonical_host \"elsewhere.test\" is not one of this site's hosts",
        "graced.toml:15:21: 0 is out of range",
        "graced.toml:18:8: pattern \"/{a,b\" has '{' without '}'",
        "\"Bad Name\" is not a header name",
        "header \"Content-Length\" is managed by the server",
        "has a control or non-ASCII character",
        "graced.toml:23:6: redirect target \"//evil.example/$1\" starts with '//'",
        "graced.toml:28:10: 200 is not a redirect status",
        "graced.toml:32:6: redirect target \"https://$1.example/\" has no plain host",
        "graced.toml:36:10: \"10.0.0.0/33\" is not an IP address or network",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(out.contains("hint: "), "{out}");

    // A good rule set passes.
    site.put("www/404.html", b"404");
    site.write_config(
        "error_pages = { 404 = \"/404.html\" }\nclean_urls = true\nspa_fallback = \"index.html\"\n\
         [[site.redirect]]\nfrom = \"/a/**\"\nto = \"/b/$1\"\nstatus = 308\n",
    );
    let (code, out) = site.run(&["-t"]);
    assert_eq!(code, 0, "{out}");
}
