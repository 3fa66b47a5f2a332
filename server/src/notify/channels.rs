//! Each channel's request, built as data (`HttpRequest`, pure and unit-tested), and the two
//! blocking senders: HTTP(S) with `ureq` on rustls, SMTP with `lettre` (no async runtime).
//!
//! What each service is sent follows its documentation:
//! - webhook: `POST url`, JSON; `X-Proxmox-Monitor-Event-Id` carries the idempotency key and,
//!   with a secret, `X-Proxmox-Monitor-Signature: sha256=HEX` the HMAC-SHA256 of the body;
//! - ntfy: `POST url` with the JSON form of a publish (`topic`, `title`, `message`,
//!   `priority` 1–5, `tags`, `click`), `Authorization: Bearer TOKEN`;
//! - Gotify: `POST url/message`, `X-Gotify-Key: TOKEN`, JSON `title`, `message`,
//!   `priority`, `extras.client::notification.click.url`;
//! - Discord: `POST` the webhook URL, JSON `username` and one embed (`title`, `description`,
//!   `url`, `color` by severity);
//! - Slack: `POST` the incoming-webhook URL, JSON `text` plus an attachment coloured by
//!   severity;
//! - Telegram: `POST api_url/bot<TOKEN>/sendMessage`, JSON `chat_id`, `text`;
//! - Pushover: `POST api_url/1/messages.json`, form fields `token`, `user`, `title`,
//!   `message`, `priority`, `url`, `url_title`.
//!
//! A URL is never logged whole (Discord, Slack and Telegram URLs carry their tokens): errors
//! name the host only.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::config::{load_ca, redact, Channel, ChannelKind, Email, SmtpSecurity};
use super::message::{Message, Tone};

/// Header with the message's idempotency key (webhook).
pub const EVENT_ID_HEADER: &str = "X-Proxmox-Monitor-Event-Id";
/// Header with `sha256=` and the hex HMAC-SHA256 of the body under the secret (webhook).
pub const SIGNATURE_HEADER: &str = "X-Proxmox-Monitor-Signature";
const USER_AGENT: &str = concat!("proxmox-monitor/", env!("CARGO_PKG_VERSION"));

/// An HTTP request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted it (2xx, or the SMTP server queued it).
    Accepted,
    /// Worth trying again (network, timeout, 5xx, 408, 429); `retry_after` from the receiver.
    Retry {
        error: String,
        retry_after: Option<i64>,
    },
    /// Trying again will not help (4xx, a bad address): dead-lettered at once.
    Rejected(String),
}

fn color(tone: Tone) -> (u32, &'static str) {
    match tone {
        Tone::Critical => (0xD6_3031, "#d63031"),
        Tone::Warning => (0xE1_A100, "#e1a100"),
        Tone::Resolved => (0x2E_A043, "#2ea043"),
        Tone::Test => (0x3B_82F6, "#3b82f6"),
    }
}

/// Truncates to at most `max` characters (services refuse longer fields).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The JSON a webhook receives.
pub fn webhook_body(message: &Message) -> serde_json::Value {
    let events: Vec<serde_json::Value> = message
        .events
        .iter()
        .map(|e| {
            json!({
                "key": e.key, "event": e.event, "alert_id": e.alert_id, "rule": e.rule,
                "severity": e.severity, "host": e.host, "object": e.object, "guest": e.guest,
                "label": e.label, "tags": e.tags, "summary": e.summary, "value": e.value,
                "threshold": e.threshold, "since": e.since, "fired_at": e.fired_at,
                "resolved_at": e.resolved_at, "repeat": e.repeat, "at": e.at,
            })
        })
        .collect();
    let status = match message.tone() {
        Tone::Critical => "critical",
        Tone::Warning => "warning",
        Tone::Resolved => "resolved",
        Tone::Test => "test",
    };
    json!({
        "id": message.id,
        "status": status,
        "host": message.host,
        "title": message.title(),
        "text": message.text(),
        "link": message.link,
        "escalation": message.escalation,
        "test": message.test,
        "events": events,
    })
}

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let enc = |t: &str| -> String {
        t.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// The HTTP request for `message` on `kind`; `None` for email.
pub fn http_request(kind: &ChannelKind, message: &Message) -> Option<HttpRequest> {
    let tone = message.tone();
    let title = message.title();
    let text = message.text();
    let json_request =
        |url: String, headers: Vec<(String, String)>, body: serde_json::Value| HttpRequest {
            url,
            headers,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        };
    Some(match kind {
        ChannelKind::Webhook {
            url,
            secret,
            headers,
        } => {
            let body = webhook_body(message).to_string().into_bytes();
            let mut h: Vec<(String, String)> = headers.clone();
            h.push((EVENT_ID_HEADER.into(), message.id.clone()));
            if let Some(secret) = secret {
                h.push((
                    SIGNATURE_HEADER.into(),
                    format!("sha256={}", signature(secret, &body)),
                ));
            }
            HttpRequest {
                url: url.clone(),
                headers: h,
                content_type: "application/json",
                body,
            }
        }
        ChannelKind::Ntfy { url, topic, token } => {
            let (priority, tags) = match tone {
                Tone::Critical => (5, "rotating_light"),
                Tone::Warning => (4, "warning"),
                Tone::Resolved => (3, "white_check_mark"),
                Tone::Test => (3, "test_tube"),
            };
            let mut body = json!({
                "topic": topic, "title": cut(&title, 250), "message": cut(&text, 4000),
                "priority": priority, "tags": [tags],
            });
            if let Some(link) = &message.link {
                body["click"] = json!(link);
            }
            let headers = token
                .iter()
                .map(|t| ("Authorization".to_owned(), format!("Bearer {t}")))
                .collect();
            json_request(url.clone(), headers, body)
        }
        ChannelKind::Gotify { url, token } => {
            let priority = match tone {
                Tone::Critical => 8,
                Tone::Warning => 5,
                Tone::Resolved | Tone::Test => 2,
            };
            let mut body = json!({"title": title, "message": text, "priority": priority});
            if let Some(link) = &message.link {
                body["extras"] = json!({"client::notification": {"click": {"url": link}}});
            }
            json_request(
                format!("{url}/message"),
                vec![("X-Gotify-Key".into(), token.clone())],
                body,
            )
        }
        ChannelKind::Discord { url } => {
            let mut embed = json!({
                "title": cut(&title, 256),
                "description": cut(&text, 4000),
                "color": color(tone).0,
            });
            if let Some(link) = &message.link {
                embed["url"] = json!(link);
            }
            json_request(
                url.clone(),
                Vec::new(),
                json!({"username": "Proxmox Monitor", "embeds": [embed]}),
            )
        }
        ChannelKind::Slack { url } => {
            let mut attachment = json!({
                "color": color(tone).1, "title": title, "text": text, "fallback": title,
            });
            if let Some(link) = &message.link {
                attachment["title_link"] = json!(link);
            }
            json_request(
                url.clone(),
                Vec::new(),
                json!({"text": title, "attachments": [attachment]}),
            )
        }
        ChannelKind::Telegram {
            api_url,
            bot_token,
            chat_id,
        } => json_request(
            format!("{api_url}/bot{bot_token}/sendMessage"),
            Vec::new(),
            json!({
                "chat_id": chat_id,
                "text": cut(&format!("{title}\n\n{text}"), 4000),
                "disable_web_page_preview": true,
            }),
        ),
        ChannelKind::Pushover {
            api_url,
            token,
            user_key,
        } => {
            let priority = match tone {
                Tone::Critical => "1",
                Tone::Warning => "0",
                Tone::Resolved | Tone::Test => "-1",
            };
            let title = cut(&title, 250);
            let text = cut(&text, 1024);
            let mut fields = vec![
                ("token", token.as_str()),
                ("user", user_key.as_str()),
                ("title", title.as_str()),
                ("message", text.as_str()),
                ("priority", priority),
            ];
            if let Some(link) = &message.link {
                fields.push(("url", link.as_str()));
                fields.push(("url_title", "Open in Proxmox Monitor"));
            }
            HttpRequest {
                url: format!("{api_url}/1/messages.json"),
                headers: Vec::new(),
                content_type: "application/x-www-form-urlencoded",
                body: form(&fields),
            }
        }
        ChannelKind::Email(_) => return None,
    })
}

/// Sends `message` through `channel` (blocking, at most about `timeout`).
pub fn send(
    channel: &Channel,
    message: &Message,
    timeout: Duration,
    global_ca: Option<&std::path::Path>,
) -> Outcome {
    let ca = channel.ca_file.as_deref().or(global_ca);
    match &channel.kind {
        ChannelKind::Email(email) => send_email(email, message, timeout, ca),
        kind => match http_request(kind, message) {
            Some(request) => send_http(&request, timeout, ca),
            None => Outcome::Rejected("no request for this channel".into()),
        },
    }
}

fn tls_config(ca: Option<&std::path::Path>) -> Result<ureq::tls::TlsConfig, String> {
    let mut builder = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls);
    if let Some(path) = ca {
        let certs: Vec<ureq::tls::Certificate<'static>> = load_ca(path)?
            .into_iter()
            .map(|der| ureq::tls::Certificate::from_der(&der).to_owned())
            .collect();
        builder = builder.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    Ok(builder.build())
}

/// An HTTP agent: timeouts, no redirects (a webhook that redirects is misconfigured), HTTP
/// statuses as answers rather than errors.
fn agent(timeout: Duration, ca: Option<&std::path::Path>) -> Result<ureq::Agent, String> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        .tls_config(tls_config(ca)?)
        .build();
    Ok(config.into())
}

/// Makes `request`; the outcome by the answer's status.
pub fn send_http(
    request: &HttpRequest,
    timeout: Duration,
    ca: Option<&std::path::Path>,
) -> Outcome {
    let host = redact(&request.url);
    let agent = match agent(timeout, ca) {
        Ok(a) => a,
        Err(e) => return Outcome::Rejected(e),
    };
    let mut builder = agent
        .post(&request.url)
        .header("Content-Type", request.content_type);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    match builder.send(&request.body[..]) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok());
            // Read (a little of) the body so the connection ends cleanly, and for the log.
            let detail = response
                .body_mut()
                .with_config()
                .limit(512)
                .read_to_string()
                .unwrap_or_default();
            let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
            let error = format!("{host} answered {status} {}", cut(&detail, 200));
            match status {
                200..=299 => Outcome::Accepted,
                408 | 429 | 500..=599 => Outcome::Retry { error, retry_after },
                _ => Outcome::Rejected(error),
            }
        }
        Err(e) => Outcome::Retry {
            error: format!("{host}: {}", describe_ureq(&e)),
            retry_after: None,
        },
    }
}

/// An error without the URL (it may hold a token).
fn describe_ureq(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(what) => format!("timed out ({what})"),
        ureq::Error::Io(io) if io.to_string().contains("certificate") => format!(
            "TLS: {io} (a private CA? name its PEM file in ca_file of the channel or [notify])"
        ),
        ureq::Error::Io(io) => format!("{io}"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Tls(m) => format!("TLS: {m}"),
        ureq::Error::Rustls(r) => format!("TLS: {r}"),
        other => {
            let text = other.to_string();
            if text.contains("://") {
                "request failed".into()
            } else {
                text
            }
        }
    }
}

fn send_email(
    email: &Email,
    message: &Message,
    timeout: Duration,
    ca: Option<&std::path::Path>,
) -> Outcome {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{SmtpTransport, Transport};

    let parse = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| Outcome::Rejected(format!("{a:?}: {e}")))
    };
    let built = (|| {
        let mut builder = lettre::Message::builder()
            .from(parse(&email.from)?)
            .subject(message.title())
            .header(ContentType::TEXT_PLAIN);
        for to in &email.to {
            builder = builder.to(parse(to)?);
        }
        // Receivers (and people) can drop a resend after a crash by this id.
        let domain = email.from.rsplit('@').next().unwrap_or("localhost");
        let domain = domain.trim_end_matches('>');
        builder = builder.message_id(Some(format!("<{}@{domain}>", message.id.replace('/', "."))));
        builder
            .body(message.text())
            .map_err(|e| Outcome::Rejected(format!("building the mail: {e}")))
    })();
    let mail = match built {
        Ok(m) => m,
        Err(outcome) => return outcome,
    };
    let tls = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(email.host.clone());
        if let Some(path) = ca {
            // Only the given CAs, as for HTTP.
            b = b.certificate_store(lettre::transport::smtp::client::CertificateStore::None);
            for der in load_ca(path)? {
                let cert = Certificate::from_der(der).map_err(|e| format!("ca_file: {e}"))?;
                b = b.add_root_certificate(cert);
            }
        }
        b.build_rustls().map_err(|e| format!("TLS: {e}"))
    };
    let tls = match email.security {
        SmtpSecurity::Plain => Tls::None,
        SmtpSecurity::StartTls => match tls() {
            Ok(p) => Tls::Required(p),
            Err(e) => return Outcome::Rejected(e),
        },
        SmtpSecurity::Tls => match tls() {
            Ok(p) => Tls::Wrapper(p),
            Err(e) => return Outcome::Rejected(e),
        },
    };
    let mut transport = SmtpTransport::builder_dangerous(&email.host)
        .port(email.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&email.username, &email.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let where_ = format!("smtp {}:{}", email.host, email.port);
    match transport.build().send(&mail) {
        Ok(_) => Outcome::Accepted,
        Err(e) if e.is_permanent() => Outcome::Rejected(format!("{where_}: {e}")),
        Err(e) => Outcome::Retry {
            error: format!("{where_}: {e}"),
            retry_after: None,
        },
    }
}

/// Calls a heartbeat URL (GET); `Ok` on a 2xx answer.
pub fn heartbeat(url: &str, timeout: Duration, ca: Option<&std::path::Path>) -> Result<(), String> {
    let host = redact(url);
    let agent = agent(timeout, ca)?;
    match agent.get(url).call() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{host} answered {}", r.status().as_u16())),
        Err(e) => Err(format!("{host}: {}", describe_ureq(&e))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::message::tests::event;
    use super::*;

    fn message() -> Message {
        Message::new(
            "notify/5".into(),
            vec![event("firing", "critical", "pve1", "pool_unhealthy")],
            Some("https://mon.example"),
            false,
        )
    }

    fn json_of(r: &HttpRequest) -> serde_json::Value {
        assert_eq!(r.content_type, "application/json");
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn webhook_signs_the_body_and_names_the_event() {
        let kind = ChannelKind::Webhook {
            url: "https://h.example/x".into(),
            secret: Some("key".into()),
            headers: vec![("X-Team".into(), "ops".into())],
        };
        let r = http_request(&kind, &message()).unwrap();
        let header = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header(EVENT_ID_HEADER).as_deref(), Some("notify/5"));
        assert_eq!(header("X-Team").as_deref(), Some("ops"));
        assert_eq!(
            header(SIGNATURE_HEADER).unwrap(),
            format!("sha256={}", signature("key", &r.body))
        );
        let body = json_of(&r);
        assert_eq!(body["status"], "critical");
        assert_eq!(body["events"][0]["rule"], "pool_unhealthy");
        assert_eq!(body["link"], "https://mon.example/hosts/pve1");
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn each_service_gets_its_documented_shape() {
        let m = message();
        let ntfy = http_request(
            &ChannelKind::Ntfy {
                url: "https://ntfy.sh".into(),
                topic: "t".into(),
                token: Some("tk".into()),
            },
            &m,
        )
        .unwrap();
        let b = json_of(&ntfy);
        assert_eq!(
            (b["topic"].as_str(), b["priority"].as_i64()),
            (Some("t"), Some(5))
        );
        assert_eq!(b["click"], "https://mon.example/hosts/pve1");
        assert!(ntfy
            .headers
            .contains(&("Authorization".into(), "Bearer tk".into())));
        let gotify = http_request(
            &ChannelKind::Gotify {
                url: "https://g.example".into(),
                token: "gt".into(),
            },
            &m,
        )
        .unwrap();
        assert_eq!(gotify.url, "https://g.example/message");
        assert_eq!(json_of(&gotify)["priority"], 8);
        let discord = http_request(
            &ChannelKind::Discord {
                url: "https://d.example/w".into(),
            },
            &m,
        )
        .unwrap();
        assert_eq!(json_of(&discord)["embeds"][0]["color"], 0xD6_3031);
        let slack = http_request(
            &ChannelKind::Slack {
                url: "https://s.example/w".into(),
            },
            &m,
        )
        .unwrap();
        assert_eq!(json_of(&slack)["attachments"][0]["color"], "#d63031");
        let tg = http_request(
            &ChannelKind::Telegram {
                api_url: "https://api.telegram.org".into(),
                bot_token: "1:a".into(),
                chat_id: "42".into(),
            },
            &m,
        )
        .unwrap();
        assert_eq!(tg.url, "https://api.telegram.org/bot1:a/sendMessage");
        assert_eq!(json_of(&tg)["chat_id"], "42");
        let po = http_request(
            &ChannelKind::Pushover {
                api_url: "https://api.pushover.net".into(),
                token: "a b".into(),
                user_key: "u".into(),
            },
            &m,
        )
        .unwrap();
        assert_eq!(po.url, "https://api.pushover.net/1/messages.json");
        let body = String::from_utf8(po.body).unwrap();
        assert!(
            body.starts_with("token=a%20b&user=u&title=%5BCRITICAL%5D"),
            "{body}"
        );
        assert!(body.contains("&priority=1&"), "{body}");
    }

    #[test]
    fn long_texts_are_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
