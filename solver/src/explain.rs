//! Errors said in plain words: a conflict's explanation led by the
//! requested specs that cannot be installed together, and a package not
//! found with the names it may be a typo of.

use std::collections::BTreeSet;

use crate::{PackageNotFound, RecordSource};

/// The solver's explanation (resolvo's tree), led by one sentence in plain
/// words naming the requested specs that cannot be satisfied together (the
/// tree's top-level entries), and with rattler's one garbled sentence put
/// right ("is excluded because due to strict channel priority not using
/// this option from: 'URL'").
pub(crate) fn explanation_in_plain_words(explanation: &str) -> String {
    let tree = explanation.replace(
        "is excluded because due to strict channel priority not using this option from: ",
        "is excluded by strict channel priority (a channel listed earlier has this package; --channel-priority flexible allows later ones too): it is in ",
    );
    let requested: Vec<String> = tree
        .lines()
        .filter_map(|line| {
            line.strip_prefix("├─ ")
                .or_else(|| line.strip_prefix("└─ "))
        })
        .filter_map(|entry| {
            [
                " can be installed",
                " cannot be installed",
                " is excluded",
                ", which",
            ]
            .iter()
            .filter_map(|marker| entry.find(marker))
            .min()
            .map(|end| {
                let spec = entry[..end].trim_end_matches(" *");
                if spec.starts_with("__") {
                    format!("this machine's `{spec}` (a virtual package)")
                } else {
                    format!("`{spec}`")
                }
            })
        })
        .collect();
    let summary = match requested.as_slice() {
        [] => String::new(),
        [one] => format!("{one} cannot be installed (why, through which packages:)\n"),
        [first @ .., last] => format!(
            "{} and {last} cannot be installed together (why, through which packages:)\n",
            first.join(", ")
        ),
    };
    format!("{summary}{tree}")
}

/// The error for package `name` found in none of `sources`: the channels
/// searched, the names of theirs it may be a typo of (Jaro-Winkler at least
/// 0.85, the best three) and the subdirs that were missing.
pub fn package_not_found<S: RecordSource>(sources: &[S], name: &str) -> PackageNotFound {
    let mut channels: Vec<String> = Vec::new();
    for source in sources {
        let channel = source.channel_shown();
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    let notes = sources
        .iter()
        .filter_map(|s| s.missing_note().map(ToOwned::to_owned))
        .collect();
    let all: BTreeSet<&str> = sources.iter().flat_map(RecordSource::names).collect();
    let mut scored: Vec<(f64, &str)> = all
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    PackageNotFound {
        name: name.to_owned(),
        channels: if channels.len() == 1 {
            format!("channel {}", channels[0])
        } else {
            format!("channels {}", channels.join(", "))
        },
        suggestions: scored
            .into_iter()
            .take(3)
            .map(|(_, n)| n.to_owned())
            .collect(),
        notes,
    }
}

#[cfg(test)]
mod tests;
