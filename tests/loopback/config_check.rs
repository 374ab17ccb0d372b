//! `graced -t -f FILE`: "Syntax OK" and exit 0, or every problem as FILE:LINE:COL with a hint and exit 78.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::GRACED;

/// sysexits EX_CONFIG, as `graced --help` documents it.
const EX_CONFIG: i32 = 78;

/// A temp dir with a document root `www/`, where configuration files are written.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        Dir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// The result of `graced -t -f PATH`.
struct Check {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(path: &Path) -> Check {
    let out = Command::new(GRACED).arg("-t").arg("-f").arg(path).output().unwrap();
    Check {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One `FILE:LINE:COL: message` diagnostic and its hint line.
#[derive(Debug)]
struct Diag {
    line: usize,
    column: usize,
    message: String,
    hint: Option<String>,
}

/// Every diagnostic about `path` in `stderr`, with the `  hint:` line that follows it.
fn diagnostics(stderr: &str, path: &Path) -> Vec<Diag> {
    let prefix = format!("{}:", path.display());
    let lines: Vec<&str> = stderr.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix(&prefix) else { continue };
        let mut parts = rest.splitn(3, ':');
        let (Some(l), Some(c), Some(message)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (Ok(line_no), Ok(column)) = (l.parse(), c.parse()) else { continue };
        let hint =
            lines.get(i + 1).and_then(|h| h.trim_start().strip_prefix("hint:")).map(|h| h.trim().to_owned());
        out.push(Diag { line: line_no, column, message: message.trim().to_owned(), hint });
    }
    out
}

/// Asserts exit 78 and exactly one diagnostic, with a hint; returns it.
fn single_error(dir: &Dir, name: &str, text: &str) -> Diag {
    let path = dir.write(name, text);
    let result = check(&path);
    assert_eq!(result.code, EX_CONFIG, "{name}: exit code; stderr:\n{}", result.stderr);
    assert!(!result.stdout.contains("Syntax OK"), "{name}: said Syntax OK");
    let mut all = diagnostics(&result.stderr, &path);
    assert_eq!(all.len(), 1, "{name}: expected one FILE:LINE:COL diagnostic, stderr:\n{}", result.stderr);
    let diag = all.pop().unwrap();
    assert!(
        diag.hint.as_deref().is_some_and(|h| !h.is_empty()),
        "{name}: no hint line; stderr:\n{}",
        result.stderr
    );
    diag
}

/// A valid file around `server`, `listen` and `site` bodies (each without its header).
fn config(listen: &str, site: &str) -> String {
    format!("[server]\npid_file = \"run/graced.pid\"\naccess_log = \"off\"\n\n{listen}\n\n[[site]]\n{site}\n")
}

const ONE_LISTENER: &str = "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"";

#[test]
fn a_good_file_prints_syntax_ok_and_exits_0() {
    let dir = Dir::new();
    let path = dir.write(
        "good.toml",
        "[server]\ngraceful_shutdown_timeout = \"30s\"\npid_file = \"/run/graced/graced.pid\"\naccess_log = \"journal\"\n\n\
         [limits]\nheader_timeout = \"10s\"\nmax_connections = 100\n\n\
         [[listen]]\nname = \"http\"\naddress = \"0.0.0.0:80\"\n\n[[listen]]\nname = \"http6\"\naddress = \"[::]:80\"\n\n\
         [[listen]]\nname = \"local\"\naddress = \"/run/graced/http.sock\"\n\n\
         [[site]]\nhosts = [\"example.org\"]\nroot = \"www\"\nindex = [\"index.html\"]\n\n[[site]]\nroot = \"www\"\n",
    );
    let result = check(&path);
    assert_eq!(result.code, 0, "stderr:\n{}", result.stderr);
    assert_eq!(result.stdout.trim(), "Syntax OK");
    assert!(result.stderr.trim().is_empty(), "stderr:\n{}", result.stderr);
}

#[test]
fn without_f_the_embedded_default_checks_ok() {
    if Path::new("/etc/graced/graced.toml").exists() {
        println!(
            "SKIP: /etc/graced/graced.toml exists, so -t would check it instead of the embedded default"
        );
        return;
    }
    let out = Command::new(GRACED).arg("-t").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Syntax OK");
}

#[test]
fn a_type_error_on_line_7_names_file_line_7_and_column_and_exits_78() {
    let dir = Dir::new();
    let text = "# graced configuration with a type error on line 7\n\
                [server]\n\
                pid_file = \"run/graced.pid\"\n\
                access_log = \"off\"\n\
                log_level = \"info\"\n\
                # the next line gives a number where a duration string belongs\n\
                graceful_shutdown_timeout = 30\n\
                \n\
                [[listen]]\n\
                name = \"http\"\n\
                address = \"127.0.0.1:8080\"\n\
                \n\
                [[site]]\n\
                root = \"www\"\n";
    assert_eq!(text.lines().nth(6), Some("graceful_shutdown_timeout = 30"));
    let diag = single_error(&dir, "broken.toml", text);
    assert_eq!(diag.line, 7, "{diag:?}");
    // The value `30` starts at column 29.
    assert_eq!(diag.column, 29, "{diag:?}");
    assert!(diag.message.contains("invalid type") && diag.message.contains("30"), "{diag:?}");
}

const UNTERMINATED: &str = "[server]\npid_file = \"run/x.pid\"\naccess_log = \"off\n";

#[test]
fn a_toml_syntax_error_names_its_line_and_column() {
    let dir = Dir::new();
    let path = dir.write("syntax.toml", UNTERMINATED);
    let result = check(&path);
    assert_eq!(result.code, EX_CONFIG, "stderr:\n{}", result.stderr);
    let all = diagnostics(&result.stderr, &path);
    assert_eq!(all.len(), 1, "stderr:\n{}", result.stderr);
    assert_eq!((all[0].line, all[0].column), (3, 18), "{:?}", all[0]);
}

#[test]
fn a_toml_syntax_error_has_a_hint_too() {
    // The issue: "every error as FILE:LINE:COL: message with a hint".
    let dir = Dir::new();
    single_error(&dir, "syntax.toml", UNTERMINATED);
}

#[test]
fn an_unknown_key_is_named_with_its_line_and_column() {
    let dir = Dir::new();
    let text = config(ONE_LISTENER, "root = \"www\"")
        .replace("access_log = \"off\"\n", "access_log = \"off\"\ngraceful_shutdown_timout = \"30s\"\n");
    let diag = single_error(&dir, "unknown.toml", &text);
    assert_eq!((diag.line, diag.column), (4, 1), "{diag:?}");
    assert!(diag.message.contains("graceful_shutdown_timout"), "the key is not named: {diag:?}");

    // In a [[listen]] table too.
    let text =
        config("[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\nbacklogg = 10", "root = \"www\"");
    let diag = single_error(&dir, "unknown-listen.toml", &text);
    assert_eq!((diag.line, diag.column), (8, 1), "{diag:?}");
    assert!(diag.message.contains("backlogg"), "{diag:?}");
}

#[test]
fn bad_addresses_are_reported_at_the_value() {
    let dir = Dir::new();
    for (i, address) in
        ["127.0.0.1", "localhost:80", "300.1.1.1:80", "127.0.0.1:99999", "127.0.0.1:0", "::1:80"]
            .iter()
            .enumerate()
    {
        let listen = format!("[[listen]]\nname = \"http\"\naddress = \"{address}\"");
        let diag = single_error(&dir, &format!("address-{i}.toml"), &config(&listen, "root = \"www\""));
        // Line 7 is `address = "..."`; the value starts at column 11.
        assert_eq!((diag.line, diag.column), (7, 11), "address {address:?}: {diag:?}");
        assert!(diag.message.contains(address), "address {address:?} is not named: {diag:?}");
    }
}

#[test]
fn duplicate_listener_names_and_addresses_are_refused() {
    let dir = Dir::new();
    let names = "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n\n\
                 [[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8081\"";
    let diag = single_error(&dir, "dup-names.toml", &config(names, "root = \"www\""));
    assert_eq!((diag.line, diag.column), (10, 8), "{diag:?}");
    assert!(diag.message.contains("duplicate") && diag.message.contains("http"), "{diag:?}");
    assert!(diag.message.contains("line 6"), "the first definition is not named: {diag:?}");

    let addresses = "[[listen]]\nname = \"a\"\naddress = \"127.0.0.1:8080\"\n\n\
                     [[listen]]\nname = \"b\"\naddress = \"127.0.0.1:8080\"";
    let diag = single_error(&dir, "dup-addresses.toml", &config(addresses, "root = \"www\""));
    assert_eq!((diag.line, diag.column), (11, 11), "{diag:?}");
    assert!(diag.message.contains("127.0.0.1:8080") && diag.message.contains("line 7"), "{diag:?}");
}

#[test]
fn a_missing_document_root_is_refused() {
    let dir = Dir::new();
    let diag = single_error(&dir, "no-root.toml", &config(ONE_LISTENER, "root = \"does-not-exist\""));
    assert_eq!((diag.line, diag.column), (10, 8), "{diag:?}");
    assert!(diag.message.contains("does-not-exist"), "{diag:?}");

    // A file is not a directory either.
    dir.write("a-file", "x");
    let diag = single_error(&dir, "file-root.toml", &config(ONE_LISTENER, "root = \"a-file\""));
    assert!(diag.message.contains("not a directory"), "{diag:?}");
}

#[test]
fn several_errors_in_one_file_are_all_printed() {
    let dir = Dir::new();
    let text = "[server]\n\
                pid_file = \"run/graced.pid\"\n\
                graceful_shutdown_timeout = \"soon\"\n\
                \n\
                [limits]\n\
                max_connections = 0\n\
                \n\
                [[listen]]\n\
                name = \"http\"\n\
                address = \"127.0.0.1\"\n\
                \n\
                [[listen]]\n\
                name = \"http\"\n\
                address = \"127.0.0.1:8081\"\n\
                \n\
                [[site]]\n\
                root = \"nowhere\"\n";
    let path = dir.write("several.toml", text);
    let result = check(&path);
    assert_eq!(result.code, EX_CONFIG, "stderr:\n{}", result.stderr);
    let all = diagnostics(&result.stderr, &path);
    let lines: Vec<usize> = all.iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 6, 10, 13, 17], "stderr:\n{}", result.stderr);
    for diag in &all {
        assert!(diag.hint.is_some(), "no hint for {diag:?}");
    }
}

#[test]
fn a_missing_config_file_is_a_clear_cannot_read_error_with_exit_78() {
    let dir = Dir::new();
    let path = dir.0.path().join("nope.toml");
    let result = check(&path);
    assert_eq!(result.code, EX_CONFIG, "stderr:\n{}", result.stderr);
    assert!(result.stderr.contains(&path.display().to_string()), "the path is not named:\n{}", result.stderr);
    assert!(result.stderr.contains("cannot read"), "stderr:\n{}", result.stderr);
    assert!(!result.stdout.contains("Syntax OK"));
}

#[test]
fn compression_settings_are_checked_at_their_value() {
    let dir = Dir::new();
    let site = "root = \"www\"\n[site.compression]\non_the_fly = true\nencodings = [\"gzip\", \"deflate\"]";
    let diag = single_error(&dir, "enc.toml", &config(ONE_LISTENER, site));
    let line = config(ONE_LISTENER, site).lines().position(|l| l.starts_with("encodings")).unwrap() + 1;
    assert_eq!((diag.line, diag.column), (line, 22), "{diag:?}");
    assert!(diag.message.contains("unknown encoding \"deflate\""), "{diag:?}");

    let site = "root = \"www\"\n[site.compression]\nmin_size = 5000\nmax_size = 100";
    let diag = single_error(&dir, "sizes.toml", &config(ONE_LISTENER, site));
    assert!(diag.message.contains("min_size 5000 is above max_size 100"), "{diag:?}");

    let site = "root = \"www\"\n[site.compression]\ntypes = [\"text/html; charset=utf-8\"]";
    let diag = single_error(&dir, "types.toml", &config(ONE_LISTENER, site));
    assert!(diag.message.contains("is not a media type"), "{diag:?}");

    let site = "root = \"www\"\n[site.compression]\ngzip = true";
    let diag = single_error(&dir, "key.toml", &config(ONE_LISTENER, site));
    assert!(diag.message.contains("unknown field `gzip`"), "{diag:?}");

    let good = "root = \"www\"\n[site.compression]\nprecompressed = true\non_the_fly = true\n\
                encodings = [\"zstd\", \"gzip\"]\nmin_size = 256\nmax_size = 1048576\ntypes = [\"text/*\"]";
    let result = check(&dir.write("good.toml", &config(ONE_LISTENER, good)));
    assert_eq!(result.code, 0, "stderr:\n{}", result.stderr);
}
