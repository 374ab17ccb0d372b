//! The same rules over HTTP/2 (h2c with prior knowledge, curl): the handler is shared, so
//! a redirect, an error page, the SPA fallback and basic auth answer as over HTTP/1.1.

use std::process::Command;

use graced_testsupport::site::Site;

use crate::GRACED;

/// `curl --http2-prior-knowledge`: "VERSION STATUS" then the response headers and body.
fn curl(port: u16, path: &str, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-i", "--max-time", "10"])
        .args(args)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

#[test]
fn rules_answer_the_same_over_h2c() {
    let site = Site::new(GRACED);
    let hash = bcrypt::hash("pw", 4).unwrap();
    site.put("htpasswd", format!("alice:{hash}\n").as_bytes());
    site.put("www/404.html", b"custom 404\n");
    site.put("www/admin/index.html", b"admin\n");
    site.write_config(
        "error_pages = { 404 = \"/404.html\" }\nspa_fallback = \"/index.html\"\n\n\
         [[site.redirect]]\nfrom = \"/old/**\"\nto = \"/new/$1\"\nstatus = 308\n\n\
         [[site.headers]]\npath = \"/**\"\nset = { X-Rules = \"on\" }\n\n\
         [[site.access]]\npath = \"/admin/**\"\nhtpasswd = \"htpasswd\"\n",
    );
    site.edit_config("name = \"http\"\n", "name = \"http\"\nh2c = true\n");
    let server = site.start(&[]);
    let port = server.port;

    let r = curl(port, "/old/a?b=c", &[]);
    assert!(r.starts_with("HTTP/2 308 "), "{r}");
    assert!(r.contains("\nlocation: /new/a?b=c\n") && r.contains("\nx-rules: on\n"), "{r}");
    let r = curl(port, "/missing.css", &[]);
    assert!(r.starts_with("HTTP/2 404 ") && r.ends_with("\n\ncustom 404\n"), "{r}");
    let r = curl(port, "/app/route", &["-H", "Accept: text/html"]);
    assert!(r.starts_with("HTTP/2 200 ") && r.contains("\ncache-control: no-cache\n"), "{r}");
    assert!(r.ends_with("\n\nhello\n"), "{r}");
    let r = curl(port, "/admin/", &[]);
    assert!(r.starts_with("HTTP/2 401 ") && r.contains("\nwww-authenticate: Basic realm="), "{r}");
    let r = curl(port, "/admin/", &["-u", "alice:pw"]);
    assert!(r.starts_with("HTTP/2 200 ") && r.ends_with("\n\nadmin\n"), "{r}");
}
