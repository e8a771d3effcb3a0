//! Fuzzes recovery's scanner (resynchronisation after damage): it must never
//! panic, never skip more bytes than it was given, and every record it finds
//! must encode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_core::spool::{encode_record, scan_records};

fuzz_target!(|data: &[u8]| {
    let scan = scan_records(data);
    assert!(scan.skipped_bytes <= data.len() as u64);
    let mut bytes = Vec::new();
    for record in &scan.records {
        encode_record(record, &mut bytes).expect("a found record fits");
    }
});
