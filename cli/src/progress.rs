//! Progress on stderr: an indicatif bar when stderr is a terminal, plain
//! lines every few seconds otherwise (a pipe or a log file gets whole
//! lines, never carriage-return frames).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Progress of one task of known size.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    unit: &'static str,
    total: u64,
    last_line: Instant,
}

impl Progress {
    /// Progress of `label` towards `total` `unit`s (`"bytes"`, `"reports"`).
    pub fn new(label: &str, total: u64, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = if unit == "bytes" {
                "{prefix} [{bar:30}] {percent:>3}% {msg}"
            } else {
                "{prefix} [{bar:30}] {pos}/{len} ({percent}%) {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("#>."));
            }
            bar.set_prefix(label.to_owned());
            bar
        });
        Progress {
            bar,
            label: label.to_owned(),
            unit,
            total,
            last_line: Instant::now(),
        }
    }

    /// Moves to `pos` with a message (what was done so far).
    pub fn set(&mut self, pos: u64, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(pos);
                bar.set_message(message.to_owned());
            }
            None => {
                if self.last_line.elapsed() >= PLAIN_EVERY {
                    self.last_line = Instant::now();
                    self.line(pos, message);
                }
            }
        }
    }

    /// Ends the progress display at `pos` (a last plain line when not on a
    /// terminal).
    pub fn finish(&mut self, pos: u64, message: &str) {
        match self.bar.take() {
            Some(bar) => {
                bar.set_position(pos);
                bar.finish_and_clear();
            }
            None => self.line(pos, message),
        }
    }

    fn line(&self, pos: u64, message: &str) {
        let pct = (pos.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        let done = if self.unit == "bytes" {
            format!("{pct}%")
        } else {
            format!("{pos}/{} {} ({pct}%)", self.total, self.unit)
        };
        let sep = if message.is_empty() { "" } else { ", " };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}: {done}{sep}{message}",
            self.label
        );
    }
}
