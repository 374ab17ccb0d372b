//! Scenario c: restarts under load lose no request.

use super::*;

/// c. 20 × `systemctl restart graced.service` under continuous requests, first with a new
/// connection per request, then with a keep-alive client: not one request fails, and the
/// start limit does not trip.
///
/// Keep-alive counting rule: a response carrying `Connection: close`, or a clean close of
/// the connection between two requests (seen before the next request is written), means
/// "reconnect", not failure; only a request that got no complete response is a failure.
pub(super) fn c_restarts_under_load_lose_no_request(target: Target) {
    let Some(c) = boot(target, "c", Duration::from_secs(240)) else { return };
    install(&c, &config("/srv/www", "10s", HTTP));
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");

    let mut report = Vec::new();
    for keep_alive in [false, true] {
        let (tally, times, total) = restart_storm(&c, keep_alive, 20);
        let mode = if keep_alive { "keep-alive" } else { "new connection per request" };
        let max = times.iter().max().copied().unwrap_or_default();
        let avg = times.iter().sum::<Duration>() / times.len() as u32;
        report.push(format!(
            "{mode}: {} requests ok, {} failed {:?}, {} connections ({} closed by `Connection: close`, {} \
             closed between requests); 20 restarts in {} (`systemctl restart` avg {}, max {})",
            tally.ok,
            tally.failed(),
            tally.failures,
            tally.connections,
            tally.closed_by_header,
            tally.closed_between,
            ms(total),
            ms(avg),
            ms(max)
        ));
        assert!(tally.ok > 0, "{mode}: no request succeeded");
        assert_eq!(
            tally.failed(),
            0,
            "{mode}: failed requests {:?}, e.g. {:?}",
            tally.failures,
            tally.examples
        );
        let socket = c.show("graced.socket", &["ActiveState", "SubState", "Result"]);
        assert_eq!(socket["ActiveState"], "active", "the start limit must not trip the socket: {socket:?}");
        assert_eq!(socket["SubState"], "running", "{socket:?}");
        let p = c.show("graced.service", &["ActiveState", "SubState", "Result"]);
        assert_eq!((p["ActiveState"].as_str(), p["Result"].as_str()), ("active", "success"), "{p:?}");
    }
    let journal = c.journal(&["-u", "graced.service", "-u", "graced.socket", "-o", "cat"]);
    assert!(!journal.contains("Start request repeated too quickly"), "start limit hit:\n{journal}");
    for line in report {
        figures(&c, "c", &line);
    }
    assert_generated_unit_unchanged(&c);
}
