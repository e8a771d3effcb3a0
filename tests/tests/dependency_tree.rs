//! tokio must not be in the dependency tree of the crates that promise to
//! work without it (DESIGN: "tokio must not become a dependency of the smol
//! or blocking adapters"); the integrations (issue #11) add nothing to the
//! default tree of `tidings`.

use std::process::Command;

fn normal_deps(package: &str) -> Vec<String> {
    normal_deps_with(package, &[])
}

/// The crates in `package`'s normal dependency tree with `features` on
/// (beside the default ones).
fn normal_deps_with(package: &str, features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let features = features.join(",");
    let mut args = vec![
        "tree",
        "-p",
        package,
        "-e",
        "normal",
        "--prefix",
        "none",
        "--offline",
    ];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    let out = Command::new(cargo)
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn tokio_is_not_a_dependency_of_the_blocking_smol_or_core_crates() {
    for package in [
        "tidings-core",
        "tidings-nats-sync",
        "tidings-blocking",
        "tidings-smol",
    ] {
        let deps = normal_deps(package);
        assert!(
            deps.len() > 1,
            "{package}: cargo tree listed nothing: {deps:?}"
        );
        let tokio: Vec<&String> = deps
            .iter()
            .filter(|d| d.as_str() == "tokio" || d.starts_with("tokio-"))
            .collect();
        assert!(tokio.is_empty(), "{package} depends on {tokio:?}");
    }
}

#[test]
fn the_tokio_adapter_does_use_tokio() {
    // The check above can fail: it finds tokio where tokio is.
    assert!(normal_deps("tidings-tokio").iter().any(|d| d == "tokio"));
}

/// The crate names of a tree, each once.
fn crate_set(deps: &[String]) -> std::collections::BTreeSet<&str> {
    deps.iter().map(String::as_str).collect()
}

#[test]
fn the_integrations_are_not_in_the_default_tree_of_tidings() {
    let default = normal_deps("tidings");
    assert!(
        default.iter().any(|d| d == "tidings-blocking"),
        "{default:?}"
    );
    for absent in ["tracing-subscriber", "metrics", "anyhow", "eyre"] {
        assert!(
            !default.iter().any(|d| d == absent),
            "{absent} is in the default tree of tidings"
        );
    }
}

#[test]
fn the_log_feature_adds_no_crate() {
    let default = normal_deps("tidings");
    assert!(
        default.iter().any(|d| d == "log"),
        "log comes with the sync client"
    );
    let with_log = normal_deps_with("tidings", &["log"]);
    assert_eq!(crate_set(&with_log), crate_set(&default));
}

#[test]
fn the_features_do_bring_their_crates() {
    // The checks above can fail: each feature's crates are found where they are.
    let deps = normal_deps_with("tidings", &["tracing", "metrics"]);
    for present in ["tracing-subscriber", "metrics"] {
        assert!(
            deps.iter().any(|d| d == present),
            "{present} missing: {deps:?}"
        );
    }
}
