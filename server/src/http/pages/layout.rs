//! The frame of every page: head, header with navigation, main. Pages hand in their body as
//! `maud` markup, so everything in it is escaped unless a part asked for raw HTML.

use maud::{html, Markup, DOCTYPE};

/// Whether the page header offers "Log out".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    LoggedIn,
    LoggedOut,
}

/// A whole page titled `title` around `body`.
pub fn page(title: &str, nav: Nav, body: Markup) -> Markup {
    let version = env!("CARGO_PKG_VERSION");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Proxmox Monitor" }
                link rel="stylesheet" href={ "/assets/style.css?v=" (version) };
                script src={ "/assets/app.js?v=" (version) } defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Proxmox Monitor" }
                    @if nav == Nav::LoggedIn {
                        nav.top-links aria-label="Pages" {
                            a href="/" { "Hosts" }
                            " "
                            a href="/alerts" { "Alerts" }
                            " "
                            a href="/admin/hosts" { "Manage hosts" }
                        }
                        form.logout method="post" action="/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_title_is_escaped_and_the_body_kept() {
        let html = page("<b>", Nav::LoggedOut, html! { p { "ok" } }).into_string();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>&lt;b&gt; · Proxmox Monitor</title>"));
        assert!(html.contains("<main><p>ok</p></main>"));
        assert!(!html.contains("Log out"));
        assert!(page("x", Nav::LoggedIn, html! {})
            .into_string()
            .contains("Log out"));
    }
}
