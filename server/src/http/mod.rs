//! HTTP/1.1 on the server's one port: request reading (parsed by `httparse`), responses, and the
//! keep-alive loop. A request for the agent socket is handed to `crate::ws` instead.
//!
//! Limits keep a slow or hostile client from pinning a thread: the request head must arrive
//! within `HEAD_TIMEOUT` and fit in `MAX_HEAD_BYTES`, bodies are capped at `MAX_BODY_BYTES`, and
//! an idle keep-alive connection is closed after `KEEP_ALIVE_IDLE`.

pub mod api;
pub mod assets;
pub mod compress;
pub mod format;
pub mod install;
pub mod pages;
pub mod prometheus;
pub mod router;
pub mod session;
pub mod svg;

use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::tls::Stream;

pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(30);
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string, as sent (not percent-decoded).
    pub path: String,
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// HTTP/1.0 without `Connection: keep-alive`, or `Connection: close`.
    pub wants_close: bool,
    /// The client's address (for the login backoff); `None` in unit tests.
    pub peer: Option<IpAddr>,
}

impl Request {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (e.g. `Connection: keep-alive, Upgrade`) has `token`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The raw value of query parameter `name` (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// Query parameter `name`, percent-decoded (`+` is a space, as in forms).
    pub fn query_param_decoded(&self, name: &str) -> Option<String> {
        self.query_param(name).map(percent_decode)
    }
}

/// The fields of an `application/x-www-form-urlencoded` body (or query string), decoded.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept as they are, invalid UTF-8 is
/// replaced.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// A page or fragment rendered by `maud`.
    pub fn html(status: u16, markup: maud::Markup) -> Response {
        Response::new(status, "text/html; charset=utf-8", markup.into_string())
    }

    /// `value` as JSON (`application/json`).
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        // Serializing our own types (strings, numbers, maps with string keys) cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response::new(status, "application/json", body)
    }

    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Reason phrases for the statuses we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// What reading the next request gave.
pub enum ReadOutcome {
    Request(Request),
    /// The client closed the connection (or went idle) between requests.
    Closed,
    /// The connection must end with this error response.
    Fail(Response),
}

/// A client connection: the stream (plain or TLS) plus bytes read past the last request.
pub struct HttpConn {
    pub stream: Stream,
    pub buf: Vec<u8>,
}

impl HttpConn {
    pub fn new(stream: Stream) -> HttpConn {
        HttpConn {
            stream,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Reads one request, blocking until its deadline; shutdown ends the wait by shutting the
    /// socket's read half (`listener::Connections`), which reads as the client closing.
    pub fn read_request(&mut self, ctx: &Context, first: bool) -> ReadOutcome {
        let started = Instant::now();
        // When this request's head began: the head timeout counts from there. A new
        // connection's from its start; on a kept-alive one, from the first byte after the idle
        // wait (a request sent in pieces after 20 s of quiet is no slow client).
        let mut head_since = (first || !self.buf.is_empty()).then_some(started);
        let mut chunk = [0u8; 4096];
        loop {
            if !self.buf.is_empty() {
                match parse_head(&self.buf) {
                    Ok(Some((request, head_len, content_length))) => {
                        if content_length > MAX_BODY_BYTES {
                            return ReadOutcome::Fail(Response::text(
                                413,
                                "request body too large\n",
                            ));
                        }
                        let since = head_since.unwrap_or(started);
                        return self.read_body(ctx, request, head_len, content_length, since);
                    }
                    Ok(None) if self.buf.len() > MAX_HEAD_BYTES => {
                        return ReadOutcome::Fail(Response::text(431, "request head too large\n"));
                    }
                    Ok(None) => {}
                    Err(message) => {
                        return ReadOutcome::Fail(Response::text(400, format!("{message}\n")))
                    }
                }
            }
            if ctx.shutting_down() {
                return ReadOutcome::Closed;
            }
            // Block until the next byte or the deadline that applies: between requests the
            // keep-alive idle time, within one (and for a connection's first) the head timeout.
            let deadline = match head_since {
                Some(since) => since + HEAD_TIMEOUT,
                None => started + KEEP_ALIVE_IDLE,
            };
            if !crate::tls::wait_until(self.stream.tcp(), deadline) {
                if head_since.is_none() {
                    return ReadOutcome::Closed;
                }
                return ReadOutcome::Fail(Response::text(
                    408,
                    "request head not received in time\n",
                ));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    head_since.get_or_insert_with(Instant::now);
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    fn read_body(
        &mut self,
        ctx: &Context,
        mut request: Request,
        head_len: usize,
        content_length: usize,
        started: Instant,
    ) -> ReadOutcome {
        let mut chunk = [0u8; 4096];
        while self.buf.len() < head_len + content_length {
            if ctx.shutting_down() {
                return ReadOutcome::Closed;
            }
            if !crate::tls::wait_until(self.stream.tcp(), started + HEAD_TIMEOUT) {
                return ReadOutcome::Fail(Response::text(
                    408,
                    "request body not received in time\n",
                ));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(_) => return ReadOutcome::Closed,
            }
        }
        request.body = self.buf[head_len..head_len + content_length].to_vec();
        request.peer = self.stream.tcp().peer_addr().ok().map(|a| a.ip());
        self.buf.drain(..head_len + content_length);
        ReadOutcome::Request(request)
    }

    /// Sends a response; `close` adds `Connection: close`.
    pub fn write_response(
        &mut self,
        response: &Response,
        head_only: bool,
        close: bool,
    ) -> std::io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            response.status,
            reason_phrase(response.status)
        );
        for (name, value) in &response.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
        head.push_str("X-Content-Type-Options: nosniff\r\n");
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes())?;
        if !head_only {
            self.stream.write_all(&response.body)?;
        }
        self.stream.flush()
    }
}

/// `Some((request without body, head length, content length))` once the head is complete.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed request: {e}")),
    };
    let method = parsed.method.unwrap_or("GET").to_owned();
    let target = parsed.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let http10 = parsed.version == Some(0);
    let mut request = Request {
        method,
        path,
        query,
        ..Request::default()
    };
    for header in parsed.headers.iter() {
        let value = String::from_utf8_lossy(header.value).into_owned();
        request
            .headers
            .push((header.name.to_ascii_lowercase(), value));
    }
    if request.header("transfer-encoding").is_some() {
        return Err("chunked request bodies are not supported".into());
    }
    let content_length = content_length(&request)?;
    request.wants_close = request.header_has_token("connection", "close")
        || (http10 && !request.header_has_token("connection", "keep-alive"));
    Ok(Some((request, head_len, content_length)))
}

/// The body's length: every `Content-Length` header must be plain digits (`+5`, `-0`, `5 5`
/// are refused, as RFC 9110 asks) and all of them the same, else the request is refused (two
/// different lengths are how request smuggling starts).
fn content_length(request: &Request) -> std::result::Result<usize, String> {
    let mut length: Option<usize> = None;
    for (_, value) in request
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
    {
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad Content-Length {value:?}"));
            }
            let n = part
                .parse::<usize>()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers".into());
            }
            length = Some(n);
        }
    }
    Ok(length.unwrap_or(0))
}

pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_with_query_and_body_length() {
        let raw = b"POST /login?next=%2F HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: keep-alive, Upgrade\r\n\r\nhello";
        let (request, head_len, content_length) = parse_head(raw).unwrap().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/login");
        assert_eq!(request.query_param("next"), Some("%2F"));
        assert_eq!(request.header("HOST"), Some("x"));
        assert!(request.header_has_token("connection", "upgrade"));
        assert!(!request.wants_close);
        assert_eq!(content_length, 5);
        assert_eq!(&raw[head_len..], b"hello");
    }

    #[test]
    fn forms_and_queries_are_percent_decoded() {
        assert_eq!(
            form_params(b"username=admin&password=p%40ss+word%21&next=%2Fhosts%2Fpve1&flag"),
            vec![
                ("username".to_owned(), "admin".to_owned()),
                ("password".to_owned(), "p@ss word!".to_owned()),
                ("next".to_owned(), "/hosts/pve1".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%C3%A9"), "%zzé");
        let (request, _, _) = parse_head(b"GET /api?name=net.eth%200.rx HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            request.query_param_decoded("name").as_deref(),
            Some("net.eth 0.rx")
        );
    }

    #[test]
    fn partial_and_garbage_heads() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost:").unwrap().is_none());
        assert!(parse_head(b"\x00\x01garbage\r\n\r\n").is_err());
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // The same length twice is what some proxies send: accepted.
        let same = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(same.unwrap().unwrap().2, 5);
        let (request, _, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(request.wants_close);
    }
}
