//! Maps a request to its handler, and decides who may see it: `/healthz`, `/login`, the
//! assets and `/install/` (the agent installer) are open; `/metrics` follows `[http]` in the
//! config; `/admin/` needs the admin's session (checked in `pages::admin`); everything else
//! needs a dashboard session. Every answer is gzipped here when the client accepts it.

use super::pages::{admin, alerts, backups, charts, forms, host, overview};
use super::session::{self, Denied};
use super::{api, assets, compress, install, prometheus, Request, Response};
use crate::context::Context;

/// Sent with every response: no framing by other sites, no inline or foreign scripts, no
/// referrer leaking host names to other sites.
const SECURITY_HEADERS: [(&str, &str); 3] = [
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
];

/// The response to an ordinary (non-WebSocket) request.
pub fn route(ctx: &Context, request: &Request) -> Response {
    let mut response = match dispatch(ctx, request) {
        Ok(response) => response,
        Err(e) => {
            log::error!("{} {}: {e}", request.method, request.path);
            if request.path.starts_with("/api/") {
                api::error(500, "internal error; see the server log")
            } else {
                Response::text(500, "internal error; see the server log\n")
            }
        }
    };
    for (name, value) in SECURITY_HEADERS {
        response = response.with_header(name, value);
    }
    compress::negotiate(request, response)
}

fn dispatch(ctx: &Context, request: &Request) -> crate::Result<Response> {
    let method = request.method.as_str();
    let path = request.path.as_str();
    let read = method == "GET" || method == "HEAD";
    // Open to anyone.
    match (method, path) {
        (_, "/healthz") if read => return Ok(healthz(ctx)),
        (_, "/healthz") => return Ok(method_not_allowed("GET, HEAD")),
        (_, "/metrics") if read => return prometheus::metrics(ctx, request),
        (_, "/metrics") => return Ok(method_not_allowed("GET, HEAD")),
        (_, "/login") if read => return session::login_page(ctx, request),
        ("POST", "/login") => return session::login(ctx, request),
        (_, "/login") => return Ok(method_not_allowed("GET, HEAD, POST")),
        ("POST", "/logout") => return session::logout(ctx, request),
        (_, "/logout") => return Ok(method_not_allowed("POST")),
        _ => {}
    }
    if let Some(name) = path.strip_prefix("/assets/") {
        if !read {
            return Ok(method_not_allowed("GET, HEAD"));
        }
        return Ok(assets::asset(name).unwrap_or_else(|| Response::text(404, "not found\n")));
    }
    if let Some(name) = path.strip_prefix("/install/") {
        return Ok(install::handle(ctx, request, name));
    }
    if path.starts_with("/admin/") {
        return admin::handle(ctx, request);
    }
    let is_api = path.starts_with("/api/");
    let is_page = path == "/"
        || path.starts_with("/hosts/")
        || path == "/alerts"
        || path.starts_with("/alerts/")
        || path == "/backups";
    if !is_api && !is_page {
        return Ok(Response::text(404, "not found\n"));
    }
    // Everything below needs a session.
    let user = match session::require_user(ctx, request)? {
        Ok(user) => user,
        Err(Denied::NoPassword) if is_api => {
            return Ok(api::error(
                401,
                "no dashboard password is set; run `proxmox-monitor-server set-password`",
            ))
        }
        Err(Denied::NoPassword) => return Ok(forms::setup()),
        Err(Denied::LoginRequired) if is_api => {
            return Ok(api::error(401, "login required (POST /login)"))
        }
        Err(Denied::LoginRequired) => return Ok(session::redirect_to_login(request)),
    };
    let response = if is_api {
        api::handle(ctx, request)?
    } else if let Some(action) = path.strip_prefix("/alerts/") {
        if method == "POST" {
            alerts::post(ctx, request, &user, action)?
        } else {
            method_not_allowed("POST")
        }
    } else if !read {
        method_not_allowed("GET, HEAD")
    } else if path == "/" {
        overview::page_or_fragment(ctx, request)
    } else if path == "/alerts" {
        alerts::page_or_fragment(ctx, request)?
    } else if path == "/backups" {
        backups::page_or_fragment(ctx, request)
    } else {
        let rest = path.trim_start_matches("/hosts/");
        match rest.split_once('/') {
            None => host::page_or_fragment(ctx, request, rest)?,
            Some((name, "chart")) => charts::fragment(ctx, request, name)?,
            Some(_) => forms::not_found(),
        }
    };
    // Logged-in content must not linger in shared caches or the back/forward cache of a
    // browser someone else uses later.
    Ok(
        if response.headers.iter().any(|(n, _)| n == "Cache-Control") {
            response
        } else {
            response.with_header("Cache-Control", "no-store")
        },
    )
}

fn method_not_allowed(allow: &str) -> Response {
    Response::text(405, "method not allowed\n").with_header("Allow", allow)
}

/// For load balancers: 200 while the database answers and takes writes, 503 otherwise.
fn healthz(ctx: &Context) -> Response {
    match ctx
        .store
        .ping()
        .map_err(|e| e.to_string())
        .and_then(|()| ctx.store.health())
    {
        Ok(()) => Response::text(200, "ok\n"),
        Err(e) => {
            log::warn!("/healthz: {e}");
            Response::text(503, format!("database unavailable: {e}\n"))
        }
    }
}
