//! Reports lost when the tokio runtime is dropped right after reporting:
//! the naive spawn-per-report pattern against tidings-tokio.
//!
//! Each trial reports 10,000 reports inside `rt.block_on`, then drops the
//! runtime at once (no shutdown), on a multi-thread and on a current-thread
//! runtime, and counts what a core-NATS subscriber (subscribed before the
//! trial, on a subject of the trial's own) received.
//!
//! * naive: `tokio::spawn(async move { client.publish(..).await })` per
//!   report. It keeps no account, so lost = reported − arrived.
//! * tidings: `reporter.report(r)`, the `NatsSink` on core NATS, an
//!   in-memory fallback. lost = accepted − (delivered + spilled) from the
//!   reporter's own counters, cross-checked against what arrived: an
//!   accepted id that neither arrived nor is in the fallback was counted as
//!   delivered (core NATS: flushed to the socket) yet never reached the
//!   subscriber; those are counted as `missing`, and the server's own count
//!   of messages received (`/varz` `in_msgs`) says on which side they
//!   vanished.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use tidings_bench::reports;
use tidings_conformance::nats_probe::{Arrivals, Subscriber};
use tidings_core::nats::NatsConfig;
use tidings_core::testing::MemoryFallback;
use tidings_core::{ReportId, Reporter};

use crate::server::Server;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    MultiThread,
    CurrentThread,
}

impl Flavor {
    pub fn label(self) -> &'static str {
        match self {
            Flavor::MultiThread => "multi-thread (2 workers)",
            Flavor::CurrentThread => "current-thread",
        }
    }

    fn runtime(self) -> tokio::runtime::Runtime {
        match self {
            Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .expect("tokio runtime")
    }
}

/// One trial's outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trial {
    pub reported: u64,
    pub arrived: u64,
    pub delivered: u64,
    pub spilled: u64,
    /// By the pattern's own account (naive: reported − arrived).
    pub lost: u64,
    /// tidings only: accepted ids that neither arrived nor were spilled —
    /// that is, counted as delivered (core NATS: flushed to the socket) but
    /// never seen by the subscriber.
    pub missing: u64,
    /// Messages the server received from clients during the trial.
    pub server_received: u64,
}

/// Waits until `n` messages arrived or the count stops moving.
fn settle(sub: &Subscriber, n: usize) -> Arrivals {
    let mut last = usize::MAX;
    loop {
        let a = sub.wait_for(n, Duration::from_millis(400));
        let got = a.ids.len() + a.unparsable;
        if got >= n || got == last {
            return a;
        }
        last = got;
    }
}

pub fn naive(server: &Server, flavor: Flavor, subject: &str, n: usize) -> Trial {
    let sub = Subscriber::start(&server.url(), subject);
    let before = server.in_msgs();
    let payloads: Vec<Bytes> = reports(n)
        .iter()
        .map(|r| Bytes::from(r.to_json()))
        .collect();
    let rt = flavor.runtime();
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.expect("connect");
        for p in payloads {
            let client = client.clone();
            let subject = subject.to_owned();
            tokio::spawn(async move {
                let _ = client.publish(subject, p).await;
            });
        }
    });
    drop(rt);
    let arrived = settle(&sub, n).unique() as u64;
    Trial {
        reported: n as u64,
        arrived,
        lost: n as u64 - arrived.min(n as u64),
        server_received: server.in_msgs() - before,
        ..Trial::default()
    }
}

pub fn tidings(server: &Server, flavor: Flavor, subject: &str, n: usize) -> Trial {
    let sub = Subscriber::start(&server.url(), subject);
    let before = server.in_msgs();
    let reports = reports(n);
    let ids: Vec<ReportId> = reports.iter().map(|r| r.id).collect();
    let spill = MemoryFallback::new();
    let rt = flavor.runtime();
    let (reporter, guard) = rt.block_on(async {
        let sink = tidings_tokio::NatsSink::connect(NatsConfig::new(server.url(), subject))
            .await
            .expect("sink");
        let (reporter, guard) = tidings_tokio::start(
            Reporter::builder()
                .folding(tidings_core::Folding::off())
                .service(tidings_bench::SERVICE)
                // The whole trial fits the queue: what is tested is the
                // teardown, not the overflow policy.
                .capacity(2 * n)
                .log_to_stderr(false)
                .fallback(spill.clone())
                .sink(sink),
        )
        .expect("start");
        for r in reports {
            let _ = reporter.report(r);
        }
        (reporter, guard)
    });
    drop(rt);
    let s = reporter.stats();
    // After the runtime is gone the guard has nothing left to do.
    drop(guard);
    let arrivals = settle(&sub, n);
    let arrived: HashSet<ReportId> = arrivals.ids.iter().copied().collect();
    let spilled: HashSet<ReportId> = spill.ids().into_iter().collect();
    let missing = ids
        .iter()
        .filter(|id| !arrived.contains(id) && !spilled.contains(id))
        .count() as u64;
    Trial {
        reported: s.accepted,
        arrived: arrived.len() as u64,
        delivered: s.delivered,
        spilled: s.spilled,
        lost: s.accepted - (s.delivered + s.spilled).min(s.accepted),
        missing,
        server_received: server.in_msgs() - before,
    }
}
