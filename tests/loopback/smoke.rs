//! Smoke test of the shared helpers: the real binary serves a site over loopback.

use graced_testsupport::site::Site;

use crate::GRACED;

#[test]
fn the_binary_serves_a_file_over_loopback() {
    let site = Site::new(GRACED);
    let server = site.start(&[]);
    let response = server.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello\n");
}
