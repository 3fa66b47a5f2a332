//! Property tests over everything the server reads from outside: WebSocket text frames (as
//! the channel handles them, before and after a join), push payloads and samples, HTTP request
//! heads, and the server's TOML config. None may panic; a frame never breaks the channel for
//! the next one. `make test` runs a few hundred cases each; `make fuzz` runs `FUZZ_CASES`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::events::MetricKind;
use common::sample::Sample;
use proptest::prelude::*;
use server::channel::Channel;
use server::config::ServerConfig;
use server::context::Context;
use server::state::HostStates;
use server::store::{Store, Synchronous};

fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Pieces a frame is made of, so that random frames are often close to real ones.
fn frame_text() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("null".to_owned()),
        Just("\"1\"".to_owned()),
        Just("7".to_owned()),
        Just("\"host:pve1\"".to_owned()),
        Just("\"phoenix\"".to_owned()),
        Just("\"phx_join\"".to_owned()),
        Just("\"heartbeat\"".to_owned()),
        Just("\"metric:fast\"".to_owned()),
        Just("\"metric:slow\"".to_owned()),
        Just("\"phx_leave\"".to_owned()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just(r#"{"token":"t"}"#.to_owned()),
        Just(r#"{"collected_at":"2026-01-01T00:00:00Z","data":{"load1":1}}"#.to_owned()),
        Just(r#"{"collected_at":"now","data":{"guests":[{"vmid":-1}]}}"#.to_owned()),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
    ];
    prop_oneof![
        // Arrays of 0–7 atoms: the right shape, wrong shapes, wrong types.
        proptest::collection::vec(atom, 0..8).prop_map(|parts| format!("[{}]", parts.join(","))),
        // Anything at all.
        "\\PC{0,64}",
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

struct Fixture {
    ctx: Context,
    token: String,
    _dir: testkit::TempDir,
}

fn fixture() -> Fixture {
    let dir = testkit::TempDir::new("fuzz-channel");
    let config = ServerConfig {
        bcrypt_cost: 4,
        database: dir.path().join("t.db"),
        ..ServerConfig::default()
    };
    let store = Store::open(&config.database, Synchronous::Normal).unwrap();
    let token = "fuzz-token".to_owned();
    let hash = server::auth::hash_secret(&token, 4).unwrap();
    store.create_host("pve1", &hash, 1).unwrap();
    let hosts = HostStates::load(&store).unwrap();
    let ctx = Context::new(
        config,
        store,
        hosts,
        Arc::new(server::shutdown::Shutdown::new()),
    );
    Fixture {
        ctx,
        token,
        _dir: dir,
    }
}

/// The channel writes to SQLite: a tenth of the cases.
fn channel_cases() -> u32 {
    (fuzz_cases() / 10).max(32)
}

thread_local! {
    static FIXTURE: Fixture = fixture();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: channel_cases(), ..ProptestConfig::default() })]

    /// Frames as the channel reads them, on a socket not joined yet and on one joined: no
    /// panic, every frame with a ref that is answered is answered with that ref, and the
    /// channel still answers a heartbeat after any sequence.
    #[test]
    fn the_channel_survives_any_frames(frames in proptest::collection::vec(frame_text(), 1..6), join in any::<bool>()) {
        FIXTURE.with(|f| {
            let mut channel = Channel::new(&f.ctx, 1, Arc::new(AtomicBool::new(false)), "fuzz".into());
            if join {
                let replies = channel.handle_text(&format!(
                    r#"["1","1","host:pve1","phx_join",{{"token":"{}"}}]"#,
                    f.token
                ));
                assert_eq!(replies.last().unwrap().payload["status"], "ok");
            }
            for text in &frames {
                let _ = channel.handle_text(text);
            }
            let replies = channel.handle_text(r#"[null,"99","phoenix","heartbeat",{}]"#);
            assert_eq!(replies.len(), 1);
            assert_eq!(replies[0].msg_ref.as_deref(), Some("99"));
            channel.end();
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    /// Frame decoding, both ways the server and agent do it: same verdict, no panic.
    #[test]
    fn frame_decoding_never_panics(text in frame_text()) {
        let raw = common::RawFrame::decode(&text);
        let tree = common::Frame::decode(&text);
        if let (Ok(raw), Ok(tree)) = (&raw, &tree) {
            prop_assert_eq!(&raw.topic, &tree.topic);
            prop_assert_eq!(&raw.event, &tree.event);
        }
    }

    /// Push payloads and sample data of every kind.
    #[test]
    fn push_and_sample_parsing_never_panics(text in frame_text(), kind in 0usize..3) {
        if let Ok(push) = common::events::RawMetricPush::parse(
            &serde_json::value::RawValue::from_string(text.clone()).unwrap_or_else(|_| {
                serde_json::value::RawValue::from_string("null".into()).unwrap()
            }),
        ) {
            let _ = common::time::parse_rfc3339(&push.collected_at);
        }
        let sample = Sample::from_json(MetricKind::ALL[kind], &text);
        if let Ok(sample) = sample {
            for (name, _) in sample.series_points() {
                prop_assert!(common::series::SeriesName::parse(&name).is_some(), "{}", name);
            }
        }
    }

    /// HTTP request heads: any bytes; a head that parses has a method and a path, and its
    /// length is within what was given.
    #[test]
    fn http_heads_never_panic(
        lines in proptest::collection::vec(prop_oneof![
            Just("GET / HTTP/1.1".to_owned()),
            Just("POST /login HTTP/1.0".to_owned()),
            Just("Host: x".to_owned()),
            Just("Content-Length: 5".to_owned()),
            Just("Content-Length: +5".to_owned()),
            Just("Content-Length: 5, 6".to_owned()),
            Just("Transfer-Encoding: chunked".to_owned()),
            Just("Connection: keep-alive, Upgrade".to_owned()),
            Just("".to_owned()),
            "[ -~]{0,40}",
        ], 0..10),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = lines.join("\r\n").into_bytes();
        bytes.extend_from_slice(&tail);
        if let Ok(Some((request, head_len, _))) = server::http::parse_head(&bytes) {
            prop_assert!(head_len <= bytes.len());
            prop_assert!(!request.method.is_empty());
        }
    }

    /// The server's TOML config: anything is refused with an error, or accepted, never a panic.
    #[test]
    fn server_config_parsing_never_panics(
        lines in proptest::collection::vec(prop_oneof![
            Just("listen = \"127.0.0.1:4000\"".to_owned()),
            Just("bcrypt_cost = 40".to_owned()),
            Just("max_frame_bytes = 0".to_owned()),
            Just("max_clock_skew_seconds = -1".to_owned()),
            Just("[retention]".to_owned()),
            Just("raw_days = 0".to_owned()),
            Just("rollup_30m_days = 99999999999".to_owned()),
            Just("[http]".to_owned()),
            Just("trusted_proxies = [\"::1\", \"x\"]".to_owned()),
            Just("[alerts]".to_owned()),
            Just("[[alerts.rules]]".to_owned()),
            "[ -~]{0,30}",
        ], 0..8),
    ) {
        let mut config = ServerConfig::default();
        let _ = config.apply_toml(&lines.join("\n"), "fuzz.toml");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    /// Times and names read from outside.
    #[test]
    fn times_and_names_never_panic(text in "\\PC{0,40}", now in any::<i64>()) {
        let _ = common::time::parse_rfc3339(&text);
        let _ = common::time::parse_time(&text, now);
        let _ = common::time::format_rfc3339(common::time::from_unix_seconds(now));
        let _ = common::events::validate_host_name(&text);
        let _ = common::series::SeriesName::parse(&text);
        if let Some(mount) = common::series::mountpoint_of_series_name(&text).filter(|_| !text.contains('/')) {
            prop_assert_eq!(common::series::mountpoint_series_name(&mount), text);
        }
        let _ = server::ingest::check_collected_at(now, 1_800_000_000, 300, 604_800);
    }
}
