//! gzip for responses, when the client says it accepts it (`Accept-Encoding`): pages and
//! fragments, JSON, `/metrics`, SVG, CSS and the script. Small bodies and anything already
//! compressed go as they are.
//!
//! Level 1 ("fast"): on this text (HTML tables, JSON, the exposition format, all very
//! repetitive) it gives most of what higher levels give, at a fraction of the CPU — a 30 MB
//! `/metrics` of 1000 hosts would otherwise cost more to compress than to render.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::{Request, Response};

/// Bodies shorter than this are not worth a gzip header and a dictionary.
const MIN_BYTES: usize = 1024;

/// Whether the client accepts gzip: `gzip` (or `x-gzip`, or `*`) in `Accept-Encoding` with a
/// q-value above 0.
pub fn accepts_gzip(request: &Request) -> bool {
    let mut gzip = None;
    let mut any = None;
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("accept-encoding") {
            continue;
        }
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => any = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether responses of this content type are text worth compressing.
fn compressible(content_type: &str) -> bool {
    let kind = content_type.split(';').next().unwrap_or("").trim();
    kind.starts_with("text/") || kind == "application/json" || kind == "image/svg+xml"
}

/// `response` gzipped when the request accepts it and it is worth it; marked `Vary:
/// Accept-Encoding` whenever its content type could have been, so caches keep both apart. A
/// response that is already encoded (`/metrics` compresses its parts itself) is left alone.
pub fn negotiate(request: &Request, mut response: Response) -> Response {
    let Some(content_type) = response.header("content-type") else {
        return response;
    };
    if !compressible(content_type) || response.header("content-encoding").is_some() {
        return response;
    }
    response = response.with_header("Vary", "Accept-Encoding");
    if response.body.len() < MIN_BYTES || !accepts_gzip(request) {
        return response;
    }
    match gzip(&response.body) {
        Ok(body) => {
            response.body = body;
            response.with_header("Content-Encoding", "gzip")
        }
        Err(e) => {
            log::warn!("gzip failed ({e}); sending the response uncompressed");
            response
        }
    }
}

/// `body` as a gzip stream.
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    gzip_parts(&[body])
}

/// The concatenation of `parts` as one gzip stream, without concatenating them first (a big
/// `/metrics` is ~60 family buffers of up to a few MB each).
pub fn gzip_parts(parts: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    let size: usize = parts.iter().map(|p| p.len()).sum();
    let mut encoder = GzEncoder::new(Vec::with_capacity(size / 6), Compression::fast());
    for part in parts {
        encoder.write_all(part)?;
    }
    encoder.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;

    fn request(accept: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            headers: vec![("accept-encoding".into(), accept.into())],
            ..Request::default()
        }
    }

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        assert!(accepts_gzip(&request("gzip, deflate, br")));
        assert!(accepts_gzip(&request("br;q=1.0, gzip;q=0.8, *;q=0.1")));
        assert!(accepts_gzip(&request("*")));
        assert!(accepts_gzip(&request("x-gzip")));
        assert!(!accepts_gzip(&request("gzip;q=0")));
        assert!(!accepts_gzip(&request("gzip;q=0, *")));
        assert!(!accepts_gzip(&request("identity")));
        assert!(!accepts_gzip(&request("br")));
        assert!(!accepts_gzip(&Request::default()));
    }

    #[test]
    fn text_is_compressed_when_accepted_and_reads_back() {
        let body = "<tr><td>pve</td></tr>".repeat(200);
        let response = negotiate(
            &request("gzip"),
            Response::new(200, "text/html", body.clone()),
        );
        assert_eq!(response.header("content-encoding"), Some("gzip"));
        assert_eq!(response.header("vary"), Some("Accept-Encoding"));
        assert!(response.body.len() < body.len() / 10);
        let mut plain = String::new();
        flate2::read::GzDecoder::new(response.body.as_slice())
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, body);
    }

    #[test]
    fn small_binary_or_unwanted_bodies_stay_as_they_are() {
        let big = "x".repeat(4096);
        let not_accepted = negotiate(
            &request("br"),
            Response::new(200, "application/json", big.clone()),
        );
        assert_eq!(not_accepted.header("content-encoding"), None);
        assert_eq!(not_accepted.header("vary"), Some("Accept-Encoding"));
        let small = negotiate(&request("gzip"), Response::text(200, "ok\n"));
        assert_eq!(small.header("content-encoding"), None);
        let png = negotiate(&request("gzip"), Response::new(200, "image/png", big));
        assert_eq!(png.header("content-encoding"), None);
        assert_eq!(png.header("vary"), None);
    }
}
