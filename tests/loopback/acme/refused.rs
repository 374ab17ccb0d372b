//! The CA refuses: pebble's blocklist rejects a site's name. The run fails for that site
//! (exit 1, the catalog's MESSAGE_ID, the next try), the retry waits, and each failure in a
//! row doubles the wait; nothing is written for the site.

use std::time::Duration;

use graced_testsupport::site::{Site, free_port};

use super::{Pebble, graced_acme};

#[test]
fn a_refused_order_fails_the_run_and_backs_off_doubling() {
    let site = Site::new(crate::GRACED);
    let dir = site.dir.path().to_owned();
    let Some(pebble) = Pebble::start(&dir, site.port, Duration::from_secs(3600), &["blocked.test"]) else {
        return;
    };
    site.write_config(&format!(
        "hosts = [\"blocked.test\"]\nacme = {{ directory = \"{}\", directory_ca = \"{}\" }}\n\n\
         [acme]\nstate_directory = \"{dir}/state\"\nchallenge_directory = \"{dir}/challenges\"\n\n\
         [[listen]]\nname = \"https\"\naddress = \"127.0.0.1:{}\"\ntls = true\n",
        pebble.directory,
        pebble.listener_ca.display(),
        free_port(),
        dir = dir.display(),
    ));
    let config = site.config_path();
    let retry = dir.join("state/blocked.test/retry.json");
    let wait = |text: &[u8]| {
        let value: serde_json::Value = serde_json::from_slice(text).unwrap();
        (value["failures"].as_u64().unwrap(), value["not_before"].as_u64().unwrap())
    };

    let (code, log) = graced_acme(&config, &[]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("message_id=\"6c3b9f2a1e7d4c0f8a52d9e4b7a1c30c\""), "{log}");
    assert!(log.contains("rejectedIdentifier") && log.contains("next try at"), "{log}");
    let (failures, first) = wait(&std::fs::read(&retry).unwrap());
    assert_eq!(failures, 1);
    assert!(
        !dir.join("state/blocked.test/fullchain.pem").exists() && !dir.join("state/reload-pending").exists()
    );

    let (code, log) = graced_acme(&config, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("blocked.test: backing off until"), "{log}");

    let (code, log) = graced_acme(&config, &["--force"]);
    assert_eq!(code, 1, "{log}");
    let (failures, second) = wait(&std::fs::read(&retry).unwrap());
    assert_eq!(failures, 2);
    // The wait doubled: 10 minutes after the first failure, 20 after the second, seconds apart.
    let grew = second - first;
    assert!((600..=660).contains(&grew), "first {first}, second {second}");
}
