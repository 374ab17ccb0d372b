//! A temporary site: a document root (`www/`) and a config file on a free loopback port, and graced started on it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Server, code, scrub};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A temporary directory with a document root (`www/`) and a config file, and the graced
/// binary that serves it.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

impl Site {
    /// `www/index.html` = "hello\n"; the config listens on a free port with its pid file
    /// inside the dir. `graced` is the binary's path (`env!("CARGO_BIN_EXE_graced")`).
    pub fn new(graced: impl AsRef<Path>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/index.html"), "hello\n").unwrap();
        let site = Site { dir, port: free_port(), bin: graced.as_ref().to_owned() };
        site.write_config("");
        site
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("graced.toml")
    }

    pub fn pid_path(&self) -> PathBuf {
        self.path("run/graced.pid")
    }

    /// Writes the standard config with `extra` appended (more tables, e.g. `[limits]`).
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "[server]\npid_file = \"{pid}\"\naccess_log = \"off\"\ngraceful_shutdown_timeout = \"5s\"\n\n\
             [[listen]]\nname = \"http\"\naddress = \"127.0.0.1:{port}\"\n\n[[site]]\nroot = \"www\"\n{extra}",
            pid = self.pid_path().display(),
            port = self.port,
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Writes the config with the `[server]` table replaced by `server` (without the header).
    pub fn write_config_with_server(&self, server: &str, extra: &str) {
        let text = format!(
            "[server]\npid_file = \"{pid}\"\n{server}\n\n[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:{port}\"\n\n\
             [[site]]\nroot = \"www\"\n{extra}",
            pid = self.pid_path().display(),
            port = self.port,
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Replaces `from` by `to` in the config file (asserting it was there).
    #[track_caller]
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        assert!(text.contains(from), "config has no {from:?}:\n{text}");
        std::fs::write(self.config_path(), text.replace(from, to)).unwrap();
    }

    /// Writes `data` to `relative` inside the site's directory, creating directories.
    pub fn put(&self, relative: &str, data: &[u8]) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    /// Writes `relative` with `len` bytes of the [`crate::pattern`] with `seed` and returns them.
    pub fn write_big_file(&self, relative: &str, len: usize, seed: u64) -> Vec<u8> {
        let data = crate::pattern::pattern(len, seed);
        self.put(relative, &data);
        data
    }

    /// `graced -f CONFIG`: stdin from /dev/null, the test's systemd variables scrubbed
    /// ([`crate::process::SCRUB`]); the caller decides about stdout, stderr and more.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command.arg("-f").arg(self.config_path()).stdin(Stdio::null());
        scrub(&mut command);
        command
    }

    /// `graced -f CONFIG` with `env`, stdout/stderr captured; waits until the port accepts.
    pub fn start(&self, env: &[(&str, &str)]) -> Server {
        let mut command = self.command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).envs(env.iter().copied());
        let server = Server::new(command.spawn().unwrap(), self.port);
        server.wait_listening(Duration::from_secs(10));
        server
    }

    /// `graced -f CONFIG` with `env` and stderr piped, without probing the port (a probe
    /// connection would show up in STATUS=); wait for READY=1 on a [`crate::notify::Notes`]
    /// instead.
    pub fn spawn(&self, env: &[(&str, &str)]) -> Server {
        let mut command = self.command();
        command.stdout(Stdio::null()).stderr(Stdio::piped()).envs(env.iter().copied());
        Server::new(command.spawn().unwrap(), self.port)
    }

    /// Runs `graced ARGS -f CONFIG` to completion with a clean environment: the exit code
    /// and stdout followed by stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String) {
        let mut command = Command::new(&self.bin);
        command.args(args).arg("-f").arg(self.config_path());
        let out = scrub(&mut command).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (code(out.status), text)
    }
}
