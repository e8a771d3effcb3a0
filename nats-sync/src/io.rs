//! The sink's I/O thread: every blocking client call happens here.
//!
//! The thread owns the connection ([`Link`]) and takes messages from one
//! channel: jobs from the async side ([`Msg::Send`], [`Msg::Close`]),
//! results of connect attempts (made on short-lived threads of their own, so
//! a slow TCP connect never stalls a job), and the client's word that a
//! connection died. Jobs run one at a time, except that JetStream jobs
//! already queued when one starts are sent with it as one pipeline (the
//! acks of one batch overlap the publishes of the next, instead of the
//! pipeline running dry at every batch boundary). Each job answers on its
//! own reply channel as soon as its last ack is in, and gives up early when
//! that channel's receiver is gone (the worker dropped the send future).

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tidings_core::nats::{
    publish_denied, publish_refusal, ConnectFailure, Delivery, NatsConfig, ServerAnswer,
    StreamCheck, StreamGate,
};
use tidings_core::{Ack, Batch, SinkError, SinkErrorKind};

use crate::ack;
use crate::client::{self, Hooks, Link, LinkState, NextReply};
use crate::FLUSH_TIMEOUT;
use tidings_core::nats::Redactor;

/// How often waits for replies look up from the inbox (connection lost?
/// job abandoned?).
const POLL_SLICE: Duration = Duration::from_millis(20);
/// Reconnect backoff: doubles from the first to the last, then jitter.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Server errors kept for attributing them to a batch.
const ERRORS_KEPT: usize = 32;
/// At most this many queued JetStream jobs are sent as one pipeline.
const MAX_PIPELINED_JOBS: usize = 8;

pub(crate) type Results = Vec<Result<Ack, SinkError>>;

/// What the I/O thread is asked to do or told.
pub(crate) enum Msg {
    Send(SendJob),
    /// Close the connection, answer, and end the thread.
    Close(async_channel::Sender<()>),
    /// The sink was dropped: close and end the thread, nobody waits.
    Shutdown,
    /// A connect attempt finished.
    Connected {
        attempt: u64,
        result: Result<(Link, Option<StreamCheck>), String>,
    },
    /// The client of some connection ended its threads (a wake-up: the
    /// loop finds which).
    LinkDead,
}

pub(crate) struct SendJob {
    pub(crate) batch: Batch,
    pub(crate) reply: async_channel::Sender<Results>,
}

/// State the async side reads too.
#[derive(Default)]
pub(crate) struct Shared {
    current: Mutex<Option<Arc<LinkState>>>,
    errors: Mutex<ErrorLog>,
}

#[derive(Default)]
struct ErrorLog {
    /// Number of errors ever recorded.
    count: u64,
    recent: VecDeque<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn is_connected(&self) -> bool {
        lock(&self.current).as_ref().is_some_and(|s| s.is_up())
    }

    fn set_current(&self, state: Option<Arc<LinkState>>) {
        *lock(&self.current) = state;
    }

    fn record_error(&self, text: String) {
        let mut log = lock(&self.errors);
        log.count += 1;
        if log.recent.len() == ERRORS_KEPT {
            log.recent.pop_front();
        }
        log.recent.push_back(text);
    }

    fn last_error(&self) -> Option<String> {
        lock(&self.errors).recent.back().cloned()
    }

    fn error_mark(&self) -> u64 {
        lock(&self.errors).count
    }

    /// Errors recorded after `mark` (as many as are still kept).
    fn errors_since(&self, mark: u64) -> Vec<String> {
        let log = lock(&self.errors);
        let new = (log.count - mark).min(log.recent.len() as u64) as usize;
        log.recent
            .iter()
            .skip(log.recent.len() - new)
            .cloned()
            .collect()
    }
}

/// Why a wait for replies stopped before every reply was in.
enum Stop {
    TimedOut,
    Disconnected,
    /// The caller dropped the send future: nobody wants the answer.
    Abandoned,
}

pub(crate) struct Io {
    config: Arc<NatsConfig>,
    shared: Arc<Shared>,
    redactor: Redactor,
    tx: mpsc::Sender<Msg>,
    link: Option<Link>,
    /// When the configured stream is checked, and what was found (the
    /// decisions are core's, shared with the async-nats sink).
    stream: Arc<StreamGate>,
    /// The attempt in flight, if any, and when it started.
    connecting: Option<u64>,
    connect_started: Instant,
    attempts: u64,
    failures: u32,
    next_attempt: Instant,
    /// Sends arriving before the first attempt concluded wait for it, up to
    /// `connect_timeout` after the sink was created.
    first_attempt_done: bool,
    first_deadline: Instant,
    parked: Vec<SendJob>,
    /// Messages taken off the channel while looking for queued jobs, to be
    /// handled (in order) before the channel's next ones.
    deferred: VecDeque<Msg>,
    /// Reply tokens: `<inbox>.<token>`, unique for the thread's life, so a
    /// late ack from an abandoned batch is recognised and ignored.
    token: u64,
    buf: Vec<u8>,
}

impl Io {
    pub(crate) fn new(
        config: Arc<NatsConfig>,
        shared: Arc<Shared>,
        redactor: Redactor,
        tx: mpsc::Sender<Msg>,
    ) -> Io {
        let now = Instant::now();
        Io {
            first_deadline: now + config.connect_timeout,
            config,
            shared,
            redactor,
            tx,
            link: None,
            stream: Arc::new(StreamGate::new()),
            connecting: None,
            connect_started: now,
            attempts: 0,
            failures: 0,
            next_attempt: now,
            first_attempt_done: false,
            parked: Vec::new(),
            deferred: VecDeque::new(),
            token: 0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The thread's body: returns after [`Msg::Close`] or [`Msg::Shutdown`].
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let now = Instant::now();
            // Checked here, not only on `LinkDead`: that message can overtake
            // the `Connected` of the same attempt.
            if self.link.as_ref().is_some_and(|l| l.is_dead()) {
                self.drop_link();
                // The client already tried every server once.
                self.next_attempt = now + BACKOFF_FIRST;
            }
            if self.link.is_none() && self.connecting.is_none() && now >= self.next_attempt {
                self.start_attempt();
            }
            if !self.parked.is_empty() && (self.first_attempt_done || now >= self.first_deadline) {
                self.run_parked();
            }
            let msg = match self.deferred.pop_front() {
                Some(msg) => msg,
                None => match self.wake_at() {
                    Some(at) => match rx.recv_timeout(at.saturating_duration_since(now)) {
                        Ok(msg) => msg,
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    },
                    None => match rx.recv() {
                        Ok(msg) => msg,
                        Err(_) => break,
                    },
                },
            };
            match msg {
                Msg::Send(job) => {
                    if !self.first_attempt_done && Instant::now() < self.first_deadline {
                        self.parked.push(job);
                    } else {
                        let jobs = self.with_queued_jobs(job, &rx);
                        self.run_jobs(jobs);
                    }
                }
                Msg::Connected { attempt, result } => self.connected(attempt, result),
                // Only a wake-up: the loop drops the dead link.
                Msg::LinkDead => {}
                Msg::Close(reply) => {
                    self.close();
                    let _ = reply.try_send(());
                    return;
                }
                Msg::Shutdown => break,
            }
        }
        self.close();
    }

    fn wake_at(&self) -> Option<Instant> {
        let reconnect =
            (self.link.is_none() && self.connecting.is_none()).then_some(self.next_attempt);
        let first = (!self.parked.is_empty()).then_some(self.first_deadline);
        match (reconnect, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts a connect attempt on a thread of its own.
    fn start_attempt(&mut self) {
        self.attempts += 1;
        let attempt = self.attempts;
        self.connecting = Some(attempt);
        self.connect_started = Instant::now();
        let config = self.config.clone();
        let shared = self.shared.clone();
        let redactor = self.redactor.clone();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("tidings-nats-connect".into())
            .spawn(move || {
                let hooks = Hooks {
                    on_error: Box::new({
                        let shared = shared.clone();
                        let redactor = redactor.clone();
                        move |e| shared.record_error(redactor.clean(&format!("server error: {e}")))
                    }),
                    on_disconnect: Box::new({
                        let shared = shared.clone();
                        move || shared.record_error("connection to the server lost".to_owned())
                    }),
                    on_dead: Box::new({
                        let tx = tx.clone();
                        move || {
                            let _ = tx.send(Msg::LinkDead);
                        }
                    }),
                };
                let result = client::connect(&config, &redactor, hooks).map(|link| {
                    let checked = config
                        .ensure_stream
                        .as_ref()
                        .map(|name| redact_check(&redactor, link.check_stream(&config, name)));
                    (link, checked)
                });
                if let Err(mpsc::SendError(Msg::Connected {
                    result: Ok((link, _)),
                    ..
                })) = tx.send(Msg::Connected { attempt, result })
                {
                    // The sink is gone: close what nobody will use.
                    link.close();
                }
            });
        if let Err(e) = spawned {
            self.connecting = None;
            self.attempt_failed(format!("could not start a connect thread: {e}"));
        }
    }

    fn connected(&mut self, attempt: u64, result: Result<(Link, Option<StreamCheck>), String>) {
        if self.connecting != Some(attempt) {
            // Not the attempt we wait for (cannot happen: one at a time).
            if let Ok((link, _)) = result {
                link.close();
            }
            return;
        }
        self.connecting = None;
        self.first_attempt_done = true;
        match result {
            Ok((link, checked)) => {
                self.failures = 0;
                if let Some(check) = checked {
                    self.record_check(check);
                }
                self.shared.set_current(Some(link.state()));
                self.link = Some(link);
            }
            Err(e) => self.attempt_failed(e),
        }
    }

    fn attempt_failed(&mut self, error: String) {
        self.shared.record_error(error);
        self.failures = self.failures.saturating_add(1);
        let exp = BACKOFF_FIRST.saturating_mul(1 << (self.failures - 1).min(10));
        let backoff = exp.min(BACKOFF_MAX).mul_f64(0.5 + fastrand::f64() / 2.0);
        self.next_attempt = Instant::now() + backoff;
    }

    fn drop_link(&mut self) {
        self.shared.set_current(None);
        if let Some(link) = self.link.take() {
            link.close();
        }
    }

    fn close(&mut self) {
        for job in std::mem::take(&mut self.parked) {
            let n = job.batch.len();
            let _ = job
                .reply
                .try_send(SinkError::unavailable("the sink is closing").for_all(n));
        }
        self.drop_link();
    }

    fn run_parked(&mut self) {
        let parked = std::mem::take(&mut self.parked);
        if self.config.is_jetstream() {
            let mut parked = parked.into_iter().peekable();
            while parked.peek().is_some() {
                self.run_jobs(parked.by_ref().take(MAX_PIPELINED_JOBS).collect());
            }
        } else {
            for job in parked {
                self.run_jobs(vec![job]);
            }
        }
    }

    /// `first`, and for JetStream the send jobs queued right behind it (up
    /// to [`MAX_PIPELINED_JOBS`]): they go out as one pipeline. Stops at the
    /// first other message, which waits in `deferred`, so order is kept.
    fn with_queued_jobs(&mut self, first: SendJob, rx: &mpsc::Receiver<Msg>) -> Vec<SendJob> {
        let mut jobs = vec![first];
        if !self.config.is_jetstream() {
            return jobs;
        }
        while jobs.len() < MAX_PIPELINED_JOBS {
            match rx.try_recv() {
                Ok(Msg::Send(job)) => jobs.push(job),
                Ok(other) => {
                    self.deferred.push_back(other);
                    break;
                }
                Err(_) => break,
            }
        }
        jobs
    }

    /// Runs jobs; a panic (a bug here or in the client) fails the batches
    /// not yet answered as `Panicked` and costs the connection, not the
    /// thread.
    fn run_jobs(&mut self, jobs: Vec<SendJob>) {
        let replies: Vec<(async_channel::Sender<Results>, usize)> = jobs
            .iter()
            .map(|job| (job.reply.clone(), job.batch.len()))
            .collect();
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| self.try_jobs(jobs)));
        if ran.is_err() {
            // The link was out of `self.link` while the jobs ran: it is
            // gone, and the loop makes a new one.
            self.shared.set_current(None);
            self.next_attempt = Instant::now();
            for (reply, n) in replies {
                // A job answered before the panic keeps its answer: its
                // channel holds one message, or its receiver is gone.
                let _ = reply.try_send(
                    SinkError::new(
                        SinkErrorKind::Panicked,
                        "the NATS I/O thread panicked while sending",
                    )
                    .for_all(n),
                );
            }
        }
    }

    fn try_jobs(&mut self, mut jobs: Vec<SendJob>) {
        jobs.retain(|job| !job.reply.is_closed()); // abandoned while queued
        if jobs.is_empty() {
            return;
        }
        // The link is out of `self.link` while the jobs run (see run_jobs).
        let link = match self.link.take() {
            Some(link) if link.is_connected() => link,
            other => {
                self.link = other;
                for job in &jobs {
                    let _ = job
                        .reply
                        .try_send(self.not_connected().for_all(job.batch.len()));
                }
                return;
            }
        };
        match self.config.delivery.clone() {
            Delivery::Core => {
                for job in &jobs {
                    if let Some(results) = self.send_core(&link, job) {
                        let _ = job.reply.try_send(results);
                    }
                }
            }
            Delivery::JetStream {
                ack_timeout,
                max_acks_in_flight,
            } => self.send_jetstream(&link, &jobs, ack_timeout, max_acks_in_flight),
        }
        self.link = Some(link);
    }

    fn not_connected(&self) -> SinkError {
        let servers = self.config.redacted_servers().join(", ");
        let mut message = match self.shared.last_error() {
            Some(e) => ConnectFailure::not_connected(&servers, e),
            None => format!("not connected to {servers} (connecting)"),
        };
        let running = self.connect_started.elapsed();
        if self.connecting.is_some() && running > self.config.connect_timeout {
            // A TCP connect or handshake the client cannot time out.
            message.push_str(&format!(
                "; a connect attempt has been running for {}s",
                running.as_secs()
            ));
        }
        SinkError::unavailable(message)
    }

    /// Encodes `report` for `limit` bytes into `self.buf`, or says why not.
    /// (Its subject needs no check: core bounds every subject it makes.)
    fn encode(&mut self, report: &tidings_core::Report, limit: usize) -> Result<(), SinkError> {
        report
            .encode_within(limit, &mut self.buf)
            .map(|_| ())
            .map_err(|e| SinkError::too_large(e.to_string()))
    }

    /// Keeps a stream check's finding; a failure is also the sink's last
    /// error, so `not connected`-style messages can name it.
    fn record_check(&mut self, check: StreamCheck) {
        if let StreamCheck::Failed(why) | StreamCheck::Differs(why) = &check {
            self.shared.record_error(why.clone());
        }
        self.stream.record(check, Instant::now());
    }

    fn next_token(&mut self) -> u64 {
        self.token += 1;
        self.token
    }

    /// Core publish: publish each report, then a marker to our own inbox;
    /// its echo proves the server processed the batch. `None` when the job
    /// was abandoned.
    fn send_core(&mut self, link: &Link, job: &SendJob) -> Option<Results> {
        let batch = &job.batch;
        let config = self.config.clone();
        let limit = config.payload_limit(link.max_payload());
        let mark = self.shared.error_mark();
        let mut results: Vec<Option<Result<Ack, SinkError>>> = vec![None; batch.len()];
        let mut published = Vec::with_capacity(batch.len());
        let mut broken: Option<SinkError> = None;
        for (i, report) in batch.iter().enumerate() {
            if broken.is_none() && !link.is_connected() {
                broken = Some(self.not_connected());
            }
            if let Some(e) = &broken {
                results[i] = Some(Err(e.clone()));
                continue;
            }
            let subject = config.subject_for(report);
            if let Err(e) = self.encode(report, limit) {
                results[i] = Some(Err(e));
                continue;
            }
            match link.publish(&subject, &self.buf) {
                Ok(()) => published.push((i, subject.into_owned())),
                Err(e) => {
                    let e = SinkError::unavailable(
                        self.redactor.clean(&format!("publish failed: {e}")),
                    );
                    results[i] = Some(Err(e.clone()));
                    broken = Some(e);
                }
            }
        }
        if !published.is_empty() {
            let token = self.next_token();
            // Replies with other tokens are late acks or markers of
            // abandoned attempts: ignored.
            let stop = match link.publish_marker(token) {
                Ok(()) => {
                    let deadline = Instant::now() + FLUSH_TIMEOUT;
                    self.wait_replies(link, job, deadline, |reply| reply.token == Some(token))
                }
                Err(_) => Some(Stop::Disconnected),
            };
            let failure = match stop {
                None => None,
                Some(Stop::Abandoned) => return None,
                Some(Stop::TimedOut) => Some(SinkError::timeout(format!(
                    "the server did not confirm the batch within {FLUSH_TIMEOUT:?}"
                ))),
                Some(Stop::Disconnected) => Some(self.not_connected()),
            };
            let refused = publish_refusals(&self.shared.errors_since(mark));
            for (i, subject) in published {
                results[i] = Some(if let Some(e) = publish_denied(&refused, &subject) {
                    Err(e)
                } else if let Some(e) = &failure {
                    Err(e.clone())
                } else {
                    Ok(Ack::Sent)
                });
            }
        }
        Some(finish(results))
    }

    /// JetStream publish of `jobs` as one pipeline: at most `window` acks
    /// outstanding across all of them, every ack awaited until
    /// `ack_timeout` after the start. Each job is answered as soon as its
    /// last ack is in; the rest when the pipeline stops (done, timed out,
    /// disconnected). A job whose receiver goes away is dropped from it.
    fn send_jetstream(
        &mut self,
        link: &Link,
        jobs: &[SendJob],
        ack_timeout: Duration,
        window: usize,
    ) {
        if let Some(name) = &self.config.ensure_stream {
            if self.stream.check_due(Instant::now()) {
                let check = redact_check(&self.redactor, link.check_stream(&self.config, name));
                self.record_check(check);
            }
        }
        // The stream differs from the configured settings: nothing is
        // published into it (core's decision, as on the async-nats sink).
        if let Some(refusal) = self.stream.refusal() {
            for job in jobs {
                let _ = job.reply.try_send(refusal.clone().for_all(job.batch.len()));
            }
            return;
        }
        let limit = self.config.jetstream_payload_limit(link.max_payload());
        let deadline = Instant::now() + ack_timeout;
        let mark = self.shared.error_mark();
        let mut pipeline = Pipeline {
            jobs: jobs.iter().map(PipelinedJob::new).collect(),
            stream: self.stream.clone(),
            errors: self.shared.clone(),
            errors_seen: mark,
            tokens: HashMap::with_capacity(window),
        };
        let mut stop: Option<Stop> = None;
        let mut broken: Option<SinkError> = None;

        'jobs: for (j, job) in jobs.iter().enumerate() {
            for (i, report) in job.batch.iter().enumerate() {
                let subject = self.config.subject_for(report).into_owned();
                while stop.is_none() && pipeline.tokens.len() >= window {
                    stop = pipeline.take_acks(link, deadline, true);
                }
                if broken.is_none() && stop.is_none() && !link.is_connected() {
                    stop = Some(Stop::Disconnected);
                }
                let state = &mut pipeline.jobs[j];
                state.subjects.push(subject);
                if stop.is_some() || broken.is_some() {
                    break 'jobs; // failed below, with the outstanding ones
                }
                if state.done {
                    continue 'jobs; // abandoned
                }
                if let Err(e) = self.encode(report, limit) {
                    state.results[i] = Some(Err(e));
                    continue;
                }
                let token = self.next_token();
                match link.publish_for_ack(
                    &state.subjects[i],
                    token,
                    &report.id.to_string(),
                    &self.buf,
                ) {
                    Ok(()) => {
                        state.outstanding += 1;
                        pipeline.tokens.insert(token, (j, i));
                    }
                    Err(e) => {
                        broken = Some(SinkError::unavailable(
                            self.redactor.clean(&format!("publish failed: {e}")),
                        ));
                    }
                }
            }
            pipeline.jobs[j].published_all = true;
            pipeline.answer_if_complete(j);
        }
        if stop.is_none() && !pipeline.tokens.is_empty() {
            stop = pipeline.take_acks(link, deadline, false);
        }
        let failure = match stop {
            None | Some(Stop::Abandoned) => None,
            Some(Stop::TimedOut) => {
                Some(ServerAnswer::AckTimeout(ack_timeout).into_error(&self.config.subject))
            }
            Some(Stop::Disconnected) => Some(self.not_connected()),
        };
        let failure = failure.or(broken);
        let refused = publish_refusals(&self.shared.errors_since(mark));
        for state in pipeline.jobs.iter_mut().filter(|s| !s.done) {
            for (i, slot) in state.results.iter_mut().enumerate() {
                if slot.is_some() {
                    continue;
                }
                let subject = state.subjects.get(i).map(String::as_str);
                *slot = Some(Err(
                    if let Some(e) = subject.and_then(|s| publish_denied(&refused, s)) {
                        e
                    } else if let Some(e) = &failure {
                        e.clone()
                    } else {
                        SinkError::other("not attempted")
                    },
                ));
            }
            state.answer();
        }
    }

    /// Feeds replies to `done` until it returns true (`None`) or the wait
    /// must stop (why).
    fn wait_replies(
        &self,
        link: &Link,
        job: &SendJob,
        deadline: Instant,
        mut done: impl FnMut(&client::Reply) -> bool,
    ) -> Option<Stop> {
        loop {
            if job.reply.is_closed() {
                return Some(Stop::Abandoned);
            }
            match next_reply_until(link, deadline) {
                Ok(Some(reply)) if done(&reply) => return None,
                Ok(_) => {}
                Err(stop) => return Some(stop),
            }
        }
    }
}

/// Waits one poll slice (at most until `deadline`) for a reply: `Ok(None)`
/// when none came and the wait may go on, `Err` when it must stop.
fn next_reply_until(link: &Link, deadline: Instant) -> Result<Option<client::Reply>, Stop> {
    let now = Instant::now();
    if now >= deadline {
        return Err(Stop::TimedOut);
    }
    match link.next_reply(POLL_SLICE.min(deadline - now)) {
        NextReply::Reply(reply) => Ok(Some(reply)),
        NextReply::TimedOut if link.is_connected() => Ok(None),
        NextReply::TimedOut | NextReply::Closed => Err(Stop::Disconnected),
    }
}

/// The jobs of one JetStream pipeline and the acks they wait for.
struct Pipeline<'a> {
    jobs: Vec<PipelinedJob<'a>>,
    /// Told about publishes nobody answered (the stream may be gone).
    stream: Arc<StreamGate>,
    /// Server errors, watched for refusals of outstanding publishes: a
    /// denied publish is never acknowledged, so waiting for its ack would
    /// only end in a timeout.
    errors: Arc<Shared>,
    errors_seen: u64,
    /// Reply token -> (job, report index) of each outstanding ack.
    tokens: HashMap<u64, (usize, usize)>,
}

struct PipelinedJob<'a> {
    job: &'a SendJob,
    results: Vec<Option<Result<Ack, SinkError>>>,
    /// One per report looked at so far.
    subjects: Vec<String>,
    /// Published, ack not in yet.
    outstanding: usize,
    /// Every report was looked at.
    published_all: bool,
    /// Answered, or abandoned by its caller: out of the pipeline.
    done: bool,
}

impl<'a> PipelinedJob<'a> {
    fn new(job: &'a SendJob) -> PipelinedJob<'a> {
        PipelinedJob {
            job,
            results: vec![None; job.batch.len()],
            subjects: Vec::with_capacity(job.batch.len()),
            outstanding: 0,
            published_all: false,
            done: false,
        }
    }

    fn answer(&mut self) {
        self.done = true;
        let _ = self
            .job
            .reply
            .try_send(finish(std::mem::take(&mut self.results)));
    }
}

impl Pipeline<'_> {
    /// Answers job `j` if every report of it has its result.
    fn answer_if_complete(&mut self, j: usize) {
        let state = &mut self.jobs[j];
        if !state.done
            && state.published_all
            && state.outstanding == 0
            && state.results.iter().all(Option::is_some)
        {
            state.answer();
        }
    }

    /// Drops jobs whose caller went away, and their outstanding acks.
    fn drop_abandoned(&mut self) {
        let mut gone = Vec::new();
        for (j, state) in self.jobs.iter_mut().enumerate() {
            if !state.done && state.job.reply.is_closed() {
                state.done = true;
                state.outstanding = 0;
                gone.push(j);
            }
        }
        if !gone.is_empty() {
            self.tokens.retain(|_, (j, _)| !gone.contains(j));
        }
    }

    /// Takes acks off the inbox until none is outstanding (or, with
    /// `one_slot`, until a slot in the window is free), answering each job
    /// whose last ack came in. `None` when done, else why it stopped.
    fn take_acks(&mut self, link: &Link, deadline: Instant, one_slot: bool) -> Option<Stop> {
        let before = self.tokens.len();
        // Nothing left to wait for, or (for one slot) something was freed.
        let done = |p: &Self| p.tokens.is_empty() || (one_slot && p.tokens.len() < before);
        loop {
            self.drop_abandoned();
            if done(self) {
                return None;
            }
            self.fail_refused();
            if done(self) {
                return None;
            }
            let reply = match next_reply_until(link, deadline) {
                Ok(Some(reply)) => reply,
                Ok(None) => continue,
                Err(stop) => return Some(stop),
            };
            // Unknown tokens are acks of an earlier, abandoned attempt.
            if let Some((j, i)) = reply.token.and_then(|t| self.tokens.remove(&t)) {
                let state = &mut self.jobs[j];
                let result = ack::parse(&state.subjects[i], reply.no_responders, &reply.data);
                state.results[i] = Some(match result {
                    Err(e) if reply.no_responders => Err(self.stream.on_no_responders(e)),
                    other => other,
                });
                state.outstanding -= 1;
                self.answer_if_complete(j);
            }
        }
    }
}

impl Pipeline<'_> {
    /// Settles, as refused, every outstanding publish whose subject the
    /// server refused since the last look.
    fn fail_refused(&mut self) {
        let now = self.errors.error_mark();
        if now == self.errors_seen {
            return;
        }
        let refused = publish_refusals(&self.errors.errors_since(self.errors_seen));
        self.errors_seen = now;
        if refused.is_empty() {
            return;
        }
        let denied: Vec<(u64, usize, usize, SinkError)> = self
            .tokens
            .iter()
            .filter_map(|(&token, &(j, i))| {
                let e = publish_denied(&refused, &self.jobs[j].subjects[i])?;
                Some((token, j, i, e))
            })
            .collect();
        for (token, j, i, e) in denied {
            self.tokens.remove(&token);
            let state = &mut self.jobs[j];
            state.results[i] = Some(Err(e));
            state.outstanding -= 1;
            self.answer_if_complete(j);
        }
    }
}

fn finish(results: Vec<Option<Result<Ack, SinkError>>>) -> Results {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(SinkError::other("not attempted"))))
        .collect()
}

/// Subjects the server refused publishing to, with its words, from the
/// errors recorded while a batch was sent (core recognises them).
fn publish_refusals(errors: &[String]) -> Vec<(String, String)> {
    errors
        .iter()
        .filter_map(|e| publish_refusal(e))
        .map(|(subject, words)| (subject.to_owned(), words.to_owned()))
        .collect()
}

/// Takes any secret out of a stream check's reason.
fn redact_check(redactor: &Redactor, check: StreamCheck) -> StreamCheck {
    match check {
        StreamCheck::Failed(why) => StreamCheck::Failed(redactor.clean(&why)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_their_subject() {
        let errors = vec![
            "server error: Permissions Violation for Publish to \"a.b\"".to_owned(),
            "server error: Slow Consumer".to_owned(),
        ];
        let refused = publish_refusals(&errors);
        assert_eq!(refused.len(), 1);
        assert!(publish_denied(&refused, "a.b").is_some());
        assert!(publish_denied(&refused, "a.c").is_none());
    }

    #[test]
    fn errors_since_a_mark() {
        let shared = Shared::default();
        shared.record_error("one".into());
        let mark = shared.error_mark();
        shared.record_error("two".into());
        shared.record_error("three".into());
        assert_eq!(shared.errors_since(mark), ["two", "three"]);
        assert_eq!(shared.last_error().as_deref(), Some("three"));
    }
}
