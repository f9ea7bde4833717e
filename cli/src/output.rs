//! What pkgr shows: progress bars on a terminal, one plain line per finished
//! step otherwise (CI logs), nothing but errors with `-q`, JSON with `--json`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `text` with any URL that carries credentials redacted: the last line of
/// defence for everything pkgr prints (an error of the HTTP client, say, may
/// quote the URL it was given).
fn redacted(text: &str) -> String {
    pkgr_fetch::redact_urls_in_text(text, pkgr_fetch::redact_url)
}

/// Prints an error and its causes.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {}", redacted(&err.to_string()));
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {}", redacted(&cause.to_string()));
    }
}

/// How progress is shown.
pub struct Progress {
    quiet: bool,
    terminal: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Progress on stderr: bars on a terminal, plain lines otherwise.
    pub fn new(quiet: bool) -> Self {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let multi = if terminal {
            MultiProgress::new()
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Self {
            quiet,
            terminal,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// One line of information (suppressed by `-q`).
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let text = redacted(text);
        if self.terminal {
            self.multi.suspend(|| eprintln!("{text}"));
        } else {
            eprintln!("{text}");
        }
    }

    /// A warning (shown even with `-q`).
    pub fn warn(&self, text: &str) {
        let text = redacted(text);
        self.multi.suspend(|| eprintln!("warning: {text}"));
    }

    /// A spinner while something without measurable progress runs.
    pub fn spinner(&self, text: &str) -> Option<ProgressBar> {
        if !self.terminal {
            return None;
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_message(text.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        Some(bar)
    }

    fn with_bars<R>(&self, f: impl FnOnce(&mut HashMap<String, ProgressBar>) -> R) -> R {
        let mut bars = match self.bars.lock() {
            Ok(bars) => bars,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut bars)
    }
}

impl pkgr_cache::Reporter for Progress {
    fn waiting(&self, what: &str, holder_pid: Option<u32>) {
        match holder_pid {
            Some(pid) => self.line(&format!(
                "waiting for {what} (being fetched by pkgr pid {pid})"
            )),
            None => self.line(&format!(
                "waiting for {what} (locked by another pkgr process)"
            )),
        }
    }

    fn download_started(&self, what: &str, size: Option<u64>) {
        if !self.terminal {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(size.unwrap_or(0)));
        let template = "{msg:40!} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(what.to_owned());
        self.with_bars(|bars| bars.insert(what.to_owned(), bar));
    }

    fn download_progress(&self, what: &str, bytes: u64) {
        self.with_bars(|bars| {
            if let Some(bar) = bars.get(what) {
                bar.inc(bytes);
            }
        });
    }

    fn download_finished(&self, what: &str, size: u64) {
        if let Some(bar) = self.with_bars(|bars| bars.remove(what)) {
            bar.finish_and_clear();
        }
        self.line(&format!("downloaded {what} ({})", HumanBytes(size)));
    }

    fn extracted(&self, what: &str) {
        self.line(&format!("extracted {what}"));
    }

    fn cached(&self, what: &str) {
        self.line(&format!("cached {what}"));
    }

    fn download_failed(&self, what: &str) {
        if let Some(bar) = self.with_bars(|bars| bars.remove(what)) {
            bar.finish_and_clear();
        }
    }

    fn repairing(&self, what: &str, problem: &str) {
        self.warn(&format!(
            "the cached copy of {what} is damaged ({problem}); fetching it again"
        ));
    }
}

/// Prints a table with a header row, columns padded to fit.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut push = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str("  ");
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push(header.to_vec());
    for row in rows {
        push(row.iter().map(String::as_str).collect());
    }
    out
}

/// Prints to stdout (URLs with credentials redacted).
pub fn print_stdout(text: &str) {
    print!("{}", redacted(text));
}
