//! The container test binary: graced under real systemds, each booted as PID 1 of an isolated container.
//!
//! `harness/` boots and drives the containers (`harness/boot-container` is the only place
//! systemd is executed; it refuses to run unless `/` is an overlay, `/run` and `/tmp` are
//! tmpfs and no host disk is mounted). The suites:
//!
//! * `systemd_e2e` — the generated, hardened units driven by systemctl, every scenario on
//!   the machine's systemd (`host::`) and on systemd 257 from a Debian trixie tree (`trixie::`);
//! * `dbus_e2e` — gracectl → system bus → graced-dbus → systemd → graced;
//! * `package_e2e` — the .deb and .rpm built, checked, installed, upgraded under load, removed;
//! * `toolkit_e2e` — the lifecycle toolkit's example server under hand-written units.
//!
//! Needs root, namespaces and overlayfs; elsewhere every test prints `SKIP: reason` and
//! passes, except under CI (`CI=true`) or with `GRACED_E2E_REQUIRE=1`. Tests run in
//! parallel threads of this one process (each container is named after its scenario and
//! this process's pid, so they never collide).
//!
//!     cargo test --test container -- --nocapture
//!     cargo test --test container systemd_e2e::trixie::     # one suite, one systemd

mod dbus_e2e;
mod harness;
mod package_e2e;
mod systemd_e2e;
mod toolkit_e2e;

/// The binaries under test, as Cargo built them for this test run.
const GRACED: &str = env!("CARGO_BIN_EXE_graced");
const GENERATOR: &str = env!("CARGO_BIN_EXE_graced-generator");
const HELPER: &str = env!("CARGO_BIN_EXE_graced-dbus");
const GRACECTL: &str = env!("CARGO_BIN_EXE_gracectl");
const GRACED_ACME: &str = env!("CARGO_BIN_EXE_graced-acme");
