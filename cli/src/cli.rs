//! Command-line arguments. The `///` comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A conda-compatible package manager whose package cache is safe to share
/// between any number of concurrent processes.
#[derive(Debug, Parser)]
#[command(name = "pkgr", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The package cache [default: $PKGR_CACHE_DIR, else the config's pkgs_dirs, else $XDG_CACHE_HOME/pkgr, else ~/.cache/pkgr]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log what pkgr does on stderr (-v: info, -vv: debug, -vvv: trace; or set PKGR_LOG to tracing filter directives)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How many downloads/extractions/links run at once [default: 2 × cores, 2..16]
    #[arg(long, global = true, env = "PKGR_JOBS", value_name = "N")]
    pub jobs: Option<usize>,
    /// Use only what is cached: no download of repodata or packages (a missing one is an error)
    #[arg(long, global = true, env = "PKGR_OFFLINE", conflicts_with = "refresh")]
    pub offline: bool,
    /// Ask the channels whether cached repodata is still current, however fresh it is
    #[arg(long, global = true)]
    pub refresh: bool,
    /// Use cached repodata without asking the server for this many seconds at least (the server's max-age when longer)
    #[arg(
        long,
        global = true,
        env = "PKGR_REPODATA_TTL",
        value_name = "SECONDS",
        default_value_t = 1800
    )]
    pub repodata_ttl: u64,
    /// The configuration files and environment variables, read once at start.
    #[arg(skip)]
    pub config: crate::settings::Config,
}

impl GlobalArgs {
    /// How the cache uses cached repodata (and, offline, packages).
    pub fn repodata_policy(&self) -> pkgr_cache::RepodataPolicy {
        pkgr_cache::RepodataPolicy {
            ttl: std::time::Duration::from_secs(self.repodata_ttl),
            refresh: self.refresh,
            offline: self.offline,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new environment from a list of specs
    Create(CreateArgs),
    /// Install packages into an existing environment, keeping what is installed where possible
    Install(InstallArgs),
    /// Update packages of an environment (or all of them with --all) to the newest the channels allow
    Update(InstallArgs),
    /// Remove packages from an environment
    #[command(visible_alias = "uninstall")]
    Remove(RemoveArgs),
    /// List the packages installed in an environment
    List(ListArgs),
    /// Write repodata.json for every subdir of a local folder of packages (a local channel)
    Index(IndexArgs),
    /// Remove unused packages, tarballs and cached repodata (conda's -a, -i, -p, -t, -f); nothing in use
    Clean(CleanArgs),
    /// Inspect the package cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Search the channels for packages matching a spec, newest first
    Search(SearchArgs),
    /// Show pkgr's version, platform, virtual packages, cache and environment directories, channels and config files
    Info,
    /// List, remove and export environments
    #[command(subcommand)]
    Env(EnvCommand),
    /// Run a command inside an environment (activated as conda does: PATH, CONDA_PREFIX, etc/conda/activate.d)
    Run(RunArgs),
    /// Shell integration: `eval "$(pkgr shell hook)"` gives `pkgr activate NAME` and `pkgr deactivate`
    #[command(subcommand)]
    Shell(ShellCommand),
    /// conda's spelling of `pkgr shell hook -s bash` (`pkgr shell.bash hook`)
    #[command(name = "shell.bash", subcommand, hide = true)]
    ShellBash(ShellDotCommand),
    /// conda's spelling of `pkgr shell hook -s zsh`
    #[command(name = "shell.zsh", subcommand, hide = true)]
    ShellZsh(ShellDotCommand),
    /// conda's spelling of `pkgr shell hook -s fish`
    #[command(name = "shell.fish", subcommand, hide = true)]
    ShellFish(ShellDotCommand),
    /// conda's spelling of `pkgr shell hook -s posix`
    #[command(name = "shell.posix", subcommand, hide = true)]
    ShellPosix(ShellDotCommand),
    /// Write the block that sets up `pkgr activate` into the shell's rc file (~/.bashrc, ~/.zshrc, ~/.config/fish/config.fish)
    Init(InitArgs),
    /// Show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Store or remove the credentials of a channel host (kept in pkgr's auth file, mode 0600)
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Activate an environment in this shell (needs the shell hook: eval "$(pkgr shell hook)")
    #[command(hide = true)]
    Activate {
        /// The environment
        env: Option<String>,
    },
    /// Deactivate the active environment (needs the shell hook)
    #[command(hide = true)]
    Deactivate,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// `pkgr search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A match spec (`numpy`, `'numpy>=1.26'`, `'py*'`)
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// A channel, as for `create`. Repeat for several [default: the configured channels]
    #[arg(short = 'c', long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
    /// Use only the channels given with -c
    #[arg(long)]
    pub override_channels: bool,
    /// The platform (subdir) to search [default: this machine's]
    #[arg(long, value_name = "SUBDIR")]
    pub platform: Option<String>,
}

/// `pkgr env ...`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the environments pkgr knows (those under the envs directories)
    List,
    /// The same as `pkgr create` (as `conda env create -f environment.yml` is written in scripts)
    Create(CreateArgs),
    /// Install what a file lists into an existing environment (`pkgr install -f FILE`)
    Update(InstallArgs),
    /// Remove an environment entirely
    Remove(EnvRemoveArgs),
    /// Write an environment as environment.yml (or as an @EXPLICIT list with --explicit)
    Export(EnvExportArgs),
}

/// `pkgr env remove`.
#[derive(Debug, Args)]
pub struct EnvRemoveArgs {
    #[command(flatten)]
    pub target: EnvTarget,
    /// Accepted for conda compatibility (pkgr does not ask)
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Show what would be removed, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `pkgr env export`.
#[derive(Debug, Args)]
pub struct EnvExportArgs {
    #[command(flatten)]
    pub target: EnvTarget,
    /// Only the specs that were asked for (from conda-meta/history), not every installed package
    #[arg(long, conflicts_with = "explicit")]
    pub from_history: bool,
    /// An @EXPLICIT list of package URLs (with their md5, or sha256 with --sha256), installable without solving
    #[arg(long)]
    pub explicit: bool,
    /// With --explicit: the sha256 of each package instead of its md5
    #[arg(long, requires = "explicit")]
    pub sha256: bool,
    /// Leave out build strings (name=version only)
    #[arg(long, conflicts_with = "explicit")]
    pub no_builds: bool,
    /// Write to this file instead of stdout
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `pkgr run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: EnvTarget,
    /// The directory the command runs in (default: this one)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Accepted for conda compatibility: pkgr never captures the command's
    /// output, it streams as the command writes it
    #[arg(long, visible_alias = "live-stream")]
    pub no_capture_output: bool,
    /// The command and its arguments (flags after the command are its own)
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// The shells `pkgr shell` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellKind {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
    /// sh-compatible shells (dash, ksh, ...): POSIX syntax only
    Posix,
}

/// `pkgr shell.bash|shell.zsh|shell.fish|shell.posix ...` (conda's
/// spellings: the shell is in the command's name).
#[derive(Debug, Subcommand)]
pub enum ShellDotCommand {
    /// Print the shell function that makes `pkgr activate`/`pkgr deactivate` work
    Hook,
    /// Print the script that activates an environment
    Activate {
        /// The environment: a name (under the envs directory) or a path
        #[arg(value_name = "ENV")]
        env: String,
    },
    /// Print the script that deactivates the active environment
    Deactivate,
}

/// The shells `pkgr init` writes an rc file for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitShell {
    /// ~/.bashrc
    Bash,
    /// $ZDOTDIR/.zshrc, else ~/.zshrc
    Zsh,
    /// ~/.config/fish/config.fish
    Fish,
}

/// `pkgr init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The shells to set up [default: bash]
    #[arg(value_name = "SHELL", conflicts_with = "all")]
    pub shells: Vec<InitShell>,
    /// Set up every shell pkgr knows (bash, zsh, fish)
    #[arg(long)]
    pub all: bool,
    /// Print what would change; write nothing
    #[arg(long, short = 'd')]
    pub dry_run: bool,
    /// Remove the block `pkgr init` wrote
    #[arg(long)]
    pub reverse: bool,
}

/// `pkgr shell ...`.
#[derive(Debug, Subcommand)]
pub enum ShellCommand {
    /// Print the shell function that makes `pkgr activate`/`pkgr deactivate` work: eval "$(pkgr shell hook)"
    Hook {
        /// The shell [default: from $SHELL, else bash]
        #[arg(short, long)]
        shell: Option<ShellKind>,
    },
    /// Print the script that activates an environment (what `pkgr activate` evaluates)
    Activate {
        /// The shell [default: from $SHELL, else bash]
        #[arg(short, long)]
        shell: Option<ShellKind>,
        /// The environment: a name (under the envs directory) or a path
        #[arg(value_name = "ENV")]
        env: String,
    },
    /// Print the script that deactivates the active environment
    Deactivate {
        /// The shell [default: from $SHELL, else bash]
        #[arg(short, long)]
        shell: Option<ShellKind>,
    },
}

/// `pkgr auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Store a credential for HOST (`host` or `host:port`), used for every channel there
    Login(AuthLoginArgs),
    /// Forget the stored credential of HOST
    Logout {
        /// The host (`host` or `host:port`)
        host: String,
    },
    /// The hosts that have a stored credential (never the credentials)
    List,
}

/// `pkgr auth login`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("credential").required(true).multiple(false).args(["token", "token_stdin", "bearer", "username"]))]
pub struct AuthLoginArgs {
    /// The host (`host` or `host:port`)
    pub host: String,
    /// A conda token (anaconda.org style: sent as /t/<token>/ in the URL). On the command line it shows in the process list and shell history: prefer --token-stdin
    #[arg(long)]
    pub token: Option<String>,
    /// Read the conda token from the first line of stdin (so it shows in no process list or shell history)
    #[arg(long)]
    pub token_stdin: bool,
    /// A bearer token (sent as `Authorization: Bearer`)
    #[arg(long)]
    pub bearer: Option<String>,
    /// A user name for basic auth (the password comes on stdin, with --password-stdin)
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password (or, with `--token -` / `--bearer -`, the token) from the first line of stdin, so it shows in no process list or shell history
    #[arg(long)]
    pub password_stdin: bool,
}

/// `pkgr config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every setting with its value and where it came from
    List,
}

/// `pkgr clean`: conda's flags, mapped onto pkgr's cache. At least one
/// removal target is required, as in conda. Nothing a process uses is
/// removed.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("removal_target")
        .required(true)
        .multiple(true)
        .args(["all", "index_cache", "packages", "tarballs", "force_pkgs_dirs", "temp", "logfiles"])
))]
pub struct CleanArgs {
    /// Remove the index cache, the packages and tarballs no process is using, and the temp files of finished processes (-i -p -t --temp -l)
    #[arg(short, long)]
    pub all: bool,
    /// Remove the cached repodata and shards of every channel (none being downloaded right now)
    #[arg(short, long)]
    pub index_cache: bool,
    /// Remove the extracted packages no process is using (their tarballs stay unless -t)
    #[arg(short, long)]
    pub packages: bool,
    /// Remove the downloaded tarballs (.conda, .tar.bz2) of packages no process is using (the extracted packages stay unless -p)
    #[arg(short, long)]
    pub tarballs: bool,
    /// Remove everything in the package cache no process is using: packages, tarballs, index cache, temp files
    #[arg(short, long)]
    pub force_pkgs_dirs: bool,
    /// Remove the temp files of finished pkgr processes (every clean does this)
    #[arg(long, visible_alias = "tempfiles")]
    pub temp: bool,
    /// Accepted for conda's sake: pkgr writes no log files
    #[arg(short, long)]
    pub logfiles: bool,
    /// Accepted for conda's sake: pkgr's clean never asks
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Show what would be removed; remove nothing
    #[arg(short = 'd', long)]
    pub dry_run: bool,
}

/// `pkgr cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Check every complete cache entry against its archive's sha256 and its paths.json
    Verify {
        /// Remove corrupt entries (they are fetched again when next needed)
        #[arg(long)]
        repair: bool,
    },
}

/// How a solve uses channels and pins (`create`, `install`, `update`).
#[derive(Debug, Args)]
pub struct SolveArgs {
    /// How channel order is used: strict (a package only from the first channel that has it), flexible (prefer earlier channels, fall back to later ones; conda's default), disabled (the highest version wins) [default: the channel_priority setting, else flexible]
    #[arg(long, value_name = "MODE")]
    pub channel_priority: Option<pkgr_solver::ChannelPriority>,
    /// The same as --channel-priority strict (conda's flag)
    #[arg(long, conflicts_with = "channel_priority")]
    pub strict_channel_priority: bool,
    /// Pin a package: whatever is chosen of that name must match SPEC (repeatable; added to conda-meta/pinned and the pinned_packages setting)
    #[arg(long = "pin", value_name = "SPEC")]
    pub pins: Vec<String>,
}

/// Which environment: by name (under $PKGR_ROOT/envs) or by path.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct EnvTarget {
    /// Name of the environment (under $PKGR_ROOT/envs, else the config's envs_dirs, else ~/.local/share/pkgr/envs)
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Full path of the environment
    #[arg(short = 'p', long = "prefix", value_name = "PATH")]
    pub prefix: Option<PathBuf>,
}

/// `pkgr create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub target: EnvTarget,
    /// A channel: a name (resolved against the channel alias, https://conda.anaconda.org/ by default), an http(s):// or file:// URL, or a local directory. Repeat for several, highest priority first [default: conda-forge]
    #[arg(short = 'c', long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
    /// Use only the channels given with -c (pkgr's default channel is only used when no -c is given; accepted for conda compatibility)
    #[arg(long)]
    pub override_channels: bool,
    /// Replace an existing environment without asking
    #[arg(short = 'y', long = "yes", visible_alias = "force")]
    pub yes: bool,
    /// Solve and show what would be installed, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Install only the requested packages, not their dependencies (like conda's --no-deps)
    #[arg(long)]
    pub no_deps: bool,
    /// The platform (subdir) to create the environment for [default: this machine's]
    #[arg(long, value_name = "SUBDIR")]
    pub platform: Option<String>,
    /// Copy files into the environment instead of hardlinking them from the cache (reflinks where the file system has them)
    #[arg(long)]
    pub copy: bool,
    /// Run no post-link or pre-unlink script of any package (they run code from the package; pkgr names the packages whose scripts it skipped) [default: the run_scripts setting, $PKGR_NO_SCRIPTS]
    #[arg(long)]
    pub no_scripts: bool,
    #[command(flatten)]
    pub solve: SolveArgs,
    /// Read what to install from a file: environment.yml, a list of specs, an @EXPLICIT list, conda-lock.yml or pixi.lock (the last three are installed exactly, without solving). Repeat for several spec lists
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// With a pixi.lock: which of its environments [default: default]
    #[arg(long, value_name = "NAME")]
    pub lock_environment: Option<String>,
    /// Packages to install, as conda match specs (`python`, `numpy>=1.26,<2`, `conda-forge::xz`)
    #[arg(required_unless_present = "files", value_name = "SPEC")]
    pub specs: Vec<String>,
}

/// `pkgr install` and `pkgr update`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub target: EnvTarget,
    /// Accepted for conda compatibility (pkgr does not ask)
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// A channel, as for `create`. Repeat for several, highest priority first [default: the channels the environment's packages came from]
    #[arg(short = 'c', long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
    /// Use only the channels given with -c (accepted for conda compatibility)
    #[arg(long)]
    pub override_channels: bool,
    /// Solve and show what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Change only the named packages, not their dependencies (like conda's --no-deps)
    #[arg(long)]
    pub no_deps: bool,
    /// Copy files into the environment instead of hardlinking them from the cache
    #[arg(long)]
    pub copy: bool,
    /// Run no post-link or pre-unlink script of any package (they run code from the package; pkgr names the packages whose scripts it skipped) [default: the run_scripts setting, $PKGR_NO_SCRIPTS]
    #[arg(long)]
    pub no_scripts: bool,
    /// With `update`: update every package of the environment
    #[arg(long)]
    pub all: bool,
    /// Also update the dependencies of the named packages to the newest the request allows (by default installed packages are kept where possible)
    #[arg(long, conflicts_with = "freeze_installed")]
    pub update_deps: bool,
    /// Change no installed package: fail if the request needs one changed
    #[arg(long)]
    pub freeze_installed: bool,
    #[command(flatten)]
    pub solve: SolveArgs,
    /// Read specs from a file: a list of specs, or an environment.yml (its dependencies and channels). Repeat for several
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Packages, as conda match specs
    #[arg(value_name = "SPEC")]
    pub specs: Vec<String>,
}

/// `pkgr remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub target: EnvTarget,
    /// Accepted for conda compatibility (pkgr does not ask)
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Remove the packages even if others installed depend on them (their dependencies are then broken)
    #[arg(long)]
    pub force: bool,
    /// Run no post-link or pre-unlink script of any package (they run code from the package; pkgr names the packages whose scripts it skipped) [default: the run_scripts setting, $PKGR_NO_SCRIPTS]
    #[arg(long)]
    pub no_scripts: bool,
    /// Show what would be removed, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Names of the packages to remove
    #[arg(required = true, value_name = "PACKAGE")]
    pub packages: Vec<String>,
}

/// `pkgr list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: EnvTarget,
    /// Only packages whose name matches this regular expression (case-insensitive, anywhere in the name)
    #[arg(value_name = "REGEX")]
    pub regex: Option<String>,
    /// An @EXPLICIT list of the packages' URLs (as `conda list --explicit`)
    #[arg(long, conflicts_with_all = ["export", "canonical"])]
    pub explicit: bool,
    /// With --explicit: each URL with its md5
    #[arg(long, requires = "explicit", conflicts_with = "sha256")]
    pub md5: bool,
    /// With --explicit: each URL with its sha256
    #[arg(long, requires = "explicit")]
    pub sha256: bool,
    /// `name=version=build` lines, a spec list `pkgr create --file` reads
    #[arg(long, conflicts_with = "canonical")]
    pub export: bool,
    /// `channel/subdir::name-version-build` lines
    #[arg(long)]
    pub canonical: bool,
}

/// `pkgr index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The channel directory: one subfolder per subdir (linux-64, noarch, ...) holding .conda/.tar.bz2 files
    pub dir: PathBuf,
}
