//! Production NATS (issue #12), against real nats-servers on loopback, on
//! both NATS stacks and all four adapters: the sync client's sink (blocking,
//! smol) and async-nats' (tokio multi-thread, current-thread). Each body is
//! generic over the harness and runs once per adapter.
//!
//! Certificates are generated here at test time (rcgen): a private CA, a
//! server certificate for 127.0.0.1/::1/localhost, one only for
//! `nats.internal`, a client certificate, and a second CA with its own
//! client certificate (the wrong one). NKey users and the operator-mode
//! JWTs are made with the nkeys crate.
//!
//! Every run ends with the identity (`accepted == delivered + spilled +
//! lost + in_flight`, `lost == 0`) and counts what reached the server.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tidings_conformance::adapters::{Blocking, Smol, Tokio};
use tidings_conformance::harness::Harness;
use tidings_conformance::nats_probe::{
    create_stream, set_probe_access, stream_arrivals, stream_reports, stream_settings,
    stream_subjects, ProbeAccess, Subscriber,
};
use tidings_conformance::nats_server::{NatsCluster, NatsServer, ServerOptions};
use tidings_conformance::scenarios::{assert_accounted, sink_reason};
use tidings_core::nats::{
    Credentials, DiscardPolicy, NatsConfig, Secret, StreamSettings, StreamStorage,
};
use tidings_core::spool::SpoolConfig;
use tidings_core::{
    JsonLinesFile, Report, ReportId, Reporter, RetryPolicy, ShutdownSummary, SpoolMode, Stats,
};

type TokioMulti = Tokio<true>;
type TokioCurrent = Tokio<false>;

// ----- certificates ----------------------------------------------------------

/// Every certificate and key of the tests, as PEM files in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// Valid only for `nats.internal` (not for 127.0.0.1).
    named_cert: PathBuf,
    named_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// Signed by another CA the server does not trust.
    rogue_cert: PathBuf,
    rogue_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params, key)
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    names: &[&str],
    ips: &[std::net::IpAddr],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("tidings"),
    );
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let dir = tempfile::Builder::new()
        .prefix("tidings-pki-")
        .tempdir()
        .unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca_params, ca_key) = ca("tidings test CA");
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let loopback = [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    let (server_cert, server_key) = leaf(
        &issuer,
        &["localhost"],
        &loopback,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (named_cert, named_key) = leaf(
        &issuer,
        &["nats.internal"],
        &[],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        &issuer,
        &["tidings-client"],
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (rogue_params, rogue_ca_key) = ca("rogue CA");
    let rogue_issuer = Issuer::new(rogue_params, rogue_ca_key);
    let (rogue_cert, rogue_key) = leaf(
        &rogue_issuer,
        &["tidings-client"],
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki {
        ca: write("ca.pem", &ca_pem),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server-key.pem", &server_key),
        named_cert: write("named.pem", &named_cert),
        named_key: write("named-key.pem", &named_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client-key.pem", &client_key),
        rogue_cert: write("rogue.pem", &rogue_cert),
        rogue_key: write("rogue-key.pem", &rogue_key),
        dir,
    }
}

/// A JetStream server with TLS (`verify`: client certificates required).
fn tls_server(pki: &Pki, cert: &Path, key: &Path, verify: bool) -> NatsServer {
    NatsServer::start_with(ServerOptions {
        config: Some(format!(
            "tls {{\n  cert_file: {cert:?}\n  key_file: {key:?}\n  ca_file: {:?}\n  \
             verify: {verify}\n  timeout: 2\n}}",
            pki.ca
        )),
        ..ServerOptions::default()
    })
}

/// Lets the probes reach a TLS server (trusting the CA, with the client
/// certificate).
fn probe_tls(server: &NatsServer, pki: &Pki) {
    set_probe_access(
        &server.url(),
        ProbeAccess {
            ca_file: Some(pki.ca.clone()),
            client_cert: Some((pki.client_cert.clone(), pki.client_key.clone())),
            ..ProbeAccess::default()
        },
    );
}

// ----- running a reporter ----------------------------------------------------

const SUBJECT: &str = "prod.reports";
const STREAM: &str = "PROD";
const N: usize = 40;

fn js(url: impl Into<String>) -> NatsConfig {
    let mut c = NatsConfig::new(url, SUBJECT)
        .jetstream()
        .ensure_stream(STREAM);
    c.connect_timeout = Duration::from_millis(1500);
    c
}

/// For runs that must fail: the first connection is not waited for long.
fn failing(mut c: NatsConfig) -> NatsConfig {
    c.connect_timeout = Duration::from_millis(500);
    c
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_attempts: 3,
        attempt_timeout: Duration::from_secs(5),
        down_after: Duration::from_millis(100),
        probe_interval: Duration::from_millis(50),
    }
}

fn patient_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(250),
        max_attempts: 40,
        attempt_timeout: Duration::from_secs(5),
        down_after: Duration::from_secs(60),
        probe_interval: Duration::from_millis(100),
    }
}

struct Run {
    summary: ShutdownSummary,
    ids: Vec<ReportId>,
    spill: PathBuf,
    spool: PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    fn stats(&self) -> &Stats {
        &self.summary.stats
    }

    /// What the sink said (its last error), for the message checks.
    fn reason(&self) -> String {
        sink_reason(self.stats())
    }

    /// Everything this run wrote or said: the summary (Display and Debug,
    /// with the stats and the diagnostics printed to stderr), the fallback
    /// file and every file of the spool.
    fn everything_written(&self) -> String {
        let mut all = format!("{}\n{:?}\n", self.summary, self.summary);
        for d in &self.stats().diagnostics {
            all.push_str(&d.message);
            all.push('\n');
        }
        all.push_str(&String::from_utf8_lossy(
            &std::fs::read(&self.spill).unwrap_or_default(),
        ));
        if let Ok(entries) = std::fs::read_dir(&self.spool) {
            for e in entries.flatten() {
                all.push_str(&String::from_utf8_lossy(
                    &std::fs::read(e.path()).unwrap_or_default(),
                ));
            }
        }
        all
    }
}

fn report(i: usize) -> Report {
    Report::error("prod_nats", format!("report {i}")).with_context("i", i)
}

/// Reports `reports` through `config` on harness `h`, a JSON-lines fallback
/// and an on-spill spool behind it, and shuts down.
fn run_with<H: Harness>(
    h: &H,
    config: NatsConfig,
    reports: Vec<Report>,
    retry: RetryPolicy,
) -> Run {
    let sink = h
        .nats_sink(config)
        .unwrap_or_else(|e| panic!("[{}] {e}", H::NAME));
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill.jsonl");
    let spool = dir.path().join("spool");
    let builder = Reporter::builder()
        .boxed_sink(sink)
        .fallback(JsonLinesFile::open(&spill).unwrap())
        .spool(SpoolConfig::new(&spool), SpoolMode::OnSpill)
        .retry(retry)
        .log_to_stderr(false);
    let reporter = h.start(builder);
    let ids = reports
        .into_iter()
        .map(|r| reporter.report(r).unwrap().id())
        .collect();
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(20)));
    assert_accounted(&summary.stats);
    Run {
        summary,
        ids,
        spill,
        spool,
        _dir: dir,
    }
}

/// `N` reports through `config` with patient retries: all delivered.
#[track_caller]
fn all_delivered<H: Harness>(h: &H, config: NatsConfig) -> Run {
    let run = run_with(h, config, (0..N).map(report).collect(), patient_retry());
    assert_eq!(
        run.stats().delivered,
        N as u64,
        "[{}] {}",
        H::NAME,
        run.summary
    );
    run
}

/// `N` reports through `config` with quick retries: all spilled, and the
/// sink's reason contains each of `says`.
#[track_caller]
fn all_spilled<H: Harness>(h: &H, config: NatsConfig, says: &[&str]) -> Run {
    let run = run_with(h, config, (0..N).map(report).collect(), quick_retry());
    assert_eq!(
        run.stats().spilled,
        N as u64,
        "[{}] {}",
        H::NAME,
        run.summary
    );
    let why = run.reason();
    for said in says {
        assert!(
            why.contains(said),
            "[{}] expected {said:?} in: {why}",
            H::NAME
        );
    }
    run
}

/// Reports that must all be delivered: they are, and `STREAM` holds each once.
#[track_caller]
fn delivers<H: Harness>(h: &H, url: &str, config: NatsConfig) -> Run {
    let before = arrived(url);
    let run = all_delivered(h, config);
    let s = run.stats();
    assert_eq!(s.spilled, 0, "[{}] {}", H::NAME, run.summary);
    let stream = stream_arrivals(url, STREAM);
    assert!(stream.duplicates().is_empty(), "[{}]", H::NAME);
    for id in &run.ids {
        assert!(
            stream.ids.contains(id),
            "[{}] {id} not in the stream",
            H::NAME
        );
    }
    assert_eq!(stream.ids.len(), before + N, "[{}]", H::NAME);
    run
}

/// Reports that cannot be delivered: all spilled (none lost), nothing
/// reached the stream, and the sink's reason contains `says`.
#[track_caller]
fn refused<H: Harness>(h: &H, url: &str, config: NatsConfig, says: &str) -> Run {
    let before = arrived(url);
    let run = all_spilled(h, failing(config), &[says]);
    let s = run.stats();
    assert_eq!(s.delivered, 0, "[{}] {}", H::NAME, run.summary);
    assert_eq!(s.lost, 0);
    assert_eq!(arrived(url), before, "[{}] something arrived", H::NAME);
    run
}

/// Reports in `STREAM` (0 when it does not exist).
fn arrived(url: &str) -> usize {
    match stream_subjects(url, STREAM) {
        Some(_) => stream_arrivals(url, STREAM).ids.len(),
        None => 0,
    }
}

// ----- TLS -------------------------------------------------------------------

/// A TLS server with a private CA: with the CA configured, delivered; with
/// none (the system's roots), a certificate error that says to configure
/// the CA, everything spilled. A certificate for another name needs
/// `tls_server_name`.
fn tls_with_a_private_ca<H: Harness>() {
    let pki = pki();
    let server = tls_server(&pki, &pki.server_cert, &pki.server_key, false);
    probe_tls(&server, &pki);
    let h = H::new();
    delivers(&h, &server.url(), js(server.url()).tls_ca_file(&pki.ca));
    // tls:// and require_tls change nothing when the server has TLS.
    let tls_url = server.url().replace("nats://", "tls://");
    delivers(
        &h,
        &server.url(),
        js(&tls_url).tls_ca_file(&pki.ca).require_tls(),
    );
    refused(&h, &server.url(), js(server.url()), "not trusted");

    // A certificate valid for nats.internal only, the URL an IP address.
    let named = tls_server(&pki, &pki.named_cert, &pki.named_key, false);
    probe_tls(&named, &pki);
    // The probe verifies 127.0.0.1: it cannot read this server's streams;
    // the acks (Ack::Stored) say where the reports went.
    all_delivered(
        &h,
        js(named.url())
            .tls_ca_file(&pki.ca)
            .tls_server_name("nats.internal"),
    );
    all_spilled(
        &h,
        failing(js(named.url()).tls_ca_file(&pki.ca)),
        &["tls_server_name"],
    );
}

/// Mutual TLS (`verify: true`): the right client certificate is delivered;
/// none, or one from a CA the server does not trust, is refused with a
/// message saying which, everything spilled.
fn mutual_tls<H: Harness>() {
    let pki = pki();
    let server = tls_server(&pki, &pki.server_cert, &pki.server_key, true);
    probe_tls(&server, &pki);
    let h = H::new();
    let with_ca = || js(server.url()).tls_ca_file(&pki.ca);
    delivers(
        &h,
        &server.url(),
        with_ca().tls_client_cert(&pki.client_cert, &pki.client_key),
    );
    refused(
        &h,
        &server.url(),
        with_ca(),
        "requires a TLS client certificate",
    );
    refused(
        &h,
        &server.url(),
        with_ca().tls_client_cert(&pki.rogue_cert, &pki.rogue_key),
        "did not accept the TLS client certificate",
    );
}

/// `require_tls` against a server without TLS: refused, and said so.
fn require_tls_against_a_plain_server<H: Harness>() {
    let server = NatsServer::start();
    let h = H::new();
    refused(
        &h,
        &server.url(),
        js(server.url()).require_tls(),
        "TLS is required but the server does not offer it",
    );
    // The same configuration without require_tls is delivered.
    delivers(&h, &server.url(), js(server.url()));
}

/// Bad TLS files fail when the sink is built, naming the field and the
/// path, on both stacks; a key that does not belong to its certificate too.
fn bad_tls_files_fail_at_build<H: Harness>() {
    let pki = pki();
    let h = H::new();
    let base = || NatsConfig::new("nats://127.0.0.1:1", SUBJECT);
    let missing = pki.dir.path().join("missing.pem");
    let not_pem = pki.dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text").unwrap();
    let cases: Vec<(NatsConfig, &str, &Path)> = vec![
        (base().tls_ca_file(&missing), "nats.tls.ca_file", &missing),
        (base().tls_ca_file(&not_pem), "nats.tls.ca_file", &not_pem),
        (
            base().tls_ca_file(&pki.client_key),
            "nats.tls.ca_file",
            &pki.client_key,
        ),
        (
            base().tls_client_cert(&not_pem, &pki.client_key),
            "nats.tls.client_cert",
            &not_pem,
        ),
        (
            base().tls_client_cert(&pki.client_cert, &missing),
            "nats.tls.client_key",
            &missing,
        ),
        (
            base().tls_client_cert(&pki.client_cert, &pki.client_cert),
            "nats.tls.client_key",
            &pki.client_cert,
        ),
        // A real key, but not this certificate's.
        (
            base().tls_client_cert(&pki.client_cert, &pki.rogue_key),
            "nats.tls.client_key",
            &pki.rogue_key,
        ),
    ];
    let key_text = std::fs::read_to_string(&pki.rogue_key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap().to_owned();
    for (config, field, path) in cases {
        let e = h
            .nats_sink(config)
            .err()
            .unwrap_or_else(|| panic!("[{}] {field} {path:?} accepted", H::NAME));
        assert_eq!(e.field(), field, "[{}] {e}", H::NAME);
        assert!(
            e.problem().contains(&path.display().to_string()),
            "[{}] {e}",
            H::NAME
        );
        assert!(
            !format!("{e} {e:?}").contains(&key_line),
            "[{}] {e}",
            H::NAME
        );
    }
    let e = h
        .nats_sink(base().credentials(Credentials::NKey(Secret::new("SUnotaseed"))))
        .err()
        .unwrap();
    assert_eq!(e.field(), "nats.credentials");
    assert!(!e.to_string().contains("SUnotaseed"), "{e}");
}

// ----- authentication ----------------------------------------------------------

const ADMIN: (&str, &str) = ("admin", "admin-pw-Kd81");
const PASSWORD: &str = "pw-Zq8XrT3v-unique";
const TOKEN: &str = "tk-Hs71PqLm-unique";

fn user_server(nkey_user: &str) -> NatsServer {
    NatsServer::start_with(ServerOptions {
        config: Some(format!(
            "authorization {{\n  users = [\n    {{user: {}, password: {:?}}}\n    \
             {{user: reporter, password: {PASSWORD:?}}}\n    {{nkey: {nkey_user:?}}}\n  ]\n}}",
            ADMIN.0, ADMIN.1
        )),
        ..ServerOptions::default()
    })
}

fn user_password(password: &str) -> Credentials {
    Credentials::UserPassword {
        user: "reporter".into(),
        password: Secret::new(password),
    }
}

/// User/password, NKey and token users: the right credentials are
/// delivered, wrong ones refused as an authorization violation (spilled).
fn credentials_right_and_wrong<H: Harness>() {
    let nkey = nkeys::KeyPair::new_user();
    let seed = nkey.seed().unwrap();
    let server = user_server(&nkey.public_key());
    let admin = server.url_as(ADMIN.0, ADMIN.1);
    let h = H::new();
    let at = |c: Credentials| js(server.url()).credentials(c);

    // The probes read the stream as admin: same account, same stream.
    let delivered = |c| {
        let before = arrived(&admin);
        all_delivered(&h, at(c));
        assert_eq!(arrived(&admin), before + N);
    };
    let violation = |c| {
        let before = arrived(&admin);
        all_spilled(&h, failing(at(c)), &["Authorization Violation"]);
        assert_eq!(arrived(&admin), before);
    };
    delivered(user_password(PASSWORD));
    violation(user_password("wrong-password"));
    delivered(Credentials::NKey(Secret::new(seed.clone())));
    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    violation(Credentials::NKey(Secret::new(stranger)));
    // The seed from a file (with the public key on another line).
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, format!("{}\n{seed}\n", nkey.public_key())).unwrap();
    delivered(Credentials::nkey_seed_file(&seed_file).unwrap());

    let token_server = NatsServer::start_with(ServerOptions {
        token: Some(TOKEN.to_owned()),
        ..ServerOptions::default()
    });
    let token_url = token_server.url();
    let probe = token_url.clone();
    set_probe_access(
        &probe,
        ProbeAccess {
            token: Some(TOKEN.to_owned()),
            ..ProbeAccess::default()
        },
    );
    all_delivered(
        &h,
        js(&token_url).credentials(Credentials::Token(Secret::new(TOKEN))),
    );
    assert_eq!(stream_arrivals(&probe, STREAM).ids.len(), N);
    all_spilled(
        &h,
        failing(js(&token_url).credentials(Credentials::Token(Secret::new("nope")))),
        &["Authorization Violation"],
    );
    assert_eq!(stream_arrivals(&probe, STREAM).ids.len(), N);
}

/// The permissions the README lists are enough: a user with exactly those
/// delivers with JetStream and `ensure_stream` (the stream created by it),
/// and with core publish.
fn least_privilege_user<H: Harness>() {
    let server = NatsServer::start_with(ServerOptions {
        config: Some(format!(
            "authorization {{\n  users = [\n    {{user: {}, password: {:?}}}\n    \
             {{user: tidings, password: {PASSWORD:?}, permissions: {{\n      \
             publish: [\"{SUBJECT}\", \"{SUBJECT}.>\", \"_INBOX.>\", \
             \"$JS.API.STREAM.INFO.{STREAM}\", \"$JS.API.STREAM.CREATE.{STREAM}\"]\n      \
             subscribe: [\"_INBOX.>\"]\n    }}}}\n  ]\n}}",
            ADMIN.0, ADMIN.1
        )),
        ..ServerOptions::default()
    });
    let admin = server.url_as(ADMIN.0, ADMIN.1);
    let h = H::new();
    let user = Credentials::UserPassword {
        user: "tidings".into(),
        password: Secret::new(PASSWORD),
    };
    delivers(&h, &admin, js(server.url()).credentials(user.clone()));
    let sub = Subscriber::start(&admin, &format!("{SUBJECT}.>"));
    let core = NatsConfig::new(server.url(), format!("{SUBJECT}.core")).credentials(user);
    all_delivered(&h, core);
    assert_eq!(sub.wait_for(N, Duration::from_secs(10)).ids.len(), N);
}

// ----- operator mode: .creds -------------------------------------------------

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A NATS JWT for `subject`, signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let header = serde_json::json!({"typ": "JWT", "alg": "ed25519-nkey"});
    let claims = serde_json::json!({
        "jti": format!("{}{}", name.to_uppercase(), now.as_nanos()),
        "iat": now.as_secs(),
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64url(&signature))
}

fn creds_file(dir: &Path, name: &str, jwt: &str, seed: &str) -> PathBuf {
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(
        &path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .unwrap();
    path
}

/// A server in operator mode (memory resolver, JWTs signed here): a user's
/// `.creds` file is delivered (core publish, counted by a subscriber of
/// the same account); a user of an account the server does not know is
/// refused as an authorization violation.
fn creds_in_operator_mode<H: Harness>() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let stranger_account = nkeys::KeyPair::new_account();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "op",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let limits = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "app",
        serde_json::json!({"type": "account", "version": 2, "limits": limits}),
    );
    let user_claims = serde_json::json!({
        "type": "user", "version": 2, "pub": {}, "sub": {},
        "subs": -1, "data": -1, "payload": -1
    });
    let dir = tempfile::tempdir().unwrap();
    let user = |name: &str, signer: &nkeys::KeyPair| {
        let key = nkeys::KeyPair::new_user();
        let token = jwt(signer, &key.public_key(), name, user_claims.clone());
        creds_file(dir.path(), name, &token, &key.seed().unwrap())
    };
    let reporter = user("reporter", &account);
    let probe = user("probe", &account);
    let stranger = user("stranger", &stranger_account);
    let server = NatsServer::start_with(ServerOptions {
        no_jetstream: true,
        config: Some(format!(
            "operator: {operator_jwt:?}\nresolver: MEMORY\nresolver_preload: {{\n  {:?}: {account_jwt:?}\n}}",
            account.public_key()
        )),
        ..ServerOptions::default()
    });
    set_probe_access(
        &server.url(),
        ProbeAccess {
            creds_file: Some(probe),
            ..ProbeAccess::default()
        },
    );
    let sub = Subscriber::start(&server.url(), "creds.>");
    let h = H::new();
    let core = |creds: &Path| {
        let mut c = NatsConfig::new(server.url(), "creds.reports")
            .credentials(Credentials::CredsFile(creds.to_owned()));
        c.connect_timeout = Duration::from_millis(1500);
        c
    };
    all_delivered(&h, core(&reporter));
    let got = sub.wait_for(N, Duration::from_secs(10));
    assert_eq!(got.ids.len(), N, "[{}]", H::NAME);
    assert!(got.duplicates().is_empty());

    all_spilled(&h, failing(core(&stranger)), &["Authorization Violation"]);
    assert_eq!(sub.wait_for(N + 1, Duration::from_millis(300)).ids.len(), N);
}

// ----- no secret anywhere -----------------------------------------------------

/// Distinctive secrets (password, token, NKey seed, in a URL too, and the
/// client key file's content) are set; runs are made to fail and succeed;
/// the Debug of every config, every error, the summaries, the diagnostics
/// (what tidings prints to stderr), the fallback files and the spools hold
/// none of them.
fn no_secret_anywhere<H: Harness>() {
    let pki = pki();
    let nkey = nkeys::KeyPair::new_user();
    let seed = nkey.seed().unwrap();
    let wrong_seed = nkeys::KeyPair::new_user().seed().unwrap();
    let server = NatsServer::start_with(ServerOptions {
        config: Some(format!(
            "authorization {{\n  users = [\n    {{user: {}, password: {:?}}}\n    \
             {{user: reporter, password: {PASSWORD:?}}}\n    {{nkey: {:?}}}\n  ]\n}}\n\
             tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n}}",
            ADMIN.0,
            ADMIN.1,
            nkey.public_key(),
            pki.server_cert,
            pki.server_key,
            pki.ca
        )),
        ..ServerOptions::default()
    });
    let admin = server.url_as(ADMIN.0, ADMIN.1);
    set_probe_access(
        &admin,
        ProbeAccess {
            ca_file: Some(pki.ca.clone()),
            client_cert: Some((pki.client_cert.clone(), pki.client_key.clone())),
            ..ProbeAccess::default()
        },
    );
    let token_server = NatsServer::start_with(ServerOptions {
        token: Some(TOKEN.to_owned()),
        ..ServerOptions::default()
    });
    let port = server.port();
    let mtls = |c: NatsConfig| {
        c.tls_ca_file(&pki.ca)
            .tls_client_cert(&pki.client_cert, &pki.client_key)
    };
    let wrong_pw = "wrong-pw-Ux42Lq";
    let wrong_token = "wrong-tk-Pq93Vz";
    let h = H::new();
    // (config, delivered?)
    let runs: Vec<(NatsConfig, bool)> = vec![
        (
            mtls(js(server.url())).credentials(user_password(PASSWORD)),
            true,
        ),
        (
            mtls(js(server.url())).credentials(user_password(wrong_pw)),
            false,
        ),
        (
            mtls(js(format!("nats://reporter:{PASSWORD}@127.0.0.1:{port}"))),
            true,
        ),
        (
            mtls(js(format!("nats://reporter:{wrong_pw}@127.0.0.1:{port}"))),
            false,
        ),
        (
            mtls(js(server.url())).credentials(Credentials::NKey(Secret::new(seed.clone()))),
            true,
        ),
        (
            mtls(js(server.url())).credentials(Credentials::NKey(Secret::new(wrong_seed.clone()))),
            false,
        ),
        // mTLS refused (no client certificate) with the right password.
        (
            js(server.url())
                .tls_ca_file(&pki.ca)
                .credentials(user_password(PASSWORD)),
            false,
        ),
        (
            js(token_server.url()).credentials(Credentials::Token(Secret::new(TOKEN))),
            true,
        ),
        (
            js(token_server.url()).credentials(Credentials::Token(Secret::new(wrong_token))),
            false,
        ),
    ];
    let mut seen = String::new();
    for (config, ok) in runs {
        seen.push_str(&format!("{config:?}\n"));
        let (config, retry) = if ok {
            (config, patient_retry())
        } else {
            (failing(config), quick_retry())
        };
        let reports = (0..10)
            .map(|i| report(i).with_context("note", "nothing secret here"))
            .collect();
        let run = run_with(&h, config, reports, retry);
        let expected = if ok { 10 } else { 0 };
        assert_eq!(
            run.stats().delivered,
            expected,
            "[{}] {}",
            H::NAME,
            run.summary
        );
        seen.push_str(&run.everything_written());
        for sink in &run.stats().sinks {
            seen.push_str(&format!("{sink:?}\n"));
        }
    }
    // Configuration errors quote no key material either.
    let bad_key = NatsConfig::new(server.url(), SUBJECT)
        .tls_client_cert(&pki.client_cert, &pki.rogue_key)
        .credentials(user_password(PASSWORD));
    let e = h.nats_sink(bad_key).err().unwrap();
    seen.push_str(&format!("{e}\n{e:?}\n"));

    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        TOKEN.into(),
        seed,
        wrong_seed,
        wrong_pw.into(),
        wrong_token.into(),
    ];
    for key in [&pki.client_key, &pki.rogue_key] {
        let text = std::fs::read_to_string(key).unwrap();
        secrets.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 16)
                .map(str::to_owned),
        );
    }
    for secret in &secrets {
        assert!(
            !seen.contains(secret.as_str()),
            "[{}] a secret ({}…) appears in what tidings wrote or said",
            H::NAME,
            &secret[..6]
        );
    }
    // The texts were really collected (and say what happened).
    assert!(seen.contains("Authorization Violation"), "[{}]", H::NAME);
    assert!(
        seen.contains("requires a TLS client certificate"),
        "[{}]",
        H::NAME
    );
}

// ----- scrubbing ---------------------------------------------------------------

/// Reports with every default sensitive key (top level and nested) and URLs
/// with user-info reach the stream scrubbed: an outside reader sees no
/// secret.
fn scrubbed_before_leaving<H: Harness>() {
    let server = NatsServer::start();
    let h = H::new();
    let keys = [
        "password",
        "db_passwd",
        "client_secret",
        "auth_token",
        "api_key",
        "Authorization",
        "Cookie",
        "aws_credential",
    ];
    let reports: Vec<Report> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let mut r = Report::error(
                "scrub",
                format!("cannot reach postgres://app:sec-msg-{i}@db:5432/app"),
            )
            .with_context(*key, format!("sec-top-{i}"))
            .with_context(
                "request",
                serde_json::json!({
                    "headers": {*key: format!("sec-nested-{i}"), "accept": "json"},
                    "upstream": format!("https://svc:sec-ctx-{i}@api.example/v1"),
                }),
            )
            .with_context("attempt", i);
            r.chain = vec![format!("dial nats://sec-chain-{i}@10.0.0.1:4222 failed")];
            r
        })
        .collect();
    // Where NATS is unreachable, the spool and the fallback file hold the
    // scrubbed reports too (scrubbing happens before a report is accepted).
    let nowhere = run_with(
        &h,
        failing(js("nats://127.0.0.1:1")),
        reports.clone(),
        quick_retry(),
    );
    assert_eq!(nowhere.stats().spilled, keys.len() as u64, "[{}]", H::NAME);
    let written = nowhere.everything_written();
    assert!(written.contains("[redacted]"), "[{}] {written}", H::NAME);
    assert!(
        !written.contains("sec-"),
        "[{}] a secret was spilled",
        H::NAME
    );

    let run = run_with(&h, js(server.url()), reports, patient_retry());
    assert_eq!(
        run.stats().delivered,
        keys.len() as u64,
        "[{}] {}",
        H::NAME,
        run.summary
    );
    let stored = stream_reports(&server.url(), STREAM);
    assert_eq!(stored.len(), keys.len());
    for r in &stored {
        let wire = String::from_utf8(r.to_json()).unwrap();
        assert!(
            !wire.contains("sec-"),
            "[{}] a secret reached the stream: {wire}",
            H::NAME
        );
        let i = r.context["attempt"].as_u64().unwrap() as usize;
        let key = keys[i];
        assert_eq!(r.context[key], "[redacted]", "{wire}");
        assert_eq!(r.context["request"]["headers"][key], "[redacted]", "{wire}");
        assert_eq!(r.context["request"]["headers"]["accept"], "json");
        assert_eq!(
            r.message, "cannot reach postgres://app:***@db:5432/app",
            "{wire}"
        );
        assert_eq!(r.chain[0], "dial nats://***@10.0.0.1:4222 failed");
        assert_eq!(
            r.context["request"]["upstream"],
            "https://svc:***@api.example/v1"
        );
    }
}

// ----- stream settings -----------------------------------------------------------

/// On a 3-node cluster: the stream is created R3 with the configured
/// limits (read back from its info); an existing stream with other
/// settings is not changed, not published into, and the reason names each
/// difference.
fn stream_settings_on_a_cluster<H: Harness>() {
    let cluster = NatsCluster::start();
    let urls = cluster.urls();
    let url = urls[0].clone();
    let h = H::new();
    let settings = StreamSettings {
        replicas: Some(3),
        max_age: Some(Duration::from_secs(3600)),
        max_bytes: Some(64 << 20),
        max_msgs: Some(100_000),
        storage: Some(StreamStorage::File),
        discard: Some(DiscardPolicy::Old),
        duplicate_window: Some(Duration::from_secs(30)),
    };
    let mut config = js(url.clone()).stream_settings(settings.clone());
    for other in &urls[1..] {
        config = config.server(other.clone());
    }
    config.connect_timeout = Duration::from_secs(5);
    delivers(&h, &url, config.clone());
    let read = stream_settings(&url, STREAM);
    assert_eq!(read.replicas, 3, "{read:?}");
    assert_eq!(read.servers_with_replica, 3, "{read:?}");
    assert_eq!(read.max_age, Duration::from_secs(3600));
    assert_eq!(read.max_bytes, 64 << 20);
    assert_eq!(read.max_msgs, 100_000);
    assert_eq!(read.storage, "file");
    assert_eq!(read.discard, "old");
    assert_eq!(read.duplicate_window, Duration::from_secs(30));
    assert_eq!(
        read.subjects,
        vec![SUBJECT.to_owned(), format!("{SUBJECT}.>")]
    );
    // Again, on the existing (matching) stream: delivered.
    delivers(&h, &url, config);

    // An existing R1 stream, unbounded, where R3 and limits are configured.
    create_stream(&url, "LEGACY", "legacy.reports", 1);
    let mut legacy = NatsConfig::new(url.clone(), "legacy.reports")
        .jetstream()
        .ensure_stream("LEGACY")
        .stream_settings(settings);
    legacy.connect_timeout = Duration::from_secs(5);
    all_spilled(
        &h,
        legacy,
        &[
            "replicas: configured 3, the stream has 1",
            "max_age: configured 3600s, the stream has unlimited",
            "max_msgs: configured 100000, the stream has unlimited",
            "duplicate_window: configured 30s, the stream has 120s",
        ],
    );
    let after = stream_settings(&url, "LEGACY");
    assert_eq!(after.replicas, 1, "tidings changed the stream");
    assert_eq!(after.max_msgs, -1, "tidings changed the stream");
    assert!(stream_arrivals(&url, "LEGACY").ids.is_empty());
}

// ----- instantiation ---------------------------------------------------------

macro_rules! on_both_stacks {
    ($($name:ident),* $(,)?) => {
        mod sync_sink {
            $(
                #[test]
                fn $name() {
                    super::$name::<super::Blocking>();
                }
            )*
        }
        mod tokio_sink {
            $(
                #[test]
                fn $name() {
                    super::$name::<super::TokioMulti>();
                }
            )*
        }
        // The same two sinks on the other two adapters.
        mod smol {
            $(
                #[test]
                fn $name() {
                    super::$name::<super::Smol>();
                }
            )*
        }
        mod tokio_current_thread {
            $(
                #[test]
                fn $name() {
                    super::$name::<super::TokioCurrent>();
                }
            )*
        }
    };
}

on_both_stacks!(
    tls_with_a_private_ca,
    mutual_tls,
    require_tls_against_a_plain_server,
    bad_tls_files_fail_at_build,
    credentials_right_and_wrong,
    least_privilege_user,
    creds_in_operator_mode,
    no_secret_anywhere,
    scrubbed_before_leaving,
    stream_settings_on_a_cluster,
);
