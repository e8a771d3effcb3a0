//! Counting what actually arrived at a NATS server: the messages in a
//! JetStream stream, or what a core subscriber received.
//!
//! Uses the synchronous `nats` client, which is deprecated upstream; the
//! `deprecated` lint is allowed in this module only.
#![allow(deprecated)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tidings_core::{Report, ReportId};

/// What a stream holds, by report id.
#[derive(Clone, Debug, Default)]
pub struct Arrivals {
    /// Every report id received, in arrival order (duplicates included).
    pub ids: Vec<ReportId>,
    /// The reports themselves, in the same order.
    pub reports: Vec<Report>,
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

    fn record(&mut self, payload: &[u8]) {
        match Report::from_json(payload) {
            Ok(r) => {
                self.ids.push(r.id);
                self.reports.push(r);
            }
            Err(_) => self.unparsable += 1,
        }
    }

    /// Number of distinct ids.
    pub fn unique(&self) -> usize {
        self.counts().len()
    }
}

/// How the probes reach a server that needs more than its URL (TLS with a
/// private CA, a client certificate, a `.creds` file). Passwords and tokens
/// go in the URL (`NatsServer::url_as`).
#[derive(Clone, Debug, Default)]
pub struct ProbeAccess {
    /// The CA to trust for the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key (mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// A `.creds` file (operator mode).
    pub creds_file: Option<PathBuf>,
    /// A token.
    pub token: Option<String>,
}

fn access() -> &'static Mutex<HashMap<String, ProbeAccess>> {
    static ACCESS: OnceLock<Mutex<HashMap<String, ProbeAccess>>> = OnceLock::new();
    ACCESS.get_or_init(Default::default)
}

/// Every probe of this module connecting to `url` (exactly this string)
/// uses `how`. Ports are random, so entries of different tests never meet.
pub fn set_probe_access(url: &str, how: ProbeAccess) {
    access().lock().unwrap().insert(url.to_owned(), how);
}

fn options_for(url: &str) -> nats::Options {
    let how = access()
        .lock()
        .unwrap()
        .get(url)
        .cloned()
        .unwrap_or_default();
    let mut options = match (&how.creds_file, &how.token) {
        (Some(path), _) => nats::Options::with_credentials(path),
        (None, Some(token)) => nats::Options::with_token(token),
        (None, None) => nats::Options::new(),
    };
    if let Some(ca) = &how.ca_file {
        options = options.add_root_certificate(ca);
    }
    if let Some((cert, key)) = &how.client_cert {
        options = options.client_cert(cert, key);
    }
    options.with_name("tidings-probe")
}

fn connect(url: &str) -> nats::Connection {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match options_for(url).connect(url) {
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
///
/// Reads through an ordered consumer. Creating one needs the JetStream meta
/// leader; right after a cluster node was killed, on a loaded machine, its
/// election can outlast our patience (30 s). The stream is then read one
/// message at a time by sequence instead, which only needs the stream's own
/// leader (the one that just answered `stream_info`).
pub fn stream_arrivals(url: &str, stream: &str) -> Arrivals {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let info = retry(|| js.stream_info(stream)).expect("stream info");
    let subject = info
        .config
        .subjects
        .first()
        .cloned()
        .expect("stream has a subject");
    let arrivals = if info.state.messages == 0 {
        Arrivals::default()
    } else {
        let consumer = retry_for(CONSUMER_PATIENCE, || {
            js.subscribe_with_options(
                &subject,
                &nats::jetstream::SubscribeOptions::ordered().deliver_all(),
            )
        });
        match consumer {
            Ok(sub) => {
                let arrivals = read_consumer(&sub, stream, info.state.messages);
                let _ = sub.unsubscribe();
                arrivals
            }
            Err(e) => {
                eprintln!(
                    "probe: no ordered consumer on {stream} within {CONSUMER_PATIENCE:?} ({e}); \
                     reading it by sequence"
                );
                read_by_sequence(&js, stream, info.state.first_seq, info.state.last_seq)
            }
        }
    };
    nc.close();
    arrivals
}

/// How long [`stream_arrivals`] tries to create its ordered consumer.
const CONSUMER_PATIENCE: Duration = Duration::from_secs(30);

fn read_consumer(sub: &nats::jetstream::PushSubscription, stream: &str, expected: u64) -> Arrivals {
    let mut arrivals = Arrivals::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (arrivals.ids.len() + arrivals.unparsable) < expected as usize {
        assert!(
            Instant::now() < deadline,
            "read only {} of {expected} messages from stream {stream}",
            arrivals.ids.len()
        );
        if let Ok(msg) = sub.next_timeout(Duration::from_secs(5)) {
            arrivals.record(&msg.data);
        }
    }
    arrivals
}

/// Reads `stream` message by message, sequences `first..=last`; a sequence
/// that holds no message (deleted) is skipped.
pub fn stream_arrivals_by_sequence(url: &str, stream: &str) -> Arrivals {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let state = retry(|| js.stream_info(stream)).expect("stream info").state;
    let arrivals = if state.messages == 0 {
        Arrivals::default()
    } else {
        read_by_sequence(&js, stream, state.first_seq, state.last_seq)
    };
    nc.close();
    arrivals
}

fn read_by_sequence(
    js: &nats::jetstream::JetStream,
    stream: &str,
    first: u64,
    last: u64,
) -> Arrivals {
    let mut arrivals = Arrivals::default();
    for seq in first..=last {
        match retry(|| match js.get_message(stream, seq) {
            Ok(msg) => Ok(Some(msg)),
            Err(e) if is_no_message_found(&e) => Ok(None),
            Err(e) => Err(e),
        }) {
            Ok(Some(msg)) => arrivals.record(&msg.data),
            Ok(None) => {}
            Err(e) => panic!("reading {stream} sequence {seq}: {e}"),
        }
    }
    arrivals
}

/// Every report in `stream`, whole, in sequence order (for checking what
/// an outside reader of the stream sees).
pub fn stream_reports(url: &str, stream: &str) -> Vec<Report> {
    let a = stream_arrivals_by_sequence(url, stream);
    assert_eq!(a.unparsable, 0, "messages in {stream} that are not reports");
    a.reports
}

/// The settings of `stream` as the server reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettingsRead {
    /// Its subjects.
    pub subjects: Vec<String>,
    /// Its replicas.
    pub replicas: usize,
    /// Its `max_age` (zero: for ever).
    pub max_age: Duration,
    /// Its `max_bytes` (-1: unlimited).
    pub max_bytes: i64,
    /// Its `max_msgs` (-1: unlimited).
    pub max_msgs: i64,
    /// `"file"` or `"memory"`.
    pub storage: &'static str,
    /// `"old"` or `"new"`.
    pub discard: &'static str,
    /// Its duplicate window.
    pub duplicate_window: Duration,
    /// Servers holding a replica (the leader and the others), in a cluster.
    pub servers_with_replica: usize,
}

/// Reads `stream`'s configuration back from its info.
pub fn stream_settings(url: &str, stream: &str) -> StreamSettingsRead {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let info = retry(|| js.stream_info(stream)).expect("stream info");
    nc.close();
    let c = info.config;
    StreamSettingsRead {
        subjects: c.subjects,
        replicas: c.num_replicas,
        max_age: c.max_age,
        max_bytes: c.max_bytes,
        max_msgs: c.max_msgs,
        storage: match c.storage {
            nats::jetstream::StorageType::File => "file",
            nats::jetstream::StorageType::Memory => "memory",
        },
        discard: match c.discard {
            nats::jetstream::DiscardPolicy::New => "new",
            _ => "old",
        },
        duplicate_window: Duration::from_nanos(c.duplicate_window.max(0) as u64),
        servers_with_replica: usize::from(info.cluster.leader.is_some())
            + info.cluster.replicas.len(),
    }
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

/// A stream with limits, for [`create_stream_with`].
#[derive(Clone, Debug, Default)]
pub struct StreamSpec {
    /// The stream's name.
    pub name: String,
    /// The subjects it captures.
    pub subjects: Vec<String>,
    /// Most messages kept (`None`: unlimited).
    pub max_msgs: Option<i64>,
    /// With a limit: refuse new messages when full (`discard: new`) instead
    /// of evicting the oldest.
    pub discard_new: bool,
    /// Largest message accepted, in bytes (`None`: unlimited).
    pub max_msg_size: Option<i32>,
}

/// Creates a stream from a [`StreamSpec`] (2-minute duplicate window),
/// waiting out a JetStream that is still starting.
pub fn create_stream_with(url: &str, spec: StreamSpec) {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let config = nats::jetstream::StreamConfig {
        name: spec.name,
        subjects: spec.subjects,
        max_msgs: spec.max_msgs.unwrap_or(-1),
        max_msg_size: spec.max_msg_size.unwrap_or(-1),
        discard: if spec.discard_new {
            nats::jetstream::DiscardPolicy::New
        } else {
            nats::jetstream::DiscardPolicy::Old
        },
        duplicate_window: 120_000_000_000,
        ..Default::default()
    };
    retry(|| js.add_stream(config.clone())).expect("create stream");
    nc.close();
}

/// Deletes `stream` (an operator's mistake, for fault tests).
pub fn delete_stream(url: &str, stream: &str) {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    retry(|| js.delete_stream(stream)).expect("delete stream");
    nc.close();
}

/// The subjects `stream` captures, or `None` when there is no such stream.
pub fn stream_subjects(url: &str, stream: &str) -> Option<Vec<String>> {
    let nc = connect(url);
    let js = nats::jetstream::new(nc.clone());
    let subjects = js.stream_info(stream).ok().map(|i| i.config.subjects);
    nc.close();
    subjects
}

fn is_no_message_found(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<nats::jetstream::Error>())
        .is_some_and(|api| api.error_code() == nats::jetstream::ErrorCode::NoMessageFound)
}

fn retry<T>(f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    retry_for(Duration::from_secs(20), f)
}

fn retry_for<T>(
    patience: Duration,
    mut f: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let deadline = Instant::now() + patience;
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
                sink.lock().unwrap().record(&msg.data);
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
        self.wait_until(timeout, |a| a.ids.len() + a.unparsable >= n)
    }

    /// Waits until every id in `expected` arrived or `timeout` passed, then
    /// returns a copy of what arrived. Unlike [`Subscriber::wait_for`], a
    /// count is not enough here: reports that were published but spilled at
    /// a teardown (at-least-once) may arrive too, and must not stand in for
    /// a delivered one that has not arrived yet.
    pub fn wait_for_all(&self, expected: &[ReportId], timeout: Duration) -> Arrivals {
        let expected: HashSet<ReportId> = expected.iter().copied().collect();
        self.wait_until(timeout, |a| {
            expected.is_subset(&a.ids.iter().copied().collect::<HashSet<_>>())
        })
    }

    /// Polls every 10 ms until `done` holds for what arrived or `timeout`
    /// passed, then returns a copy of what arrived.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&Arrivals) -> bool) -> Arrivals {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let a = self.arrivals.lock().unwrap();
                if done(&a) || Instant::now() >= deadline {
                    return a.clone();
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
