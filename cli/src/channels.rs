//! The channels of a request: names resolved against the channel alias,
//! `defaults` expanded, and the channels an environment's records came from.

use anyhow::{bail, Context};
use rattler_conda_types::{Channel, ChannelConfig, PrefixRecord, RepoDataRecord};
use url::Url;

use crate::cli::GlobalArgs;

/// The channels of `installed` as `name` gives them, most used first (ties
/// in the order first seen).
pub fn channels_by_use(
    installed: &[PrefixRecord],
    name: impl Fn(&RepoDataRecord) -> Option<String>,
) -> Vec<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for record in installed {
        let Some(channel) = name(&record.repodata_record) else {
            continue;
        };
        match counts.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, n)) => *n += 1,
            None => counts.push((channel, 1)),
        }
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts.into_iter().map(|(c, _)| c).collect()
}

/// How channel names resolve: against the configured channel alias
/// (`$PKGR_CHANNEL_ALIAS`, `channel_alias` in a config file, default
/// `https://conda.anaconda.org/`), local paths against the current directory.
pub fn channel_config(global: &GlobalArgs) -> anyhow::Result<ChannelConfig> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut config = ChannelConfig::default_with_root_dir(cwd);
    let alias = &global.config.channel_alias;
    config.channel_alias = Url::parse(&alias.value).with_context(|| {
        format!(
            "channel_alias `{}` (from {}) is not a URL",
            alias.value, alias.origin
        )
    })?;
    Ok(config)
}

/// conda's `defaults` multichannel.
const DEFAULTS: [&str; 2] = [
    "https://repo.anaconda.com/pkgs/main",
    "https://repo.anaconda.com/pkgs/r",
];

/// The channels of a request (`-c`, else the configured ones), resolved
/// with [`channel_config`]. `defaults` stands for conda's default channels;
/// `nodefaults` (from environment files) is dropped.
pub fn parse_channels(
    global: &GlobalArgs,
    given: &[String],
    override_channels: bool,
) -> anyhow::Result<Vec<Channel>> {
    let config = channel_config(global)?;
    let names: Vec<String> = if given.is_empty() {
        if override_channels {
            bail!("--override-channels without any -c CHANNEL leaves no channel to install from");
        }
        global.config.channels.value.clone()
    } else {
        given.to_vec()
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| n != "nodefaults")
        .flat_map(|n| {
            if n == "defaults" {
                DEFAULTS.iter().map(|d| (*d).to_owned()).collect()
            } else {
                vec![n]
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    if names.is_empty() {
        bail!("no channel to install from (pass -c CHANNEL)");
    }
    names
        .iter()
        .map(|name| {
            let channel = Channel::from_str(name, &config)
                .with_context(|| format!("invalid channel `{name}`"))?;
            if pkgr_redact::url_has_token_placeholder(channel.base_url.url()) {
                bail!(
                    "channel {} holds `{}` where its token goes (as conda-meta records keep it): pass the channel URL with the real token",
                    pkgr_redact::url_for_record(channel.base_url.url()).trim_end_matches('/'),
                    pkgr_redact::TOKEN_PLACEHOLDER
                );
            }
            Ok(channel)
        })
        .collect()
}
