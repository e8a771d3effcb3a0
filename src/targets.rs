//! Which event and record targets the tracing layer and the logger never
//! report: tidings' own, and (by default) those of the NATS clients it
//! publishes with.

/// `tidings`, `tidings::…`, `tidings_…` (tidings' crates).
pub(crate) fn is_tidings(target: &str) -> bool {
    match target.strip_prefix("tidings") {
        Some(rest) => rest.is_empty() || rest.starts_with("::") || rest.starts_with('_'),
        None => false,
    }
}

/// `async_nats…` and `nats…`: the clients tidings' NATS sinks use.
pub(crate) fn is_nats_client(target: &str) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    crate_name == "async_nats" || crate_name == "nats"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_reported() {
        for t in [
            "tidings",
            "tidings::spool",
            "tidings_core::worker",
            "tidings_tokio",
        ] {
            assert!(is_tidings(t), "{t}");
        }
        for t in ["tidingsx", "app::tidings", "billing"] {
            assert!(!is_tidings(t), "{t}");
        }
        assert!(is_nats_client("async_nats::connector"));
        assert!(is_nats_client("nats"));
        assert!(!is_nats_client("natsume"));
    }
}
