//! The final table: one [`Row`] per measurement.

use std::time::Duration;

use super::measure::mb;

/// One line of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario and measurement, e.g. `sci-env: warm create`.
    pub scenario: String,
    /// pkgr's median wall time.
    pub pkgr: Option<Duration>,
    /// What pkgr is compared with (or why the comparison was skipped).
    pub peer_name: String,
    /// The peer's median wall time.
    pub peer: Option<Duration>,
    /// pkgr's peak RSS over the runs, KiB.
    pub rss_kib: Option<u64>,
    /// Syscalls of pkgr per linked file.
    pub syscalls_per_file: Option<f64>,
}

/// The table: scenario, pkgr, limit or peer, ratio, RSS, syscalls per file.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "pkgr",
        "limit / peer",
        "time",
        "ratio",
        "pkgr RSS",
        "syscalls/file",
    ];
    let mut cells: Vec<[String; 7]> = vec![header.map(String::from)];
    for row in rows {
        let ratio = match (row.pkgr, row.peer) {
            (Some(p), Some(l)) if l.as_secs_f64() > 0.0 => {
                format!("{:.2}x", p.as_secs_f64() / l.as_secs_f64())
            }
            _ => String::from("-"),
        };
        cells.push([
            row.scenario.clone(),
            row.pkgr
                .map_or_else(|| String::from("-"), |d| format!("{:.3}s", d.as_secs_f64())),
            row.peer_name.clone(),
            row.peer
                .map_or_else(|| String::from("-"), |d| format!("{:.3}s", d.as_secs_f64())),
            ratio,
            mb(row.rss_kib),
            row.syscalls_per_file
                .map_or_else(|| String::from("-"), |s| format!("{s:.2}")),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
        if i == 0 {
            text.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            text.push('\n');
        }
    }
    text
}
