//! The harness itself: a server starts, serves, dies by SIGKILL, comes back
//! on the same port with its JetStream store.

use std::time::Duration;

use tidings_conformance::nats_probe::{
    create_stream, stream_arrivals, stream_arrivals_by_sequence, stream_len, Subscriber,
};
use tidings_conformance::nats_server::{NatsCluster, NatsServer};

#[test]
fn server_starts_is_killed_and_restarts_on_the_same_port_with_its_store() {
    let mut server = NatsServer::start();
    let port = server.port();
    assert_ne!(port, 0);
    create_stream(&server.url(), "HARNESS", "harness.test", 1);
    assert_eq!(stream_len(&server.url(), "HARNESS"), 0);

    let pid = server.pid().expect("running");
    server.kill();
    assert!(!server.is_running());
    // The PID is gone (kill -0 fails).
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains(") Z ")
        }
    );

    server.restart();
    assert_eq!(server.port(), port, "restart keeps the port");
    // The stream survived in the store directory.
    assert_eq!(stream_len(&server.url(), "HARNESS"), 0);
}

#[test]
fn subscriber_counts_what_arrives() {
    #![allow(deprecated)]
    let server = NatsServer::start();
    let sub = Subscriber::start(&server.url(), "probe.>");
    let nc = nats::connect(server.url()).unwrap();
    let r = tidings_core::Report::error("k", "m");
    nc.publish("probe.x", r.to_json()).unwrap();
    nc.flush().unwrap();
    let got = sub.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.ids, vec![r.id]);
}

#[test]
fn three_node_cluster_forms() {
    let cluster = NatsCluster::start();
    assert_eq!(cluster.urls().len(), 3);
    create_stream(&cluster.urls()[0], "R3", "r3.test", 3);
    assert_eq!(stream_len(&cluster.urls()[1], "R3"), 0);
}

#[test]
fn both_stream_readers_see_every_message_once() {
    #![allow(deprecated)]
    let server = NatsServer::start();
    create_stream(&server.url(), "READERS", "readers.test", 1);
    let nc = nats::connect(server.url()).unwrap();
    let js = nats::jetstream::new(nc);
    let sent: Vec<_> = (0..50)
        .map(|i| {
            let r = tidings_core::Report::error("k", format!("m{i}"));
            js.publish("readers.test", r.to_json()).unwrap();
            r.id
        })
        .collect();
    // A hole in the sequence: the by-sequence reader skips it.
    js.delete_message("READERS", 10).unwrap();
    let expected: Vec<_> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 9)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(stream_arrivals(&server.url(), "READERS").ids, expected);
    assert_eq!(
        stream_arrivals_by_sequence(&server.url(), "READERS").ids,
        expected
    );
}
