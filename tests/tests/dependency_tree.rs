//! tokio must not be in the dependency tree of the crates that promise to
//! work without it (DESIGN: "tokio must not become a dependency of the smol
//! or blocking adapters").

use std::process::Command;

fn normal_deps(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
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
