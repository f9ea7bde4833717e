//! What a solve may and must do besides satisfying its specs.

use rattler_conda_types::{MatchSpec, RepoDataRecord};

/// How channels of different priority are used (conda's `channel_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelPriority {
    /// A package's records come only from the highest-priority channel that
    /// has the package at all.
    Strict,
    /// Records of a higher-priority channel are preferred over any version
    /// of a lower-priority one, but a lower one is used when the higher ones
    /// cannot satisfy the request (conda's default).
    #[default]
    Flexible,
    /// Channels are ignored in the choice: the highest version wins,
    /// whichever channel has it.
    Disabled,
}

impl std::str::FromStr for ChannelPriority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "flexible" | "true" => Ok(Self::Flexible),
            "disabled" | "false" => Ok(Self::Disabled),
            other => Err(format!(
                "`{other}` is not a channel priority (strict, flexible or disabled)"
            )),
        }
    }
}

impl std::fmt::Display for ChannelPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Strict => "strict",
            Self::Flexible => "flexible",
            Self::Disabled => "disabled",
        })
    }
}

/// What a solve may and must do besides satisfying its specs.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// conda's `--no-deps`: dependencies are ignored, the best record
    /// matching each spec is chosen on its own.
    pub no_deps: bool,
    /// How channels of different priority are used.
    pub channel_priority: ChannelPriority,
    /// Specs every chosen record of their name must satisfy, without
    /// requesting the package (pins: `conda-meta/pinned`, `--pin`,
    /// `pinned_packages`).
    pub constraints: Vec<MatchSpec>,
    /// Installed records that must not change (`--freeze-installed`).
    pub frozen: Vec<RepoDataRecord>,
    /// `--update-deps`: the dependencies of these packages (all the way
    /// down, through every record of the channels and the installed ones)
    /// are not kept at their installed versions.
    pub update_dependencies_of: Vec<String>,
}
