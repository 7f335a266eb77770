//! Progress reporting for long commands: a bar with rate and ETA on a
//! terminal, a log line every few seconds otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Every bar of the process, so that reports running at the same time
/// (the two passes of `db verify`) each keep a line of their own.
fn terminal_bar(len: Option<u64>) -> ProgressBar {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    let b = match len {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())).add(b)
}

/// A progress reporter over a known or unknown total.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    /// Bytes mode: `done` counts bytes, `items` counts `unit`s.
    bytes: bool,
    items: u64,
    /// Items mode: bytes written so far, once [`Progress::set_written`] reports them.
    written: Option<u64>,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// Starts reporting `what`, counting `unit`s.
    pub fn new(what: &'static str, unit: &'static str, total: Option<u64>) -> Progress {
        let template = if total.is_some() {
            format!("{what} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} {{per_sec}} ETA {{eta}} {{msg}}")
        } else {
            format!("{what} {{spinner}} {{human_pos}} {unit} {{per_sec}} {{msg}}")
        };
        Self::start(what, unit, total, false, &template)
    }

    /// Starts reporting `what` in bytes (rate and ETA over bytes) and in
    /// `unit`s (count and rate shown alongside).
    pub fn bytes(what: &'static str, unit: &'static str, total_bytes: Option<u64>) -> Progress {
        let template = if total_bytes.is_some() {
            format!("{what} [{{bar:30}}] {{binary_bytes}}/{{binary_total_bytes}} {{binary_bytes_per_sec}} ETA {{eta}} {{msg}}")
        } else {
            format!("{what} {{spinner}} {{binary_bytes}} {{binary_bytes_per_sec}} {{msg}}")
        };
        Self::start(what, unit, total_bytes, true, &template)
    }

    /// A reporter in items or bytes mode, with a bar drawn by `template`
    /// when stderr is a terminal.
    fn start(what: &'static str, unit: &'static str, total: Option<u64>, bytes: bool, template: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = terminal_bar(total);
            if let Ok(s) = ProgressStyle::with_template(template) {
                b.set_style(s);
            }
            b
        });
        let now = Instant::now();
        Progress { bar, what, unit, total, done: 0, bytes, items: 0, written: None, started: now, last_log: now }
    }

    /// Bytes mode: sets the bytes and the items done so far.
    pub fn set_bytes(&mut self, bytes: u64, items: u64) {
        self.items = items;
        if let Some(b) = &self.bar {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{items} {} ({:.0}/s)", self.unit, items as f64 / secs));
        }
        self.set(bytes);
    }

    /// Items mode: sets the items done and the bytes written so far (an
    /// export's output), shown with their rate beside the items.
    pub fn set_written(&mut self, done: u64, written: u64) {
        self.written = Some(written);
        if let Some(b) = &self.bar {
            b.set_message(self.written_text());
        }
        self.set(done);
    }

    /// "N MiB written (R MiB/s)" once bytes written were reported; empty before.
    fn written_text(&self) -> String {
        let Some(written) = self.written else { return String::new() };
        let mib = written as f64 / (1u64 << 20) as f64;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        format!("{mib:.1} MiB written ({:.1} MiB/s)", mib / secs)
    }

    /// Sets the amount done so far.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        if let Some(b) = &self.bar {
            b.set_position(done);
        } else if self.last_log.elapsed() >= Duration::from_secs(5) {
            self.last_log = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            let rate = done as f64 / secs;
            let eta = match self.total {
                Some(t) if rate > 0.0 => {
                    format!(", ETA {:.0}s", (t.saturating_sub(done)) as f64 / rate)
                }
                _ => String::new(),
            };
            if self.bytes {
                let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
                let of = self.total.map(|t| format!("/{:.1}", mib(t))).unwrap_or_default();
                eprintln!(
                    "{}: {:.1}{of} MiB ({:.1} MiB/s), {} {} ({:.0}/s){eta}",
                    self.what,
                    mib(done),
                    rate / (1u64 << 20) as f64,
                    self.items,
                    self.unit,
                    self.items as f64 / secs
                );
            } else {
                let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
                let written = self.written_text();
                let written = if written.is_empty() { written } else { format!(", {written}") };
                eprintln!("{}: {done}{of} {} ({rate:.0}/s{eta}){written}", self.what, self.unit);
            }
        }
    }

    /// Ends the report.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_bytes_are_shown_once_reported() {
        let mut p = Progress::new("export", "accounts", Some(10));
        assert_eq!(p.written_text(), "");
        p.set_written(4, 3 << 20);
        let text = p.written_text();
        assert!(text.starts_with("3.0 MiB written ("), "{text}");
        assert!(text.ends_with(" MiB/s)"), "{text}");
        assert_eq!(p.done, 4);
    }
}
