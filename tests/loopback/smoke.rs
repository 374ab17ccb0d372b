//! Smoke test of the shared helpers: the real binary serves a site over loopback.
mod common;

#[test]
fn the_binary_serves_a_file_over_loopback() {
    let site = common::Site::new();
    let server = site.start(&[]);
    let response = server.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello\n");
}
