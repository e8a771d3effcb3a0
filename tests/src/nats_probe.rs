//! Counting what actually arrived at a NATS server: the messages in a
//! JetStream stream, or what a core subscriber received.
//!
//! Uses the synchronous `nats` client, which is deprecated upstream; the
//! `deprecated` lint is allowed in this module only.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidings_core::{Report, ReportId};

/// What a stream holds, by report id.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Every report id received, in arrival order (duplicates included).
    pub ids: Vec<ReportId>,
    /// Messages whose payload was not a report.
    pub unparsable: usize,
}

impl Arrivals {
    /// How many times each id arrived.
    pub fn counts(&self) -> HashMap<ReportId, usize> {
        let mut m = HashMap::new();
        for id in &self.ids {
            *m.entry(*id).or_insert(0) += 1;
        }
        m
    }

    /// Ids that arrived more than once.
    pub fn duplicates(&self) -> Vec<ReportId> {
        self.counts()
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(id, _)| id)
            .collect()
    }

    /// Number of distinct ids.
    pub fn unique(&self) -> usize {
        self.counts().len()
    }
}

fn connect(url: &str) -> nats::Connection {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match nats::Options::new().with_name("tidings-probe").connect(url) {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("probe could not connect to {url}: {e}"),
        }
    }
}

/// Reads every message of `stream` (all subjects) and parses the report ids.
pub fn stream_arrivals(url: &str, stream: &str) -> Arrivals {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let info = retry(|| js.stream_info(stream)).expect("stream info");
    let expected = info.state.messages;
    let subject = info
        .config
        .subjects
        .first()
        .cloned()
        .expect("stream has a subject");
    let mut arrivals = Arrivals::default();
    if expected == 0 {
        return arrivals;
    }
    let sub = retry(|| {
        js.subscribe_with_options(
            &subject,
            &nats::jetstream::SubscribeOptions::ordered().deliver_all(),
        )
    })
    .expect("ordered consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while (arrivals.ids.len() + arrivals.unparsable) < expected as usize {
        assert!(
            Instant::now() < deadline,
            "read only {} of {expected} messages from stream {stream}",
            arrivals.ids.len()
        );
        match sub.next_timeout(Duration::from_secs(5)) {
            Ok(msg) => match Report::from_json(&msg.data) {
                Ok(r) => arrivals.ids.push(r.id),
                Err(_) => arrivals.unparsable += 1,
            },
            Err(_) => continue,
        }
    }
    let _ = sub.unsubscribe();
    nc.close();
    arrivals
}

/// The server name of `stream`'s RAFT leader (clustered streams).
pub fn stream_leader(url: &str, stream: &str) -> Option<String> {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let leader = retry(|| js.stream_info(stream)).ok()?.cluster.leader;
    nc.close();
    leader
}

/// Number of messages in `stream`.
pub fn stream_len(url: &str, stream: &str) -> u64 {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let n = retry(|| js.stream_info(stream))
        .expect("stream info")
        .state
        .messages;
    nc.close();
    n
}

/// Creates a stream named `stream` capturing `subject` and `subject.>`
/// (with a 2-minute duplicate window), replicated `replicas` times.
pub fn create_stream(url: &str, stream: &str, subject: &str, replicas: usize) {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    retry(|| {
        js.add_stream(nats::jetstream::StreamConfig {
            name: stream.to_owned(),
            subjects: vec![subject.to_owned(), format!("{subject}.>")],
            num_replicas: replicas,
            duplicate_window: 120_000_000_000,
            ..Default::default()
        })
    })
    .expect("create stream");
    nc.close();
}

fn retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A core-NATS subscriber that records the report ids it receives, on a
/// thread of its own. Subscribe *before* reporting: core NATS keeps nothing.
pub struct Subscriber {
    arrivals: Arc<Mutex<Arrivals>>,
    conn: nats::Connection,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Subscribes to `subject` (wildcards allowed) and flushes, so the
    /// subscription is in place when this returns.
    pub fn start(url: &str, subject: &str) -> Subscriber {
        let conn = connect(url);
        let sub = conn.subscribe(subject).expect("subscribe");
        conn.flush().expect("flush subscription");
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let sink = arrivals.clone();
        let thread = std::thread::spawn(move || {
            for msg in sub.iter() {
                let mut a = sink.lock().unwrap();
                match Report::from_json(&msg.data) {
                    Ok(r) => a.ids.push(r.id),
                    Err(_) => a.unparsable += 1,
                }
            }
        });
        Subscriber {
            arrivals,
            conn,
            thread: Some(thread),
        }
    }

    /// Waits until at least `n` messages arrived or `timeout` passed, then
    /// returns a copy of what arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Arrivals {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let a = self.arrivals.lock().unwrap();
                if a.ids.len() + a.unparsable >= n || Instant::now() >= deadline {
                    return Arrivals {
                        ids: a.ids.clone(),
                        unparsable: a.unparsable,
                    };
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.conn.clone().close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
