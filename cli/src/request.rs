//! What a command line asks for, parsed: package specs, the platform, and
//! what a solve may do (channel priority, pins).

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context};
use rattler_conda_types::{MatchSpec, ParseStrictness, Subdir};

use crate::cli::{GlobalArgs, SolveArgs};
use pkgr_prefix::meta::read_pinned_specs;

/// Parses the user's specs, pointing at the first bad one.
///
/// A name may be a glob (`*[md5=...]`, `py*[build=...]`): the solve resolves
/// it to the one package name whose records it matches.
pub fn parse_specs(specs: &[String]) -> anyhow::Result<Vec<MatchSpec>> {
    let options =
        rattler_conda_types::ParseMatchSpecOptions::lenient().with_exact_names_only(false);
    specs
        .iter()
        .map(|s| {
            MatchSpec::from_str(s, options).with_context(|| format!("invalid package spec `{s}`"))
        })
        .collect()
}

/// `--platform`, else the `subdir` setting (`$CONDA_SUBDIR`), else this
/// machine's.
pub fn platform(global: &GlobalArgs, given: Option<&str>) -> anyhow::Result<Subdir> {
    parse_platform(given.or(global.config.subdir.value.as_deref()))
}

/// `--platform`, else this machine's.
pub fn parse_platform(given: Option<&str>) -> anyhow::Result<Subdir> {
    match given {
        Some(p) => Subdir::from_str(p).with_context(|| format!("unknown platform `{p}`")),
        None => {
            Subdir::current().context("pkgr does not know this machine's platform; pass --platform")
        }
    }
}

/// What a solve may do: channel priority (`--channel-priority`, else the
/// setting), pins (`--pin`, the `pinned_packages` setting and, for an
/// existing environment, its `conda-meta/pinned`).
pub fn solve_options(
    global: &GlobalArgs,
    args: &SolveArgs,
    no_deps: bool,
    prefix: Option<&Path>,
) -> anyhow::Result<pkgr_solver::SolveOptions> {
    let channel_priority = if args.strict_channel_priority {
        pkgr_solver::ChannelPriority::Strict
    } else {
        args.channel_priority
            .unwrap_or(global.config.channel_priority.value)
    };
    let mut pins: Vec<String> = args.pins.clone();
    pins.extend(global.config.pinned_packages.value.iter().cloned());
    if let Some(prefix) = prefix {
        pins.extend(read_pinned_specs(prefix)?);
    }
    let constraints = pins
        .iter()
        .map(|s| {
            MatchSpec::from_str(s, ParseStrictness::Lenient)
                .with_context(|| format!("invalid pin `{s}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(unnamed) = constraints.iter().find(|c| c.name.as_exact().is_none()) {
        bail!("the pin `{unnamed}` names no package");
    }
    Ok(pkgr_solver::SolveOptions {
        no_deps,
        channel_priority,
        constraints,
        frozen: Vec::new(),
        update_dependencies_of: Vec::new(),
    })
}
