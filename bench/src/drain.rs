//! Shutdown drain: how long `shutdown()` takes to deliver 100k reports that
//! are all queued when it starts, against a raw async-nats loop publishing
//! the same 100k serialized reports.
//!
//! Both run on a tokio current-thread runtime: that is what makes "all
//! queued" exact (the worker cannot run while the reports are reported),
//! and it puts raw and tidings on the same single thread. Raw time: first
//! publish to `flush()` returned (core) or last ack in (JetStream, 1024
//! acks in flight), serializing each report in the loop (like for like;
//! the ratios are to this) or pre-serialized (the ceiling). tidings time: `shutdown()` called to returned — the
//! drain, then the sink's flush and close (async-nats drain, wait for
//! `Closed`).

use std::time::{Duration, Instant};

use tidings_bench::reports;
use tidings_conformance::nats_probe;
use tidings_core::Ending;

use crate::e2e::{self, STREAM, SUBJECT};
use crate::server::Server;

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub secs: f64,
    pub arrived: u64,
    pub delivered: u64,
    pub spilled: u64,
    pub drained: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    RawCore,
    RawCorePre,
    TidingsCore,
    RawJetStream,
    RawJetStreamPre,
    TidingsJetStream,
}

impl Config {
    pub fn label(self) -> &'static str {
        match self {
            Config::RawCore => "raw async-nats core: serialize + publish each, then flush",
            Config::RawCorePre => {
                "raw async-nats core: publish pre-serialized, then flush (ceiling)"
            }
            Config::TidingsCore => "tidings-tokio → core NATS: shutdown() with all queued",
            Config::RawJetStream => {
                "raw async-nats JetStream: serialize + publish each, 1024 acks in flight"
            }
            Config::RawJetStreamPre => {
                "raw async-nats JetStream: pre-serialized, 1024 acks in flight (ceiling)"
            }
            Config::TidingsJetStream => "tidings-tokio → JetStream: shutdown() with all queued",
        }
    }

    pub fn is_jetstream(self) -> bool {
        matches!(
            self,
            Config::RawJetStream | Config::RawJetStreamPre | Config::TidingsJetStream
        )
    }

    pub fn run(self, n: usize) -> Sample {
        let server = Server::start();
        let url = server.url();
        if self.is_jetstream() {
            nats_probe::create_stream(&url, STREAM, SUBJECT, 1);
        }
        let before = if self.is_jetstream() {
            0
        } else {
            server.in_msgs()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut sample = match self {
            Config::RawCore | Config::RawJetStream => {
                let source = e2e::raw_source(n, false, self.is_jetstream());
                rt.block_on(raw(&url, source, self.is_jetstream()))
            }
            Config::RawCorePre | Config::RawJetStreamPre => {
                let source = e2e::raw_source(n, true, self.is_jetstream());
                rt.block_on(raw(&url, source, self.is_jetstream()))
            }
            Config::TidingsCore | Config::TidingsJetStream => {
                rt.block_on(tidings(&url, n, self.is_jetstream()))
            }
        };
        drop(rt);
        sample.arrived = if self.is_jetstream() {
            nats_probe::stream_len(&url, STREAM)
        } else {
            server.wait_in_msgs(before + n as u64, Duration::from_secs(2)) - before
        };
        sample
    }
}

async fn raw(url: &str, source: e2e::Source, jetstream: bool) -> Sample {
    let client = async_nats::connect(url).await.expect("connect");
    let (elapsed, stored) = e2e::raw_publish(client, source, jetstream).await;
    Sample {
        secs: elapsed.as_secs_f64(),
        delivered: stored,
        drained: true,
        ..Sample::default()
    }
}

async fn tidings(url: &str, n: usize, jetstream: bool) -> Sample {
    let reports = reports(n);
    let sink = crate::e2e::connect_tokio_sink(url, jetstream).await;
    let (reporter, guard) = tidings_tokio::start(crate::e2e::builder(n).sink(sink)).expect("start");
    // No await in this loop: the worker cannot run, everything is queued.
    for r in reports {
        let _ = reporter.report(r);
    }
    assert_eq!(reporter.stats().in_flight, n as u64, "not all queued");
    let t = Instant::now();
    let summary = guard.shutdown_within(Duration::from_secs(60)).await;
    Sample {
        secs: t.elapsed().as_secs_f64(),
        delivered: summary.stats.delivered,
        spilled: summary.stats.spilled,
        drained: summary.ended_by == Ending::Drained,
        ..Sample::default()
    }
}
