//! HTML building blocks: escaping, number and time formatting, and the page frame shared by
//! every dashboard page.
//!
//! Everything that did not come from this file's own literals goes through `escape_html`
//! (host, guest, pool and storage names, tags, versions, error details) — guest names and tags
//! are typed by whoever administers the node.

use std::fmt::Write as _;

/// Escapes text for use in HTML element content and in double- or single-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes a string for a JavaScript/JSON string inside an HTML attribute or `<script>`-free
/// context: JSON-encoded, then HTML-escaped.
pub fn escape_attr_json(value: &serde_json::Value) -> String {
    escape_html(&value.to_string())
}

/// `1.5 GiB`, `512 B`: IEC units, three significant digits.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if !bytes.is_finite() {
        return "–".into();
    }
    let mut value = bytes.abs();
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let sign = if bytes < 0.0 { "-" } else { "" };
    if unit == 0 {
        format!("{sign}{value:.0} B")
    } else if value >= 100.0 {
        format!("{sign}{value:.0} {}", UNITS[unit])
    } else if value >= 10.0 {
        format!("{sign}{value:.1} {}", UNITS[unit])
    } else {
        format!("{sign}{value:.2} {}", UNITS[unit])
    }
}

/// `1.5 MiB/s`.
pub fn format_rate(bytes_per_s: f64) -> String {
    format!("{}/s", format_bytes(bytes_per_s))
}

/// `18.5 %`.
pub fn format_percent(percent: f64) -> String {
    if percent.is_finite() {
        format!("{percent:.1} %")
    } else {
        "–".into()
    }
}

/// `3d 4h`, `5h 12m`, `42s`: the two largest units.
pub fn format_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// `just now`, `5m ago`, `2d 3h ago` relative to `now`.
pub fn format_ago(unix: i64, now: i64) -> String {
    let age = now - unix;
    if age < 5 {
        "just now".into()
    } else {
        format!("{} ago", format_duration(age))
    }
}

/// `2026-11-25 12:00:00 UTC`.
pub fn format_utc(unix: i64) -> String {
    let text = common::time::format_rfc3339(common::time::from_unix_seconds(unix));
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// `<time>` showing "5m ago", the exact UTC time as its tooltip; the page script keeps the
/// relative text current.
pub fn time_ago(unix: i64, now: i64) -> String {
    format!(
        "<time datetime=\"{unix}\" title=\"{}\" data-ago>{}</time>",
        format_utc(unix),
        format_ago(unix, now)
    )
}

/// An optional value formatted, or a dash.
pub fn or_dash<T>(value: Option<T>, format: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "–".to_owned(), format)
}

/// The frame of every page: head, header with navigation, `body_html`, scripts.
/// `title` is escaped here; `body_html` must already be safe HTML.
pub fn page(title: &str, nav: Nav, body_html: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = String::with_capacity(body_html.len() + 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <title>{} · Proxmox Monitor</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/style.css?v={version}\">\n\
         <script src=\"/assets/app.js?v={version}\" defer></script>\n\
         </head>\n<body>\n<header class=\"top\"><a class=\"brand\" href=\"/\">Proxmox Monitor</a>",
        escape_html(title)
    );
    if nav == Nav::LoggedIn {
        out.push_str(
            "<form class=\"logout\" method=\"post\" action=\"/logout\">\
             <button type=\"submit\">Log out</button></form>",
        );
    }
    out.push_str("</header>\n<main>\n");
    out.push_str(body_html);
    out.push_str("\n</main>\n</body>\n</html>\n");
    out
}

/// Whether the page header offers "Log out".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    LoggedIn,
    LoggedOut,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape_html("<script>alert('x&y')</script>\""),
            "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;"
        );
        assert_eq!(escape_html("web01"), "web01");
        assert_eq!(escape_html("größe"), "größe");
    }

    #[test]
    fn page_escapes_its_title() {
        let html = page("<b>", Nav::LoggedOut, "<p>ok</p>");
        assert!(html.contains("<title>&lt;b&gt; · Proxmox Monitor</title>"));
        assert!(html.contains("<p>ok</p>"));
        assert!(!html.contains("Log out"));
    }

    #[test]
    fn formats() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1536.0), "1.50 KiB");
        assert_eq!(format_bytes(67_337_670_656.0), "62.7 GiB");
        assert_eq!(format_bytes(991_600_574_464.0), "924 GiB");
        assert_eq!(format_rate(1_000_000.0), "977 KiB/s");
        assert_eq!(format_percent(18.46), "18.5 %");
        assert_eq!(format_duration(350_765), "4d 1h");
        assert_eq!(format_duration(3725), "1h 2m");
        assert_eq!(format_duration(42), "42s");
        assert_eq!(format_ago(100, 102), "just now");
        assert_eq!(format_ago(100, 400), "5m 0s ago");
        assert_eq!(format_utc(1_764_110_715), "2025-11-25 22:45:15 UTC");
    }
}
