//! What pkgr shows: progress bars on a terminal, one plain line per finished
//! step otherwise (CI logs), nothing but errors with `-q`, JSON with `--json`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `text` with the credentials of any URL in it masked (`********`): the last line of
/// defence for everything pkgr prints (an error of the HTTP client, say, may
/// quote the URL it was given).
fn with_credentials_masked(text: &str) -> String {
    pkgr_redact::redact_urls_in_text(text, pkgr_redact::redact_url)
}

/// `text` with any URL that carries credentials in the form pkgr writes to
/// disk (conda's: no user info, the token as `<TOKEN>`): for what pkgr keeps
/// or exports (an exported environment file, a record's channel), where a
/// masked `********` would not read back as a URL. Messages use
/// [`with_credentials_masked`], which keeps more of the URL's shape.
pub fn with_credentials_as_recorded(text: &str) -> String {
    pkgr_redact::redact_urls_in_text(text, pkgr_redact::url_for_record)
}

/// Turns on `tracing` logs on stderr: `-v` info, `-vv` debug, `-vvv` trace
/// of pkgr's own crates (other crates at most `info`: an HTTP client's
/// traces quote request headers), or what `PKGR_LOG` says (an `EnvFilter`
/// directive). Every line is redacted like everything else pkgr prints; no
/// colour unless stderr is a terminal and `NO_COLOR` is unset.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("PKGR_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => {
            let level = match verbose {
                0 => return,
                1 => "info",
                2 => "debug",
                _ => "trace",
            };
            let ours = [
                "pkgr",
                "pkgr_cli",
                "pkgr_cache",
                "pkgr_repodata",
                "pkgr_fetch",
                "pkgr_solver",
                "pkgr_prefix",
                "pkgr_install",
            ]
            .iter()
            .map(|c| format!("{c}={level}"))
            .collect::<Vec<_>>()
            .join(",");
            EnvFilter::new(format!("warn,{ours}"))
        }
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(|| RedactingStderr)
        .with_target(true)
        .try_init();
}

/// stderr, with URLs that carry credentials redacted.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = with_credentials_masked(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// With `--json`, an error is also a JSON object on stdout (as conda's
/// `--json` does): `{"success": false, "error": ..., "caused_by": [...]}`.
pub fn print_error_json(err: &anyhow::Error) {
    let value = serde_json::json!({
        "success": false,
        "error": with_credentials_masked(&err.to_string()),
        "caused_by": err.chain().skip(1).map(|c| with_credentials_masked(&c.to_string())).collect::<Vec<_>>(),
    });
    if let Ok(text) = serde_json::to_string_pretty(&value) {
        println!("{text}");
    }
}

/// Prints a warning before any progress exists (config problems).
pub fn print_warning(text: &str) {
    eprintln!("warning: {}", with_credentials_masked(text));
}

/// Prints an error and its causes.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {}", with_credentials_masked(&err.to_string()));
    for cause in err.chain().skip(1) {
        eprintln!(
            "  caused by: {}",
            with_credentials_masked(&cause.to_string())
        );
    }
}

/// How progress is shown.
pub struct Progress {
    quiet: bool,
    terminal: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// On a terminal: packages in the cache so far, and packages linked.
    phases: Mutex<Phases>,
    /// Link scripts not run (`--no-scripts`): `(package, kind)`, said in
    /// one line when the change is over.
    skipped_scripts: Mutex<Vec<(String, pkgr_prefix::ScriptKind)>>,
}

/// The two counting bars of a change (terminal only).
#[derive(Default)]
struct Phases {
    fetching: Option<ProgressBar>,
    linking: Option<ProgressBar>,
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
            phases: Mutex::new(Phases::default()),
            skipped_scripts: Mutex::new(Vec::new()),
        }
    }

    fn counting_bar(&self, label: &str, total: usize) -> Option<ProgressBar> {
        if !self.terminal || total == 0 {
            return None;
        }
        let bar = self.multi.add(ProgressBar::new(total as u64));
        if let Ok(style) = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        Some(bar)
    }

    fn with_phases<R>(&self, f: impl FnOnce(&mut Phases) -> R) -> R {
        let mut phases = match self.phases.lock() {
            Ok(phases) => phases,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut phases)
    }

    /// A bar counting the packages that are in the cache (downloaded and
    /// extracted, or found there) out of `total`, on a terminal.
    fn start_fetching(&self, total: usize) {
        let bar = self.counting_bar("fetching", total);
        self.with_phases(|p| p.fetching = bar);
    }

    /// A bar counting the packages linked or unlinked out of `total`, on a
    /// terminal (the fetching bar is done by then).
    fn start_linking(&self, total: usize) {
        let bar = self.counting_bar("linking", total);
        self.with_phases(|p| {
            if let Some(done) = p.fetching.take() {
                done.finish_and_clear();
            }
            p.linking = bar;
        });
    }

    /// One package linked or unlinked.
    fn package_linked(&self) {
        self.with_phases(|p| {
            if let Some(bar) = &p.linking {
                bar.inc(1);
            }
        });
    }

    /// Clears the counting bars.
    fn finish_phases(&self) {
        self.with_phases(|p| {
            for bar in [p.fetching.take(), p.linking.take()].into_iter().flatten() {
                bar.finish_and_clear();
            }
        });
    }

    fn package_in_cache(&self) {
        self.with_phases(|p| {
            if let Some(bar) = &p.fetching {
                bar.inc(1);
            }
        });
    }

    /// One line of information (suppressed by `-q`).
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let text = with_credentials_masked(text);
        if self.terminal {
            self.multi.suspend(|| eprintln!("{text}"));
        } else {
            eprintln!("{text}");
        }
    }

    /// A warning (shown even with `-q`).
    pub fn warn(&self, text: &str) {
        let text = with_credentials_masked(text);
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
        self.package_in_cache();
        self.line(&format!("extracted {what}"));
    }

    fn cached(&self, what: &str) {
        self.package_in_cache();
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

impl pkgr_install::Reporter for Progress {
    fn waiting_for_prefix(&self, _prefix: &std::path::Path, holder_pid: Option<u32>) {
        let who = holder_pid.map_or_else(
            || String::from("another pkgr process"),
            |p| format!("pkgr pid {p}"),
        );
        self.line(&format!("waiting for the environment lock (held by {who})"));
    }

    fn recovered(&self, package: &str) {
        self.warn(&format!(
            "an earlier transaction was interrupted while changing {package}; removed its leftover files"
        ));
    }

    fn fetching_started(&self, packages: usize) {
        self.start_fetching(packages);
    }

    fn linking_started(&self, changes: usize) {
        self.start_linking(changes);
    }

    fn transaction_event(&self, event: &pkgr_prefix::TransactionEvent<'_>) {
        use pkgr_prefix::TransactionEvent;
        match event {
            TransactionEvent::Unlinked(record) => {
                self.package_linked();
                self.line(&format!("removed {}", record.identifier));
            }
            TransactionEvent::Linked(record) => {
                self.package_linked();
                self.line(&format!("linked {}", record.identifier));
            }
            TransactionEvent::Clobbered {
                path,
                loser,
                winner,
            } => self.warn(&format!(
                "{loser} and {winner} both ship `{}`: {winner}'s file (linked later) is in place; removing either package leaves it",
                path.display()
            )),
            TransactionEvent::Message { package, text } => {
                self.line(&format!("message from {package}:\n{}", text.trim_end()));
            }
            TransactionEvent::Warning(text) => self.warn(text),
            TransactionEvent::ScriptSkipped { package, kind } => {
                let mut skipped = match self.skipped_scripts.lock() {
                    Ok(skipped) => skipped,
                    Err(poisoned) => poisoned.into_inner(),
                };
                skipped.push(((*package).to_owned(), *kind));
            }
        }
    }

    fn finished(&self) {
        self.finish_phases();
        let skipped = match self.skipped_scripts.lock() {
            Ok(mut skipped) => std::mem::take(&mut *skipped),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        if let Some(line) = skipped_scripts_line(&skipped) {
            self.line(&line);
        }
    }
}

/// One line naming the packages whose link scripts were not run, by kind:
/// `link scripts not run (--no-scripts): post-link of a, b; pre-unlink of c`.
fn skipped_scripts_line(skipped: &[(String, pkgr_prefix::ScriptKind)]) -> Option<String> {
    use pkgr_prefix::ScriptKind;
    let mut parts = Vec::new();
    for kind in [ScriptKind::PostLink, ScriptKind::PreUnlink] {
        let names: Vec<&str> = skipped
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(name, _)| name.as_str())
            .collect();
        if !names.is_empty() {
            parts.push(format!("{kind} of {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "link scripts not run (--no-scripts / run_scripts: false): {}",
        parts.join("; ")
    ))
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
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(with_credentials_masked(text).as_bytes())
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        // The reader went away (`pkgr list | head -1`): what it did not
        // read is dropped; that is not pkgr's failure, and the work goes on.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        // Any other failure to write stdout (a full disk under `>`) stays
        // what it was: a panic, so the run does not look successful.
        Err(e) => panic!("failed printing to stdout: {e}"),
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    print_stdout(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}
