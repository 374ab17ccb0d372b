//! HTTP behaviour of the real `graced` binary over loopback: RFC 9110 semantics, path safety, limits, logs.
//!
//! Every test starts its own server on a free 127.0.0.1 port (see `common::Site`) and
//! speaks raw HTTP/1.1 to it, so what is asserted is exactly what a client sees.

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Client, Response, Server, Site, fd_count, rss_kib};

/// What `/etc/passwd` starts with on every Linux system; no response may ever contain it.
const PASSWD_MARK: &str = "root:";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Writes `data` to `relative` inside the site's temp dir, creating directories.
fn put(site: &Site, relative: &str, data: &[u8]) {
    let path = site.path(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Reads until EOF (or a reset after data), at most 10 s.
fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the server neither answered nor closed within 10 s; got {:?}",
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => return out, // reset: what arrived before it is the answer
        }
    }
    panic!("the server did not close the connection within 10 s")
}

/// Parses one complete response (head and everything after it as the body).
fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Response { status, headers, body: raw[split + 4..].to_vec() }
}

/// Sends raw bytes on a fresh connection and reads until the server closes it.
/// Returns the parsed response and every byte received.
fn exchange(port: u16, request: &[u8]) -> (Response, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
    let raw = read_to_eof(&mut stream);
    (parse(&raw), raw)
}

/// `METHOD path` with extra header lines, `Connection: close`.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (Response, Vec<u8>) {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    exchange(port, text.as_bytes())
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    request(port, "GET", path, headers).0
}

fn must<'a>(r: &'a Response, name: &str) -> &'a str {
    r.header(name).unwrap_or_else(|| panic!("no {name} header in {} response: {:?}", r.status, r.headers))
}

/// The server answers a plain GET / with the site's index.
fn assert_serving(server: &Server) {
    let r = server.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "the server no longer serves");
}

/// An error page: the status, an HTML content type, and a small body that says the code.
fn assert_small_error_page(r: &Response, status: u16) {
    assert_eq!(r.status, status, "headers {:?}, body {:?}", r.headers, r.text());
    assert!(r.body.len() < 512, "error body is {} bytes", r.body.len());
    assert!(r.text().contains(&status.to_string()), "error body {:?} does not name {status}", r.text());
}

/// user + system CPU time of a process, in seconds.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let utime: u64 = fields[11].parse().unwrap(); // field 14
    let stime: u64 = fields[12].parse().unwrap(); // field 15
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (utime + stime) as f64 / ticks
}

/// A deterministic, non-periodic byte pattern (so an off-by-one chunk shows).
fn pattern_byte(i: u64) -> u8 {
    ((i.wrapping_mul(2_654_435_761) >> 13) ^ (i >> 20)) as u8
}

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(pattern_byte).collect()
}

/// Reads a body of `len` bytes from `client` in chunks, checking each byte against the
/// pattern from `offset`; samples the server's RSS along the way and returns the peak (KiB).
fn read_pattern_body(client: &mut Client, offset: u64, len: u64, pid: i32) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut peak = rss_kib(pid);
    let mut next_sample = 0u64;
    while got < len {
        let want = buf.len().min((len - got) as usize);
        let n = client.reader.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "body ended after {got} of {len} bytes");
        for (k, b) in buf[..n].iter().enumerate() {
            let at = offset + got + k as u64;
            if *b != pattern_byte(at) {
                panic!("byte {at} is {b:#x}, expected {:#x}", pattern_byte(at));
            }
        }
        got += n as u64;
        if got >= next_sample {
            peak = peak.max(rss_kib(pid));
            next_sample += 1024 * 1024;
        }
    }
    peak
}

/// A connection to `server` with a 32 KiB receive buffer: a client the server cannot
/// hand a large file to all at once.
fn connect_with_small_receive_buffer(server: &Server) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// A server process stopped with SIGTERM (then SIGKILL) when dropped.
struct Stopper(Option<std::process::Child>);

impl Drop for Stopper {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else { return };
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// 1. The README's run command
// ---------------------------------------------------------------------------------------

#[test]
fn no_arguments_serves_the_builtin_demo_site_on_127_0_0_1_8080() {
    if Path::new("/etc/graced/graced.toml").exists() {
        println!("SKIP: /etc/graced/graced.toml exists, so `graced` would not use the embedded default");
        return;
    }
    if let Err(e) = TcpListener::bind("127.0.0.1:8080") {
        println!("SKIP: 127.0.0.1:8080 is not free ({e})");
        return;
    }
    let runtime = tempfile::tempdir().unwrap();
    let stderr_path = runtime.path().join("stderr.log");
    let mut command = Command::new(BIN);
    command
        .env_remove("RUNTIME_DIRECTORY")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).unwrap());
    let mut stopper = Stopper(Some(command.spawn().unwrap()));
    let pid = stopper.0.as_ref().unwrap().id();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect("127.0.0.1:8080").is_err() {
        if let Ok(Some(status)) = stopper.0.as_mut().unwrap().try_wait() {
            panic!("graced exited with {status} before listening; stderr:\n{}", stderr());
        }
        assert!(Instant::now() < deadline, "graced did not listen on 127.0.0.1:8080; stderr:\n{}", stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stopper.0.as_mut().unwrap().try_wait().unwrap().is_none(), "someone else answered on 8080");

    let page = get(8080, "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(must(&page, "content-type"), "text/html; charset=utf-8");
    assert!(page.text().contains("graced is serving"), "demo page: {:?}", page.text());
    let css = get(8080, "/style.css", &[]);
    assert_eq!((css.status, must(&css, "content-type")), (200, "text/css; charset=utf-8"));
    assert_eq!(get(8080, "/nope", &[]).status, 404);

    // It says where it listens, and writes its pid file where the docs say.
    assert!(stderr().contains("127.0.0.1:8080"), "stderr does not say where it listens:\n{}", stderr());
    // SAFETY: geteuid(2) has no preconditions.
    let pid_file = if unsafe { libc::geteuid() } == 0 {
        Path::new("/run/graced/graced.pid").to_owned()
    } else {
        runtime.path().join("graced/graced.pid")
    };
    let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
    assert_eq!(written.trim(), pid.to_string(), "pid file {}", pid_file.display());

    // SIGTERM stops it, and it removes its pid file.
    let mut child = stopper.0.take().unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("graced did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}; stderr:\n{}", stderr());
    assert!(!pid_file.exists(), "the pid file {} was left behind", pid_file.display());
}

// ---------------------------------------------------------------------------------------
// 2. GET and HEAD of static files
// ---------------------------------------------------------------------------------------

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[test]
fn get_and_head_send_type_length_validators_and_accept_ranges() {
    let site = Site::new();
    put(&site, "www/style.css", b"body { color: red }\n");
    put(&site, "www/logo.png", PNG);
    put(&site, "www/blob.qqqz", b"\x00\x01\x02 opaque");
    put(&site, "www/sub/index.html", b"<p>sub</p>\n");
    let server = site.start(&[]);
    let cases: [(&str, &str, &[u8]); 6] = [
        ("/", "text/html; charset=utf-8", b"hello\n"),
        ("/index.html", "text/html; charset=utf-8", b"hello\n"),
        ("/sub/", "text/html; charset=utf-8", b"<p>sub</p>\n"),
        ("/style.css", "text/css; charset=utf-8", b"body { color: red }\n"),
        ("/logo.png", "image/png", PNG),
        ("/blob.qqqz", "application/octet-stream", b"\x00\x01\x02 opaque"),
    ];
    for (path, content_type, body) in cases {
        let r = get(server.port, path, &[]);
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(must(&r, "content-type"), content_type, "GET {path}");
        assert_eq!(must(&r, "content-length"), body.len().to_string(), "GET {path}");
        assert_eq!(r.body, body, "GET {path}");
        assert_eq!(must(&r, "accept-ranges"), "bytes", "GET {path}");
        let etag = must(&r, "etag");
        assert!(etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'), "GET {path}: ETag {etag:?}");
        let modified = httpdate::parse_http_date(must(&r, "last-modified")).expect("an HTTP-date");
        let age = std::time::SystemTime::now()
            .duration_since(modified)
            .expect("Last-Modified is not in the future");
        assert!(age < Duration::from_secs(120), "GET {path}: Last-Modified is {age:?} old");

        let (head, raw) = request(server.port, "HEAD", path, &[]);
        assert_eq!(head.status, 200, "HEAD {path}");
        for name in ["content-type", "content-length", "etag", "last-modified", "accept-ranges"] {
            assert_eq!(head.header(name), r.header(name), "HEAD {path}: {name}");
        }
        assert!(head.body.is_empty(), "HEAD {path} sent a body: {:?} (raw {} bytes)", head.body, raw.len());
    }

    // A directory without the slash is redirected, the query kept.
    let r = get(server.port, "/sub", &[]);
    assert_eq!((r.status, must(&r, "location")), (301, "/sub/"));
    let r = get(server.port, "/sub?x=1&y=%20", &[]);
    assert_eq!((r.status, must(&r, "location")), (301, "/sub/?x=1&y=%20"));

    // A directory without an index file is forbidden; nothing is listed.
    std::fs::create_dir(site.path("www/empty")).unwrap();
    put(&site, "www/noindex/secret-name.txt", b"x");
    assert_small_error_page(&get(server.port, "/empty/", &[]), 403);
    let r = get(server.port, "/noindex/", &[]);
    assert_small_error_page(&r, 403);
    assert!(!r.text().contains("secret-name"));

    // A missing file is a 404 with a small HTML page whose length is declared.
    let r = get(server.port, "/missing.html", &[]);
    assert_small_error_page(&r, 404);
    assert_eq!(must(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(must(&r, "content-length"), r.body.len().to_string());
    let (head, _) = request(server.port, "HEAD", "/missing.html", &[]);
    assert_eq!(head.status, 404);
    assert!(head.body.is_empty(), "HEAD of a 404 sent a body");
}

#[test]
fn keep_alive_connection_serves_several_requests_including_head() {
    let site = Site::new();
    let server = site.start(&[]);
    let mut client = server.connect();
    for _ in 0..3 {
        let r = client.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
        // A HEAD on the same connection: if it carried a body, the next GET would misparse.
        let head = client.request("HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!((head.status, must(&head, "content-length")), (200, "6"));
    }
}

// ---------------------------------------------------------------------------------------
// 3. Revalidation (RFC 9110 §13)
// ---------------------------------------------------------------------------------------

#[test]
fn revalidation_follows_rfc_9110_precedence() {
    let site = Site::new();
    let server = site.start(&[]);
    let port = server.port;
    let first = get(port, "/index.html", &[]);
    let etag = must(&first, "etag").to_owned();
    let modified = must(&first, "last-modified").to_owned();

    let (r, _) = request(port, "GET", "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "If-None-Match with the current ETag");
    assert!(r.body.is_empty(), "a 304 has no body, got {:?}", r.text());
    assert_eq!(r.header("etag"), Some(etag.as_str()), "a 304 repeats the ETag");

    // Weak comparison for If-None-Match (§13.1.2), and a list of tags.
    let weak = format!("W/{etag}");
    assert_eq!(get(port, "/index.html", &[("If-None-Match", &weak)]).status, 304);
    let list = format!("\"other\", {etag}");
    assert_eq!(get(port, "/index.html", &[("If-None-Match", &list)]).status, 304);
    assert_eq!(get(port, "/index.html", &[("If-None-Match", "*")]).status, 304);
    let (r, _) = request(port, "HEAD", "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "HEAD revalidates too");

    let r = get(port, "/index.html", &[("If-Modified-Since", &modified)]);
    assert_eq!(r.status, 304, "If-Modified-Since with the Last-Modified value");
    assert!(r.body.is_empty());

    // If-None-Match wins over If-Modified-Since: a mismatching tag means 200 even though IMS would say 304.
    let r =
        get(port, "/index.html", &[("If-None-Match", "\"not-the-tag\""), ("If-Modified-Since", &modified)]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello\n"),
        "If-None-Match must win over If-Modified-Since"
    );

    // If-Modified-Since older than the file: 200.
    let r = get(port, "/index.html", &[("If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")]);
    assert_eq!(r.status, 200);

    let r = get(port, "/index.html", &[("If-Match", "\"not-the-tag\"")]);
    assert_small_error_page(&r, 412);
    assert_eq!(get(port, "/index.html", &[("If-Match", &etag)]).status, 200);
    assert_eq!(
        get(port, "/index.html", &[("If-Unmodified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")]).status,
        412
    );

    // A changed file gets a new ETag, and the old one no longer yields 304.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(site.path("www/index.html"), "hello again\n").unwrap();
    let r = get(port, "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello again\n"));
    assert_ne!(must(&r, "etag"), etag);
}

// ---------------------------------------------------------------------------------------
// 4. Byte ranges
// ---------------------------------------------------------------------------------------

#[test]
fn single_byte_ranges_are_206_and_unsatisfiable_ones_416() {
    let site = Site::new();
    let data = b"0123456789abcdefghij";
    let n = data.len();
    put(&site, "www/digits.txt", data);
    let server = site.start(&[]);
    let port = server.port;
    let etag = must(&get(port, "/digits.txt", &[]), "etag").to_owned();

    let r = get(port, "/digits.txt", &[("Range", "bytes=0-4")]);
    assert_eq!(r.status, 206);
    assert_eq!(must(&r, "content-range"), format!("bytes 0-4/{n}"));
    assert_eq!(must(&r, "content-length"), "5");
    assert_eq!(r.body, b"01234");

    let r = get(port, "/digits.txt", &[("Range", "bytes=-3")]);
    assert_eq!(r.status, 206);
    assert_eq!(must(&r, "content-range"), format!("bytes {}-{}/{n}", n - 3, n - 1));
    assert_eq!(r.body, b"hij");

    let r = get(port, "/digits.txt", &[("Range", "bytes=15-")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"fghij"[..]));
    assert_eq!(must(&r, "content-range"), format!("bytes 15-19/{n}"));

    let r = get(port, "/digits.txt", &[("Range", "bytes=10-999")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"abcdefghij"[..]), "a range past the end is clipped");

    let range = format!("bytes={n}-");
    let r = get(port, "/digits.txt", &[("Range", &range)]);
    assert_eq!(r.status, 416);
    assert_eq!(must(&r, "content-range"), format!("bytes */{n}"));

    let r = get(port, "/digits.txt", &[("Range", "bytes=0-1,5-6")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &data[..]), "several ranges: the whole file");
    assert!(r.header("content-range").is_none());

    let r = get(port, "/digits.txt", &[("Range", "bytes=0-4"), ("If-Range", "\"stale\"")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &data[..]), "If-Range with a stale ETag: the whole file");

    let r = get(port, "/digits.txt", &[("Range", "bytes=0-4"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"01234"[..]), "If-Range with the current ETag");

    let r = get(port, "/digits.txt", &[("Range", "lines=0-4")]);
    assert_eq!(r.status, 200, "an unknown range unit is ignored");

    let (r, _) = request(port, "HEAD", "/digits.txt", &[("Range", "bytes=0-4")]);
    assert_eq!((r.status, r.body.len()), (200, 0), "HEAD ignores Range");
}

// ---------------------------------------------------------------------------------------
// 5. Methods, malformed requests and header limits
// ---------------------------------------------------------------------------------------

const SMALL_LIMITS: &str = "[limits]\nmax_request_line = 1024\nmax_header_bytes = 2048\nmax_headers = 20\n";

#[test]
fn unsupported_methods_get_405_with_allow_and_options_204() {
    let site = Site::new();
    let server = site.start(&[]);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let raw = format!(
            "{method} /index.html HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        let (r, _) = exchange(server.port, raw.as_bytes());
        assert_small_error_page(&r, 405);
        assert_eq!(must(&r, "allow"), "GET, HEAD, OPTIONS", "{method}");
    }
    for target in ["/", "*"] {
        let (r, _) = request(server.port, "OPTIONS", target, &[]);
        assert_eq!(r.status, 204, "OPTIONS {target}");
        assert_eq!(must(&r, "allow"), "GET, HEAD, OPTIONS");
        assert!(r.body.is_empty());
    }
    // The file was not touched.
    assert_serving(&server);
}

#[test]
fn malformed_and_oversized_requests_get_400_414_431_and_the_server_keeps_serving() {
    let site = Site::new();
    site.write_config(SMALL_LIMITS);
    let server = site.start(&[]);
    let port = server.port;

    // HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/1.0 does not.
    let (r, _) = exchange(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_small_error_page(&r, 400);
    let (r, _) = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400, "two Host fields");
    let (r, _) = exchange(port, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "HTTP/1.0 without Host");
    let (r, _) = exchange(port, b"GARBAGE\r\n\r\n");
    assert_eq!(r.status, 400, "not a request line");
    assert_serving(&server);

    // A target just over max_request_line (1024): 414.
    let long = format!("/{}", "a".repeat(1100));
    let r = get(port, &long, &[]);
    assert_small_error_page(&r, 414);
    assert_serving(&server);

    // Header fields totalling more than max_header_bytes (2048): 431.
    let big = "v".repeat(900);
    let r = get(port, "/", &[("X-A", &big), ("X-B", &big), ("X-C", &big)]);
    assert_small_error_page(&r, 431);
    assert_serving(&server);
    // One field far beyond anything the server buffers: still 431, not a hang or a crash.
    let huge = "v".repeat(20_000);
    let (r, _) = request(port, "GET", "/", &[("X-Huge", &huge)]);
    assert_eq!(r.status, 431, "a 20 kB header field");
    assert_serving(&server);

    // More than max_headers (20) fields: 431 (hyper's own answer).
    let names: Vec<String> = (0..30).map(|i| format!("X-Field-{i}")).collect();
    let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let (r, _) = request(port, "GET", "/", &fields);
    assert_eq!(r.status, 431, "30 header fields with max_headers = 20");
    assert_serving(&server);
    // Exactly at the limit is fine (Host and Connection are 2 of the 20).
    let (r, _) = request(port, "GET", "/", &fields[..18]);
    assert_eq!(r.status, 200, "20 header fields with max_headers = 20");
}

#[test]
fn a_target_longer_than_the_whole_head_buffer_is_still_414() {
    // max_request_line 1024 + max_header_bytes 2048 + 1024 slack = the 4096-byte head hyper buffers.
    let site = Site::new();
    site.write_config(SMALL_LIMITS);
    let server = site.start(&[]);
    let long = format!("/{}", "a".repeat(6000));
    let (r, _) = request(server.port, "GET", &long, &[]);
    assert_eq!(
        r.status, 414,
        "a 6000-byte target with max_request_line = 1024 is URI Too Long (RFC 9110 §15.5.15); headers {:?}",
        r.headers
    );
    assert_serving(&server);
}

// ---------------------------------------------------------------------------------------
// 6. Virtual hosts
// ---------------------------------------------------------------------------------------

#[test]
fn host_header_selects_the_site_and_unknown_hosts_get_the_default() {
    let site = Site::new();
    put(&site, "a/index.html", b"site a\n");
    put(&site, "b/index.html", b"site b\n");
    put(&site, "b/only-b.txt", b"b only\n");
    site.write_config("\n[[site]]\nhosts = [\"a.test\"]\nroot = \"a\"\n\n[[site]]\nhosts = [\"b.test\", \"www.b.test\"]\nroot = \"b\"\n");
    let server = site.start(&[]);
    let port = server.port;
    let with_host = |host: &str, path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        exchange(port, raw.as_bytes()).0
    };
    for (host, body) in [
        ("a.test", "site a\n"),
        ("b.test", "site b\n"),
        ("www.b.test", "site b\n"),
        (&format!("a.test:{port}") as &str, "site a\n"),
        ("B.TEST", "site b\n"),
        ("A.Test:80", "site a\n"),
        ("b.test.", "site b\n"),
        ("unknown.test", "hello\n"),
        ("127.0.0.1", "hello\n"),
        (&format!("127.0.0.1:{port}") as &str, "hello\n"),
    ] {
        let r = with_host(host, "/");
        assert_eq!((r.status, r.text().as_str()), (200, body), "Host: {host}");
    }
    assert_eq!(with_host("b.test", "/only-b.txt").status, 200);
    assert_eq!(with_host("a.test", "/only-b.txt").status, 404, "sites do not leak into each other");
    // HTTP/1.0 without Host: the default site.
    let (r, _) = exchange(port, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.text(), "hello\n");
    // An absolute-form target's host wins over the Host field (RFC 9112 §3.2.2).
    let (r, _) = exchange(port, b"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "site b\n"));
}

// ---------------------------------------------------------------------------------------
// 7. Path safety
// ---------------------------------------------------------------------------------------

fn assert_passwd_exists() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(passwd.contains(PASSWD_MARK), "this check needs an /etc/passwd that contains {PASSWD_MARK:?}");
}

#[test]
fn traversal_attempts_never_return_etc_passwd() {
    assert_passwd_exists();
    let site = Site::new();
    let server = site.start(&[]);
    let cases: [&[u8]; 14] = [
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /../../../../../../../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /%2E%2E/%2E%2E/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /.%2e/.%2e/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..%2F..%2F..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..\\..\\etc\\passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..%5c..%5cetc%5cpasswd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /index.html%00.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /%2e%2e%00/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET http://localhost/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET //etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /sub/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ];
    for raw in cases {
        let line = String::from_utf8_lossy(raw.split(|b| *b == b'\r').next().unwrap()).into_owned();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(raw).unwrap();
        let answer = read_to_eof(&mut stream);
        let text = String::from_utf8_lossy(&answer);
        assert!(!text.contains(PASSWD_MARK), "{line}: the response contains /etc/passwd:\n{text}");
        let r = parse(&answer);
        println!("{line} -> {}", r.status);
        assert!([400, 403, 404].contains(&r.status), "{line}: status {} (headers {:?})", r.status, r.headers);
        assert_serving(&server);
    }
}

#[test]
fn symlinks_are_followed_only_while_they_stay_beneath_the_root() {
    use std::os::unix::fs::symlink;
    assert_passwd_exists();
    let site = Site::new();
    put(&site, "www/sub/page.html", b"<p>page</p>\n");
    put(&site, "www/sub/index.html", b"<p>sub index</p>\n");
    put(&site, "outside.txt", b"outside the root\n");
    let www = site.path("www");
    symlink("/etc", www.join("etclink")).unwrap();
    symlink("/etc/passwd", www.join("passwdlink")).unwrap();
    symlink("..", www.join("uplink")).unwrap();
    symlink("../outside.txt", www.join("outside-link.txt")).unwrap();
    symlink(site.path("www/index.html"), www.join("absolute-inside.html")).unwrap();
    symlink("index.html", www.join("alias.html")).unwrap();
    symlink("sub", www.join("subalias")).unwrap();
    let server = site.start(&[]);
    let port = server.port;

    for path in
        ["/etclink/passwd", "/passwdlink", "/uplink/outside.txt", "/uplink/graced.toml", "/outside-link.txt"]
    {
        let (r, raw) = request(port, "GET", path, &[]);
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(PASSWD_MARK), "GET {path} returned /etc/passwd");
        assert!(
            !text.contains("outside the root") && !text.contains("pid_file"),
            "GET {path} left the root: {text}"
        );
        assert_eq!(r.status, 403, "GET {path}");
    }
    assert_eq!(get(port, "/uplink/", &[]).status, 403);
    assert_eq!(get(port, "/etclink/", &[]).status, 403);

    // Inside the root, symlinks are served like the files they name.
    for (path, body) in [
        ("/alias.html", "hello\n"),
        ("/subalias/page.html", "<p>page</p>\n"),
        ("/subalias/", "<p>sub index</p>\n"),
    ] {
        let r = get(port, path, &[]);
        assert_eq!((r.status, r.text().as_str()), (200, body), "GET {path}");
    }
    // An absolute symlink is refused even when its target is inside the root
    // (openat2 RESOLVE_BENEATH: absolute links cannot be resolved beneath a directory).
    assert_eq!(get(port, "/absolute-inside.html", &[]).status, 403);
}

#[test]
fn hidden_files_are_404_unless_the_site_allows_them_but_well_known_is_served() {
    let site = Site::new();
    put(&site, "www/.git/config", b"[core]\n");
    put(&site, "www/.env", b"SECRET=1\n");
    put(&site, "www/.well-known/x", b"acme\n");
    put(&site, "www/sub/.hidden.html", b"h\n");
    // The same root again, for a host whose site serves hidden files.
    site.write_config("\n[[site]]\nhosts = [\"dots.test\"]\nroot = \"www\"\nhidden_files = true\n");
    let server = site.start(&[]);
    let port = server.port;
    for path in
        ["/.git/config", "/.git/", "/.env", "/%2egit/config", "/sub/.hidden.html", "/sub/%2Ehidden.html"]
    {
        let r = get(port, path, &[]);
        assert_small_error_page(&r, 404);
        assert!(!r.text().contains("core") && !r.text().contains("SECRET"), "GET {path}");
    }
    let r = get(port, "/.well-known/x", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "acme\n"));

    let dots = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: dots.test\r\nConnection: close\r\n\r\n");
        exchange(port, raw.as_bytes()).0
    };
    let r = dots("/.git/config");
    assert_eq!((r.status, r.text().as_str()), (200, "[core]\n"), "hidden_files = true");
    assert_eq!(dots("/.env").status, 200);
    assert_eq!(dots("/.well-known/x").status, 200);
}

// ---------------------------------------------------------------------------------------
// 8. Limits and abuse
// ---------------------------------------------------------------------------------------

const TIGHT_LIMITS: &str = "[limits]\nheader_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\nsend_timeout = \"2s\"\nmax_connections = 8\n";

#[test]
fn slowloris_is_disconnected_after_header_timeout_while_others_are_served() {
    let site = Site::new();
    site.write_config(TIGHT_LIMITS);
    let server = site.start(&[]);
    let head = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: {}", "a".repeat(200));
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let mut closed_after = None;
    let mut other_served_in = None;
    let mut buf = [0u8; 1024];
    // At most 40 bytes × 200 ms = 8 s.
    for (i, byte) in head.bytes().take(40).enumerate() {
        if slow.write_all(&[byte]).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        match slow.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(start.elapsed());
                break;
            }
            // A 408 is acceptable before the close; keep reading for the EOF.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_after = Some(start.elapsed());
                break;
            }
        }
        if i == 2 {
            let t = Instant::now();
            assert_serving(&server);
            other_served_in = Some(t.elapsed());
        }
    }
    let closed_after = closed_after.expect("the slowloris client was never disconnected (8 s)");
    println!("slowloris closed after {closed_after:?}; another client served in {other_served_in:?}");
    assert!(
        closed_after >= Duration::from_millis(800) && closed_after <= Duration::from_millis(2800),
        "slowloris closed after {closed_after:?}; header_timeout is 1s"
    );
    let served = other_served_in.expect("the other client ran");
    assert!(served < Duration::from_millis(800), "another client took {served:?} while slowloris ran");
    assert_serving(&server);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_keepalive_timeout_but_a_busy_one_is_not() {
    let site = Site::new();
    site.write_config(TIGHT_LIMITS);
    let server = site.start(&[]);

    // Requests 400 ms apart for 2 s: longer than keepalive_timeout in total, never idle that long.
    let mut busy = server.connect();
    for i in 0..5 {
        let r = busy.get("/");
        assert_eq!(r.status, 200, "request {i} on a busy keep-alive connection");
        std::thread::sleep(Duration::from_millis(400));
    }

    let mut idle = server.connect();
    assert_eq!(idle.get("/").status, 200);
    let start = Instant::now();
    assert!(idle.closed_within(Duration::from_secs(3)), "an idle keep-alive connection stayed open for 3 s");
    let after = start.elapsed();
    println!("idle keep-alive connection closed after {after:?}");
    assert!(after >= Duration::from_millis(800), "closed after only {after:?}; keepalive_timeout is 1s");
    assert!(after <= Duration::from_millis(2500), "closed after {after:?}; keepalive_timeout is 1s");

    // A connection that never sends anything is closed too.
    let mut silent = server.connect();
    assert!(silent.closed_within(Duration::from_secs(3)), "a silent connection stayed open for 3 s");
}

#[test]
fn a_reader_that_stops_reading_is_disconnected_after_send_timeout() {
    const BIG: u64 = 32 * 1024 * 1024;
    let site = Site::new();
    site.write_config(TIGHT_LIMITS);
    let file = File::create(site.path("www/big.bin")).unwrap();
    file.set_len(BIG).unwrap(); // sparse zeros: cheap to create, real bytes to send
    let server = site.start(&[]);

    // A small receive buffer, so the kernel cannot swallow the file for us.
    let mut stalled = connect_with_small_receive_buffer(&server);
    stalled.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();

    // Others are served while the response is stuck.
    std::thread::sleep(Duration::from_millis(500));
    assert_serving(&server);
    // send_timeout (2s) of no progress, plus slack.
    std::thread::sleep(Duration::from_millis(3500));
    assert_serving(&server);

    let received = read_to_eof(&mut stalled);
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| p + 4);
    let body = (received.len() - head_end) as u64;
    println!("the stalled reader got {body} of {BIG} body bytes before the close");
    assert!(
        body < BIG,
        "the whole {BIG}-byte body arrived after the client stalled for 4 s: the connection was not aborted"
    );
    assert_serving(&server);
}

#[test]
fn connections_beyond_max_connections_wait_and_are_served_later() {
    let site = Site::new();
    site.write_config(
        "[limits]\nmax_connections = 8\nkeepalive_timeout = \"10s\"\nheader_timeout = \"10s\"\n",
    );
    let server = site.start(&[]);
    std::thread::sleep(Duration::from_millis(200)); // the readiness probe's connection is gone
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();

    // Eight connections, each served once and kept open.
    let mut first: Vec<Client> = (0..8).map(|_| server.connect()).collect();
    for (i, c) in first.iter_mut().enumerate() {
        assert_eq!(c.get("/").status, 200, "connection {i} within the limit");
    }
    // Twenty-two more: connect succeeds (nothing is refused), but nobody answers yet.
    let mut waiting = Vec::new();
    for i in 0..22 {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connection {} beyond the limit was refused: {e}", i + 8));
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        waiting.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    for (i, s) in waiting.iter_mut().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match s.peek(&mut byte) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("connection {} beyond max_connections got {other:?} while 8 were open", i + 8),
        }
        s.set_nonblocking(false).unwrap();
    }
    // Closing the first eight lets the others in.
    let start = Instant::now();
    drop(first.drain(..));
    for (i, s) in waiting.iter_mut().enumerate() {
        let r = parse(&read_to_eof(s));
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "waiting connection {}", i + 8);
    }
    assert!(start.elapsed() < Duration::from_secs(5), "the waiting connections took {:?}", start.elapsed());
    assert_serving(&server);
}

#[test]
fn a_flood_of_connect_close_cycles_leaves_the_server_serving_without_leaks() {
    let site = Site::new();
    site.write_config(TIGHT_LIMITS); // max_connections = 8: a leaked slot would soon starve it
    let server = site.start(&[]);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = fd_count(server.pid());
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let start = Instant::now();
    for i in 0..500 {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("flood connection {i}: {e}"));
        match i % 4 {
            0 => {}
            1 => {
                let _ = s.write_all(b"GET / HTT");
            }
            2 => {
                // A whole request, then gone before the answer.
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
            }
            _ => {
                // Reset instead of FIN.
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
        drop(s);
        assert!(start.elapsed() < Duration::from_secs(10), "the flood took over 10 s (at {i})");
    }
    // More sequential requests than max_connections: every slot came back.
    for _ in 0..20 {
        assert_serving(&server);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count(server.pid()) > baseline + 2 {
        assert!(
            Instant::now() < deadline,
            "fds: {} after the flood, {baseline} before",
            fd_count(server.pid())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `graced -f CONFIG` with RLIMIT_NOFILE = `nofile`, stderr to `stderr.log` in the site dir.
fn start_with_nofile(site: &Site, nofile: u64) -> Server {
    let mut command = Command::new(BIN);
    command
        .arg("-f")
        .arg(site.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(site.path("stderr.log")).unwrap());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = Server { child: command.spawn().unwrap(), port: site.port };
    server.wait_listening(Duration::from_secs(10));
    server
}

#[test]
fn emfile_does_not_make_the_accept_loop_spin_and_serving_resumes() {
    let site = Site::new();
    site.write_config("[limits]\nkeepalive_timeout = \"30s\"\nheader_timeout = \"30s\"\n");
    let mut server = start_with_nofile(&site, 40);
    let pid = server.pid();
    assert_serving(&server);
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();

    let mut held = Vec::new();
    for i in 0..100 {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connection {i} (the backlog should hold it): {e}"));
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let fds = fd_count(pid);
    assert!(fds >= 36, "only {fds} fds open with a limit of 40: the server is not at EMFILE");

    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(pid) - before;
    println!("at EMFILE: {fds} fds open, {used:.3} s CPU in 1 s");
    assert!(used < 0.3, "the server used {used:.2} s of CPU in 1 s at EMFILE: the accept loop spins");
    let log = std::fs::read_to_string(site.path("stderr.log")).unwrap();
    assert!(log.contains("accept failed"), "no accept failure was logged, so EMFILE was not reached:\n{log}");

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = server.connect();
        client.stream().set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        client.send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        if matches!(client.try_read_response(false), Ok(r) if r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not serve again within 10 s of the fds being freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the server exited");
}

#[test]
fn a_request_that_cannot_open_its_file_at_emfile_is_not_a_false_404() {
    let site = Site::new();
    site.write_config("[limits]\nkeepalive_timeout = \"30s\"\nheader_timeout = \"30s\"\n");
    let server = start_with_nofile(&site, 40);
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    // The first connection is accepted while fds remain; then exhaust them.
    let mut first = server.connect();
    assert_eq!(first.get("/").status, 200);
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap());
    }
    std::thread::sleep(Duration::from_millis(500));
    let r = first.get("/index.html");
    let log = std::fs::read_to_string(site.path("stderr.log")).unwrap_or_default();
    let why: Vec<&str> = log.lines().filter(|l| l.contains("open") || l.contains("lookup")).collect();
    assert!(
        r.status == 200 || r.status >= 500,
        "GET of an existing file while out of fds answered {} (a cacheable lie); expected 200 or 5xx; server log: {why:?}",
        r.status
    );
    drop(held);
}

// ---------------------------------------------------------------------------------------
// 9. Large files are streamed
// ---------------------------------------------------------------------------------------

#[test]
fn a_large_file_is_streamed_byte_exact_with_bounded_memory() {
    const LEN: u64 = 20 * 1024 * 1024;
    let site = Site::new();
    put(&site, "www/large.bin", &pattern(LEN));
    let server = site.start(&[]);
    let pid = server.pid();
    assert_serving(&server);
    let baseline = rss_kib(pid);

    let mut client = server.connect();
    client.send("GET /large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = client.read_response(true); // head only; the body is read below
    assert_eq!(head.status, 200);
    assert_eq!(must(&head, "content-length"), LEN.to_string());
    assert_eq!(must(&head, "content-type"), "application/octet-stream");
    let peak = read_pattern_body(&mut client, 0, LEN, pid);

    // A range from the middle, unaligned to any chunk size, on the same connection.
    let (from, to) = (7_777_777u64, 12_345_678u64);
    client.send(&format!("GET /large.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={from}-{to}\r\n\r\n"));
    let head = client.read_response(true);
    assert_eq!(head.status, 206);
    assert_eq!(must(&head, "content-range"), format!("bytes {from}-{to}/{LEN}"));
    assert_eq!(must(&head, "content-length"), (to - from + 1).to_string());
    let peak = peak.max(read_pattern_body(&mut client, from, to - from + 1, pid));
    // And the connection is still in step.
    assert_eq!(client.get("/").text(), "hello\n");

    println!("RSS: {baseline} KiB before, peak {peak} KiB while serving 20 MiB");
    assert!(peak < 60 * 1024, "the server's RSS reached {peak} KiB serving a 20 MiB file");
    assert!(
        peak < baseline + 12 * 1024,
        "the server's RSS grew from {baseline} KiB to {peak} KiB serving a 20 MiB file: not streamed"
    );
}

#[test]
fn a_large_file_not_in_the_page_cache_is_read_in_off_the_serving_threads_and_sent_exact() {
    const WINDOW: u64 = 1024 * 1024;
    const LEN: u64 = 6 * WINDOW + 4321;
    let site = Site::new();
    site.write_config_with_server("access_log = \"off\"\nlog_level = \"debug\"", "");
    put(&site, "www/cold.bin", &pattern(LEN));
    // Written back and dropped from the page cache: the server must read it from disk.
    let file = File::open(site.path("www/cold.bin")).unwrap();
    file.sync_all().unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let mut server = site.start(&[]);
    let pid = server.pid();
    assert_serving(&server);

    let mut client = server.connect();
    for round in 0..2 {
        client.send("GET /cold.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let head = client.read_response(true);
        assert_eq!(head.status, 200, "round {round}");
        assert_eq!(must(&head, "content-length"), LEN.to_string());
        read_pattern_body(&mut client, 0, LEN, pid);
    }
    assert_eq!(client.get("/").text(), "hello\n", "the connection is still in step");

    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let log = server.stderr();
    let read_ins = log.matches("reading a window of a file into the page cache").count();
    println!("{read_ins} windows read in for 2 × 7 windows sent");
    // Only what was missing is read in, and only the first time. tmpfs (memory) cannot be
    // probed and is sent as it is.
    let fs = rustix::fs::fstatfs(&file).unwrap();
    if fs.f_type as i64 == 0x0102_1994 {
        assert_eq!(read_ins, 0, "{log}");
    } else {
        assert!((1..=7).contains(&read_ins), "{read_ins} windows read in; expected 1 to 7:\n{log}");
    }
}

#[test]
fn a_large_file_that_shrinks_while_it_is_sent_ends_the_response_short_and_nothing_else() {
    const LEN: u64 = 16 * 1024 * 1024;
    const KEPT: u64 = 2 * 1024 * 1024;
    let site = Site::new();
    put(&site, "www/shrinks.bin", &pattern(LEN));
    let server = site.start(&[]);

    // A small receive buffer, so that most of the file is still to be sent when it shrinks.
    let mut reader = connect_with_small_receive_buffer(&server);
    reader.write_all(b"GET /shrinks.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut received = vec![0u8; 256 * 1024];
    reader.read_exact(&mut received).unwrap();

    std::fs::OpenOptions::new()
        .write(true)
        .open(site.path("www/shrinks.bin"))
        .unwrap()
        .set_len(KEPT)
        .unwrap();
    let started = Instant::now();
    received.extend(read_to_eof(&mut reader));
    let closed_after = started.elapsed();

    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(received.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&received[..head_end]));
    let body = &received[head_end..];
    println!("{} of {LEN} body bytes before the close, {closed_after:?} after the truncation", body.len());
    assert!((body.len() as u64) < LEN, "the whole body arrived although the file shrank to {KEPT} bytes");
    // What did arrive of the part the file kept is the file's bytes.
    let kept = body.len().min(KEPT as usize);
    for (i, b) in body[..kept].iter().enumerate() {
        assert_eq!(*b, pattern_byte(i as u64), "body byte {i}");
    }
    assert!(closed_after < Duration::from_secs(5), "the connection was closed only after {closed_after:?}");
    assert_serving(&server);
}

// ---------------------------------------------------------------------------------------
// 10. Access log
// ---------------------------------------------------------------------------------------

/// `dd/Mon/yyyy:hh:mm:ss +0000`
fn is_clf_time(s: &str) -> bool {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && MONTHS.contains(&&s[3..6])
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && &s[20..] == " +0000"
}

/// Splits a combined-format line into (remote, time, the rest after `] `).
fn split_combined(line: &str) -> (&str, &str, &str) {
    let (remote, rest) = line.split_once(" - - [").unwrap_or_else(|| panic!("not combined format: {line:?}"));
    let (time, rest) = rest.split_once("] ").unwrap_or_else(|| panic!("no time in {line:?}"));
    (remote, time, rest)
}

#[test]
fn access_log_file_gets_apache_combined_format_lines() {
    let site = Site::new();
    let log_path = site.path("logs/access.log");
    std::fs::create_dir(site.path("logs")).unwrap();
    site.write_config_with_server(
        &format!("access_log = \"{}\"\ngraceful_shutdown_timeout = \"5s\"", log_path.display()),
        "",
    );
    let server = site.start(&[]);
    let port = server.port;
    assert_eq!(get(port, "/index.html", &[]).status, 200);
    let missing =
        get(port, "/missing?q=1", &[("Referer", "http://ref.test/page"), ("User-Agent", "probe/1.0")]);
    assert_eq!(missing.status, 404);
    assert_eq!(request(port, "HEAD", "/index.html", &[("User-Agent", "quote\"agent")]).0.status, 200);

    let deadline = Instant::now() + Duration::from_secs(2);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.lines().count() >= 3 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "access log after 3 requests:\n{text}");
    let expected = [
        "\"GET /index.html HTTP/1.1\" 200 6 \"-\" \"-\"".to_owned(),
        format!(
            "\"GET /missing?q=1 HTTP/1.1\" 404 {} \"http://ref.test/page\" \"probe/1.0\"",
            missing.body.len()
        ),
        "\"HEAD /index.html HTTP/1.1\" 200 - \"-\" \"quote\\\"agent\"".to_owned(),
    ];
    for (line, rest_expected) in lines.iter().zip(&expected) {
        let (remote, time, rest) = split_combined(line);
        assert_eq!(remote, "127.0.0.1", "{line}");
        assert!(is_clf_time(time), "time {time:?} in {line:?}");
        assert_eq!(rest, rest_expected, "{line}");
    }
}
