//! Writing a report as JSON, fast: every report is encoded at least once
//! (a NATS payload, a fallback line, a spool record), on the worker's
//! thread, so the encoder sets the pipeline's ceiling.
//!
//! The output is the serde form of [`Report`] (the same fields, in the
//! same order, the same escapes), written by hand where serde_json is slow
//! for this shape: strings are checked for characters that need escaping
//! eight bytes at a time and copied in runs (serde_json looks at each byte
//! through a table), the timestamp is formatted without `fmt` machinery,
//! and the id without the hyphenated encoder. Context values, which can be
//! anything, still go through serde_json. `Report::from_json` reads the
//! result back exactly (a property test checks it, `roundtrip_prop`).

use std::time::SystemTime;

use crate::report::{Report, ReportId, Timestamp};

/// Appends `report` as one line of JSON (no newline).
pub(crate) fn write_report(report: &Report, buf: &mut Vec<u8>) {
    buf.reserve(256 + report.message.len());
    buf.extend_from_slice(b"{\"schema\":");
    write_u64(buf, u64::from(report.schema));
    buf.extend_from_slice(b",\"id\":\"");
    write_id(buf, &report.id);
    buf.extend_from_slice(b"\",\"timestamp\":\"");
    write_timestamp(buf, &report.timestamp);
    buf.extend_from_slice(b"\",\"severity\":\"");
    buf.extend_from_slice(report.severity.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"kind\":");
    write_str(buf, &report.kind);
    buf.extend_from_slice(b",\"message\":");
    write_str(buf, &report.message);
    buf.extend_from_slice(b",\"source\":{\"service\":");
    write_str(buf, &report.source.service);
    if !report.source.instance.is_empty() {
        buf.extend_from_slice(b",\"instance\":");
        write_str(buf, &report.source.instance);
    }
    buf.extend_from_slice(b",\"host\":");
    write_str(buf, &report.source.host);
    buf.extend_from_slice(b",\"pid\":");
    write_u64(buf, u64::from(report.source.pid));
    buf.push(b'}');
    if !report.context.is_empty() {
        buf.extend_from_slice(b",\"context\":{");
        for (i, (key, value)) in report.context.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_str(buf, key);
            buf.push(b':');
            // A Value always serializes (its map keys are strings).
            let _ = serde_json::to_writer(&mut *buf, value);
        }
        buf.push(b'}');
    }
    if !report.chain.is_empty() {
        buf.extend_from_slice(b",\"chain\":[");
        for (i, cause) in report.chain.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_str(buf, cause);
        }
        buf.push(b']');
    }
    if let Some(backtrace) = &report.backtrace {
        buf.extend_from_slice(b",\"backtrace\":");
        write_str(buf, backtrace);
    }
    if report.truncated {
        buf.extend_from_slice(b",\"truncated\":true");
    }
    if let Some(fingerprint) = report.fingerprint {
        buf.extend_from_slice(b",\"fingerprint\":\"");
        write_hex(buf, &fingerprint.bits().to_be_bytes());
        buf.push(b'"');
    }
    buf.push(b'}');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether some byte of `word` is a control character, `"` or `\`: the
/// bytes JSON must escape. (Each test flags a byte only when it or a lower
/// byte really matches, so "any flag" is exact.)
#[inline]
fn needs_escape(word: u64) -> bool {
    let control = word.wrapping_sub(0x20 * ONES) & !word;
    let quote = (word ^ (b'"' as u64 * ONES)).wrapping_sub(ONES) & !(word ^ (b'"' as u64 * ONES));
    let backslash =
        (word ^ (b'\\' as u64 * ONES)).wrapping_sub(ONES) & !(word ^ (b'\\' as u64 * ONES));
    (control | quote | backslash) & HIGHS != 0
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
pub(crate) fn write_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    buf.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let word = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        buf.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            buf.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

fn write_u64(buf: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

fn write_hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 0xf)]);
    }
}

/// The id hyphenated, lowercase: 8-4-4-4-12 hex digits.
fn write_id(buf: &mut Vec<u8>, id: &ReportId) {
    let b = id.as_bytes();
    write_hex(buf, &b[..4]);
    buf.push(b'-');
    write_hex(buf, &b[4..6]);
    buf.push(b'-');
    write_hex(buf, &b[6..8]);
    buf.push(b'-');
    write_hex(buf, &b[8..10]);
    buf.push(b'-');
    write_hex(buf, &b[10..]);
}

/// RFC 3339 UTC with microseconds, `2026-12-01T02:43:25.123456Z`, as
/// [`Timestamp`]'s `Display` writes it (times before 1970 as the epoch).
fn write_timestamp(buf: &mut Vec<u8>, timestamp: &Timestamp) {
    let since = timestamp
        .as_system_time()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let in_day = secs % 86_400;
    let two = |buf: &mut Vec<u8>, n: u64| {
        buf.push(b'0' + (n / 10) as u8);
        buf.push(b'0' + (n % 10) as u8);
    };
    // Years 0..=9999 (humantime's range too).
    let year = year.clamp(0, 9999) as u64;
    two(buf, year / 100);
    two(buf, year % 100);
    buf.push(b'-');
    two(buf, month as u64);
    buf.push(b'-');
    two(buf, day as u64);
    buf.push(b'T');
    two(buf, in_day / 3600);
    buf.push(b':');
    two(buf, in_day / 60 % 60);
    buf.push(b':');
    two(buf, in_day % 60);
    buf.push(b'.');
    let micros = u64::from(since.subsec_micros());
    two(buf, micros / 10_000);
    two(buf, micros / 100 % 100);
    two(buf, micros % 100);
    buf.push(b'Z');
}

/// Year, month, day of the day `days` after 1970-01-01 (Howard Hinnant's
/// civil-from-days algorithm, proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::report::Severity;

    fn serde_json_of(report: &Report) -> Vec<u8> {
        serde_json::to_vec(report).unwrap()
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let mut rng = fastrand::Rng::with_seed(11);
        let alphabet: Vec<char> = "ab\"\\\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é€\u{1F600} /:x"
            .chars()
            .collect();
        let mut text = |n: usize| -> String {
            (0..n)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        };
        for n in 0..400 {
            let mut r = Report::new(Severity::Warning, text(n % 23), text(n))
                .with_context(text(5), text(7))
                .with_context("n", n)
                .with_context("nested", serde_json::json!({"a": [1, 2.5, null, "x\"y"]}));
            r.source.instance = text(n % 5).into();
            r.chain = vec![text(3), text(n % 40)];
            if n % 3 == 0 {
                r.backtrace = Some(text(50));
                r.truncated = true;
                r.fingerprint = Some(crate::Fingerprint::of(&r));
            }
            let mut ours = Vec::new();
            write_report(&r, &mut ours);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde_json_of(&r)),
                "{n}"
            );
        }
    }

    #[test]
    fn timestamps_match_the_display_form_across_the_calendar() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2000 {
            let secs = rng.u64(0..253_402_300_799); // up to 9999-12-31
            let t = Timestamp::from(
                SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, rng.u32(0..1_000_000_000)),
            );
            let mut buf = Vec::new();
            write_timestamp(&mut buf, &t);
            assert_eq!(String::from_utf8(buf).unwrap(), t.to_string());
        }
    }
}
