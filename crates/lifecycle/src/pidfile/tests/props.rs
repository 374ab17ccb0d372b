//! The pid file against a model of lock holders: random schedules of several processes taking
//! the pid file (one at a time or racing), removing it, releasing it for a successor, dropping
//! it and being killed. After every step `probe` — what `-k` and `graced status` see — must
//! match the model: while a holder has reported ready, the file names exactly the process the
//! kernel says holds the lock; a refused taker is told that holder's pid; a taker is told the
//! pid a stale file named.
//!
//! POSIX locks belong to processes, so each holder is a child process: this test binary run
//! again with `CHILD_ENV` set, executing only [`holder_child`], which takes commands on stdin.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use proptest::prelude::*;

use crate::pidfile::{PidFile, PidFileError, Probe, probe};

const CHILD_ENV: &str = "GRACED_PIDFILE_PROP_CHILD";
const SLOTS: usize = 3;

/// Not a test of its own: in the child processes of the property below, the pid-file holder.
/// Run normally (no `CHILD_ENV`), it returns at once.
#[test]
fn holder_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let path = Path::new(&path);
    let mut held: Option<PidFile> = None;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let reply = match line.unwrap().as_str() {
            "acquire" => match PidFile::acquire(path) {
                Ok(pidfile) => {
                    let stale = pidfile.stale_pid().map_or("-".to_owned(), |p| p.to_string());
                    held = Some(pidfile);
                    format!("ready {stale}")
                }
                Err(PidFileError::AlreadyRunning { holder, .. }) => format!("refused {}", holder.pid),
                Err(err) => format!("error {err}"),
            },
            "remove" => {
                if let Some(pidfile) = held.as_mut() {
                    pidfile.remove();
                }
                "ok".to_owned()
            }
            "release" => {
                if let Some(pidfile) = held.take() {
                    pidfile.release();
                }
                "ok".to_owned()
            }
            "drop" => {
                held = None;
                "ok".to_owned()
            }
            other => format!("error unknown command {other}"),
        };
        writeln!(out, "@{reply}").unwrap();
        out.flush().unwrap();
    }
    std::process::exit(0);
}

struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn spawn(path: &Path) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "pidfile::tests::props::holder_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Holder { child, stdin, stdout }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn reply(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "holder {} exited", self.pid());
            // The first reply shares its line with libtest's "test holder_child ... ".
            if let Some(at) = line.find('@') {
                return line[at + 1..].trim_end().to_owned();
            }
        }
    }

    fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Acquire(usize),
    /// Two holders ask at the same moment.
    Race(usize, usize),
    Remove(usize),
    Release(usize),
    Drop(usize),
    Crash(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let slot = || 0..SLOTS;
    prop_oneof![
        4 => slot().prop_map(Op::Acquire),
        2 => (slot(), slot()).prop_filter("two holders", |(a, b)| a != b).prop_map(|(a, b)| Op::Race(a, b)),
        1 => slot().prop_map(Op::Remove),
        1 => slot().prop_map(Op::Release),
        2 => slot().prop_map(Op::Drop),
        2 => slot().prop_map(Op::Crash),
    ]
}

/// What a slot's process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    Nothing,
    /// The lock of the file the path names.
    Path,
    /// A lock on a file already unlinked (after `remove`).
    Unlinked,
}

/// The model: who holds what, and what the file at the path says.
struct Model {
    holds: [Holds; SLOTS],
    /// The pid written in the file at the path; `None`: no file.
    file: Option<u32>,
}

impl Model {
    fn path_holder(&self) -> Option<usize> {
        self.holds.iter().position(|h| *h == Holds::Path)
    }
}

struct World {
    path: std::path::PathBuf,
    holders: Vec<Holder>,
    model: Model,
}

impl World {
    /// `acquire` answered `reply` in slot `i`: check it against the model and update it.
    fn acquired(&mut self, i: usize, reply: &str, others_ready: bool) -> Result<(), TestCaseError> {
        let pid = self.holders[i].pid();
        if let Some(stale) = reply.strip_prefix("ready ") {
            prop_assert!(self.model.path_holder().is_none() && !others_ready, "{pid} took a held pid file");
            // A file that names the taker itself (it released and takes again) is not stale.
            let expected = self.model.file.filter(|p| *p != pid).map_or("-".to_owned(), |p| p.to_string());
            prop_assert_eq!(stale, expected.as_str(), "the stale pid reported to {}", pid);
            self.model.holds[i] = Holds::Path;
            self.model.file = Some(pid);
        } else if let Some(holder) = reply.strip_prefix("refused ") {
            let j = self.model.path_holder();
            prop_assert!(j.is_some(), "{pid} refused, but nobody holds the pid file");
            prop_assert_eq!(
                holder,
                self.holders[j.unwrap()].pid().to_string(),
                "the holder {} was told",
                pid
            );
        } else {
            prop_assert!(false, "acquire in {pid}: {reply}");
        }
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Acquire(i) if self.model.holds[i] == Holds::Nothing => {
                self.holders[i].send("acquire");
                let reply = self.holders[i].reply();
                self.acquired(i, &reply, false)?;
            }
            Op::Race(i, j)
                if self.model.holds[i] == Holds::Nothing && self.model.holds[j] == Holds::Nothing =>
            {
                self.holders[i].send("acquire");
                self.holders[j].send("acquire");
                let (a, b) = (self.holders[i].reply(), self.holders[j].reply());
                let winners = [&a, &b].iter().filter(|r| r.starts_with("ready")).count();
                let free = self.model.path_holder().is_none();
                prop_assert_eq!(winners, usize::from(free), "racing takers: {} and {}", a, b);
                // The winner first, against the state before the race.
                let (first, second) =
                    if b.starts_with("ready") { ((j, b), (i, a)) } else { ((i, a), (j, b)) };
                self.acquired(first.0, &first.1, false)?;
                self.acquired(second.0, &second.1, false)?;
            }
            Op::Remove(i) => {
                self.holders[i].send("remove");
                self.holders[i].reply();
                if self.model.holds[i] == Holds::Path {
                    self.model.holds[i] = Holds::Unlinked;
                    self.model.file = None;
                }
            }
            Op::Release(i) => {
                self.holders[i].send("release");
                self.holders[i].reply();
                // The file stays, naming this process (alive, draining); nobody holds it.
                self.model.holds[i] = Holds::Nothing;
            }
            Op::Drop(i) => {
                self.holders[i].send("drop");
                self.holders[i].reply();
                if self.model.holds[i] == Holds::Path {
                    self.model.file = None;
                }
                self.model.holds[i] = Holds::Nothing;
            }
            Op::Crash(i) => {
                let fresh = Holder::spawn(&self.path);
                std::mem::replace(&mut self.holders[i], fresh).crash();
                // The kernel drops the lock; the file (if it was this process's) stays.
                self.model.holds[i] = Holds::Nothing;
            }
            _ => {}
        }
        self.check_probe()
    }

    fn check_probe(&self) -> Result<(), TestCaseError> {
        let seen = probe(&self.path).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match (self.model.file, self.model.path_holder()) {
            (None, _) => prop_assert_eq!(seen, Probe::Absent),
            (Some(named), Some(i)) => {
                let pid = self.holders[i].pid();
                prop_assert_eq!(named, pid, "the model itself");
                prop_assert_eq!(seen, Probe::Running { holder: pid, named: Some(pid) });
            }
            (Some(named), None) => match seen {
                Probe::Stale { named: Some(info) } => prop_assert_eq!(info.pid, named),
                other => prop_assert!(false, "expected a stale file naming {named}, probe says {other:?}"),
            },
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn probe_always_names_the_lock_holder(ops in proptest::collection::vec(op(), 1..28)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/graced.pid");
        let holders = (0..SLOTS).map(|_| Holder::spawn(&path)).collect();
        let mut world = World { path, holders, model: Model { holds: [Holds::Nothing; SLOTS], file: None } };
        for op in ops {
            world.step(op)?;
        }
    }
}
