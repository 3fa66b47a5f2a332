//! The host channel over a real socket against the real server binary: joins and their
//! refusals, pushes, heartbeats, leave, close, idle timeout, malformed input, takeover by a
//! newer connection, the HTTP side of the port, and shutdown on SIGINT.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::time::{Duration, Instant};

use common::Frame;
use serde_json::{json, Value};
use support::{now_rfc3339, Client, Received, Server, ServerOptions, PATIENCE};
use tungstenite::Message;

fn ok_reply() -> Value {
    json!({"status": "ok", "response": {}})
}

/// What a join is answered with: the largest frame the agent may send (the resumption ticket,
/// different every time, left out).
fn join_ok_reply() -> Value {
    json!({"status": "ok", "response": {"max_frame_bytes": 1_048_576}})
}

/// A join reply without its ticket (checked to be one).
fn without_ticket(mut payload: Value) -> Value {
    let ticket = payload["response"]
        .as_object_mut()
        .and_then(|r| r.remove("ticket"));
    if payload["status"] == "ok" {
        assert!(
            ticket
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("1.")),
            "{ticket:?}"
        );
    }
    payload
}

fn error_reply(reason: &str) -> Value {
    json!({"status": "error", "response": {"reason": reason}})
}

/// A fresh client can still join: the server survived whatever the previous one did.
fn assert_still_serving(server: &Server, name: &str, token: &str) {
    let mut client = server.joined_client(name, token);
    let reply = client.heartbeat();
    assert_eq!(reply.payload, ok_reply());
    client.close();
}

#[test]
fn join_is_acknowledged_with_its_refs_and_the_host_goes_online() {
    let server = Server::start("join-ok");
    let token = server.register("pve-01");
    assert_eq!(server.status("pve-01").as_deref(), Some("never_connected"));
    let mut client = server.client();
    let reply = client.join("pve-01", &token);
    assert_eq!(reply.event, "phx_reply");
    assert_eq!(without_ticket(reply.payload), join_ok_reply());
    assert_eq!(reply.msg_ref, reply.join_ref, "ref must equal join_ref");
    assert_eq!(reply.join_ref.as_deref(), Some("1"));
    assert_eq!(reply.topic, "host:pve-01");
    server.expect_status("pve-01", "online");
    let row = server
        .hosts()
        .into_iter()
        .find(|h| h.name == "pve-01")
        .unwrap();
    assert_eq!(row.agent, "it-0.0.1");
    assert_ne!(row.last_seen, "never");
}

#[test]
fn join_with_a_wrong_token_is_refused_as_invalid_token() {
    let server = Server::start("join-bad-token");
    server.register("pve-01");
    let mut client = server.client();
    let reply = client.join("pve-01", "not-the-token");
    assert_eq!(reply.payload, error_reply("invalid_token"));
    assert_eq!(reply.msg_ref, reply.join_ref);
    // No channel was created: a push on that topic is unmatched.
    let msg_ref = client.push("metric:fast", json!({}));
    let reply = client.recv_reply_to(&msg_ref);
    assert_eq!(reply.payload, error_reply("unmatched topic"));
    assert_eq!(server.status("pve-01").as_deref(), Some("never_connected"));
    // A join without any token is refused the same way.
    let reply = client.join_topic("host:pve-01", json!({}));
    assert_eq!(reply.payload, error_reply("invalid_token"));
}

#[test]
fn join_of_an_unregistered_host_is_refused_as_unknown_host() {
    let server = Server::start("join-unknown");
    let mut client = server.client();
    let reply = client.join("nobody", "whatever-token");
    assert_eq!(reply.payload, error_reply("unknown_host"));
    assert!(server.hosts().is_empty());
}

#[test]
fn join_of_a_topic_that_is_not_a_host_is_refused_as_bad_topic() {
    let server = Server::start("join-bad-topic");
    let token = server.register("pve-01");
    let mut client = server.client();
    for topic in ["host:", "room:x", "host:bad name", "pve-01"] {
        let reply = client.join_topic(topic, json!({"token": token}));
        assert_eq!(reply.payload, error_reply("bad_topic"), "topic {topic:?}");
    }
    // The socket is still usable.
    let reply = client.join("pve-01", &token);
    assert_eq!(without_ticket(reply.payload), join_ok_reply());
}

#[test]
fn metric_fast_push_is_acknowledged_with_both_refs() {
    let server = Server::start("push");
    let token = server.register("pve1");
    let mut client = server.joined_client("pve1", &token);
    let join_ref = client.join_ref.clone();

    // Today's shape: the golden frame's payload.
    let mut golden =
        Frame::decode(include_str!("../../fixtures/protocol/metric_fast.json")).unwrap();
    // Dated now: a stamp older than raw retention is refused (`too_old`).
    golden.payload["collected_at"] = json!(now_rfc3339());
    let msg_ref = client.push("metric:fast", golden.payload);
    let reply = client.recv_reply_to(&msg_ref);
    assert_eq!(reply.payload, ok_reply(), "server log:\n{}", server.log());
    assert_eq!(reply.join_ref, join_ref);
    assert_eq!(reply.topic, "host:pve1");

    // A Phase-1 agent's payload: fewer fields, no schema number.
    let old = json!({
        "collected_at": now_rfc3339(),
        "data": {"hostname": "pve1", "load1": 0.5, "mem_used_bytes": 10}
    });
    let msg_ref = client.push("metric:fast", old);
    let reply = client.recv_reply_to(&msg_ref);
    assert_eq!(reply.payload, ok_reply(), "server log:\n{}", server.log());
    assert_eq!(reply.join_ref, join_ref);

    // Not a sample at all, or a bad timestamp: refused, connection kept.
    let msg_ref = client.push("metric:fast", json!({"nope": 1}));
    assert_eq!(
        client.recv_reply_to(&msg_ref).payload,
        error_reply("bad_payload")
    );
    let msg_ref = client.push(
        "metric:fast",
        json!({"collected_at": "yesterday", "data": {}}),
    );
    assert_eq!(
        client.recv_reply_to(&msg_ref).payload,
        error_reply("bad_payload")
    );
    let msg_ref = client.push("metric:bogus", json!({}));
    assert_eq!(
        client.recv_reply_to(&msg_ref).payload,
        error_reply("unknown_event")
    );
}

#[test]
fn push_on_a_topic_not_joined_is_an_unmatched_topic() {
    let server = Server::start("unmatched");
    let token = server.register("pve-01");
    let mut client = server.client();
    client.send_text(r#"["3","7","host:pve-01","metric:fast",{"collected_at":"2024-01-01T00:00:00Z","data":{}}]"#);
    let reply = client.recv_frame();
    assert_eq!(
        reply.encode(),
        r#"[null,"7","host:pve-01","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
    );
    // Joined to one host, pushing on another topic is unmatched too.
    client.join("pve-01", &token);
    client.send_text(r#"["1","9","host:other","metric:fast",{}]"#);
    let reply = client.recv_frame();
    assert_eq!(
        reply.encode(),
        r#"[null,"9","host:other","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
    );
}

#[test]
fn heartbeat_is_answered_before_and_after_join() {
    let server = Server::start("heartbeat");
    let token = server.register("pve-01");
    let mut client = server.client();
    client.send_text(r#"[null,"8","phoenix","heartbeat",{}]"#);
    assert_eq!(
        client.recv_frame().encode(),
        r#"[null,"8","phoenix","phx_reply",{"status":"ok","response":{}}]"#
    );
    client.join("pve-01", &token);
    let reply = client.heartbeat();
    assert_eq!(reply.topic, "phoenix");
    assert_eq!(reply.join_ref, None);
    assert_eq!(reply.payload, ok_reply());
}

#[test]
fn leave_is_acknowledged_then_the_channel_closes_and_the_host_goes_offline() {
    let server = Server::start("leave");
    let token = server.register("pve-01");
    let mut client = server.joined_client("pve-01", &token);
    server.expect_status("pve-01", "online");
    let join_ref = client.join_ref.clone().unwrap();
    let leave_ref = client.push("phx_leave", json!({}));
    let reply = client.recv_reply_to(&leave_ref);
    assert_eq!(reply.payload, ok_reply());
    assert_eq!(reply.join_ref.as_deref(), Some(join_ref.as_str()));
    let close = client.recv_frame();
    assert_eq!(
        close.encode(),
        format!(r#"["{join_ref}","{join_ref}","host:pve-01","phx_close",{{}}]"#)
    );
    server.expect_status("pve-01", "offline");
    // The socket stays open and can join again.
    let reply = client.join("pve-01", &token);
    assert_eq!(without_ticket(reply.payload), join_ok_reply());
    server.expect_status("pve-01", "online");
}

#[test]
fn closing_the_socket_marks_the_host_offline() {
    let server = Server::start("close");
    let token = server.register("pve-01");
    // A polite close frame...
    let client = server.joined_client("pve-01", &token);
    server.expect_status("pve-01", "online");
    client.close();
    server.expect_status("pve-01", "offline");
    // ...and a TCP connection that just goes away.
    let client = server.joined_client("pve-01", &token);
    server.expect_status("pve-01", "online");
    let _ = client.socket.get_ref().shutdown(std::net::Shutdown::Both);
    drop(client);
    server.expect_status("pve-01", "offline");
}

#[test]
fn idle_socket_is_closed_after_the_idle_timeout_and_the_host_goes_offline() {
    let server = Server::start_with(
        "idle",
        ServerOptions {
            idle_timeout_seconds: 1,
            ..ServerOptions::default()
        },
    );
    let token = server.register("pve-01");
    let mut client = server.joined_client("pve-01", &token);
    let started = Instant::now();
    client.expect_closed();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after only {:?}",
        started.elapsed()
    );
    server.expect_status("pve-01", "offline");
    assert!(server.log().contains("idle"), "{}", server.log());
}

#[test]
fn malformed_text_frames_are_dropped_and_the_connection_survives() {
    let server = Server::start("malformed-text");
    let token = server.register("pve-01");
    let mut client = server.joined_client("pve-01", &token);
    for bad in [
        "not json",
        "",
        r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#,
        "[]",
        r#"[null,"1","phoenix","heartbeat"]"#,
        r#"[null,"1","phoenix","heartbeat",{},"extra"]"#,
        r#"[null,"1",5,"heartbeat",{}]"#,
        "[\"unterminated",
    ] {
        client.send_text(bad);
    }
    // Nothing was answered to those, and the socket still works.
    let reply = client.heartbeat();
    assert_eq!(reply.payload, ok_reply());
    let msg_ref = client.push(
        "metric:fast",
        json!({"collected_at": now_rfc3339(), "data": {"load1": 1.0}}),
    );
    assert_eq!(client.recv_reply_to(&msg_ref).payload, ok_reply());
    let other = server.register("pve-02");
    assert_still_serving(&server, "pve-02", &other);
}

#[test]
fn binary_frame_closes_that_connection_only() {
    let server = Server::start("binary");
    let token = server.register("pve-01");
    let mut bystander = server.client();
    let mut client = server.joined_client("pve-01", &token);
    client.send_message(Message::binary(vec![0u8, 1, 2, 3]));
    client.expect_closed();
    server.expect_status("pve-01", "offline");
    assert_eq!(bystander.heartbeat().payload, ok_reply());
    assert_still_serving(&server, "pve-01", &token);
}

#[test]
fn text_frame_over_one_mib_closes_that_connection_only() {
    let server = Server::start("too-big");
    let token = server.register("pve-01");
    let mut bystander = server.client();
    let mut client = server.joined_client("pve-01", &token);
    let huge = format!(
        r#"["1","2","host:pve-01","metric:fast",{{"collected_at":"{}","data":{{"pad":"{}"}}}}]"#,
        now_rfc3339(),
        "x".repeat(1024 * 1024 + 1)
    );
    // The server may close while we are still writing; that is the point.
    let _ = client.try_send_message(Message::text(huge));
    loop {
        match client.recv(PATIENCE) {
            Received::Closed => break,
            Received::Timeout => panic!("not closed; server log:\n{}", server.log()),
            Received::Frame(frame) => {
                assert_ne!(frame.payload, ok_reply(), "a >1 MiB frame was accepted")
            }
            Received::Text(text) => panic!("non-frame {text}"),
        }
    }
    server.expect_status("pve-01", "offline");
    assert_eq!(bystander.heartbeat().payload, ok_reply());
    assert_still_serving(&server, "pve-01", &token);
}

#[test]
fn second_join_of_a_host_from_a_new_socket_wins() {
    let server = Server::start("takeover");
    let token = server.register("pve-01");
    let mut old = server.joined_client("pve-01", &token);
    let old_join_ref = old.join_ref.clone().unwrap();
    server.expect_status("pve-01", "online");

    let mut new = server.joined_client("pve-01", &token);
    let before_close = old.expect_closed();
    assert_eq!(
        before_close.iter().map(Frame::encode).collect::<Vec<_>>(),
        vec![format!(
            r#"["{old_join_ref}","{old_join_ref}","host:pve-01","phx_close",{{}}]"#
        )],
        "the old socket must get exactly a phx_close for its channel"
    );
    drop(old);

    // The new connection owns the host: it stays online after the old one is gone.
    assert_eq!(new.heartbeat().payload, ok_reply());
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        assert_eq!(server.status("pve-01").as_deref(), Some("online"));
    }
    let msg_ref = new.push(
        "metric:fast",
        json!({"collected_at": now_rfc3339(), "data": {"load1": 1.0}}),
    );
    assert_eq!(new.recv_reply_to(&msg_ref).payload, ok_reply());
    new.close();
    server.expect_status("pve-01", "offline");
}

#[test]
fn second_join_on_the_same_socket_closes_the_first_channel() {
    let server = Server::start("rejoin");
    let token = server.register("pve-01");
    let mut client = server.joined_client("pve-01", &token);
    let first = client.join_ref.clone().unwrap();
    let second = client.next_ref();
    client.send(&Frame::new(
        Some(&second),
        Some(&second),
        "host:pve-01",
        "phx_join",
        json!({"token": token}),
    ));
    // Phoenix closes the old channel first, then answers the new join.
    assert_eq!(
        client.recv_frame().encode(),
        format!(r#"["{first}","{first}","host:pve-01","phx_close",{{}}]"#)
    );
    let mut reply = client.recv_frame();
    reply.payload = without_ticket(reply.payload);
    assert_eq!(
        reply.encode(),
        format!(
            r#"["{second}","{second}","host:pve-01","phx_reply",{{"status":"ok","response":{{"max_frame_bytes":1048576}}}}]"#
        )
    );
    server.expect_status("pve-01", "online");
    client.join_ref = Some(second);
    let msg_ref = client.push(
        "metric:fast",
        json!({"collected_at": now_rfc3339(), "data": {"load1": 1.0}}),
    );
    assert_eq!(client.recv_reply_to(&msg_ref).payload, ok_reply());
}

#[test]
fn socket_without_vsn_is_refused_with_403_before_the_upgrade() {
    let server = Server::start("no-vsn");
    for url in [
        server.socket_url(),
        format!("{}?vsn=1.0.0", server.socket_url()),
    ] {
        match Client::connect_url(&url) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 403, "{url}")
            }
            Err(e) => panic!("{url}: expected HTTP 403, got {e}"),
            Ok(_) => panic!("{url}: upgraded without vsn=2.0.0"),
        }
    }
    // The right vsn works.
    let mut client = server.client();
    assert_eq!(client.heartbeat().payload, ok_reply());
}

#[test]
fn healthz_answers_ok() {
    let server = Server::start("healthz");
    let (status, body) = support::http_get(server.port, "/healthz", "");
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "ok");
}

#[test]
fn sigint_stops_the_server_within_two_seconds_and_marks_hosts_offline() {
    let mut server = Server::start("sigint");
    let token = server.register("pve-01");
    let mut client = server.joined_client("pve-01", &token);
    server.expect_status("pve-01", "online");
    let join_ref = client.join_ref.clone().unwrap();

    let (status, took) = server.process.interrupt_and_wait(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} to stop; log:\n{}",
        server.log()
    );
    // The client was told its channel closed, then the socket closed.
    let frames = client.expect_closed();
    assert_eq!(
        frames.iter().map(Frame::encode).collect::<Vec<_>>(),
        vec![format!(
            r#"["{join_ref}","{join_ref}","host:pve-01","phx_close",{{}}]"#
        )]
    );
    assert_eq!(server.status("pve-01").as_deref(), Some("offline"));
}

#[test]
fn register_host_refuses_a_duplicate_and_a_bad_name() {
    let server = Server::start("register");
    server.register("pve-01");
    let out = server.admin(&["register-host", "pve-01"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let out = server.admin(&["register-host", "bad name"]);
    assert!(!out.status.success());
    let rows = server.hosts();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].last_seen, "never");
    // A rotated token replaces the old one at once.
    let out = server.admin(&["rotate-token", "pve-01"]);
    assert!(out.status.success());
    let new_token = support::parse_token_output(
        &String::from_utf8_lossy(&out.stdout),
        "New token for host 'pve-01'",
    );
    let mut client = server.client();
    assert_eq!(
        without_ticket(client.join("pve-01", &new_token).payload),
        join_ok_reply()
    );
}
