//! The criterion micro-benchmark's results as a table: the median of each
//! saved baseline's median (`cargo bench -p tidings-bench --bench report --
//! --save-baseline runN`, see `bench/run.sh`), with ratios to the raw
//! hand-off at the same thread count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tidings_bench::{median, min_max};

/// Where criterion writes: `$CARGO_TARGET_DIR/criterion`, else the
/// workspace's `target/criterion`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("criterion"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
    }
}

/// `full_id` → the median (ns) in each baseline that has it.
fn collect(dir: &Path, baselines: &[String]) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if baselines.iter().any(|b| b == name) {
                if let Some((id, ns)) = read(&p) {
                    out.entry(id).or_default().push(ns);
                }
            } else {
                stack.push(p);
            }
        }
    }
    out
}

fn read(baseline: &Path) -> Option<(String, f64)> {
    let json = |f: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(baseline.join(f)).ok()?).ok()
    };
    let id = json("benchmark.json")?["full_id"].as_str()?.to_owned();
    let ns = json("estimates.json")?["median"]["point_estimate"].as_f64()?;
    Some((id, ns))
}

/// Prints the table; says so when nothing was found.
pub fn section(dir: &Path, baselines: &[String]) {
    let results = collect(dir, baselines);
    println!("## `report()` cost (criterion)\n");
    if results.is_empty() {
        println!(
            "No saved criterion baselines {baselines:?} under {}: run `bash bench/run.sh`.\n",
            dir.display()
        );
        return;
    }
    println!(
        "Median time per call of each saved run's median (runs: {}), one producer thread or two \
         (then: time per call on each thread). Prebuilt reports, a sink that discards, the queue \
         sized for a whole timed chunk and drained between chunks.\n",
        baselines.join(", ")
    );
    println!(
        "| benchmark | threads | median per call | runs' medians (min – max) | × raw `try_send` |"
    );
    println!("|---|---|---|---|---|");
    let raw = |threads: &str| {
        results
            .get(&format!("report/raw/try_send/{threads}"))
            .map(|v| median(v))
    };
    for (id, ns) in &results {
        let (name, threads) = id
            .strip_prefix("report/")
            .and_then(|rest| rest.rsplit_once('/'))
            .unwrap_or((id.as_str(), "?"));
        let (lo, hi) = min_max(ns);
        let ratio =
            raw(threads).map_or_else(|| "?".to_owned(), |r| format!("{:.2}×", median(ns) / r));
        println!(
            "| `{name}` | {threads} | {:.0} ns | {lo:.0} – {hi:.0} ns ({} runs) | {ratio} |",
            median(ns),
            ns.len()
        );
    }
    println!();
}
