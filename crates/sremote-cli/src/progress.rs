//! Transfer progress: an indicatif bar with rate and ETA on a terminal, nothing otherwise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output;

/// Bars for one command (several hosts get one bar each).
#[derive(Debug, Clone)]
pub struct Bars {
    multi: Option<MultiProgress>,
}

impl Bars {
    /// Bars drawn on stderr when it is a terminal and output is not JSON; hidden otherwise.
    pub fn new(json: bool) -> Bars {
        let show =
            output::stderr_tty() && !json && std::env::var_os("SREMOTE_NO_PROGRESS").is_none();
        Bars {
            multi: show
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))),
        }
    }

    /// Whether bars are drawn (a terminal, not `--json`).
    pub fn visible(&self) -> bool {
        self.multi.is_some()
    }

    /// A bar for `total` bytes, labelled (e.g. with the host).
    pub fn bar(&self, total: u64, label: &str) -> Bar {
        let Some(multi) = &self.multi else {
            return Bar {
                bar: None,
                started: Instant::now(),
            };
        };
        let style = ProgressStyle::with_template(
            "{prefix}{bar:30.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = multi.add(ProgressBar::new(total).with_style(style));
        if !label.is_empty() {
            bar.set_prefix(format!("{label} "));
        }
        bar.tick();
        Bar {
            bar: Some(bar),
            started: Instant::now(),
        }
    }
}

/// One bar (a no-op when hidden). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bar {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Bar {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Leave the bar with a closing note (`12 files in 1.3 s`).
    pub fn finish(&self, note: &str) {
        if let Some(b) = &self.bar {
            b.set_style(
                ProgressStyle::with_template("{prefix}{bytes} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            let rate = output::bytes((b.position() as f64 / secs) as u64);
            b.finish_with_message(format!("{note} in {secs:.1} s ({rate}/s)"));
        }
    }

    /// Remove the bar (on failure).
    pub fn abandon(&self) {
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }

    /// A per-file progress callback for a connector: turns "bytes so far for this file"
    /// into increments of the bar.
    pub fn file_callback(&self) -> impl Fn(u64) + Send + Sync + use<> {
        let bar = self.clone();
        let last = AtomicU64::new(0);
        move |so_far: u64| {
            let before = last.swap(so_far, Ordering::Relaxed);
            if so_far > before {
                bar.inc(so_far - before);
            }
        }
    }
}
