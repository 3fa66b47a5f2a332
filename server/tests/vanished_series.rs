//! Series of a vanished guest, end to end: once retention has left nothing of a series, the
//! running server's maintenance forgets it (and logs so), and the admin command no longer
//! lists it; the host's other series stay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inspect;

use std::time::Duration;

use common::events::MetricKind;
use server::store::{SampleWrite, Store, Synchronous};
use testkit::{wait_until, Server, ServerOptions};

fn sample(host_id: i64, t: i64, points: &[(&str, f64)]) -> SampleWrite {
    SampleWrite {
        host_id,
        kind: MetricKind::Fast,
        collected_at: t,
        data_json: "{}".into(),
        points: points.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
        versions: None,
        received_at: t,
    }
}

fn listed_series(server: &Server) -> String {
    let out = server.admin(&["metrics", "pve1"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_server_forgets_a_series_retention_left_without_data() {
    let mut server = Server::start("vanished-series");
    server.register("pve1");
    server.stop_with(libc::SIGINT);
    let db = server.database();
    let now = common::time::now_unix();
    {
        // A guest seen ten days ago whose every point retention has deleted since (its
        // chunks removed here as the sweep would have), and the node itself, seen now.
        let store = Store::open(&db, Synchronous::Normal).unwrap();
        let host = store.host_by_name("pve1").unwrap().unwrap().id;
        store
            .write_samples_direct(vec![
                sample(
                    host,
                    now - 10 * 86400,
                    &[("guest.101.cpu_percent", 5.0), ("load1", 0.5)],
                ),
                sample(host, now, &[("load1", 0.7)]),
            ])
            .unwrap();
        store.move_to_history(now + 1, &|| false).unwrap();
    }
    inspect::open_database(&db)
        .execute(
            "DELETE FROM history.chunks WHERE series_id =
                 (SELECT id FROM series WHERE name = 'guest.101.cpu_percent')",
            [],
        )
        .unwrap();
    assert!(listed_series(&server).contains("guest.101.cpu_percent"));

    server.restart(&ServerOptions::default());
    // The first retention pass runs half a minute after the start.
    let forgot = "host pve1: forgot 1 series not seen since before";
    assert!(
        wait_until(Duration::from_secs(120), || server.log().contains(forgot)),
        "{}",
        server.log()
    );
    let log = server.log();
    let line = log.lines().find(|l| l.contains(forgot)).unwrap();
    assert!(line.ends_with("guest.101.cpu_percent"), "{line}");
    let listed = listed_series(&server);
    assert!(!listed.contains("guest.101.cpu_percent"), "{listed}");
    assert!(listed.contains("load1"), "{listed}");
}
