//! Rule sets changed by graceful reloads under load: every request gets a complete
//! response from one rule set or the other (never a mix, never a failure), and a reload
//! with a broken rule is refused while the old rules keep serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use graced_testsupport::http::KeepAlive;
use graced_testsupport::site::Site;

use super::{get, must};
use crate::GRACED;

fn rules(set: &str) -> String {
    format!(
        "error_pages = {{ 404 = \"/{set}-404.html\" }}\n\n\
         [[site.headers]]\npath = \"/**\"\nset = {{ X-Rules = \"{set}\" }}\n\n\
         [[site.redirect]]\nfrom = \"/old/**\"\nto = \"/{set}/$1\"\nstatus = 308\n"
    )
}

#[test]
fn reloads_between_rule_sets_under_load_fail_no_request() {
    let site = Site::new(GRACED);
    site.put("www/a-404.html", b"a missing\n");
    site.put("www/b-404.html", b"b missing\n");
    site.write_config(&rules("a"));
    let server = site.start(&[]);
    let addr: SocketAddr = ([127, 0, 0, 1], server.port).into();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for n in 0..4 {
        let (stop, ok) = (stop.clone(), ok.clone());
        workers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut client = KeepAlive::new(addr);
            let deadline = Instant::now() + Duration::from_secs(60);
            let paths = ["/old/x.html", "/missing", "/index.html"];
            let mut i = n;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let path = paths[i % paths.len()];
                i += 1;
                let r = client.get(path).map_err(|f| format!("GET {path}: {f}"))?;
                let set = r.header("x-rules").ok_or_else(|| format!("{path}: no X-Rules"))?.to_owned();
                let consistent = match (path, r.status) {
                    ("/old/x.html", 308) => r.header("location") == Some(&format!("/{set}/x.html")),
                    ("/missing", 404) => r.text() == format!("{set} missing\n"),
                    ("/index.html", 200) => r.text() == "hello\n",
                    _ => false,
                };
                if !consistent {
                    return Err(format!("{path}: {} {:?} {:?} (rules {set})", r.status, r.headers, r.text()));
                }
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let mut reloads = 0;
    for set in ["b", "a", "b", "a", "b", "a"] {
        let before = ok.load(Ordering::Relaxed);
        // Wait (bounded) until requests flow between reloads.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ok.load(Ordering::Relaxed) < before + 50 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        site.write_config(&rules(set));
        let (code, out) = site.run(&["-k", "graceful", "--wait"]);
        assert_eq!(code, 0, "{out}");
        reloads += 1;
        let r = get(server.port, "/old/y", &[]);
        assert_eq!(must(&r, "location"), format!("/{set}/y"), "the reload applied");
    }
    // A broken rule set is refused; the last good one keeps serving.
    site.write_config("[[site.redirect]]\nfrom = \"/old/{x\"\nto = \"/c\"\n");
    let (code, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_ne!(code, 0, "a broken reload must fail: {out}");
    let r = get(server.port, "/old/y", &[]);
    assert_eq!((r.status, must(&r, "location")), (308, "/a/y"));

    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap().unwrap_or_else(|e| panic!("a request failed: {e}"));
    }
    let served = ok.load(Ordering::Relaxed);
    let _ = std::io::Write::write_all(
        &mut std::io::stdout().lock(),
        format!("{reloads} reloads, {served} requests, 0 failures\n").as_bytes(),
    );
    assert!(served > 300, "only {served} requests ran");
}
