//! End-to-end throughput: tidings through each adapter's own NATS sink
//! against a raw async-nats loop publishing the same reports.
//!
//! Every run starts a fresh nats-server, so no run inherits another's
//! stream or connections. What arrived is counted on the server (core:
//! `/varz` `in_msgs`; JetStream: the stream's length), so a fast number is
//! never a lossy one.
//!
//! Timing: from the first publish (raw) or the first `report()` (tidings)
//! until every report is accounted for — raw core: `flush()` returned; raw
//! JetStream: every ack is in; tidings: `delivered + spilled + lost` equals
//! the number reported (polled every millisecond). The reports are built
//! before the clock starts. The raw loop comes in two forms: serializing
//! each report inside the timed loop (like for like: tidings serializes in
//! its sink; the ratios are to this one) and publishing payloads
//! serialized beforehand (the transport's ceiling). The tidings queue holds
//! the whole run (`capacity = n`), so this measures the delivery pipeline,
//! not an overflow policy.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tidings_bench::reports;
use tidings_conformance::nats_probe;
use tidings_core::nats::NatsConfig;
use tidings_core::testing::MemoryFallback;
use tidings_core::{Report, Reporter, ReporterBuilder, Stats};

use crate::server::Server;

pub const SUBJECT: &str = "bench.reports";
pub const STREAM: &str = "BENCH";
/// Acks in flight for the raw JetStream loop (tidings' default window).
pub const RAW_ACK_WINDOW: usize = 1024;

/// One measured run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub secs: f64,
    /// What the server says it got (messages in, or stream length).
    pub arrived: u64,
    pub delivered: u64,
    pub spilled: u64,
    pub lost: u64,
}

impl Sample {
    pub fn rate(&self, n: usize) -> f64 {
        n as f64 / self.secs
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    RawCore,
    RawCorePre,
    TokioCore,
    RawJetStream,
    RawJetStreamPre,
    TokioJetStream,
    BlockingJetStream,
    SmolJetStream,
    /// tidings-tokio's sink alone, no reporter (profiling only).
    TokioCoreSinkOnly,
    /// tidings-tokio's JetStream sink alone, no reporter (profiling only).
    TokioJetStreamSinkOnly,
}

impl Config {
    pub fn label(self) -> &'static str {
        match self {
            Config::RawCore => "raw async-nats core publish loop, serializing each report",
            Config::RawCorePre => "raw async-nats core publish loop, pre-serialized (ceiling)",
            Config::TokioCore => "tidings-tokio → core NATS (NatsSink)",
            Config::RawJetStream => {
                "raw async-nats JetStream, 1024 acks in flight, serializing each report"
            }
            Config::RawJetStreamPre => {
                "raw async-nats JetStream, 1024 acks in flight, pre-serialized (ceiling)"
            }
            Config::TokioJetStream => "tidings-tokio → JetStream (NatsSink)",
            Config::BlockingJetStream => "tidings-blocking → JetStream (SyncNatsSink)",
            Config::SmolJetStream => "tidings-smol → JetStream (SyncNatsSink)",
            Config::TokioCoreSinkOnly => "NatsSink alone → core NATS, 4 batches at once",
            Config::TokioJetStreamSinkOnly => "NatsSink alone → JetStream, 4 batches at once",
        }
    }

    pub const ALL: [Config; 8] = [
        Config::RawCore,
        Config::RawCorePre,
        Config::TokioCore,
        Config::RawJetStream,
        Config::RawJetStreamPre,
        Config::TokioJetStream,
        Config::BlockingJetStream,
        Config::SmolJetStream,
    ];

    /// Configurations that take the table apart, for `--only` (profiling):
    /// not part of the suite's tables.
    pub const PROFILING: [Config; 2] = [Config::TokioCoreSinkOnly, Config::TokioJetStreamSinkOnly];

    /// Short name, for `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Config::RawCore => "raw-core",
            Config::RawCorePre => "raw-core-pre",
            Config::TokioCore => "tokio-core",
            Config::RawJetStream => "raw-js",
            Config::RawJetStreamPre => "raw-js-pre",
            Config::TokioJetStream => "tokio-js",
            Config::BlockingJetStream => "blocking-js",
            Config::SmolJetStream => "smol-js",
            Config::TokioCoreSinkOnly => "tokio-core-sink",
            Config::TokioJetStreamSinkOnly => "tokio-js-sink",
        }
    }

    pub fn is_jetstream(self) -> bool {
        !matches!(
            self,
            Config::RawCore | Config::RawCorePre | Config::TokioCore | Config::TokioCoreSinkOnly
        )
    }

    pub fn run(self, n: usize) -> Sample {
        let server = Server::start();
        if self.is_jetstream() {
            nats_probe::create_stream(&server.url(), STREAM, SUBJECT, 1);
        }
        let before = if self.is_jetstream() {
            0
        } else {
            server.in_msgs()
        };
        let mut sample = match self {
            Config::RawCore => raw(&server.url(), n, false, false),
            Config::RawCorePre => raw(&server.url(), n, true, false),
            Config::TokioCore => tokio_sink(&server.url(), n, false),
            Config::RawJetStream => raw(&server.url(), n, false, true),
            Config::RawJetStreamPre => raw(&server.url(), n, true, true),
            Config::TokioJetStream => tokio_sink(&server.url(), n, true),
            Config::BlockingJetStream => blocking_jetstream(&server.url(), n),
            Config::SmolJetStream => smol_jetstream(&server.url(), n),
            Config::TokioCoreSinkOnly => tokio_sink_only(&server.url(), n, false),
            Config::TokioJetStreamSinkOnly => tokio_sink_only(&server.url(), n, true),
        };
        sample.arrived = if self.is_jetstream() {
            nats_probe::stream_len(&server.url(), STREAM)
        } else {
            server.wait_in_msgs(before + n as u64, Duration::from_secs(2)) - before
        };
        sample
    }
}

pub fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What a raw loop publishes: the reports serialized inside the timed loop
/// (like for like with tidings, which serializes in its sink), or payloads
/// serialized before the clock starts (the transport's ceiling).
pub type Source = Box<dyn Iterator<Item = (Option<String>, Bytes)> + Send>;

/// `n` reports for a raw loop; `with_id` adds the id (for `Nats-Msg-Id`).
pub fn raw_source(n: usize, preserialized: bool, with_id: bool) -> Source {
    let encode = move |r: Report| (with_id.then(|| r.id.to_string()), Bytes::from(r.to_json()));
    let reports = reports(n);
    if preserialized {
        let payloads: Vec<_> = reports.into_iter().map(encode).collect();
        Box::new(payloads.into_iter())
    } else {
        Box::new(reports.into_iter().map(encode))
    }
}

/// The raw loop: core publish of everything then one `flush()`, or
/// JetStream publish with `Nats-Msg-Id` and at most [`RAW_ACK_WINDOW`]
/// acks outstanding. Returns the time taken and how many were stored
/// (core: published).
pub async fn raw_publish(
    client: async_nats::Client,
    source: Source,
    jetstream: bool,
) -> (Duration, u64) {
    if !jetstream {
        let t = Instant::now();
        let mut published = 0;
        for (_, p) in source {
            client.publish(SUBJECT, p).await.expect("publish");
            published += 1;
        }
        client.flush().await.expect("flush");
        return (t.elapsed(), published);
    }
    let js = async_nats::jetstream::new(client);
    let t = Instant::now();
    let mut acks = FuturesUnordered::new();
    let mut stored = 0u64;
    for (id, p) in source {
        if acks.len() >= RAW_ACK_WINDOW {
            if let Some(Ok(_)) = acks.next().await {
                stored += 1;
            }
        }
        let mut message = async_nats::jetstream::message::PublishMessage::build().payload(p);
        if let Some(id) = id {
            message = message.message_id(id);
        }
        let ack = js.send_publish(SUBJECT, message).await.expect("publish");
        acks.push(std::future::IntoFuture::into_future(ack));
    }
    while let Some(ack) = acks.next().await {
        if ack.is_ok() {
            stored += 1;
        }
    }
    (t.elapsed(), stored)
}

fn raw(url: &str, n: usize, preserialized: bool, jetstream: bool) -> Sample {
    let source = raw_source(n, preserialized, jetstream);
    let rt = tokio_rt();
    rt.block_on(async {
        let client = async_nats::connect(url).await.expect("connect");
        // On a worker thread, as tidings' worker is.
        let publisher = tokio::spawn(raw_publish(client, source, jetstream));
        let (elapsed, stored) = publisher.await.expect("publisher task");
        Sample {
            secs: elapsed.as_secs_f64(),
            delivered: stored,
            ..Sample::default()
        }
    })
}

/// tidings-tokio's NATS sink on `url` (JetStream or core), connected.
pub(crate) async fn connect_tokio_sink(url: &str, jetstream: bool) -> tidings_tokio::NatsSink {
    let config = NatsConfig::new(url, SUBJECT);
    let config = if jetstream {
        config.jetstream()
    } else {
        config
    };
    let sink = tidings_tokio::NatsSink::connect(config)
        .await
        .expect("sink");
    assert!(sink.is_connected(), "the sink did not connect");
    sink
}

/// The reporter every tidings configuration uses: the whole run fits the
/// queue, spills go to memory.
pub(crate) fn builder(n: usize) -> ReporterBuilder {
    Reporter::builder()
        .folding(tidings_core::Folding::off())
        .service(tidings_bench::SERVICE)
        .capacity(n)
        .fallback(MemoryFallback::new())
}

fn settled(s: &Stats) -> u64 {
    s.delivered + s.spilled + s.lost
}

fn sample_of(elapsed: Duration, s: &Stats) -> Sample {
    Sample {
        secs: elapsed.as_secs_f64(),
        delivered: s.delivered,
        spilled: s.spilled,
        lost: s.lost,
        ..Sample::default()
    }
}

fn tokio_sink(url: &str, n: usize, jetstream: bool) -> Sample {
    let reports = reports(n);
    let rt = tokio_rt();
    rt.block_on(async {
        let sink = connect_tokio_sink(url, jetstream).await;
        let (reporter, guard) = tidings_tokio::start(builder(n).sink(sink)).expect("start");
        let t = Instant::now();
        let producer = tokio::spawn({
            let reporter = reporter.clone();
            async move {
                for r in reports {
                    let _ = reporter.report(r);
                }
            }
        });
        producer.await.expect("producer task");
        while settled(&reporter.stats()) < n as u64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = t.elapsed();
        let summary = guard.shutdown_within(Duration::from_secs(10)).await;
        sample_of(elapsed, &summary.stats)
    })
}

/// The sink without the reporter: batches of 512 built before the clock,
/// sent by 4 tasks at once (the worker's defaults), results counted.
fn tokio_sink_only(url: &str, n: usize, jetstream: bool) -> Sample {
    use tidings_core::{Ack, Batch, Sink};
    let mut batches: Vec<Batch> = Vec::new();
    let mut all = reports(n).into_iter().peekable();
    while all.peek().is_some() {
        batches.push(Batch::from_reports(all.by_ref().take(512).collect()));
    }
    let rt = tokio_rt();
    rt.block_on(async {
        let sink = std::sync::Arc::new(connect_tokio_sink(url, jetstream).await);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(batches));
        let t = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (sink, queue) = (sink.clone(), queue.clone());
                tokio::spawn(async move {
                    let mut ok = 0u64;
                    loop {
                        let Some(batch) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        ok += sink
                            .send(&batch)
                            .await
                            .iter()
                            .filter(|r| matches!(r, Ok(Ack::Sent | Ack::Stored { .. })))
                            .count() as u64;
                    }
                    ok
                })
            })
            .collect();
        let mut delivered = 0;
        for task in tasks {
            delivered += task.await.expect("sender task");
        }
        Sample {
            secs: t.elapsed().as_secs_f64(),
            delivered,
            ..Sample::default()
        }
    })
}

fn wait_connected(sink: &tidings_blocking::NatsSink) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sink.is_connected() {
        assert!(Instant::now() < deadline, "the sink did not connect");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn blocking_jetstream(url: &str, n: usize) -> Sample {
    let reports = reports(n);
    let sink = tidings_blocking::NatsSink::connect(NatsConfig::new(url, SUBJECT).jetstream())
        .expect("sink");
    wait_connected(&sink);
    let (reporter, guard) = tidings_blocking::start(builder(n).sink(sink)).expect("start");
    let t = Instant::now();
    for r in reports {
        let _ = reporter.report(r);
    }
    while settled(&reporter.stats()) < n as u64 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = t.elapsed();
    let summary = guard.shutdown_blocking_within(Duration::from_secs(10));
    sample_of(elapsed, &summary.stats)
}

fn smol_jetstream(url: &str, n: usize) -> Sample {
    let reports = reports(n);
    let sink =
        tidings_smol::NatsSink::connect(NatsConfig::new(url, SUBJECT).jetstream()).expect("sink");
    wait_connected(&sink);
    smol::block_on(async {
        let (reporter, guard) = tidings_smol::start(builder(n).sink(sink)).expect("start");
        let t = Instant::now();
        for r in reports {
            let _ = reporter.report(r);
        }
        while settled(&reporter.stats()) < n as u64 {
            smol::Timer::after(Duration::from_millis(1)).await;
        }
        let elapsed = t.elapsed();
        let summary = guard.shutdown_within(Duration::from_secs(10)).await;
        sample_of(elapsed, &summary.stats)
    })
}
