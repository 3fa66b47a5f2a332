//! The dashboard, rendered on the server with `maud` (escaping by default; raw markup only
//! where a part asks for it). Split by what the pages show:
//!
//! - `overview` — `/`: every host, problems first, as cards or a compact table, with filters;
//! - `alerts` — `/alerts`: firing, quiet, pending, silences, history; acknowledge and silence;
//! - `host` — `/hosts/NAME`: one host's head, history charts and tables;
//! - `charts` — which series make which chart (declared as data), drawn as SVG
//!   (`crate::http::svg`); `/hosts/NAME/chart` serves one chart or sparkline;
//! - `tables` — the tables of a host page;
//! - `parts` — badges, status lines and facts shared by the overview and the host page;
//! - `forms` — login, first-run setup, not found;
//! - `admin` — `/admin/hosts`: add a host (its token and install commands, shown once), rotate
//!   a token, remove a host;
//! - `layout` — the frame around every page.
//!
//! Live updates: each page names its live part's URL in `data-live` (the same page with
//! `fragment=1`); the page script fetches it every 5 s and puts each element with an `id` in
//! place of the one on the page. Charts and sparklines are re-fetched as SVG. All formatting
//! (bytes, rates, durations, "5m ago", badges) happens here in Rust; the script formats
//! nothing. We poll rather than subscribe on the Phoenix socket so the dashboard needs no
//! WebSocket client code and works through any proxy that passes plain HTTP.

pub mod admin;
pub mod alerts;
pub mod charts;
pub mod forms;
pub mod host;
pub mod layout;
pub mod overview;
pub mod parts;
pub mod tables;
