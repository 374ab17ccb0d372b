//! Property tests of loading: random TOML — documents built from graced's own tables and keys
//! with values of every type, then mangled byte by byte — never panics, and every error it
//! gets names the file and a LINE:COL that lies inside the input.

use std::path::PathBuf;

use proptest::prelude::*;

use crate::{Checks, Config, Source};

const FILE: &str = "/etc/graced/prop.toml";

const HEADERS: &[&str] = &[
    "[server]",
    "[limits]",
    "[[listen]]",
    "[[site]]",
    "[tls]",
    "[http2]",
    "[[site.headers]]",
    "[[site.redirect]]",
    "[[site.access]]",
    "[site.compression]",
    "[site.error_pages]",
    "[site.directory_listing]",
    "[site.headers.set]",
    "[bogus]",
    "[[server]]",
    "[site]",
    "[listen]",
    "",
];

const KEYS: &[&str] = &[
    "graceful_shutdown_timeout",
    "upgrade_timeout",
    "pid_file",
    "access_log",
    "access_log_format",
    "log_level",
    "user",
    "group",
    "watchdog",
    "fd_store",
    "workers",
    "max_connections",
    "header_timeout",
    "keepalive_timeout",
    "send_timeout",
    "max_request_line",
    "max_header_bytes",
    "max_headers",
    "name",
    "address",
    "backlog",
    "ipv6_only",
    "no_delay",
    "socket_mode",
    "tls",
    "h2c",
    "status",
    "hosts",
    "root",
    "index",
    "hidden_files",
    "certificate",
    "key",
    "https_redirect",
    "hsts",
    "compression",
    "headers",
    "cache_control",
    "redirect",
    "canonical_host",
    "error_pages",
    "clean_urls",
    "spa_fallback",
    "directory_listing",
    "access",
    "handshake_timeout",
    "expiry_warning",
    "enabled",
    "max_concurrent_streams",
    "max_pending_resets",
    "max_error_resets",
    "path",
    "set",
    "add",
    "remove",
    "default",
    "from",
    "to",
    "allow",
    "deny",
    "htpasswd",
    "realm",
    "precompressed",
    "on_the_fly",
    "encodings",
    "min_size",
    "max_size",
    "types",
    "max_entries",
    "404",
    "\"quoted key\"",
    "a.b",
    "nonsense",
    "é",
];

const VALUES: &[&str] = &[
    "\"30s\"",
    "\"0s\"",
    "\"1ms\"",
    "\"abc\"",
    "\"-5s\"",
    "\"99999999999999999999s\"",
    "\"127.0.0.1:8080\"",
    "\"[::1]:0\"",
    "\"0.0.0.0:99999\"",
    "\"unix:/run/graced.sock\"",
    "\"localhost:80\"",
    "\"/\"",
    "\"www\"",
    "\"\"",
    "\"\\u0000\"",
    "\"é\"",
    "\"journal\"",
    "\"off\"",
    "\"stderr\"",
    "\"json\"",
    "\"combined\"",
    "\"debug\"",
    "\"auto\"",
    "\"0660\"",
    "\"/a/*\"",
    "\"/**\"",
    "\"http://x/\"",
    "\"max-age=60\"",
    "\"gzip\"",
    "\"br\"",
    "\"text/*\"",
    "\"10.0.0.0/8\"",
    "\"::/0\"",
    "\"credential:x\"",
    "-1",
    "0",
    "1",
    "8",
    "301",
    "404",
    "65536",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "1.5",
    "nan",
    "inf",
    "true",
    "false",
    "1979-05-27T07:32:00Z",
    "[]",
    "[\"a\", \"b\"]",
    "[1, 2]",
    "[\"example.org\", \"\"]",
    "{ max_entries = 5 }",
    "{ a = 1 }",
    "{}",
    "[[1], \"x\"]",
    "\"\"\"multi\nline\"\"\"",
    "'literal'",
];

/// A document from graced's own tables and keys, each value of any type.
fn document() -> impl Strategy<Value = String> {
    let line = (proptest::sample::select(KEYS), proptest::sample::select(VALUES))
        .prop_map(|(key, value)| format!("{key} = {value}\n"));
    let section = (proptest::sample::select(HEADERS), proptest::collection::vec(line, 0..5))
        .prop_map(|(header, lines)| format!("{header}\n{}\n", lines.concat()));
    proptest::collection::vec(section, 0..8).prop_map(|sections| sections.concat())
}

/// One change to a document's bytes (kept a valid `&str`: edits land on character boundaries).
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let inserted = proptest::sample::select(
        &[
            "\"", "'", "[", "]", "[[", "=", "\n", "\r\n", "\t", "#", ",", "{", "}", ".", "é", "\u{feff}",
            "\\", "x = ", "\u{0}",
        ][..],
    );
    prop_oneof![
        (any::<usize>(), 1usize..8).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), inserted).prop_map(|(at, s)| Edit::Insert(at, s)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_owned();
    for edit in edits {
        let boundary = |text: &str, at: usize| text.floor_char_boundary(at % (text.len() + 1));
        match edit {
            Edit::Delete(at, len) => {
                let start = boundary(&text, *at);
                let end = text.floor_char_boundary((start + len).min(text.len()));
                text.replace_range(start..end, "");
            }
            Edit::Insert(at, s) => {
                let at = boundary(&text, *at);
                text.insert_str(at, s);
            }
        }
    }
    text
}

/// Every diagnostic names the file and a line and column inside `text` (the column may be
/// one past the end of its line: the end of the file or of a line that is cut short).
fn check_errors(text: &str, checks: Checks) -> Result<(), TestCaseError> {
    let result = Config::from_toml_with(Source::File(PathBuf::from(FILE)), text, checks);
    let Err(err) = result else { return Ok(()) };
    let diagnostics = err.diagnostics();
    prop_assert!(!diagnostics.is_empty(), "an error without a diagnostic: {err}");
    let lines: Vec<&str> = text.split('\n').collect();
    for d in diagnostics {
        prop_assert_eq!(&d.file, FILE);
        prop_assert!(d.line >= 1 && d.line <= lines.len(), "{d}: line out of 1..={} in\n{text}", lines.len());
        let width = lines[d.line - 1].chars().count();
        prop_assert!(
            d.column >= 1 && d.column <= width + 1,
            "{d}: column out of 1..={} in\n{text}",
            width + 1
        );
        let shown = d.to_string();
        prop_assert!(shown.starts_with(&format!("{FILE}:{}:{}: ", d.line, d.column)), "{shown}");
        prop_assert!(!d.message.trim().is_empty(), "{shown}: no message");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_documents_never_panic_and_every_error_is_located(text in document(), all in any::<bool>()) {
        check_errors(&text, if all { Checks::All } else { Checks::WithoutFilesystem })?;
    }

    #[test]
    fn mangled_documents_never_panic_and_every_error_is_located(
        text in document(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        check_errors(&apply(&text, &edits), Checks::WithoutFilesystem)?;
    }

    #[test]
    fn any_text_never_panics_and_every_error_is_located(text in "\\PC{0,200}") {
        check_errors(&text, Checks::WithoutFilesystem)?;
    }
}
