//! Dashboard login: the `admin` password (bcrypt), session cookies, logout, and a backoff on
//! repeated failures.
//!
//! A session id is 32 random bytes (URL-safe base64) sent as an HttpOnly, SameSite=Strict
//! cookie (`Secure` with `[http] secure_cookies`). The database stores only its SHA-256: the id
//! has 256 bits of entropy, so a fast unsalted hash is enough to make a leaked database
//! useless as a cookie jar, and lookups stay one indexed query per request (bcrypt would cost
//! a quarter second per page).
//!
//! Backoff: after `FREE_FAILURES` wrong passwords from one IP address, that address must wait
//! 1, 2, 4, … (at most `MAX_DELAY`) seconds after each further failure before the password is
//! checked again; attempts during the wait get 429 without touching bcrypt. A global counter
//! does the same across all addresses (with more free failures), so that guessing from many
//! addresses is slowed as well — at the price that such an attack also delays the admin. The
//! counts live in memory and are forgotten `FORGET_AFTER` after the last failure. Nothing
//! sleeps: a waiting client is answered at once, so the backoff never pins a thread.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::html::{escape_html, page, Nav};
use super::{form_params, Request, Response};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::store::ADMIN_USER;

pub const COOKIE_NAME: &str = "pm_session";
/// A session ends this long after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 86400);
/// Passwords shorter than this are refused by `set-password`.
pub const MIN_PASSWORD_LEN: usize = 10;
/// bcrypt ignores everything past 72 bytes; refuse rather than silently truncate.
pub const MAX_PASSWORD_BYTES: usize = 72;

const FREE_FAILURES: u32 = 3;
const GLOBAL_FREE_FAILURES: u32 = 20;
const MAX_DELAY: Duration = Duration::from_secs(300);
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Addresses remembered at most; past this, stale entries go, then (under a flood) all —
/// the global counter still applies.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// HTTP-side state shared by all connection threads.
#[derive(Default)]
pub struct HttpState {
    pub login_throttle: LoginThrottle,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long from `now` until another attempt may be checked.
    fn wait(&self, free: u32, now: Instant) -> Duration {
        if self.count < free || now.duration_since(self.last) >= FORGET_AFTER {
            return Duration::ZERO;
        }
        let exponent = (self.count - free).min(16);
        let delay = Duration::from_secs(1u64 << exponent).min(MAX_DELAY);
        delay.saturating_sub(now.duration_since(self.last))
    }

    fn record(entry: &mut Option<Failures>, now: Instant) {
        let count = match entry {
            Some(f) if now.duration_since(f.last) < FORGET_AFTER => f.count.saturating_add(1),
            _ => 1,
        };
        *entry = Some(Failures { count, last: now });
    }
}

/// Failed-login counts per client address and overall.
#[derive(Default)]
pub struct LoginThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    per_address: HashMap<IpAddr, Failures>,
    global: Option<Failures>,
}

impl LoginThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `address` must still wait before its next attempt is checked (zero: go ahead).
    pub fn wait(&self, address: Option<IpAddr>, now: Instant) -> Duration {
        let state = self.lock();
        let own = address
            .and_then(|a| state.per_address.get(&a))
            .map_or(Duration::ZERO, |f| f.wait(FREE_FAILURES, now));
        let global = state
            .global
            .map_or(Duration::ZERO, |f| f.wait(GLOBAL_FREE_FAILURES, now));
        own.max(global)
    }

    pub fn record_failure(&self, address: Option<IpAddr>, now: Instant) {
        let mut state = self.lock();
        Failures::record(&mut state.global, now);
        if let Some(address) = address {
            if state.per_address.len() >= MAX_TRACKED_ADDRESSES {
                state
                    .per_address
                    .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
                if state.per_address.len() >= MAX_TRACKED_ADDRESSES {
                    state.per_address.clear();
                }
            }
            let mut entry = state.per_address.get(&address).copied();
            Failures::record(&mut entry, now);
            if let Some(f) = entry {
                state.per_address.insert(address, f);
            }
        }
    }

    /// A correct password clears that address's count. The global count stays: it decays
    /// on its own, and one success says nothing about the other addresses.
    pub fn record_success(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            self.lock().per_address.remove(&address);
        }
    }
}

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
        return Ok(setup_page());
    }
    let next = safe_next(request.query_param_decoded("next").as_deref());
    Ok(login_form(200, &next, None))
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
    let address = request.peer;
    let now = Instant::now();
    let wait = ctx.http.login_throttle.wait(address, now);
    if !wait.is_zero() {
        let seconds = wait.as_secs().max(1);
        return Ok(login_form(
            429,
            &next,
            Some(&format!(
                "Too many failed attempts. Try again in {seconds} s."
            )),
        )
        .with_header("Retry-After", seconds.to_string()));
    }
    let Some(hash) = ctx.store.password_hash(ADMIN_USER)? else {
        return Ok(setup_page());
    };
    // The database lock is not held here: bcrypt takes a while by design.
    let password_ok = if field("username") == ADMIN_USER {
        crate::auth::verify_secret(field("password"), &hash)
    } else {
        crate::auth::burn_verification(ctx.config.bcrypt_cost);
        false
    };
    if !password_ok {
        ctx.http.login_throttle.record_failure(address, now);
        log::warn!(
            "failed dashboard login from {}",
            address.map_or_else(|| "?".to_owned(), |a| a.to_string())
        );
        return Ok(login_form(401, &next, Some("Wrong user name or password.")));
    }
    ctx.http.login_throttle.record_success(address);
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
                session_cookie(&session_id, lifetime, ctx.config.http.secure_cookies),
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
            .with_header(
                "Set-Cookie",
                session_cookie("", 0, ctx.config.http.secure_cookies),
            ),
    )
}

/// The page shown until `set-password` has been run.
pub fn setup_page() -> Response {
    let body = "<section class=\"card narrow\"><h1>Set a dashboard password</h1>\
        <p>No password is set yet, so the dashboard shows nothing. On the server, run:</p>\
        <pre>proxmox-monitor-server set-password --database /var/lib/proxmox-monitor/server.db</pre>\
        <p>It asks for the password of the user <code>admin</code> (or reads it from stdin \
        when stdin is not a terminal). Then <a href=\"/login\">log in</a>.</p></section>";
    Response::new(
        503,
        "text/html; charset=utf-8",
        page("Setup", Nav::LoggedOut, body),
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

/// Sets a password for `admin`, for `set-password`: checks its length and hashes it.
pub fn set_admin_password(
    ctx_store: &crate::store::Store,
    password: &str,
    cost: u32,
) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Usage(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::Usage(format!(
            "the password must fit in {MAX_PASSWORD_BYTES} bytes (bcrypt ignores the rest)"
        )));
    }
    let hash = crate::auth::hash_secret(password, cost)?;
    ctx_store.set_password_hash(ADMIN_USER, &hash, common::time::now_unix())
}

fn session_cookie(value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
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

fn login_form(status: u16, next: &str, error: Option<&str>) -> Response {
    let error_html = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape_html(e))
    });
    let body = format!(
        "<section class=\"card narrow\"><h1>Log in</h1>{error_html}\
         <form method=\"post\" action=\"/login\" class=\"login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>User name <input name=\"username\" value=\"admin\" autocomplete=\"username\" required></label>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus></label>\
         <button type=\"submit\">Log in</button></form></section>",
        escape_html(next)
    );
    Response::new(
        status,
        "text/html; charset=utf-8",
        page("Log in", Nav::LoggedOut, &body),
    )
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
    fn backoff_grows_per_address_and_forgets() {
        let throttle = LoginThrottle::default();
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            throttle.record_failure(a, t0);
        }
        assert_eq!(throttle.wait(a, t0), Duration::ZERO);
        throttle.record_failure(a, t0);
        assert_eq!(throttle.wait(a, t0), Duration::from_secs(1));
        throttle.record_failure(a, t0);
        assert_eq!(throttle.wait(a, t0), Duration::from_secs(2));
        assert_eq!(
            throttle.wait(a, t0 + Duration::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(
            throttle.wait(b, t0),
            Duration::ZERO,
            "other addresses unaffected"
        );
        for _ in 0..20 {
            throttle.record_failure(a, t0);
        }
        assert_eq!(throttle.wait(a, t0), MAX_DELAY, "capped");
        assert_eq!(throttle.wait(a, t0 + FORGET_AFTER), Duration::ZERO);
        throttle.record_success(a);
        assert_eq!(throttle.wait(a, t0), throttle.wait(b, t0));
    }

    #[test]
    fn backoff_applies_globally_across_addresses() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..GLOBAL_FREE_FAILURES + 2 {
            throttle.record_failure(Some(IpAddr::from([10, 0, 0, (i % 250) as u8])), t0);
        }
        assert!(throttle.wait(Some("192.0.2.9".parse().unwrap()), t0) > Duration::ZERO);
        assert!(throttle.wait(None, t0) > Duration::ZERO);
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

    #[test]
    fn login_form_escapes_next() {
        let response = login_form(200, "/\"><script>", None);
        let body = String::from_utf8(response.body).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&quot;&gt;&lt;script&gt;"));
    }
}
