//! Scenario m: the packaged logrotate configuration (`packaging/graced.logrotate`, whose
//! `postrotate` runs `graced -k reopen-logs --wait`) under load loses no line.

use super::*;

/// m. A file access log under `/var/log/graced` (the unit's `LogsDirectory=`), two
/// keep-alive clients, and 5 × `logrotate -f` with the packaged configuration: every
/// rotation succeeds and compresses at once (no `delaycompress`), and the lines across
/// the current and every rotated, compressed file are exactly the requests served.
pub(super) fn m_logrotate_under_load_loses_no_line(target: Target) {
    let Some(c) = boot(target, "m", Duration::from_secs(240)) else { return };
    // The host's tree needs the package (.ci/run installs it); the trixie tree includes it.
    assert!(c.sh("command -v logrotate").success(), "logrotate is not installed (apt-get install logrotate)");
    let text = config("/srv/www", "10s", HTTP)
        .replace("access_log = \"journal\"", "access_log = \"/var/log/graced/access.log\"");
    install(&c, &text);
    let rotate_conf = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/graced.logrotate");
    c.push(rotate_conf.as_ref(), "/etc/logrotate.d/graced", 0o644);
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");

    let stop = StopFlag::new();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            c.spawn_in_netns(move || {
                let mut tally = load::Tally::default();
                let mut conn = KeepAlive::new(addr(HTTP));
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    tally.record(conn.get("/"));
                }
                tally
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut times = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let out = c.exec(&["logrotate", "-f", "/etc/logrotate.d/graced"]);
        times.push(t.elapsed());
        assert!(out.success(), "logrotate {i}: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    let tallies: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let served: u64 = 1 + tallies.iter().map(|t| t.ok).sum::<u64>();
    for t in &tallies {
        assert_eq!(t.failed(), 0, "failed requests {:?}, e.g. {:?}", t.failures, t.examples);
    }
    let files = c.must(&["ls", "/var/log/graced"]);
    for i in 1..=5 {
        assert!(files.contains(&format!("access.log.{i}.gz")), "rotation {i} is not compressed: {files}");
    }
    // The last lines reach the current file once their requests ended: poll, bounded.
    let count = || -> u64 {
        c.must_sh("zcat -f /var/log/graced/access.log /var/log/graced/access.log.*.gz | wc -l")
            .trim()
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = count();
    while lines < served && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        lines = count();
    }
    assert_eq!(lines, served, "log lines vs requests served, across {files}");
    let max = times.iter().max().copied().unwrap_or_default();
    figures(
        &c,
        "m",
        &format!(
            "{served} requests, {lines} log lines across 5 rotations with `logrotate -f` \
             (reopen-logs --wait + compress); logrotate took max {}",
            ms(max)
        ),
    );
}
