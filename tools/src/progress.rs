//! Progress reporting for long commands: a bar with rate and ETA on a
//! terminal, a log line every few seconds otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A progress reporter over a known or unknown total.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// Starts reporting `what`, counting `unit`s.
    pub fn new(what: &'static str, unit: &'static str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            b.set_draw_target(ProgressDrawTarget::stderr());
            let tmpl = if total.is_some() {
                format!("{what} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} {{per_sec}} ETA {{eta}}")
            } else {
                format!("{what} {{spinner}} {{human_pos}} {unit} {{per_sec}}")
            };
            if let Ok(s) = ProgressStyle::with_template(&tmpl) {
                b.set_style(s);
            }
            b
        });
        let now = Instant::now();
        Progress { bar, what, unit, total, done: 0, started: now, last_log: now }
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
            let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
            eprintln!("{}: {done}{of} {} ({rate:.0}/s{eta})", self.what, self.unit);
        }
    }

    /// Ends the report.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
