//! The stylesheet and page script, compiled into the binary so that the dashboard works with
//! no network beyond this server (air-gapped sites).

use super::Response;

const STYLE_CSS: &str = include_str!("../../assets/style.css");
const APP_JS: &str = include_str!("../../assets/app.js");

/// `GET /assets/NAME`; `None` for names we do not have. URLs carry `?v=<version>`, so the
/// files may be cached for a day without an upgrade serving stale ones.
pub fn asset(name: &str) -> Option<Response> {
    let (content_type, body) = match name {
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        _ => return None,
    };
    Some(
        Response::new(200, content_type, body)
            .with_header("Cache-Control", "public, max-age=86400"),
    )
}
