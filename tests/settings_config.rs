//! Settings from the environment (a lookup, never the process's) and from
//! a TOML section, started on every runtime against a real stream.

mod common;

use std::collections::HashMap;

use tidings::{Settings, SpoolMode};
use tidings_conformance::scenarios::assert_accounted;

fn vars(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn settings_from_the_environment_reach_a_real_stream_on_every_runtime() {
    let server = tidings_conformance::nats_server::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::from_vars(vars(&[
        ("NATS_URL", server.url()),
        ("TIDINGS_STREAM", "ENVSTREAM".into()),
        ("TIDINGS_SUBJECT", "env.reports".into()),
        ("TIDINGS_SERVICE", "billing".into()),
        ("TIDINGS_SPOOL_DIR", dir.path().display().to_string()),
        ("TIDINGS_SPOOL_MODE", "write-ahead".into()),
        ("TIDINGS_SHUTDOWN_DEADLINE", "7s".into()),
    ]))
    .unwrap();
    assert_eq!(settings.spool_mode, SpoolMode::WriteAhead);
    let nats = settings.nats.clone().unwrap();

    // blocking
    let sink = tidings::blocking::NatsSink::connect(nats.clone()).unwrap();
    let builder = settings
        .configure(
            tidings::Reporter::builder().log_to_stderr(false),
            Some(sink),
        )
        .unwrap();
    assert_eq!(
        builder.configured_shutdown_deadline(),
        std::time::Duration::from_secs(7)
    );
    let (reporter, guard) = tidings::blocking::start(builder).unwrap();
    let a = reporter
        .report(tidings::Report::error("env", "blocking"))
        .unwrap()
        .id();
    let blocking = guard.shutdown_blocking();
    drop(reporter); // the last handle: the spool's lock goes with it

    // tokio (the spool directory is free again)
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (b, tokio_summary) = rt.block_on(async {
        let sink = tidings::tokio::NatsSink::connect(nats.clone())
            .await
            .unwrap();
        let builder = settings
            .configure(
                tidings::Reporter::builder().log_to_stderr(false),
                Some(sink),
            )
            .unwrap();
        let (reporter, guard) = tidings::tokio::start(builder).unwrap();
        let id = reporter
            .report(tidings::Report::error("env", "tokio"))
            .unwrap()
            .id();
        (id, guard.shutdown().await)
    });

    // smol
    let (c, smol_summary) = smol::block_on(async {
        let sink = tidings::smol::NatsSink::connect(nats.clone()).unwrap();
        let builder = settings
            .configure(
                tidings::Reporter::builder().log_to_stderr(false),
                Some(sink),
            )
            .unwrap();
        let (reporter, guard) = tidings::smol::start(builder).unwrap();
        let id = reporter
            .report(tidings::Report::error("env", "smol"))
            .unwrap()
            .id();
        (id, guard.shutdown().await)
    });

    for summary in [&blocking, &tokio_summary, &smol_summary] {
        assert_accounted(&summary.stats);
        assert_eq!(summary.stats.delivered, 1, "{summary}");
        assert_eq!(summary.stats.spool.as_ref().unwrap().pending, 0);
    }
    let mut want = vec![a, b, c];
    want.sort();
    assert_eq!(
        common::arrived(&server, "ENVSTREAM"),
        want,
        "the stream TIDINGS_STREAM named, created"
    );
}

#[derive(serde::Deserialize)]
struct AppConfig {
    #[allow(dead_code)]
    name: String,
    tidings: Settings,
}

#[test]
fn a_toml_section_starts_a_reporter_and_bad_values_name_their_key() {
    let server = common::server_with_stream("FILESTREAM", "file.reports");
    let text = format!(
        r#"
name = "billing"

[tidings]
service = "billing"
shutdown_deadline = "4s"

[tidings.nats]
url = "{}"
subject = "file.reports"
delivery = {{ jetstream = {{ ack_timeout = "2s" }} }}
"#,
        server.url()
    );
    let config: AppConfig = toml::from_str(&text).unwrap();
    let settings = config.tidings;
    let sink = tidings::blocking::NatsSink::connect(settings.nats.clone().unwrap()).unwrap();
    let (reporter, guard) = tidings::blocking::start(
        settings
            .configure(
                tidings::Reporter::builder().log_to_stderr(false),
                Some(sink),
            )
            .unwrap(),
    )
    .unwrap();
    let id = reporter
        .report(tidings::Report::error("file", "from a file"))
        .unwrap()
        .id();
    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    assert_eq!(common::arrived(&server, "FILESTREAM"), [id]);

    for (bad, key, says) in [
        (
            "[tidings]\nshutdown_deadline = \"soon\"\n",
            "shutdown_deadline",
            "e.g. \"500ms\"",
        ),
        (
            "[tidings.nats]\nconnect_timeout = 5\n",
            "connect_timeout",
            "with a unit",
        ),
        (
            "[tidings.nats]\ndelivery = \"pigeon\"\n",
            "delivery",
            "expected \"core\"",
        ),
        (
            "[tidings]\nspool_mode = \"often\"\n",
            "spool_mode",
            "on-spill or write-ahead",
        ),
        (
            "[tidings.spool]\ndir = \"/d\"\nsync = \"sometimes\"\n",
            "sync",
            "none, always",
        ),
        (
            "[tidings.nats]\nsubjet = \"a.b\"\n",
            "subjet",
            "unknown field",
        ),
        (
            "[tidings.nats]\ncredentials = { token = \"***\" }\n",
            "token",
            "placeholder",
        ),
    ] {
        let text = format!("name = \"x\"\n{bad}");
        let e = toml::from_str::<AppConfig>(&text)
            .err()
            .expect(bad)
            .to_string();
        assert!(e.contains(key) && e.contains(says), "{bad}: {e}");
    }
}
