//! units/ holds the packaged units: the generator's output for packaging/graced.toml (and
//! graced-acme's pair, shipped disabled), committed.
//!
//! Fails when they drift; `UPDATE_GOLDEN=1 cargo test --test loopback units_in_sync` rewrites them.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use graced_config::Config;
use graced_unit::{FALLBACK_SYSTEMD, Options, acme_units, build};

/// The packaged units target Debian 12's systemd; their reload form is right on every newer one.
const PACKAGED_SYSTEMD: u32 = FALLBACK_SYSTEMD;

#[test]
fn packaged_units_match_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(&root.join("packaging/graced.toml")).expect("packaging/graced.toml is valid");
    let options = Options::new(graced_config::DEFAULT_PATH);
    let mut bundle = build(&config, PACKAGED_SYSTEMD, &options).expect("the packaged configuration builds");
    // graced-acme's units ship too, disabled: a run without ACME sites does nothing.
    bundle.files.extend(acme_units(&config, PACKAGED_SYSTEMD, &options).expect("the ACME units build"));
    let units = root.join("units");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut stale: BTreeSet<String> =
        fs::read_dir(&units).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let mut drifted = Vec::new();
    for file in &bundle.files {
        stale.remove(&file.name);
        let path = units.join(&file.name);
        let generated = file.to_string();
        if fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            if update {
                fs::write(&path, &generated).unwrap();
            } else {
                drifted.push(format!("{} differs from the generator's output:\n{generated}", path.display()));
            }
        }
    }
    for name in stale {
        if update {
            fs::remove_file(units.join(&name)).unwrap();
        } else {
            drifted.push(format!("{} is not generated any more", units.join(&name).display()));
        }
    }
    assert!(
        drifted.is_empty(),
        "{}\nrun UPDATE_GOLDEN=1 cargo test --test loopback units_in_sync",
        drifted.join("\n")
    );
}
