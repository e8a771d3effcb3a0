//! The conformance suite on the tokio adapter, multi-thread runtime.

tidings_conformance::conformance_tests!(tidings_conformance::adapters::TokioMultiThread);
