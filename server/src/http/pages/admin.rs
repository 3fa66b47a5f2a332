//! `/admin/hosts`: adding a host (a name → its token, shown once, with the commands that
//! install the agent on the node and its config filled in), rotating a host's token and
//! removing a host, each after a confirmation page. Admin only; every form carries the
//! session's anti-forgery token and must come from this site (`session::form_allowed`).
//!
//! A rotation or removal takes effect at once: the host's live connection is kicked (its
//! thread woken through `ws::Sockets`), a join with the old token is refused, and the host's
//! entry in memory follows the database before the answer is sent.

use maud::{html, Markup};

use super::forms;
use super::layout::{page, Nav};
use super::parts::{status_badge, time_ago};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::http::install::{self, AGENT_CONFIG_PATH};
use crate::http::session::{self, Denied};
use crate::http::{form_params, Request, Response};
use crate::store::ADMIN_USER;

/// Every request under `/admin/`: checks the session, then routes.
pub fn handle(ctx: &Context, request: &Request) -> Result<Response> {
    let user = match session::require_user(ctx, request)? {
        Ok(user) => user,
        Err(Denied::NoPassword) => return Ok(forms::setup()),
        Err(Denied::LoginRequired) => return Ok(session::redirect_to_login(request)),
    };
    if !may_manage_hosts(&user) {
        return Ok(message(
            403,
            "Not allowed",
            "Only the admin user may add, rotate or remove hosts.",
        ));
    }
    let response = route(ctx, request, &user)?;
    // Tokens and forms: never kept by a cache or the back/forward cache.
    Ok(response.with_header("Cache-Control", "no-store"))
}

/// Whether `user` may change the roster (today there is one user; this keeps it that way
/// should read-only users come).
fn may_manage_hosts(user: &str) -> bool {
    user == ADMIN_USER
}

fn route(ctx: &Context, request: &Request, user: &str) -> Result<Response> {
    let method = request.method.as_str();
    let read = method == "GET" || method == "HEAD";
    let Some(rest) = request.path.strip_prefix("/admin/hosts") else {
        return Ok(forms::not_found());
    };
    if rest.is_empty() || rest == "/" {
        return match method {
            _ if read => Ok(list(ctx, request, None, 200)),
            "POST" => add(ctx, request, user),
            _ => Ok(method_not_allowed("GET, HEAD, POST")),
        };
    }
    let Some((name, action)) = rest.trim_start_matches('/').split_once('/') else {
        return Ok(forms::not_found());
    };
    let action = match action {
        "rotate" => Action::Rotate,
        "remove" => Action::Remove,
        _ => return Ok(forms::not_found()),
    };
    if common::events::validate_host_name(name).is_err() {
        return Ok(forms::not_found());
    }
    let Some(host) = ctx.store.host_by_name(name)? else {
        return Ok(message(
            404,
            "No such host",
            &format!("There is no host named {name} (removed meanwhile?)."),
        ));
    };
    match (method, action) {
        (_, _) if read => Ok(confirm(request, &host.name, action)),
        ("POST", Action::Rotate) => rotate(ctx, request, user, &host.name, host.id),
        ("POST", Action::Remove) => remove(ctx, request, user, &host.name, host.id),
        _ => Ok(method_not_allowed("GET, HEAD, POST")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Rotate,
    Remove,
}

fn method_not_allowed(allow: &str) -> Response {
    Response::text(405, "method not allowed\n").with_header("Allow", allow)
}

/// The form fields, when the post came from our own page with this session's token.
fn checked_form(request: &Request) -> Option<Vec<(String, String)>> {
    let form = form_params(&request.body);
    session::form_allowed(request, &form).then_some(form)
}

fn forged() -> Response {
    message(
        403,
        "Form refused",
        "This form did not come from this dashboard in your current session (or the session \
         has changed since the page was loaded). Reload the page and try again.",
    )
}

fn field<'f>(form: &'f [(String, String)], name: &str) -> &'f str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// `POST /admin/hosts` (`name`): registers the host; the answer shows its token once.
fn add(ctx: &Context, request: &Request, user: &str) -> Result<Response> {
    let Some(form) = checked_form(request) else {
        return Ok(forged());
    };
    let name = field(&form, "name").trim();
    if let Err(reason) = common::events::validate_host_name(name) {
        return Ok(list(
            ctx,
            request,
            Some(&format!("Not a host name: {reason}.")),
            400,
        ));
    }
    if ctx.store.host_by_name(name)?.is_some() {
        return Ok(list(
            ctx,
            request,
            Some(&format!(
                "A host named {name} is registered already. To give it a new token, use \
                 \"Rotate token\" in its row."
            )),
            409,
        ));
    }
    let token = crate::auth::generate_token()?;
    // bcrypt takes a while by design; no lock is held here.
    let hash = crate::auth::hash_secret(&token, ctx.config.bcrypt_cost)?;
    let host = match ctx.store.create_host(name, &hash, common::time::now_unix()) {
        Ok(host) => host,
        Err(Error::HostExists(_)) => {
            return Ok(list(
                ctx,
                request,
                Some(&format!("A host named {name} was registered just now.")),
                409,
            ))
        }
        Err(e) => return Err(e),
    };
    follow_roster(ctx)?;
    log::info!(
        "host {} added from the dashboard by {user} ({})",
        host.name,
        peer(request)
    );
    Ok(token_page(ctx, request, &host.name, &token, true))
}

/// `POST /admin/hosts/NAME/rotate`: a new token; the old one stops working at once.
fn rotate(
    ctx: &Context,
    request: &Request,
    user: &str,
    name: &str,
    host_id: i64,
) -> Result<Response> {
    if checked_form(request).is_none() {
        return Ok(forged());
    }
    let token = crate::auth::generate_token()?;
    let hash = crate::auth::hash_secret(&token, ctx.config.bcrypt_cost)?;
    let now = common::time::now_unix();
    ctx.store.set_token_hash(name, &hash, now)?;
    let kicked = disconnect(ctx, host_id, name, now);
    log::info!(
        "token of host {name} rotated from the dashboard by {user} ({}){}",
        peer(request),
        if kicked {
            "; its connection is closed"
        } else {
            ""
        }
    );
    Ok(token_page(ctx, request, name, &token, false))
}

/// `POST /admin/hosts/NAME/remove`: the host and all its history go.
fn remove(
    ctx: &Context,
    request: &Request,
    user: &str,
    name: &str,
    host_id: i64,
) -> Result<Response> {
    if checked_form(request).is_none() {
        return Ok(forged());
    }
    match ctx.store.remove_host(name) {
        Ok(()) | Err(Error::UnknownHost(_)) => {}
        Err(e) => return Err(e),
    }
    // Removed from the database first, so that the agent's next join is refused.
    let kicked = disconnect(ctx, host_id, name, common::time::now_unix());
    follow_roster(ctx)?;
    log::info!(
        "host {name} removed from the dashboard by {user} ({}){}",
        peer(request),
        if kicked {
            "; its connection is closed"
        } else {
            ""
        }
    );
    Ok(Response::new(303, "text/plain; charset=utf-8", "removed\n")
        .with_header("Location", format!("/admin/hosts?removed={name}")))
}

/// Closes the host's live connection, if any, marking it offline; whether there was one.
fn disconnect(ctx: &Context, host_id: i64, name: &str, now: i64) -> bool {
    let kicked = ctx
        .registry
        .revoke(host_id, || match ctx.store.mark_offline(host_id, now) {
            Ok(Some(row)) => ctx.hosts.set_row(row),
            Ok(None) => {}
            Err(e) => log::error!("marking {name} offline: {e}"),
        });
    if kicked {
        ctx.sockets.wake_kicked();
    }
    kicked
}

/// Brings the hosts in memory in line with the database now, rather than at the roster
/// watch's next look, so that the next page shows the change.
fn follow_roster(ctx: &Context) -> Result<()> {
    let mark = ctx.hosts.roster_mark();
    let ids = ctx.store.host_ids()?;
    // A host removed here was revoked already; nothing more to kick.
    ctx.hosts
        .reconcile(mark, &ids, |id| ctx.store.host_by_id(id))
        .map(drop)
}

fn peer(request: &Request) -> String {
    request
        .peer
        .map_or_else(|| "?".to_owned(), |a| a.to_string())
}

/// `GET /admin/hosts`: the form to add a host and every host with its actions.
fn list(ctx: &Context, request: &Request, error: Option<&str>, status: u16) -> Response {
    let csrf = session::csrf_token(request);
    let mut hosts = ctx.hosts.snapshot();
    hosts.sort_by(|a, b| a.name().cmp(b.name()));
    let now = common::time::now_unix();
    let removed = request
        .query_param_decoded("removed")
        .filter(|n| common::events::validate_host_name(n).is_ok());
    let installer = installer_note(ctx);
    let body = html! {
        nav.crumbs { a href="/" { "← All hosts" } }
        h1 { "Manage hosts" }
        @if let Some(name) = &removed {
            p.notice role="status" { "Host " strong { (name) } " and its history were removed." }
        }
        section.card.admin {
            h2 { "Add a host" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form.add-host method="post" action="/admin/hosts" {
                input type="hidden" name="csrf" value=(csrf);
                label {
                    "Name "
                    input name="name" required maxlength="100" pattern="[A-Za-z0-9._\\-]{1,100}"
                        placeholder="pve1" autocomplete="off" autofocus;
                }
                button type="submit" { "Add host" }
            }
            p.hint {
                "The node's name as the dashboard should show it (1–100 of A–Z a–z 0–9 . _ -). "
                "The next page shows its token, once, with the commands that install the "
                "agent on the node."
            }
            (installer)
        }
        section.card.admin {
            h2 { "Hosts (" (hosts.len()) ")" }
            @if hosts.is_empty() {
                p { "No hosts yet." }
            } @else {
                table.admin-hosts {
                    thead { tr { th { "Name" } th { "Status" } th { "Last seen" } th { "Agent" } th {} } }
                    tbody {
                        @for host in &hosts {
                            tr data-host=(host.name()) {
                                td { a href={ "/hosts/" (host.name()) } { (host.name()) } }
                                td { (status_badge(host.host.status)) }
                                td {
                                    @match host.host.last_seen_at {
                                        Some(t) => (time_ago(t, now)),
                                        None => "never",
                                    }
                                }
                                td { (host.host.agent_version.as_deref().unwrap_or("–")) }
                                td.actions {
                                    a.button data-action="rotate" href={ "/admin/hosts/" (host.name()) "/rotate" } { "Rotate token…" }
                                    " "
                                    a.button.danger data-action="remove" href={ "/admin/hosts/" (host.name()) "/remove" } { "Remove…" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Response::html(status, page("Manage hosts", Nav::LoggedIn, body))
}

/// Whether the one-line installer can hand out an agent, said on the add form.
fn installer_note(ctx: &Context) -> Markup {
    match install::agent_file(ctx) {
        Ok(_) => html! {},
        Err(reason) => html! {
            p.hint {
                "The one-line installer is off: this server has no agent binary to hand out ("
                code { (reason) } "). Set " code { "agent_binary" } " in the server's config "
                "(its .deb ships one in " code { "/usr/lib/proxmox-monitor/" } "); meanwhile "
                "install the agent's .deb or static binary as the next page shows."
            }
        },
    }
}

/// `GET /admin/hosts/NAME/rotate|remove`: what will happen, and the button that does it.
fn confirm(request: &Request, name: &str, action: Action) -> Response {
    let csrf = session::csrf_token(request);
    let (title, verb, what): (String, &str, Markup) = match action {
        Action::Rotate => (
            format!("Rotate the token of {name}?"),
            "rotate",
            html! {
                p {
                    "A new token is made and shown once. The current one stops working at once: "
                    "the agent on " strong { (name) } " is disconnected and cannot reconnect "
                    "until its " code { (AGENT_CONFIG_PATH) } " has the new token (the next page "
                    "shows how). Its history is kept."
                }
            },
        ),
        Action::Remove => (
            format!("Remove {name}?"),
            "remove",
            html! {
                p {
                    "The host " strong { (name) } " and " strong { "all its history" }
                    " are deleted, and its agent is disconnected and refused from then on. "
                    "This cannot be undone. (The agent keeps running on the node until you stop "
                    "it there: " code { "systemctl disable --now proxmox-monitor-agent" } ".)"
                }
            },
        ),
    };
    let button = match action {
        Action::Rotate => format!("Rotate the token of {name}"),
        Action::Remove => format!("Remove {name} and its history"),
    };
    let body = html! {
        section.card.narrow.confirm {
            h1 { (title) }
            (what)
            form.confirm method="post" action={ "/admin/hosts/" (name) "/" (verb) } {
                input type="hidden" name="csrf" value=(csrf);
                button.danger type="submit" data-action={ "confirm-" (verb) } { (button) }
                " "
                a.button href="/admin/hosts" { "Cancel" }
            }
        }
    };
    Response::html(200, page(&title, Nav::LoggedIn, body))
}

/// The token, shown once, with the config and the commands that install the agent with it.
fn token_page(ctx: &Context, request: &Request, name: &str, token: &str, added: bool) -> Response {
    let base = install::public_base(ctx, request);
    let base_text = base
        .clone()
        .unwrap_or_else(|| "https://SERVER:4000".to_owned());
    let config = install::agent_config(&base_text, name, token);
    let installer = install::agent_file(ctx).is_ok();
    let version = env!("CARGO_PKG_VERSION");
    let oneliner = format!(
        "curl -fsSL {base_text}/install/agent.sh | PM_TOKEN='{token}' sh -s -- --host {name}"
    );
    let private_ca = format!(
        "curl --cacert /etc/proxmox-monitor/ca.pem -fsSL {base_text}/install/agent.sh | PM_TOKEN='{token}' sh -s -- --host {name} --ca-file /etc/proxmox-monitor/ca.pem"
    );
    let deb = format!(
        "apt install ./proxmox-monitor-agent_{version}_amd64.deb\n\
         install -m 0600 /dev/stdin {AGENT_CONFIG_PATH} <<'EOF'\n{config}EOF\n\
         systemctl restart proxmox-monitor-agent"
    );
    let fetch_binary = if installer {
        format!(
            "curl -fsSLo /usr/local/bin/proxmox-monitor-agent {base_text}/install/agent\n\
             chmod 0755 /usr/local/bin/proxmox-monitor-agent\n"
        )
    } else {
        "# copy the static agent (dist/proxmox-monitor-agent of `make musl`) to /usr/local/bin/ first\n"
            .to_owned()
    };
    let manual = format!(
        "{fetch_binary}curl -fsSLo /etc/systemd/system/proxmox-monitor-agent.service {base_text}/install/agent.service\n\
         install -d -m 0700 /var/lib/proxmox-monitor\n\
         install -D -m 0600 /dev/stdin {AGENT_CONFIG_PATH} <<'EOF'\n{config}EOF\n\
         systemctl daemon-reload && systemctl enable --now proxmox-monitor-agent"
    );
    let heading = if added {
        format!("Host {name} added")
    } else {
        format!("New token for {name}")
    };
    let body = html! {
        nav.crumbs { a href="/admin/hosts" { "← Manage hosts" } }
        section.card.admin.token-page data-host=(name) {
            h1 { (heading) }
            p.warning role="alert" {
                "Its token is shown only this once: copy what you need now. "
                @if !added { "The previous token no longer works; the agent stays offline until it has this one." }
            }
            p { "Token: " code #host-token { (token) } }
            @if base.is_none() {
                p.error {
                    "This request did not say how the server is reached; replace "
                    code { "https://SERVER:4000" } " below, or set " code { "public_url" }
                    " in the server's config."
                }
            }
            h2 { "Install the agent on " (name) " (as root)" }
            @if installer {
                h3 { "In one line" }
                pre.command #install-oneliner { (oneliner) }
                p.hint {
                    "The script downloads the agent from this server, checks its SHA-256, "
                    "installs it in /usr/local/bin with its systemd unit, writes the config "
                    "below to " code { (AGENT_CONFIG_PATH) } " (0600) and starts it. The token "
                    "goes in through the environment, never in a URL or a command line others "
                    "can see. To read the script first: "
                    code { "curl -fsSLo install-agent.sh " (base_text) "/install/agent.sh" }
                    ", then " code { "PM_TOKEN='…' sh install-agent.sh --host " (name) } "."
                }
                @if base_text.starts_with("https://") {
                    p.hint {
                        "Server certificate from a private CA? Copy the CA to the node first and run:"
                    }
                    pre.command #install-oneliner-ca { (private_ca) }
                }
            }
            h3 { @if installer { "Or with" } @else { "With" } " the Debian package" }
            p.hint {
                "The agent's .deb (from " code { "make deb" } ", in " code { "dist/" }
                ") copied to the node first:"
            }
            pre.command #install-deb { (deb) }
            h3 { "Or with the static binary" }
            pre.command #install-static { (manual) }
            h3 { "The agent's config (" code { (AGENT_CONFIG_PATH) } ")" }
            pre #agent-config { (config) }
            p {
                "The host shows online within seconds of the agent starting: "
                a href={ "/hosts/" (name) } { "watch " (name) } "."
            }
        }
    };
    Response::html(200, page(&heading, Nav::LoggedIn, body))
}

/// A short page with a heading and one paragraph.
fn message(status: u16, title: &str, text: &str) -> Response {
    let body = html! {
        section.card.narrow {
            h1 { (title) }
            p { (text) }
            p { a href="/admin/hosts" { "Manage hosts" } " · " a href="/" { "All hosts" } }
        }
    };
    Response::html(status, page(title, Nav::LoggedIn, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_admin_manages_hosts() {
        assert!(may_manage_hosts(ADMIN_USER));
        assert!(!may_manage_hosts("viewer"));
        assert!(!may_manage_hosts(""));
    }
}
