//! The report model: what travels from a program to NATS (or a file).
//!
//! A [`Report`] is plain data with a stable, time-ordered [`ReportId`] assigned
//! when it is created. Retries, spills and replays keep that id, which is what
//! lets a JetStream stream deduplicate (`Nats-Msg-Id`) and a reader of the
//! fallback file recognise a report it has already seen.
//!
//! On the wire a report is one JSON object (see [`Report::to_json`]); the
//! field names below are the schema, versioned by [`SCHEMA_VERSION`].
//!
//! The report and its parts (id, timestamp, severity, source) are one
//! schema and stay in one file, with their tests (which make it longer
//! than most).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Version of the JSON schema written by this crate. Readers should accept
/// reports whose `schema` is at most the version they know.
pub const SCHEMA_VERSION: u32 = 1;

/// A stable, unique, time-ordered report id (a UUIDv7, RFC 9562).
///
/// The first 48 bits are the creation time in milliseconds, the next 12 a
/// per-thread sequence within the millisecond, the last 62 random: ids
/// sort by creation time to the millisecond, and ids created later on the
/// same thread always sort after earlier ones, so the spool and the
/// fallback file can be replayed oldest first. Generating one reads no
/// shared state and makes no system call (a thread-local generator), which
/// keeps `report()` cheap on every thread at once.
///
/// ```
/// use tidings_core::ReportId;
/// let a = ReportId::new();
/// let b = ReportId::new();
/// assert!(a < b);
/// let parsed: ReportId = a.to_string().parse().unwrap();
/// assert_eq!(a, parsed);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportId(uuid::Uuid);

impl ReportId {
    /// A fresh id for the current time.
    pub fn new() -> Self {
        Self::at(unix_now())
    }

    /// A fresh id for `since_epoch` (the creation time).
    fn at(since_epoch: std::time::Duration) -> Self {
        let ms = since_epoch.as_secs() * 1000 + u64::from(since_epoch.subsec_millis());
        let (ms, seq) = next_in_thread(ms);
        let random = fastrand::u64(..);
        let hi = (ms & 0xffff_ffff_ffff) << 16 | 0x7000 | u64::from(seq & 0x0fff);
        let lo = (random & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        ReportId(uuid::Uuid::from_bytes(bytes))
    }

    /// The id as 16 bytes (big-endian, time first).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from the 16 bytes of [`ReportId::as_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        ReportId(uuid::Uuid::from_bytes(bytes))
    }
}

impl Default for ReportId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportId({})", self.0.hyphenated())
    }
}

/// The time since the Unix epoch (zero for a clock before it).
fn unix_now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// This thread's `(millisecond, sequence)` for a new id at `ms`: the
/// sequence counts up within a millisecond; when it runs out (4096 ids in
/// one millisecond on one thread) or the clock goes back, the millisecond
/// moves on instead, so a thread's ids never go backwards.
fn next_in_thread(ms: u64) -> (u64, u16) {
    thread_local! {
        static LAST: std::cell::Cell<(u64, u16)> = const { std::cell::Cell::new((0, 0)) };
    }
    LAST.with(|last| {
        let (last_ms, last_seq) = last.get();
        let next = if ms > last_ms {
            (ms, 0)
        } else if last_seq < 0x0fff {
            (last_ms, last_seq + 1)
        } else {
            (last_ms + 1, 0)
        };
        last.set(next);
        next
    })
}

/// The error returned when a string is not a report id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReportId(String);

impl fmt::Display for InvalidReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a report id (expected a UUID): {:?}", self.0)
    }
}

impl std::error::Error for InvalidReportId {}

impl FromStr for ReportId {
    type Err = InvalidReportId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(ReportId)
            .map_err(|_| InvalidReportId(s.chars().take(64).collect()))
    }
}

impl Serialize for ReportId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = uuid::Uuid::encode_buffer();
        s.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}

impl<'de> Deserialize<'de> for ReportId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Wall-clock time of a report, written as RFC 3339 UTC with microseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// The current wall-clock time, to the microsecond (the precision of
    /// the wire format, so a timestamp survives a JSON round trip exactly).
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// The time `since_epoch` after the Unix epoch, to the microsecond.
    fn since_epoch(since_epoch: std::time::Duration) -> Self {
        Timestamp(
            SystemTime::UNIX_EPOCH
                + std::time::Duration::new(
                    since_epoch.as_secs(),
                    since_epoch.subsec_micros() * 1000,
                ),
        )
    }

    /// The time as a [`SystemTime`].
    pub fn as_system_time(&self) -> SystemTime {
        self.0
    }
}

impl From<SystemTime> for Timestamp {
    /// Truncates to whole microseconds.
    fn from(t: SystemTime) -> Self {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Timestamp::since_epoch(d),
            Err(_) => Timestamp(t),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // humantime refuses times before the epoch; clamp rather than fail.
        let t = self.0.max(SystemTime::UNIX_EPOCH);
        fmt::Display::fmt(&humantime::format_rfc3339_micros(t), f)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
            .or_else(|_| humantime::parse_rfc3339(&s))
            .map(Timestamp)
            .map_err(serde::de::Error::custom)
    }
}

/// How bad it is. Ordered: `Debug < Info < Warning < Error < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Diagnostic detail.
    Debug,
    /// Something worth knowing happened.
    Info,
    /// Something is wrong but the program carries on as intended.
    Warning,
    /// An operation failed.
    Error,
    /// The program (or a vital part of it) cannot do its job.
    Critical,
}

impl Severity {
    /// The lowercase name used on the wire (`"error"`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a report comes from.
///
/// `host` and `pid` are filled in when the report is created; `service` and
/// `instance` are filled in by the [`Reporter`](crate::Reporter) from its
/// configuration when the report does not name them itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
///
/// The names are `Cow<'static, str>`: the host name, and the service and
/// instance a reporter fills in, are shared, not copied into every report
/// (a report costs no allocation for them). Set them from a `String` or a
/// `&'static str` with `.into()`.
pub struct Source {
    /// The service (program) name, e.g. `"billing"`.
    #[serde(default)]
    pub service: Cow<'static, str>,
    /// Which instance of the service, e.g. a pod name. Empty when unknown.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub instance: Cow<'static, str>,
    /// The host name.
    #[serde(default)]
    pub host: Cow<'static, str>,
    /// The process id.
    #[serde(default)]
    pub pid: u32,
}

impl Source {
    /// A source for this process: host and pid filled in, service empty.
    pub fn this_process() -> Self {
        Source {
            service: Cow::Borrowed(""),
            instance: Cow::Borrowed(""),
            host: Cow::Borrowed(host_name()),
            pid: process_id(),
        }
    }
}

/// `name` as a `&'static str` shared by every report that names it: each
/// distinct name is stored once for the life of the process (a reporter's
/// service and instance; there are a handful per process).
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = names.get(name) {
        return known;
    }
    let stored: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(stored);
    stored
}

fn process_id() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| gethostname::gethostname().to_string_lossy().into_owned())
}

/// One error or event, as reported.
///
/// Build one with [`Report::new`] (or [`Report::error`], [`Report::warning`],
/// …) or from any [`std::error::Error`] with [`Report::from_error`], then add
/// context with the `with_*` methods.
///
/// ```
/// use tidings_core::{Report, Severity};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "primary db unreachable");
/// let report = Report::from_error(&io)
///     .with_kind("database_failure")
///     .with_context("db", "primary")
///     .with_context("attempt", 3);
/// assert_eq!(report.severity, Severity::Error);
/// assert_eq!(report.kind, "database_failure");
/// assert_eq!(report.message, "primary db unreachable");
/// assert_eq!(report.context["attempt"], 3);
///
/// // JSON round trip keeps everything, including the id.
/// let json = report.to_json();
/// let back = tidings_core::Report::from_json(&json).unwrap();
/// assert_eq!(back, report);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Schema version ([`SCHEMA_VERSION`] for reports created by this crate).
    pub schema: u32,
    /// Stable unique id, assigned at creation and kept by retries and replays.
    pub id: ReportId,
    /// When the report was created.
    pub timestamp: Timestamp,
    /// How bad it is.
    pub severity: Severity,
    /// A machine-friendly category, e.g. `"database_failure"`. Usually a
    /// literal, so it is a `Cow<'static, str>`: a literal costs a report no
    /// allocation (set it from a `String` or a `&'static str` with `.into()`).
    pub kind: Cow<'static, str>,
    /// A human-readable message.
    pub message: String,
    /// Where it comes from.
    pub source: Source,
    /// Structured context: any JSON values under string keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, serde_json::Value>,
    /// The error's `source()` chain, outermost cause first (the error's own
    /// message is [`Report::message`], not repeated here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// A captured backtrace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
    /// True when fields were shortened: to fit a transport's size limit
    /// (see [`Report::encode_within`]), or context nested too deep to be
    /// read back (see [`Report::with_context`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// What makes two reports "the same error" for folding (see
    /// [`crate::fold`]): set with [`Report::with_fingerprint`], else derived
    /// by `report()` ([`Fingerprint::of`]). Written on the wire, so
    /// readers can group by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

/// What makes two reports "the same error": 64 bits, written as 16
/// lowercase hex digits.
///
/// The default, [`Fingerprint::of`], hashes the report's service,
/// kind and message (its first [`FINGERPRINT_MESSAGE_BYTES`] bytes), with
/// the volatile parts of the message masked: every
/// maximal run of hexadecimal characters and `-` that contains a decimal
/// digit and is not glued to other letters (numbers, hex ids, UUIDs, the
/// parts of an IP address; not `user42x`) counts as one `#`. So
/// `"connection 17 refused"` and `"connection 4242 refused"` are one
/// fingerprint; `"disk full"` and `"disk fail"` are two.
///
/// ```
/// use tidings_core::{Fingerprint, Report};
/// let a = Report::error("db", "query 17 failed on 10.0.0.7");
/// let b = Report::error("db", "query 4242 failed on 10.0.0.9");
/// let c = Report::error("db", "query failed");
/// assert_eq!(Fingerprint::of(&a), Fingerprint::of(&b));
/// assert_ne!(Fingerprint::of(&a), Fingerprint::of(&c));
/// assert_eq!(Fingerprint::of(&a).to_string().len(), 16);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// The fingerprint `report()` gives a report that has none.
    pub fn of(report: &Report) -> Fingerprint {
        let mut h = FingerprintHasher::new();
        h.write(report.source.service.as_bytes());
        h.write(&[0xff]);
        h.write(report.kind.as_bytes());
        h.write(&[0xff]);
        write_masked(&mut h, message_head(&report.message));
        Fingerprint(h.finish())
    }

    /// The fingerprint of a key of your own (e.g. an error code).
    pub fn from_key(key: &str) -> Fingerprint {
        let mut h = FingerprintHasher::new();
        h.write(key.as_bytes());
        Fingerprint(h.finish())
    }

    /// The 64 bits.
    pub fn bits(&self) -> u64 {
        self.0
    }
}

/// The fingerprint hash: bytes packed into 64-bit words, each word mixed
/// with a multiply-rotate (one multiply per 8 bytes, not per byte: the hash
/// runs on every report), finished with a 64-bit avalanche. The same on
/// every platform and version of tidings.
struct FingerprintHasher {
    h: u64,
    word: u64,
    filled: u32,
}

impl FingerprintHasher {
    fn new() -> Self {
        FingerprintHasher {
            h: 0xcbf2_9ce4_8422_2325,
            word: 0,
            filled: 0,
        }
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        self.word |= u64::from(b) << (8 * self.filled);
        self.filled += 1;
        if self.filled == 8 {
            self.mix();
        }
    }

    #[inline]
    fn mix(&mut self) {
        self.h = (self.h ^ self.word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
        self.word = 0;
        self.filled = 0;
    }

    /// The same as feeding `bytes` one at a time, a word at a time.
    fn write(&mut self, mut bytes: &[u8]) {
        while self.filled != 0 && !bytes.is_empty() {
            self.byte(bytes[0]);
            bytes = &bytes[1..];
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            self.mix();
        }
        for &b in words.remainder() {
            self.byte(b);
        }
    }

    fn finish(mut self) -> u64 {
        // The length of the tail, so "a" and "a\0" differ.
        self.word |= u64::from(self.filled) << 56;
        self.mix();
        let mut h = self.h;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// How much of a message the default fingerprint reads: what tells one
/// error from another is at the start; the rest of a long message (a dump,
/// a payload) only costs time on every report.
pub const FINGERPRINT_MESSAGE_BYTES: usize = 256;

/// The first [`FINGERPRINT_MESSAGE_BYTES`] of `message`, cut on a char
/// boundary.
fn message_head(message: &str) -> &str {
    head(message, FINGERPRINT_MESSAGE_BYTES)
}

/// The first `max` bytes of `s` at most, cut on a char boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Feeds `message` with every volatile run masked as `#`: a maximal run of
/// hex digits and `-` around a decimal digit, unless glued to a letter. The
/// text between digits goes to the hasher a word at a time, and digits are
/// found eight bytes at a time, so a message costs little more than a copy.
fn write_masked(h: &mut FingerprintHasher, message: &str) {
    let bytes = message.as_bytes();
    let volatile = |b: u8| b.is_ascii_hexdigit() || b == b'-';
    let letter = |j: Option<&u8>| j.is_some_and(|b| b.is_ascii_alphabetic());
    // Everything before `done` is hashed; digits are looked for from `from`.
    let (mut done, mut from) = (0, 0);
    while let Some(digit) = find_digit(bytes, from) {
        let mut start = digit;
        while start > done && volatile(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = digit + 1;
        while end < bytes.len() && volatile(bytes[end]) {
            end += 1;
        }
        from = end;
        // Inside a word ("user42x") it is text, not an id: kept as it is.
        let in_word =
            letter(start.checked_sub(1).and_then(|j| bytes.get(j))) || letter(bytes.get(end));
        if !in_word {
            h.write(&bytes[done..start]);
            h.byte(b'#');
            done = end;
        }
    }
    h.write(&bytes[done..]);
}

/// The index of the first ASCII digit at or after `from`, eight bytes at a
/// time: a byte `b` is a digit when `b ^ 0x30 < 10`, and the lowest byte of
/// a word that the borrow test below flags is always a true one.
fn find_digit(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut i = from;
    while i + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let x = word ^ (0x30 * ONES);
        let flagged = x.wrapping_sub(10 * ONES) & !x & (0x80 * ONES);
        if flagged != 0 {
            return Some(i + (flagged.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| i + p)
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u64::from_str_radix(&s, 16)
            .map(Fingerprint)
            .map_err(|_| serde::de::Error::custom("a fingerprint is 16 hex digits"))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Report {
    /// A new report with a fresh id and the current time.
    pub fn new(
        severity: Severity,
        kind: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        // One clock read for both: the id's time is the timestamp's.
        let now = unix_now();
        Report {
            schema: SCHEMA_VERSION,
            id: ReportId::at(now),
            timestamp: Timestamp::since_epoch(now),
            severity,
            kind: kind.into(),
            message: message.into(),
            source: Source::this_process(),
            context: BTreeMap::new(),
            chain: Vec::new(),
            backtrace: None,
            truncated: false,
            fingerprint: None,
        }
    }

    /// A new [`Severity::Error`] report.
    pub fn error(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, kind, message)
    }

    /// A new [`Severity::Warning`] report.
    pub fn warning(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, kind, message)
    }

    /// A new [`Severity::Info`] report.
    pub fn info(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, kind, message)
    }

    /// A new [`Severity::Critical`] report.
    pub fn critical(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Critical, kind, message)
    }

    /// An error report from any error: message is its `Display`, the chain
    /// is its `source()` chain, kind is `"error"` (change it with
    /// [`Report::with_kind`]).
    pub fn from_error<E: std::error::Error + ?Sized>(error: &E) -> Self {
        let mut report = Self::error("error", error.to_string());
        let mut next = error.source();
        // A cyclic or absurdly deep chain must not hang or exhaust memory.
        while let Some(cause) = next {
            if report.chain.len() == 64 {
                report.chain.push("… (chain cut at 64 causes)".to_owned());
                break;
            }
            report.chain.push(cause.to_string());
            next = cause.source();
        }
        report
    }

    /// Sets the kind.
    pub fn with_kind(mut self, kind: impl Into<Cow<'static, str>>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Sets the severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds one context value.
    ///
    /// Every value can be read back from every format tidings writes (see
    /// [`crate::context`]): a float that is not finite is stored as the
    /// string `"NaN"`, `"inf"` or `"-inf"` (JSON has no such number);
    /// nesting deeper than [`MAX_CONTEXT_DEPTH`](crate::context::MAX_CONTEXT_DEPTH)
    /// is cut with a marker and the report marked [`truncated`](Report::truncated);
    /// a value that cannot be serialized at all is stored as a string saying
    /// why. Never fails, never panics.
    ///
    /// ```
    /// use tidings_core::Report;
    /// let r = Report::error("k", "m")
    ///     .with_context("attempt", 3)
    ///     .with_context("latency", f64::INFINITY);
    /// assert_eq!(r.context["attempt"], 3);
    /// assert_eq!(r.context["latency"], "inf");
    /// ```
    pub fn with_context(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = match crate::context::to_context_value(&value) {
            Ok((value, cut)) => {
                self.truncated |= cut;
                value
            }
            Err(e) => serde_json::Value::String(format!("<unserializable: {e}>")),
        };
        self.context.insert(key.into(), value);
        self
    }

    /// Makes the report readable back from every format tidings writes:
    /// context nested deeper than
    /// [`MAX_CONTEXT_DEPTH`](crate::context::MAX_CONTEXT_DEPTH) (put there
    /// directly, not through [`Report::with_context`]) is cut with a marker
    /// and the report marked [`truncated`](Report::truncated). `report()`
    /// does this to every report it accepts.
    pub fn normalize(&mut self) {
        if crate::context::bound_context(&mut self.context) {
            self.truncated = true;
        }
    }

    /// Sets what makes this report "the same error" as others for folding
    /// (see [`crate::fold`]), e.g. an error code; without it `report()`
    /// derives one ([`Fingerprint::of`]).
    ///
    /// ```
    /// use tidings_core::{Fingerprint, Report};
    /// let r = Report::error("db", "timeout after 5012 ms").with_fingerprint("db-timeout");
    /// assert_eq!(r.fingerprint, Some(Fingerprint::from_key("db-timeout")));
    /// ```
    pub fn with_fingerprint(mut self, key: &str) -> Self {
        self.fingerprint = Some(Fingerprint::from_key(key));
        self
    }

    /// Sets the service name in the source.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.source.service = Cow::Owned(service.into());
        self
    }

    /// Sets the instance name in the source.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.source.instance = Cow::Owned(instance.into());
        self
    }

    /// Attaches a backtrace (any `Display`, typically
    /// [`std::backtrace::Backtrace`]).
    pub fn with_backtrace(mut self, backtrace: impl fmt::Display) -> Self {
        self.backtrace = Some(backtrace.to_string());
        self
    }

    /// Captures a backtrace here (only when `RUST_BACKTRACE` or
    /// `RUST_LIB_BACKTRACE` enable it, as [`std::backtrace::Backtrace::capture`]).
    pub fn capture_backtrace(mut self) -> Self {
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            self.backtrace = Some(bt.to_string());
        }
        self
    }

    /// The report as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256);
        self.write_json(&mut buf);
        buf
    }

    /// Appends the report's JSON to `buf`: its serde form, written by a
    /// fast encoder of its own (see `report_json.rs`). Never fails.
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        crate::report_json::write_report(self, buf);
    }

    /// Parses a report from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Report, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Encodes the report into `buf` (cleared first) in at most `max_bytes`.
    ///
    /// When the full JSON is too large, a copy is shortened step by step —
    /// backtrace dropped, chain entries cut, context replaced by a note of its
    /// size, message cut — and marked `"truncated": true`, keeping id, kind,
    /// severity and source intact. Returns [`Encoded::Truncated`] then.
    /// Fails only when even the skeleton does not fit (a limit below a few
    /// hundred bytes); the caller should spill the report instead.
    ///
    /// ```
    /// use tidings_core::{Report, Encoded};
    /// let big = Report::error("huge", "x".repeat(10_000));
    /// let mut buf = Vec::new();
    /// assert_eq!(big.encode_within(1024, &mut buf), Ok(Encoded::Truncated));
    /// assert!(buf.len() <= 1024);
    /// let cut = Report::from_json(&buf).unwrap();
    /// assert!(cut.truncated);
    /// assert_eq!(cut.id, big.id);
    /// ```
    pub fn encode_within(&self, max_bytes: usize, buf: &mut Vec<u8>) -> Result<Encoded, TooLarge> {
        buf.clear();
        self.write_json(buf);
        if buf.len() <= max_bytes {
            return Ok(Encoded::Whole);
        }
        let full_size = buf.len();
        let mut cut = self.clone();
        cut.truncated = true;
        cut.backtrace = None;
        let steps: [fn(&mut Report); 3] = [
            |r| {
                for entry in &mut r.chain {
                    truncate_str(entry, 256);
                }
                r.chain.truncate(16);
            },
            |r| {
                let removed = r.context.len();
                r.context.clear();
                r.context.insert(
                    "_truncated".to_owned(),
                    serde_json::Value::String(format!("{removed} context entries removed")),
                );
            },
            |r| r.chain.clear(),
        ];
        for step in steps {
            step(&mut cut);
            buf.clear();
            cut.write_json(buf);
            if buf.len() <= max_bytes {
                return Ok(Encoded::Truncated);
            }
        }
        // Last step: cut the message to whatever room is left.
        let overshoot = buf.len() - max_bytes;
        let marker = "… [truncated]";
        let keep = cut
            .message
            .len()
            .saturating_sub(overshoot + marker.len() + 8);
        truncate_str(&mut cut.message, keep);
        cut.message.push_str(marker);
        buf.clear();
        cut.write_json(buf);
        if buf.len() <= max_bytes {
            return Ok(Encoded::Truncated);
        }
        buf.clear();
        Err(TooLarge {
            size: full_size,
            max: max_bytes,
        })
    }
}

/// How [`Report::encode_within`] fitted a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// The whole report fitted.
    Whole,
    /// Fields were shortened; the encoded report has `"truncated": true`.
    Truncated,
}

/// A report that cannot be made to fit a size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// Size of the full encoding in bytes.
    pub size: usize,
    /// The limit it had to fit.
    pub max: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "report of {} bytes cannot be cut to fit {} bytes",
            self.size, self.max
        )
    }
}

impl std::error::Error for TooLarge {}

/// Cuts `s` to at most `max` bytes on a char boundary.
fn truncate_str(s: &mut String, max: usize) {
    let end = head(s, max).len();
    s.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("query failed")
        }
    }
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection reset")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl std::error::Error for Inner {}

    #[test]
    fn from_error_keeps_the_source_chain() {
        let r = Report::from_error(&Outer(Inner));
        assert_eq!(r.message, "query failed");
        assert_eq!(r.chain, vec!["connection reset".to_owned()]);
        assert_eq!(r.source.pid, std::process::id());
        assert_eq!(r.schema, SCHEMA_VERSION);
    }

    #[test]
    fn json_round_trip_is_lossless() {
        let r = Report::critical("disk_full", "no space left")
            .with_context("free", 0)
            .with_context("mount", "/var")
            .with_backtrace("frame 0\nframe 1")
            .with_service("billing")
            .with_instance("pod-7");
        let back = Report::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let r = Report::info("tick", "");
        let back = Report::from_json(&r.to_json()).unwrap();
        let a = r
            .timestamp
            .0
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let b = back
            .timestamp
            .0
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(a.as_micros(), b.as_micros());
    }

    #[test]
    fn encode_within_cuts_multibyte_text_safely() {
        let r = Report::error("k", "é".repeat(5000)).with_context("big", "ü".repeat(5000));
        let mut buf = Vec::new();
        for max in [400, 700, 1000, 4000, 20_000] {
            let fit = r.encode_within(max, &mut buf).unwrap();
            assert!(buf.len() <= max, "{} > {max}", buf.len());
            let back = Report::from_json(&buf).unwrap();
            assert_eq!(back.id, r.id);
            assert_eq!(fit == Encoded::Truncated, back.truncated);
        }
    }

    #[test]
    fn encode_within_refuses_impossible_limits() {
        let r = Report::error("k", "m");
        let mut buf = Vec::new();
        let err = r.encode_within(10, &mut buf).unwrap_err();
        assert_eq!(err.max, 10);
        assert!(buf.is_empty());
    }

    /// The fast fingerprint (digits found a word at a time, text hashed a
    /// word at a time) gives exactly what the plain byte-by-byte rule gives.
    #[test]
    fn fingerprints_match_the_byte_by_byte_rule() {
        fn reference(message: &str) -> u64 {
            let mut h = FingerprintHasher::new();
            let bytes = message.as_bytes();
            let volatile = |b: u8| b.is_ascii_hexdigit() || b == b'-';
            let mut i = 0;
            while i < bytes.len() {
                if !volatile(bytes[i]) {
                    h.byte(bytes[i]);
                    i += 1;
                    continue;
                }
                let start = i;
                let mut digit = false;
                while i < bytes.len() && volatile(bytes[i]) {
                    digit |= bytes[i].is_ascii_digit();
                    i += 1;
                }
                let letter = |j: Option<&u8>| j.is_some_and(|b| b.is_ascii_alphabetic());
                let in_word =
                    letter(start.checked_sub(1).and_then(|j| bytes.get(j))) || letter(bytes.get(i));
                if digit && !in_word {
                    h.byte(b'#');
                } else {
                    for &b in &bytes[start..i] {
                        h.byte(b);
                    }
                }
            }
            h.finish()
        }
        let alphabet: Vec<char> = "0123456789abcdefxyzABCDEFG- .:/é_\u{1F600}"
            .chars()
            .collect();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5000 {
            let len = rng.usize(0..300);
            let message: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let mut h = FingerprintHasher::new();
            write_masked(&mut h, &message);
            assert_eq!(h.finish(), reference(&message), "{message:?}");
        }
    }

    /// Fingerprints are stored and compared across processes and
    /// versions: the hash of a given text never changes.
    #[test]
    fn fingerprints_are_pinned() {
        let masked = |text: &str| {
            let mut h = FingerprintHasher::new();
            h.write(b"svc");
            h.write(&[0xff]);
            h.write(b"database_failure");
            h.write(&[0xff]);
            write_masked(&mut h, text);
            h.finish()
        };
        let long = format!("refused by 10.0.0.7:5432 after {}", "x".repeat(300));
        let got = [
            Fingerprint::from_key("").bits(),
            Fingerprint::from_key("db-timeout").bits(),
            masked("query 17 failed on 10.0.0.7"),
            masked(message_head(&long)),
            masked("user42x lost 0xdeadbeef-01 é"),
        ];
        assert_eq!(
            got,
            [
                0xd102_b704_521d_c6eb,
                0xcd33_2356_784f_8612,
                0xdcd0_755f_c4ef_5c61,
                0x4991_5d24_5638_fe5c,
                0x7497_a99d_3780_b93a,
            ]
        );
    }

    #[test]
    fn ids_are_uuid_v7_and_strictly_increasing_on_a_thread() {
        let ids: Vec<ReportId> = (0..20_000).map(|_| ReportId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
        for id in &ids[..10] {
            let u = uuid::Uuid::from_bytes(*id.as_bytes());
            assert_eq!(u.get_version_num(), 7);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
        // The time in the id is the report's creation time (to the ms; on
        // a thread that has not just made 4096 ids in one millisecond,
        // which moves its ids' clock ahead a little).
        let (ms, ts) = std::thread::spawn(|| {
            let r = Report::error("k", "m");
            let ms = u64::from_be_bytes(r.id.as_bytes()[..8].try_into().unwrap()) >> 16;
            let ts = r
                .timestamp
                .as_system_time()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap();
            (ms, ts)
        })
        .join()
        .unwrap();
        assert_eq!(ms, ts.as_millis() as u64, "{ms} vs {ts:?}");
        // Other threads' ids are unique too.
        let other: Vec<ReportId> =
            std::thread::spawn(|| (0..20_000).map(|_| ReportId::new()).collect())
                .join()
                .unwrap();
        let all: std::collections::HashSet<ReportId> = ids.iter().chain(&other).copied().collect();
        assert_eq!(all.len(), 40_000);
    }

    #[test]
    fn bad_ids_are_typed_errors() {
        assert!("not-a-uuid".parse::<ReportId>().is_err());
        assert!(Report::from_json(br#"{"id":"zzz"}"#).is_err());
    }
}
