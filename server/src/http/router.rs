//! Maps a request to its handler.

use super::{Request, Response};
use crate::context::Context;

/// The response to an ordinary (non-WebSocket) request.
pub fn route(ctx: &Context, request: &Request) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET" | "HEAD", "/healthz") => healthz(ctx),
        (_, "/healthz") => {
            Response::text(405, "method not allowed\n").with_header("Allow", "GET, HEAD")
        }
        _ => Response::text(404, "not found\n"),
    }
}

/// For load balancers: 200 while the database answers, 503 otherwise.
fn healthz(ctx: &Context) -> Response {
    let ok = ctx
        .store
        .lock()
        .query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
        .is_ok();
    if ok {
        Response::text(200, "ok\n")
    } else {
        Response::text(503, "database unavailable\n")
    }
}
