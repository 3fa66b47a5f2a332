//! Pages that are forms or messages: log in, set a password first, not found.

use maud::html;

use super::layout::{page, Nav};
use crate::http::Response;

/// The login form; `error` is shown above it.
pub fn login(status: u16, next: &str, error: Option<&str>) -> Response {
    let body = html! {
        section.card.narrow {
            h1 { "Log in" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form.login method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "User name " input name="username" value="admin" autocomplete="username" required; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required autofocus; }
                button type="submit" { "Log in" }
            }
        }
    };
    Response::html(status, page("Log in", Nav::LoggedOut, body))
}

/// The page shown until `set-password` has been run.
pub fn setup() -> Response {
    let body = html! {
        section.card.narrow {
            h1 { "Set a dashboard password" }
            p { "No password is set yet, so the dashboard shows nothing. On the server, run:" }
            pre { "proxmox-monitor-server set-password --database /var/lib/proxmox-monitor/server.db" }
            p {
                "It asks for the password of the user " code { "admin" }
                " (or reads it from stdin when stdin is not a terminal). Then "
                a href="/login" { "log in" } "."
            }
        }
    };
    Response::html(503, page("Setup", Nav::LoggedOut, body))
}

/// 404 for a page or host that does not exist.
pub fn not_found() -> Response {
    let body = html! {
        section.card.narrow {
            h1 { "Not found" }
            p { "No such page or host. " a href="/" { "All hosts" } }
        }
    };
    Response::html(404, page("Not found", Nav::LoggedIn, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_login_form_escapes_next_and_the_error() {
        let response = login(401, "/\"><script>", Some("<b>no</b>"));
        assert_eq!(response.status, 401);
        let body = String::from_utf8(response.body).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&quot;&gt;&lt;script&gt;"));
        assert!(body.contains("&lt;b&gt;no&lt;/b&gt;"));
    }

    #[test]
    fn setup_and_not_found() {
        assert_eq!(setup().status, 503);
        assert_eq!(not_found().status, 404);
    }
}
