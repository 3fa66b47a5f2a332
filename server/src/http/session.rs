//! Dashboard sessions: login and logout handlers and session cookies. The password rules and
//! the backoff on repeated failures live in `crate::auth`, the forms in `pages::forms`.
//!
//! A session id is 32 random bytes (URL-safe base64) sent as an HttpOnly, SameSite=Strict
//! cookie, `Secure` when the server speaks HTTPS itself (`tls_cert`) or is behind an HTTPS
//! proxy (`[http] secure_cookies`). The database stores only its SHA-256: the id
//! has 256 bits of entropy, so a fast unsalted hash is enough to make a leaked database
//! useless as a cookie jar, and lookups stay one indexed query per request (bcrypt would cost
//! a quarter second per page).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::pages::forms;
use super::{form_params, Request, Response};
use crate::context::Context;
use crate::error::Result;
use crate::store::ADMIN_USER;

pub const COOKIE_NAME: &str = "pm_session";
/// A session ends this long after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 86400);

/// The SHA-256 (hex) of a session id: what the `sessions` table keys on.
pub fn session_id_hash(session_id: &str) -> String {
    let digest = Sha256::digest(session_id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in the request's `Cookie` header(s).
pub fn cookie<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// The logged-in user of this request, if its session cookie names a live session.
pub fn current_user(ctx: &Context, request: &Request) -> Result<Option<String>> {
    let Some(id) = cookie(request, COOKIE_NAME).filter(|id| !id.is_empty()) else {
        return Ok(None);
    };
    ctx.store
        .session_user(&session_id_hash(id), common::time::now_unix())
}

/// What a request for a protected page or API gets when it is not logged in.
pub enum Denied {
    /// No password set yet: only the setup instructions are shown.
    NoPassword,
    LoginRequired,
}

/// `Ok(user)` when logged in; otherwise why not.
pub fn require_user(
    ctx: &Context,
    request: &Request,
) -> Result<std::result::Result<String, Denied>> {
    if let Some(user) = current_user(ctx, request)? {
        return Ok(Ok(user));
    }
    if ctx.store.has_users()? {
        Ok(Err(Denied::LoginRequired))
    } else {
        Ok(Err(Denied::NoPassword))
    }
}

/// `GET /login`.
pub fn login_page(ctx: &Context, request: &Request) -> Result<Response> {
    if !ctx.store.has_users()? {
        return Ok(forms::setup());
    }
    let next = safe_next(request.query_param_decoded("next").as_deref());
    Ok(forms::login(200, &next, None))
}

/// The client a request comes from, for the login backoff: the TCP peer, unless that is one of
/// `trusted_proxies`; then the right-most address of `X-Forwarded-For` that is not a trusted
/// proxy itself (what the nearest proxy saw; addresses further left are the client's word).
pub fn client_address(trusted_proxies: &[IpAddr], request: &Request) -> Option<IpAddr> {
    let peer = request.peer?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
        .flat_map(|(_, value)| value.split(','))
        .map(|part| part.trim().parse::<IpAddr>())
        .collect::<std::result::Result<_, _>>()
        .unwrap_or_default();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted_proxies.contains(a))
        .or(Some(peer))
}

/// `POST /login` with form fields `username`, `password` and optionally `next`.
pub fn login(ctx: &Context, request: &Request) -> Result<Response> {
    if !same_origin(request) {
        return Ok(Response::text(403, "cross-origin login refused\n"));
    }
    let form = form_params(&request.body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let next = safe_next(Some(field("next")));
    let address = client_address(&ctx.config.http.trusted_proxies, request);
    let now = Instant::now();
    let Some(hash) = ctx.store.password_hash(ADMIN_USER)? else {
        return Ok(forms::setup());
    };
    // Counted as a failure before bcrypt runs (see `auth`): parallel guesses cannot all pass.
    if let Err(wait) = ctx.login_throttle.reserve(address, now) {
        let seconds = wait.as_secs().max(1);
        return Ok(forms::login(
            429,
            &next,
            Some(&format!(
                "Too many failed attempts. Try again in {seconds} s."
            )),
        )
        .with_header("Retry-After", seconds.to_string()));
    }
    // The database lock is not held here: bcrypt takes a while by design, in the bounded pool.
    let password_ok = if field("username") == ADMIN_USER {
        ctx.auth.verify(field("password"), &hash)
    } else {
        ctx.auth.burn();
        false
    };
    if !password_ok {
        log::warn!(
            "failed dashboard login from {}",
            address.map_or_else(|| "?".to_owned(), |a| a.to_string())
        );
        return Ok(forms::login(
            401,
            &next,
            Some("Wrong user name or password."),
        ));
    }
    ctx.login_throttle.record_success(address);
    let session_id = crate::auth::generate_token()?;
    let now_unix = common::time::now_unix();
    let lifetime = i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX);
    ctx.store.create_session(
        &session_id_hash(&session_id),
        ADMIN_USER,
        now_unix,
        now_unix.saturating_add(lifetime),
    )?;
    Ok(
        Response::new(303, "text/plain; charset=utf-8", "logged in\n")
            .with_header("Location", next)
            .with_header(
                "Set-Cookie",
                session_cookie(&session_id, lifetime, secure_cookies(ctx)),
            ),
    )
}

/// `POST /logout`: ends the session and clears the cookie.
pub fn logout(ctx: &Context, request: &Request) -> Result<Response> {
    if !same_origin(request) {
        return Ok(Response::text(403, "cross-origin logout refused\n"));
    }
    if let Some(id) = cookie(request, COOKIE_NAME) {
        ctx.store.delete_session(&session_id_hash(id))?;
    }
    Ok(
        Response::new(303, "text/plain; charset=utf-8", "logged out\n")
            .with_header("Location", "/login")
            .with_header("Set-Cookie", session_cookie("", 0, secure_cookies(ctx))),
    )
}

/// Where to go after login: a local path only (never `//host` or `https://…`), else `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The redirect to the login page for a request that needs a session.
pub fn redirect_to_login(request: &Request) -> Response {
    let mut target = request.path.clone();
    if let Some(query) = &request.query {
        target.push('?');
        target.push_str(query);
    }
    let location = format!("/login?next={}", percent_encode(&target));
    Response::new(303, "text/plain; charset=utf-8", "login required\n")
        .with_header("Location", location)
}

/// Whether the session cookie is marked `Secure`: the dashboard is reached over HTTPS, served
/// by this server (TLS on) or by a TLS-terminating proxy in front of it (`secure_cookies`).
fn secure_cookies(ctx: &Context) -> bool {
    ctx.tls.is_some() || ctx.config.http.secure_cookies
}

fn session_cookie(value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The anti-forgery token the dashboard's forms carry: derived from the session id (which
/// only this browser has, in an HttpOnly cookie), so no other site can know it. Empty
/// without a session.
pub fn csrf_token(request: &Request) -> String {
    match cookie(request, COOKIE_NAME).filter(|id| !id.is_empty()) {
        Some(id) => session_id_hash(&format!("csrf:{id}")),
        None => String::new(),
    }
}

/// Whether a state-changing form post (acknowledge, silence; add, rotate, remove a host) comes
/// from our own page: the same-origin check of the login form, and the session's anti-forgery
/// token in the field `csrf` (SameSite=Strict cookies already stay off other sites' requests;
/// this holds even for a browser that ignores SameSite).
pub fn form_allowed(request: &Request, form: &[(String, String)]) -> bool {
    let expected = csrf_token(request);
    let offered = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map_or("", |(_, v)| v.as_str());
    same_origin(request)
        && !expected.is_empty()
        && offered.len() == expected.len()
        && offered
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A state-changing POST must come from our own pages. SameSite=Strict already keeps the
/// cookie off cross-site requests; this also refuses a cross-site form posting a guessed
/// password from a victim's browser (login CSRF). Browsers send `Origin` on POST; a client
/// that sends none (curl) is not a browser being abused.
fn same_origin(request: &Request) -> bool {
    match (request.header("origin"), request.header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .unwrap_or("");
            origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => false,
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_comes_from_forwarded_for_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let request = |peer: &str, forwarded: &[&str]| Request {
            peer: Some(peer.parse().unwrap()),
            headers: forwarded
                .iter()
                .map(|v| ("x-forwarded-for".to_owned(), (*v).to_owned()))
                .collect(),
            ..Request::default()
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Not behind a trusted proxy: the header is the client's word, ignored.
        assert_eq!(
            client_address(&[], &request("192.0.2.1", &["198.51.100.7"])),
            ip("192.0.2.1")
        );
        // Behind it: the right-most address the proxy did not add itself.
        assert_eq!(
            client_address(&[proxy], &request("127.0.0.1", &["198.51.100.7"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(
                &[proxy],
                &request("127.0.0.1", &["203.0.113.5, 198.51.100.7"])
            ),
            ip("198.51.100.7"),
            "what the client wrote further left is not believed"
        );
        assert_eq!(
            client_address(
                &[proxy],
                &request("127.0.0.1", &["198.51.100.7", "127.0.0.1"])
            ),
            ip("198.51.100.7")
        );
        // A header that does not parse: the proxy itself.
        assert_eq!(
            client_address(&[proxy], &request("127.0.0.1", &["junk"])),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(&[proxy], &request("127.0.0.1", &[])),
            ip("127.0.0.1")
        );
    }

    fn request_with(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".into(),
            path: "/login".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn session_hash_is_sha256_hex() {
        assert_eq!(
            session_id_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cookies_are_found_among_others() {
        let request = request_with(&[("cookie", "a=1; pm_session=xyz; b=2")]);
        assert_eq!(cookie(&request, COOKIE_NAME), Some("xyz"));
        assert_eq!(cookie(&request, "c"), None);
        let cookie_text = session_cookie("v", 60, true);
        assert!(cookie_text.contains("HttpOnly") && cookie_text.contains("SameSite=Strict"));
        assert!(cookie_text.ends_with("; Secure"));
        assert!(!session_cookie("v", 60, false).contains("Secure"));
    }

    #[test]
    fn next_must_stay_on_this_site() {
        assert_eq!(
            safe_next(Some("/hosts/pve1?range=7d")),
            "/hosts/pve1?range=7d"
        );
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
        let request = Request {
            path: "/hosts/pve1".into(),
            query: Some("range=7d".into()),
            ..Request::default()
        };
        let response = redirect_to_login(&request);
        assert_eq!(response.status, 303);
        assert!(response.headers.contains(&(
            "Location".into(),
            "/login?next=/hosts/pve1%3Frange%3D7d".into()
        )));
    }

    #[test]
    fn forms_need_this_sessions_token() {
        let request = request_with(&[("cookie", "pm_session=abc"), ("host", "mon")]);
        let token = csrf_token(&request);
        assert_eq!(token.len(), 64);
        let form = |t: &str| vec![("csrf".to_owned(), t.to_owned())];
        assert!(form_allowed(&request, &form(&token)));
        assert!(!form_allowed(&request, &form("")));
        assert!(!form_allowed(
            &request,
            &form(&session_id_hash("csrf:other"))
        ));
        let other_session = request_with(&[("cookie", "pm_session=xyz"), ("host", "mon")]);
        assert!(!form_allowed(&other_session, &form(&token)));
        let cross_site = request_with(&[
            ("cookie", "pm_session=abc"),
            ("host", "mon"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!form_allowed(&cross_site, &form(&token)));
        assert!(
            !form_allowed(&request_with(&[]), &form("")),
            "no session, no form"
        );
    }

    #[test]
    fn cross_origin_posts_are_refused() {
        assert!(same_origin(&request_with(&[])));
        assert!(same_origin(&request_with(&[
            ("origin", "http://mon:4000"),
            ("host", "mon:4000")
        ])));
        assert!(!same_origin(&request_with(&[
            ("origin", "https://evil.example"),
            ("host", "mon:4000")
        ])));
        assert!(!same_origin(&request_with(&[
            ("origin", "null"),
            ("host", "mon")
        ])));
    }
}
