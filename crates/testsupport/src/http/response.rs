//! One parsed HTTP/1.1 [`Response`], one parser for it, and the [`Failure`] every client reports.

use std::io::{self, BufRead};

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the body is exactly `expected`; a failure says how many bytes came (a
    /// large body is not printed).
    #[track_caller]
    pub fn assert_body(&self, expected: &[u8], what: &str) {
        assert!(
            self.body == expected,
            "{what}: {} of {} bytes arrived, or they differ",
            self.body.len(),
            expected.len()
        );
    }

    /// The server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// Whether a response with this status to a request (`head`: a HEAD request) has no body.
    fn bodiless(status: u16, head: bool) -> bool {
        head || status == 204 || status == 304 || (100..200).contains(&status)
    }
}

/// Why a request got no complete response.
#[derive(Debug)]
pub enum Failure {
    /// connect(2) was refused: nobody listened.
    Refused,
    /// connect(2) failed otherwise (or timed out).
    Connect(io::Error),
    /// Writing the request failed.
    Send(io::Error),
    /// The connection ended (or broke) before the first byte of a response.
    NoResponse(String),
    /// A response started but did not complete.
    Incomplete(String),
}

impl Failure {
    /// A short category name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Connect(_) => "connect",
            Failure::Send(_) => "send",
            Failure::NoResponse(_) => "no-response",
            Failure::Incomplete(_) => "incomplete",
        }
    }

    pub(crate) fn connect(e: io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            _ => Failure::Connect(e),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused => write!(f, "connection refused"),
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Send(e) => write!(f, "send: {e}"),
            Failure::NoResponse(e) => write!(f, "no response: {e}"),
            Failure::Incomplete(e) => write!(f, "incomplete response: {e}"),
        }
    }
}

impl std::error::Error for Failure {}

/// The status code of a status line (`HTTP/1.1 200 OK`).
fn status_of(line: &str) -> Result<u16, Failure> {
    line.strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| Failure::Incomplete(format!("bad status line {line:?}")))
}

/// One header line (without its line end) as (lowercased name, trimmed value).
fn header_of(line: &str) -> Result<(String, String), Failure> {
    let (k, v) = line.split_once(':').ok_or_else(|| Failure::Incomplete(format!("bad header {line:?}")))?;
    Ok((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
}

/// Parses a complete response head (status line and header lines, the blank line optional);
/// the body is left empty.
pub fn parse_head(head: &[u8]) -> Result<Response, Failure> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status = status_of(lines.next().unwrap_or_default())?;
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        headers.push(header_of(line)?);
    }
    Ok(Response { status, headers, body: Vec::new() })
}

/// Parses one response read to end of file: the head, and every byte after it as the body
/// (so a body a HEAD response should not have, or bytes past Content-Length, show).
#[track_caller]
pub fn parse_raw(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {:?}", String::from_utf8_lossy(raw)));
    let mut response = parse_head(&raw[..split]).unwrap_or_else(|f| panic!("{f}"));
    response.body = raw[split + 4..].to_vec();
    response
}

/// Reads one response; `head` means it answers a HEAD request (no body follows).
pub fn read_response<R: BufRead>(r: &mut R, head: bool) -> Result<Response, Failure> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return Err(Failure::NoResponse("connection closed".into())),
        Ok(_) => {}
        Err(e) => return Err(Failure::NoResponse(e.to_string())),
    }
    let incomplete = |what: &str| Failure::Incomplete(what.to_owned());
    let status = status_of(&line)?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Err(incomplete("closed in the header section")),
            Ok(_) => {}
            Err(e) => return Err(Failure::Incomplete(format!("header section: {e}"))),
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        headers.push(header_of(l)?);
    }
    let mut response = Response { status, headers, body: Vec::new() };
    if Response::bodiless(status, head) {
        return Ok(response);
    }
    let chunked = response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).map_err(|e| Failure::Incomplete(format!("chunk size: {e}")))?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| incomplete(&format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).map_err(|e| Failure::Incomplete(format!("chunk: {e}")))?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| incomplete("bad Content-Length"))?;
        response.body = vec![0; len];
        r.read_exact(&mut response.body)
            .map_err(|e| Failure::Incomplete(format!("body: {e} (expected {len} bytes)")))?;
    } else {
        r.read_to_end(&mut response.body).map_err(|e| Failure::Incomplete(format!("body to EOF: {e}")))?;
    }
    Ok(response)
}

/// Reads the status line and headers of a response without consuming any byte of its body
/// (through a buffered reader, only what the buffer already holds past the head is at risk:
/// read the head with this, then the body from the same reader).
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Response, Failure> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) if head.is_empty() => return Err(Failure::NoResponse("connection closed".into())),
            Ok(0) => return Err(Failure::Incomplete("closed in the header section".into())),
            Ok(_) => {}
            Err(e) => return Err(Failure::NoResponse(e.to_string())),
        }
        let end = line == "\r\n" || line == "\n";
        head.extend_from_slice(line.as_bytes());
        if end {
            break;
        }
    }
    parse_head(&head)
}
