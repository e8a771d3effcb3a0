//! `tidings-nats-sync` against real, throwaway nats-servers: the sink is
//! driven directly with `Batch::from_reports` on a plain executor (the
//! reporter path is covered by the adapters' conformance suites).

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use tidings_conformance::nats_probe::{create_stream, stream_arrivals, stream_len, Subscriber};
use tidings_conformance::nats_server::{free_port, NatsServer, ServerOptions};
use tidings_conformance::wait_until;
use tidings_core::nats::{Credentials, Delivery, NatsConfig, Secret, SubjectSuffix};
use tidings_core::{Ack, Batch, Report, ReportId, Sink, SinkError, SinkErrorKind};
use tidings_nats_sync::SyncNatsSink;

fn block_on<F: Future>(fut: F) -> F::Output {
    futures_lite::future::block_on(fut)
}

fn reports(n: usize, kind: &str) -> Vec<Report> {
    (0..n)
        .map(|i| Report::error(kind.to_owned(), format!("report {i}")))
        .collect()
}

fn ids(batch: &Batch) -> Vec<ReportId> {
    batch.iter().map(|r| r.id).collect()
}

fn send(sink: &SyncNatsSink, batch: &Batch) -> Vec<Result<Ack, SinkError>> {
    let results = block_on(sink.send(batch));
    assert_eq!(results.len(), batch.len(), "one result per report");
    results
}

fn jetstream(url: &str, subject: &str, stream: &str) -> NatsConfig {
    NatsConfig::new(url, subject)
        .jetstream()
        .ensure_stream(stream)
}

/// Sends `batch` until every report is delivered (retrying like the worker
/// would), or panics after `within`.
fn send_until_delivered(sink: &SyncNatsSink, batch: &Batch, within: Duration) -> Vec<Ack> {
    let deadline = Instant::now() + within;
    loop {
        let results = send(sink, batch);
        if results.iter().all(Result::is_ok) {
            return results.into_iter().map(Result::unwrap).collect();
        }
        assert!(
            Instant::now() < deadline,
            "not delivered within {within:?}: {results:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn core_publish_arrives() {
    let server = NatsServer::start();
    let sub = Subscriber::start(&server.url(), "sync.core");
    let sink = SyncNatsSink::connect(NatsConfig::new(server.url(), "sync.core")).unwrap();
    assert_eq!(sink.name(), "nats");

    let batch = Batch::from_reports(reports(200, "core"));
    let results = send(&sink, &batch);
    assert!(
        results.iter().all(|r| *r == Ok(Ack::Sent)),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert!(sink.is_connected());

    let arrived = sub.wait_for(200, Duration::from_secs(10));
    assert_eq!(arrived.unparsable, 0);
    let got: HashSet<ReportId> = arrived.ids.iter().copied().collect();
    let sent: HashSet<ReportId> = ids(&batch).into_iter().collect();
    assert_eq!(got, sent);
    assert_eq!(arrived.ids.len(), 200, "no duplicates");

    block_on(sink.close()).unwrap();
}

#[test]
fn core_subjects_carry_the_configured_suffix() {
    let server = NatsServer::start();
    let sub = Subscriber::start(&server.url(), "sync.sfx.error.db_failure_x");
    let config =
        NatsConfig::new(server.url(), "sync.sfx").subject_suffix(SubjectSuffix::SeverityAndKind);
    let sink = SyncNatsSink::connect(config).unwrap();
    let batch = Batch::from_reports(vec![Report::error("db failure.x", "m")]);
    assert_eq!(send(&sink, &batch), vec![Ok(Ack::Sent)]);
    assert_eq!(sub.wait_for(1, Duration::from_secs(10)).ids, ids(&batch));
}

#[test]
fn jetstream_stores_every_report_once_and_resends_are_duplicates() {
    let server = NatsServer::start();
    let url = server.url();
    let mut config = jetstream(&url, "sync.js", "SYNCJS");
    // A window smaller than the batch: acks are pipelined in several rounds.
    config.delivery = Delivery::JetStream {
        ack_timeout: Duration::from_secs(5),
        max_acks_in_flight: 64,
    };
    let sink = SyncNatsSink::connect(config).unwrap();
    assert_eq!(sink.name(), "jetstream");

    let batch = Batch::from_reports(reports(500, "js"));
    let acks = send_until_delivered(&sink, &batch, Duration::from_secs(20));
    let mut sequences = HashSet::new();
    for ack in &acks {
        match ack {
            Ack::Stored {
                stream,
                sequence,
                duplicate,
            } => {
                assert_eq!(stream, "SYNCJS");
                assert!(!duplicate, "first send is not a duplicate");
                assert!(sequences.insert(*sequence), "sequence {sequence} twice");
            }
            other => panic!("expected Stored, got {other:?}"),
        }
    }

    let arrived = stream_arrivals(&url, "SYNCJS");
    assert_eq!(arrived.ids.len(), 500);
    assert!(arrived.duplicates().is_empty());
    let got: HashSet<ReportId> = arrived.ids.iter().copied().collect();
    assert_eq!(got, ids(&batch).into_iter().collect());

    // The same reports again (a retry after a lost ack): the stream
    // deduplicates by Nats-Msg-Id and says so.
    let again = send(&sink, &batch);
    for (first, second) in acks.iter().zip(&again) {
        let Ack::Stored { sequence, .. } = first else {
            unreachable!()
        };
        match second {
            Ok(Ack::Stored {
                duplicate: true,
                sequence: s,
                ..
            }) => assert_eq!(s, sequence, "a duplicate names the stored message"),
            other => panic!("expected a duplicate ack, got {other:?}"),
        }
    }
    assert_eq!(stream_len(&url, "SYNCJS"), 500, "no new messages");

    block_on(sink.close()).unwrap();
}

#[test]
fn jetstream_uses_an_existing_stream_and_concurrent_sends() {
    let server = NatsServer::start();
    let url = server.url();
    create_stream(&url, "PRE", "sync.pre", 1);
    let sink = SyncNatsSink::connect(NatsConfig::new(&url, "sync.pre").jetstream()).unwrap();

    let batches: Vec<Batch> = (0..4)
        .map(|t| Batch::from_reports(reports(50, &format!("t{t}"))))
        .collect();
    std::thread::scope(|s| {
        for batch in &batches {
            let sink = &sink;
            s.spawn(move || {
                let acks = send_until_delivered(sink, batch, Duration::from_secs(20));
                assert!(acks.iter().all(|a| matches!(a, Ack::Stored { .. })));
            });
        }
    });
    let arrived = stream_arrivals(&url, "PRE");
    assert_eq!(arrived.ids.len(), 200);
    assert!(arrived.duplicates().is_empty());
}

#[test]
fn jetstream_without_a_stream_is_unavailable_and_retryable() {
    let server = NatsServer::start();
    let sink =
        SyncNatsSink::connect(NatsConfig::new(server.url(), "sync.nostream").jetstream()).unwrap();
    let started = Instant::now();
    let results = send(&sink, &Batch::from_reports(reports(3, "x")));
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), SinkErrorKind::Unavailable, "{e}");
        assert!(e.is_retryable());
        assert!(e.message().contains("no JetStream stream answered"), "{e}");
    }
    // An answer (503), not a wait for the ack timeout.
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn jetstream_missing_acks_time_out_within_the_ack_timeout() {
    let server = NatsServer::start();
    // A core subscriber but no stream: the server has a responder, so no
    // 503 comes back, and nobody acks.
    let _sub = Subscriber::start(&server.url(), "sync.noack");
    let mut config = NatsConfig::new(server.url(), "sync.noack").jetstream();
    config.delivery = Delivery::JetStream {
        ack_timeout: Duration::from_secs(1),
        max_acks_in_flight: 16,
    };
    let sink = SyncNatsSink::connect(config).unwrap();
    assert!(wait_until(Duration::from_secs(10), || sink.is_connected()));

    let started = Instant::now();
    let results = send(&sink, &Batch::from_reports(reports(40, "noack")));
    let took = started.elapsed();
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), SinkErrorKind::Timeout, "{e}");
        assert!(e.is_retryable());
    }
    assert!(
        took < Duration::from_secs(3),
        "ack_timeout + 2 s, took {took:?}"
    );
    assert!(sink.is_connected());
}

/// A report too big for the server's max_payload is truncated; one that
/// cannot be cut to fit fails alone; the connection survives either way.
fn oversized_reports_are_cut_or_refused(delivery_jetstream: bool) {
    let server = NatsServer::start_with(ServerOptions {
        max_payload: Some(4096),
        ..Default::default()
    });
    let url = server.url();
    let sub = Subscriber::start(&url, "sync.big");
    let config = if delivery_jetstream {
        jetstream(&url, "sync.big", "BIG")
    } else {
        NatsConfig::new(&url, "sync.big")
    };
    let sink = SyncNatsSink::connect(config).unwrap();

    let huge_message = Report::error("big", "x".repeat(100_000));
    let huge_kind = Report::error("k".repeat(10_000), "the kind alone is too big");
    let batch = Batch::from_reports(vec![
        Report::error("small", "before"),
        huge_message,
        huge_kind,
        Report::error("small", "after"),
    ]);
    let results = send(&sink, &batch);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[1].is_ok(), "truncated and sent: {:?}", results[1]);
    let refused = results[2].as_ref().unwrap_err();
    assert_eq!(refused.kind(), SinkErrorKind::TooLarge, "{refused}");
    assert!(!refused.is_retryable());
    assert!(results[3].is_ok(), "{:?}", results[3]);

    // The server did not close the connection: the next send just works.
    assert!(sink.is_connected());
    let next = Batch::from_reports(reports(5, "next"));
    assert!(send(&sink, &next).iter().all(Result::is_ok));

    let arrived = sub.wait_for(8, Duration::from_secs(10));
    let expected: HashSet<ReportId> = [0, 1, 3]
        .iter()
        .map(|&i| batch.get(i).unwrap().id)
        .chain(ids(&next))
        .collect();
    assert_eq!(
        arrived.ids.iter().copied().collect::<HashSet<_>>(),
        expected
    );
    if delivery_jetstream {
        assert_eq!(stream_len(&url, "BIG"), 8);
    }
}

#[test]
fn oversized_reports_core() {
    oversized_reports_are_cut_or_refused(false);
}

#[test]
fn oversized_reports_jetstream() {
    oversized_reports_are_cut_or_refused(true);
}

#[test]
fn server_down_at_start_is_unavailable_quickly() {
    // Nothing listens on this loopback port.
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let started = Instant::now();
    let sink = SyncNatsSink::connect(NatsConfig::new(&url, "sync.down")).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "connect returns at once"
    );

    let sent = Instant::now();
    let results = send(&sink, &Batch::from_reports(reports(3, "down")));
    let took = sent.elapsed();
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), SinkErrorKind::Unavailable, "{e}");
        assert!(e.message().contains(&url), "names the server: {e}");
    }
    // Well under the worker's default 10 s attempt timeout.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(!sink.is_connected());

    // Dropping a sink whose server never came up does not hang.
    let dropped = Instant::now();
    drop(sink);
    assert!(dropped.elapsed() < Duration::from_secs(2));
}

fn kill_and_restart(jetstream_delivery: bool) {
    let mut server = NatsServer::start();
    let url = server.url();
    if jetstream_delivery {
        create_stream(&url, "KR", "sync.kr", 1);
    }
    let config = if jetstream_delivery {
        NatsConfig::new(&url, "sync.kr").jetstream()
    } else {
        NatsConfig::new(&url, "sync.kr")
    };
    let sink = SyncNatsSink::connect(config).unwrap();
    let before = Batch::from_reports(reports(20, "before"));
    send_until_delivered(&sink, &before, Duration::from_secs(10));

    server.kill();
    assert!(
        wait_until(Duration::from_secs(10), || !sink.is_connected()),
        "the sink noticed the server is gone"
    );
    let down = Batch::from_reports(reports(5, "down"));
    let started = Instant::now();
    for r in send(&sink, &down) {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), SinkErrorKind::Unavailable, "{e}");
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    server.restart();
    // The sink reconnects on its own; the reports retried get through.
    send_until_delivered(&sink, &down, Duration::from_secs(20));
    let after = Batch::from_reports(reports(20, "after"));
    send_until_delivered(&sink, &after, Duration::from_secs(10));
    assert!(sink.is_connected());

    if jetstream_delivery {
        let arrived = stream_arrivals(&url, "KR");
        assert!(arrived.duplicates().is_empty());
        let got: HashSet<ReportId> = arrived.ids.iter().copied().collect();
        for id in ids(&before)
            .into_iter()
            .chain(ids(&down))
            .chain(ids(&after))
        {
            assert!(got.contains(&id), "{id} stored");
        }
    }
    block_on(sink.close()).unwrap();
}

#[test]
fn killed_server_is_unavailable_then_delivery_resumes_core() {
    kill_and_restart(false);
}

#[test]
fn killed_server_is_unavailable_then_delivery_resumes_jetstream() {
    kill_and_restart(true);
}

#[test]
fn wrong_credentials_are_unavailable_with_an_auth_error_and_no_secret() {
    let server = NatsServer::start_with(ServerOptions {
        user_password: Some(("tidings".into(), "right-Pa55".into())),
        ..Default::default()
    });
    let wrong = SyncNatsSink::connect(NatsConfig::new(server.url(), "sync.auth").credentials(
        Credentials::UserPassword {
            user: "tidings".into(),
            password: Secret::new("wr0ng-S3cret"),
        },
    ))
    .unwrap();
    let results = send(&wrong, &Batch::from_reports(reports(2, "auth")));
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), SinkErrorKind::Unavailable, "{e}");
        assert!(
            e.message().contains("Authorization Violation"),
            "says why: {e}"
        );
        assert!(!e.to_string().contains("wr0ng-S3cret"), "{e}");
        assert!(!format!("{e:?}").contains("wr0ng-S3cret"), "{e:?}");
    }
    assert!(!format!("{wrong:?}").contains("wr0ng-S3cret"));
    drop(wrong);

    // The right password works (the failure above was the password).
    let sub = Subscriber::start(
        &format!("nats://tidings:right-Pa55@127.0.0.1:{}", server.port()),
        "sync.auth",
    );
    let right = SyncNatsSink::connect(NatsConfig::new(server.url(), "sync.auth").credentials(
        Credentials::UserPassword {
            user: "tidings".into(),
            password: Secret::new("right-Pa55"),
        },
    ))
    .unwrap();
    let batch = Batch::from_reports(reports(2, "auth"));
    send_until_delivered(&right, &batch, Duration::from_secs(10));
    assert_eq!(sub.wait_for(2, Duration::from_secs(10)).ids.len(), 2);
}

#[test]
fn debug_output_shows_no_secret() {
    let config = NatsConfig::new("nats://alice:hunter2@127.0.0.1:1", "sync.debug")
        .server("nats://s3cr3t-token@127.0.0.1:2")
        .credentials(Credentials::Token(Secret::new("t0ken-value")));
    let sink = SyncNatsSink::connect(config).unwrap();
    let shown = format!("{sink:?}");
    for secret in ["hunter2", "s3cr3t-token", "t0ken-value"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("alice:***"), "{shown}");
    // Errors do not leak them either.
    for r in send(&sink, &Batch::from_reports(reports(1, "debug"))) {
        let e = r.unwrap_err().to_string();
        for secret in ["hunter2", "s3cr3t-token", "t0ken-value"] {
            assert!(!e.contains(secret), "{secret} in {e}");
        }
    }
}

#[test]
fn bad_configuration_names_the_field() {
    let e = SyncNatsSink::connect(NatsConfig::new("nats://127.0.0.1:4222", "a.*")).unwrap_err();
    assert_eq!(e.field(), "nats.subject");
    let e = SyncNatsSink::connect(NatsConfig::new("ws://127.0.0.1:4222", "a.b")).unwrap_err();
    assert_eq!(e.field(), "nats.url");
}

#[test]
fn close_is_prompt_idempotent_and_ends_sending() {
    let server = NatsServer::start();
    let sink = SyncNatsSink::connect(NatsConfig::new(server.url(), "sync.close")).unwrap();
    send_until_delivered(
        &sink,
        &Batch::from_reports(reports(3, "c")),
        Duration::from_secs(10),
    );
    let started = Instant::now();
    block_on(sink.flush()).unwrap();
    block_on(sink.close()).unwrap();
    block_on(sink.close()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!sink.is_connected());
    for r in send(&sink, &Batch::from_reports(reports(2, "late"))) {
        assert_eq!(r.unwrap_err().kind(), SinkErrorKind::Unavailable);
    }
}

#[test]
fn close_while_the_server_is_gone_is_bounded() {
    let mut server = NatsServer::start();
    let sink = SyncNatsSink::connect(NatsConfig::new(server.url(), "sync.gone")).unwrap();
    send_until_delivered(
        &sink,
        &Batch::from_reports(reports(1, "g")),
        Duration::from_secs(10),
    );
    server.kill();
    let started = Instant::now();
    let _ = block_on(sink.close());
    assert!(started.elapsed() < tidings_nats_sync::CLOSE_TIMEOUT + Duration::from_secs(1));
    drop(sink);
}

#[test]
fn a_dropped_send_is_abandoned_and_later_sends_still_work() {
    let server = NatsServer::start();
    let url = server.url();
    let sink = SyncNatsSink::connect(jetstream(&url, "sync.drop", "DROPPED")).unwrap();
    send_until_delivered(
        &sink,
        &Batch::from_reports(reports(1, "warm")),
        Duration::from_secs(10),
    );
    // Start a send and drop its future after the first poll, as the worker
    // does at an attempt timeout.
    let batch = Batch::from_reports(reports(100, "dropped"));
    {
        let mut fut = sink.send(&batch);
        let _ = block_on(futures_lite::future::poll_once(&mut fut));
    }
    // The retry (same ids) is stored once, whatever the first attempt did.
    let acks = send_until_delivered(&sink, &batch, Duration::from_secs(20));
    assert_eq!(acks.len(), 100);
    let arrived = stream_arrivals(&url, "DROPPED");
    assert!(arrived.duplicates().is_empty());
    assert_eq!(arrived.unique(), 101);
}

/// JetStream jobs queued behind each other go out as one pipeline (acks of
/// one overlapping publishes of the next) with a window smaller than a
/// batch: each job still gets its own answer, one dropped in the middle
/// leaves the others alone, and the stream holds every report once.
#[test]
fn queued_jetstream_jobs_are_pipelined_and_answered_each() {
    let server = NatsServer::start();
    let url = server.url();
    let mut config = jetstream(&url, "sync.piped", "PIPED");
    config.delivery = Delivery::JetStream {
        ack_timeout: Duration::from_secs(10),
        max_acks_in_flight: 8,
    };
    let sink = SyncNatsSink::connect(config).unwrap();
    send_until_delivered(
        &sink,
        &Batch::from_reports(reports(1, "warm")),
        Duration::from_secs(10),
    );
    let batches: Vec<Batch> = (0..6)
        .map(|b| Batch::from_reports(reports(40, &format!("piped{b}"))))
        .collect();
    // Queue every job before awaiting any (each first poll hands the job
    // to the I/O thread), and drop the third one's future at once.
    let mut sends: Vec<_> = batches.iter().map(|b| Box::pin(sink.send(b))).collect();
    for fut in &mut sends {
        assert!(block_on(futures_lite::future::poll_once(fut)).is_none());
    }
    let dropped = sends.remove(2);
    drop(dropped);
    for (k, fut) in sends.into_iter().enumerate() {
        let results = block_on(fut);
        assert_eq!(results.len(), 40);
        for r in &results {
            assert!(matches!(r, Ok(Ack::Stored { .. })), "job {k}: {r:?}");
        }
    }
    // The dropped job's reports may or may not be in; a retry (same ids)
    // makes sure, without duplicates.
    send_until_delivered(&sink, &batches[2], Duration::from_secs(20));
    let arrived = stream_arrivals(&url, "PIPED");
    assert!(arrived.duplicates().is_empty());
    assert_eq!(arrived.unique(), 1 + 6 * 40);
}
