//! Configuration: where each setting comes from.
//!
//! Lowest to highest precedence: pkgr's defaults; `~/.condarc` (or
//! `$CONDARC`), so an existing conda setup works (its `channels`,
//! `channel_alias`, `pkgs_dirs`, `envs_dirs`, `channel_priority`,
//! `pinned_packages`, `subdir` and `always_yes`; conda's other keys are not
//! pkgr's and are left alone; pkgr's own keys, such as
//! `allow_unverified_packages`, are read there too);
//! pkgr's own file `$PKGR_CONFIG`, else `$XDG_CONFIG_HOME/pkgr/config.yaml`,
//! else `~/.config/pkgr/config.yaml` (the same keys; an unknown key is a
//! warning, a wrong type an error);
//! conda's environment variables, which conda puts over its files
//! (`CONDA_ENVS_DIRS` or `CONDA_ENVS_PATH`, `CONDA_PKGS_DIRS`,
//! `CONDA_CHANNELS`, `CONDA_CHANNEL_PRIORITY`, `CONDA_SUBDIR`,
//! `CONDA_ALWAYS_YES`; a list from one is put before the files' list, as
//! conda merges lists, and a single value replaces the files'); pkgr's own
//! environment variables (`PKGR_CACHE_DIR`, `PKGR_CHANNEL_ALIAS`,
//! `PKGR_ROOT`, `PKGR_NO_SCRIPTS`, `PKGR_ALLOW_UNVERIFIED_PACKAGES`); command-line
//! flags (`--cache-dir`, `-c`, `--no-scripts`).
//!
//! `pkgr config list` prints every value with its origin.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};

/// pkgr's default channel (conda's is `defaults`).
pub const DEFAULT_CHANNEL: &str = "conda-forge";

/// The channel alias conda uses unless configured otherwise.
pub const DEFAULT_CHANNEL_ALIAS: &str = "https://conda.anaconda.org/";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// pkgr's built-in default.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A list put together from several places (conda merges lists: an
    /// environment variable's items come before a file's), highest first.
    Merged(Vec<Origin>),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "${var}"),
            Origin::Merged(origins) => {
                for (i, origin) in origins.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" + ")?;
                    }
                    write!(f, "{origin}")?;
                }
                Ok(())
            }
        }
    }
}

/// One setting and its origin.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    /// The value in force.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
}

impl<T> Setting<T> {
    fn default(value: T) -> Self {
        Self {
            value,
            origin: Origin::Default,
        }
    }
}

/// The settings in force (before command-line flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Channels used when no `-c` is given, highest priority first.
    pub channels: Setting<Vec<String>>,
    /// What channel names are resolved against.
    pub channel_alias: Setting<String>,
    /// The package cache root; `None`: `$XDG_CACHE_HOME/pkgr`, else `~/.cache/pkgr`.
    pub cache_dir: Setting<Option<PathBuf>>,
    /// Where named environments live: `-n NAME` creates in the first and finds in any.
    pub envs_dirs: Setting<Vec<PathBuf>>,
    /// How a solve uses channel order.
    pub channel_priority: Setting<pkgr_solver::ChannelPriority>,
    /// Specs every solve must respect (conda's `pinned_packages`).
    pub pinned_packages: Setting<Vec<String>>,
    /// Whether packages' post-link and pre-unlink scripts run (`run_scripts:
    /// false`, or `$PKGR_NO_SCRIPTS=1`, for pixi's default of running none).
    pub run_scripts: Setting<bool>,
    /// Whether packages whose records carry neither a sha256 nor an md5 may
    /// be installed (with a warning naming them); by default they are
    /// refused, since nothing would check what is downloaded.
    pub allow_unverified_packages: Setting<bool>,
    /// Read-only caches searched first (`pkgs_dirs` entries that cannot be
    /// written, and `$PKGR_READONLY_CACHES`, `:`-separated).
    pub read_only_caches: Setting<Vec<PathBuf>>,
    /// Where `ssl_verify` / the CA bundle came from.
    pub ssl_origin: Origin,
    /// Channel (name or URL) → mirror URLs tried in order (mamba's
    /// `mirrored_channels`).
    pub mirrored_channels: Setting<Vec<(String, Vec<String>)>>,
    /// Retries and timeouts (conda's `remote_max_retries`,
    /// `remote_backoff_factor`, `remote_connect_timeout_secs`,
    /// `remote_read_timeout_secs`; each also `$PKGR_<KEY>`).
    pub network: Setting<pkgr_fetch::NetworkSettings>,
    /// The platform solved for when no `--platform` is given (conda's
    /// `subdir`: `$CONDA_SUBDIR`); `None`: this machine's.
    pub subdir: Setting<Option<String>>,
    /// conda's `always_yes` (`$CONDA_ALWAYS_YES`): pkgr never asks, but
    /// `create` then replaces an existing environment, as with `-y`.
    pub always_yes: Setting<bool>,
    /// The `pkgs_dirs` listed so far, each with its origin, highest first:
    /// the cache and [`Config::read_only_caches`] are chosen from them.
    pkgs_dirs: Vec<(PathBuf, Origin)>,
    /// The configuration files that exist and were read, in order.
    pub files_read: Vec<PathBuf>,
    /// Problems worth a warning (unknown keys in pkgr's own file).
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            channels: Setting::default(vec![DEFAULT_CHANNEL.to_owned()]),
            channel_alias: Setting::default(DEFAULT_CHANNEL_ALIAS.to_owned()),
            cache_dir: Setting::default(None),
            envs_dirs: Setting::default(Vec::new()),
            channel_priority: Setting::default(pkgr_solver::ChannelPriority::default()),
            pinned_packages: Setting::default(Vec::new()),
            run_scripts: Setting::default(true),
            allow_unverified_packages: Setting::default(false),
            network: Setting::default(pkgr_fetch::NetworkSettings::default()),
            mirrored_channels: Setting::default(Vec::new()),
            ssl_origin: Origin::Default,
            read_only_caches: Setting::default(Vec::new()),
            subdir: Setting::default(None),
            always_yes: Setting::default(false),
            pkgs_dirs: Vec::new(),
            files_read: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// The keys pkgr reads from a configuration file.
const KEYS: [&str; 17] = [
    "mirrored_channels",
    "proxy_servers",
    "ssl_verify",
    "channels",
    "channel_alias",
    "pkgs_dirs",
    "envs_dirs",
    "channel_priority",
    "pinned_packages",
    "run_scripts",
    "allow_unverified_packages",
    "subdir",
    "always_yes",
    "remote_max_retries",
    "remote_backoff_factor",
    "remote_connect_timeout_secs",
    "remote_read_timeout_secs",
];

/// The network keys, each also read from `$PKGR_<KEY in capitals>`.
const NETWORK_KEYS: [&str; 4] = [
    "remote_max_retries",
    "remote_backoff_factor",
    "remote_connect_timeout_secs",
    "remote_read_timeout_secs",
];

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home() -> Option<PathBuf> {
    env_var("HOME").map(PathBuf::from)
}

impl Config {
    /// Reads the configuration files and environment variables.
    pub fn load() -> anyhow::Result<Self> {
        let mut config = Self::default();
        if let Some(home) = home() {
            let default_root = home.join(".local").join("share").join("pkgr");
            config.envs_dirs = Setting::default(vec![default_root.join("envs")]);
        }
        let condarc = env_var("CONDARC")
            .map(PathBuf::from)
            .or_else(|| home().map(|h| h.join(".condarc")));
        if let Some(path) = condarc {
            config.read_file(&path, false)?;
        }
        let own = env_var("PKGR_CONFIG").map(PathBuf::from).or_else(|| {
            env_var("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".config")))
                .map(|dir| dir.join("pkgr").join("config.yaml"))
        });
        if let Some(path) = own {
            config.read_file(&path, true)?;
        }
        config.read_conda_env_vars()?;
        if let Some(alias) = env_var("PKGR_CHANNEL_ALIAS") {
            config.channel_alias = Setting {
                value: alias,
                origin: Origin::Env("PKGR_CHANNEL_ALIAS"),
            };
        }
        if let Some(dir) = env_var("PKGR_CACHE_DIR") {
            config.cache_dir = Setting {
                value: Some(absolute(Path::new(&dir))?),
                origin: Origin::Env("PKGR_CACHE_DIR"),
            };
        }
        for key in NETWORK_KEYS {
            let var = format!("PKGR_{}", key.to_ascii_uppercase());
            if let Some(text) = env_var(&var) {
                let number: f64 = text
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("${var} must be a number, not `{text}`"))?;
                config
                    .set_network(key, number)
                    .map_err(|e| anyhow::anyhow!("${var}: {e}"))?;
                config.network.origin = Origin::Env(env_var_of(key));
            }
        }
        if let Some(text) = env_var("PKGR_NO_SCRIPTS") {
            let no_scripts = yes_or_no(&text).ok_or_else(|| {
                anyhow::anyhow!(
                    "$PKGR_NO_SCRIPTS must be 1 or 0 (true/false, yes/no), not `{text}`"
                )
            })?;
            config.run_scripts = Setting {
                value: !no_scripts,
                origin: Origin::Env("PKGR_NO_SCRIPTS"),
            };
        }
        if let Some(text) = env_var("PKGR_ALLOW_UNVERIFIED_PACKAGES") {
            config.allow_unverified_packages = Setting {
                value: yes_or_no(&text).ok_or_else(|| {
                    anyhow::anyhow!(
                        "$PKGR_ALLOW_UNVERIFIED_PACKAGES must be 1 or 0 (true or false), not `{text}`"
                    )
                })?,
                origin: Origin::Env("PKGR_ALLOW_UNVERIFIED_PACKAGES"),
            };
        }
        if let Some(layers) = env_var("PKGR_READONLY_CACHES") {
            config.read_only_caches = Setting {
                value: std::env::split_paths(&layers)
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|p| absolute(&p))
                    .collect::<anyhow::Result<_>>()?,
                origin: Origin::Env("PKGR_READONLY_CACHES"),
            };
        }
        // A CA bundle, as requests (and so conda) and OpenSSL read them.
        for var in ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"] {
            if let Some(path) = env_var(var) {
                config.network.value.ca_bundle = Some(absolute(Path::new(&path))?);
                config.ssl_origin = Origin::Env(var);
                break;
            }
        }
        if let Some(root) = env_var("PKGR_ROOT") {
            config.envs_dirs = Setting {
                value: vec![absolute(Path::new(&root))?.join("envs")],
                origin: Origin::Env("PKGR_ROOT"),
            };
        }
        Ok(config)
    }

    /// Reads one file if it exists. `own`: pkgr's file (unknown keys warned
    /// about) rather than conda's (whose other keys are conda's business).
    fn read_file(&mut self, path: &Path, own: bool) -> anyhow::Result<()> {
        let text = match fs_err::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).context("could not read a configuration file"),
        };
        self.files_read.push(path.to_path_buf());
        let value: serde_yaml::Value = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", path.display()))?;
        let map = match value {
            serde_yaml::Value::Null => return Ok(()),
            serde_yaml::Value::Mapping(map) => map,
            _ => bail!("{} must hold a mapping of settings", path.display()),
        };
        let origin = Origin::File(path.to_path_buf());
        for (key, value) in map {
            let Some(key) = key.as_str() else { continue };
            let wrong = |what: &str| anyhow::anyhow!("{}: `{key}` must be {what}", path.display());
            match key {
                "channels" => {
                    self.channels = Setting {
                        value: string_list(&value).ok_or_else(|| wrong("a list of channels"))?,
                        origin: origin.clone(),
                    };
                }
                "channel_alias" => {
                    self.channel_alias = Setting {
                        value: value.as_str().ok_or_else(|| wrong("a URL"))?.to_owned(),
                        origin: origin.clone(),
                    };
                }
                "pkgs_dirs" => {
                    let dirs = string_list(&value).ok_or_else(|| wrong("a list of directories"))?;
                    self.pkgs_dirs = dirs
                        .iter()
                        .map(|d| Ok((expand_path(d)?, origin.clone())))
                        .collect::<anyhow::Result<_>>()?;
                    self.choose_cache();
                }
                "envs_dirs" => {
                    let dirs = string_list(&value).ok_or_else(|| wrong("a list of directories"))?;
                    self.envs_dirs = Setting {
                        value: dirs
                            .iter()
                            .map(|d| expand_path(d))
                            .collect::<anyhow::Result<_>>()?,
                        origin: origin.clone(),
                    };
                }
                "channel_priority" => {
                    let text = match &value {
                        serde_yaml::Value::String(s) => s.clone(),
                        serde_yaml::Value::Bool(b) => b.to_string(),
                        _ => return Err(wrong("strict, flexible or disabled")),
                    };
                    self.channel_priority = Setting {
                        value: text.parse().map_err(|e: String| {
                            anyhow::anyhow!("{}: `channel_priority`: {e}", path.display())
                        })?,
                        origin: origin.clone(),
                    };
                }
                "pinned_packages" => {
                    self.pinned_packages = Setting {
                        value: string_list(&value).ok_or_else(|| wrong("a list of specs"))?,
                        origin: origin.clone(),
                    };
                }
                "run_scripts" => {
                    let run = match &value {
                        serde_yaml::Value::Bool(b) => Some(*b),
                        serde_yaml::Value::String(s) => yes_or_no(s),
                        _ => None,
                    };
                    self.run_scripts = Setting {
                        value: run.ok_or_else(|| wrong("true or false"))?,
                        origin: origin.clone(),
                    };
                }
                "allow_unverified_packages" => {
                    let allow = match &value {
                        serde_yaml::Value::Bool(b) => Some(*b),
                        serde_yaml::Value::String(s) => yes_or_no(s),
                        _ => None,
                    };
                    self.allow_unverified_packages = Setting {
                        value: allow.ok_or_else(|| wrong("true or false"))?,
                        origin: origin.clone(),
                    };
                }
                "subdir" => {
                    let subdir = value
                        .as_str()
                        .ok_or_else(|| wrong("a platform (linux-64, osx-arm64, ...)"))?
                        .trim();
                    rattler_conda_types::Subdir::from_str(subdir)
                        .map_err(|e| anyhow::anyhow!("{}: `subdir`: {e}", path.display()))?;
                    self.subdir = Setting {
                        value: Some(subdir.to_owned()),
                        origin: origin.clone(),
                    };
                }
                "always_yes" => {
                    let yes = match &value {
                        serde_yaml::Value::Bool(b) => Some(*b),
                        serde_yaml::Value::String(s) => conda_bool(s),
                        _ => None,
                    };
                    self.always_yes = Setting {
                        value: yes.ok_or_else(|| wrong("true or false"))?,
                        origin: origin.clone(),
                    };
                }
                "mirrored_channels" => {
                    let serde_yaml::Value::Mapping(map) = &value else {
                        return Err(wrong("a mapping of channel to a list of mirror URLs"));
                    };
                    let mut mirrors = Vec::new();
                    for (channel, list) in map {
                        let channel = channel.as_str().ok_or_else(|| {
                            wrong("a mapping of channel to a list of mirror URLs")
                        })?;
                        let list = string_list(list).ok_or_else(|| {
                            wrong("a mapping of channel to a list of mirror URLs")
                        })?;
                        for mirror in &list {
                            url::Url::parse(mirror).map_err(|e| {
                                anyhow::anyhow!(
                                    "{}: mirror `{mirror}` of {channel} is not a URL: {e}",
                                    path.display()
                                )
                            })?;
                        }
                        mirrors.push((channel.to_owned(), list));
                    }
                    self.mirrored_channels = Setting {
                        value: mirrors,
                        origin: origin.clone(),
                    };
                }
                "proxy_servers" => {
                    let serde_yaml::Value::Mapping(map) = &value else {
                        return Err(wrong(
                            "a mapping of scheme to proxy URL (http: ..., https: ...)",
                        ));
                    };
                    for (scheme, url) in map {
                        let url = url
                            .as_str()
                            .ok_or_else(|| wrong("a mapping of scheme to proxy URL"))?
                            .to_owned();
                        match scheme.as_str() {
                            Some("http") => self.network.value.proxy_http = Some(url),
                            Some("https") => self.network.value.proxy_https = Some(url),
                            _ => return Err(wrong("a mapping with the keys http and https")),
                        }
                    }
                    self.network.origin = origin.clone();
                }
                "ssl_verify" => {
                    match &value {
                        serde_yaml::Value::Bool(verify) => {
                            self.network.value.ssl_verify = *verify;
                        }
                        serde_yaml::Value::String(text) if text == "false" => {
                            self.network.value.ssl_verify = false;
                        }
                        serde_yaml::Value::String(text) if text == "true" => {
                            self.network.value.ssl_verify = true;
                        }
                        serde_yaml::Value::String(path) => {
                            self.network.value.ca_bundle = Some(expand_path(path)?);
                        }
                        _ => return Err(wrong("true, false or the path of a PEM bundle")),
                    }
                    self.ssl_origin = origin.clone();
                }
                key if NETWORK_KEYS.contains(&key) => {
                    let number = match &value {
                        serde_yaml::Value::Number(n) => n.as_f64(),
                        serde_yaml::Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    }
                    .ok_or_else(|| wrong("a number"))?;
                    self.set_network(key, number)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    self.network.origin = origin.clone();
                }
                _ if own => self.warnings.push(format!(
                    "{}: unknown setting `{key}` (pkgr reads {})",
                    path.display(),
                    KEYS.join(", ")
                )),
                _ => {}
            }
        }
        Ok(())
    }

    /// Chooses the cache from the listed `pkgs_dirs`: the first one pkgr
    /// can write to, as conda takes the first writable package cache (a
    /// read-only shared one listed first is skipped); those before it that
    /// exist are read-only layers, searched first. With none writable, the
    /// default cache.
    fn choose_cache(&mut self) {
        self.cache_dir = Setting::default(None);
        self.read_only_caches = Setting::default(Vec::new());
        let mut layers: Vec<&(PathBuf, Origin)> = Vec::new();
        for listed in &self.pkgs_dirs {
            let (dir, origin) = listed;
            if is_writable_dir(dir) {
                self.cache_dir = Setting {
                    value: Some(dir.clone()),
                    origin: origin.clone(),
                };
                break;
            }
            if dir.is_dir() {
                layers.push(listed);
            }
        }
        if let Some((_, first)) = layers.first() {
            let mut origins: Vec<Origin> = Vec::new();
            for (_, origin) in &layers {
                if !origins.contains(origin) {
                    origins.push(origin.clone());
                }
            }
            self.read_only_caches = Setting {
                value: layers.iter().map(|(dir, _)| dir.clone()).collect(),
                origin: if origins.len() == 1 {
                    first.clone()
                } else {
                    Origin::Merged(origins)
                },
            };
        }
    }

    /// conda's environment variables, over the files as conda puts them
    /// (`CONDA_<KEY>` for its key, split on `,` for a list, on `:` for the
    /// environment directories); micromamba's `MAMBA_PLATFORM` and
    /// `MAMBA_CHANNEL_PRIORITY` are read too, below conda's.
    fn read_conda_env_vars(&mut self) -> anyhow::Result<()> {
        // `envs_dirs` and its alias `envs_path`: conda refuses both at once.
        let envs = match (env_var("CONDA_ENVS_DIRS"), env_var("CONDA_ENVS_PATH")) {
            (Some(_), Some(_)) => bail!(
                "both $CONDA_ENVS_DIRS and $CONDA_ENVS_PATH are set: set only one (they are the same setting, and conda refuses both too)"
            ),
            (Some(text), None) => Some(("CONDA_ENVS_DIRS", text)),
            (None, Some(text)) => Some(("CONDA_ENVS_PATH", text)),
            (None, None) => None,
        };
        if let Some((var, text)) = envs {
            let dirs = split_list(&text, ':')
                .map(|d| expand_path(d).with_context(|| format!("${var}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let before = std::mem::replace(&mut self.envs_dirs, Setting::default(Vec::new()));
            self.envs_dirs = merged(var, dirs, before, true);
        }
        if let Some(text) = env_var("CONDA_PKGS_DIRS") {
            let mut dirs = Vec::new();
            for dir in split_list(&text, ',') {
                let dir = expand_path(dir).context("$CONDA_PKGS_DIRS")?;
                dirs.push((dir, Origin::Env("CONDA_PKGS_DIRS")));
            }
            for listed in std::mem::take(&mut self.pkgs_dirs) {
                if !dirs.iter().any(|(dir, _)| *dir == listed.0) {
                    dirs.push(listed);
                }
            }
            self.pkgs_dirs = dirs;
            self.choose_cache();
        }
        if let Some(text) = env_var("CONDA_CHANNELS") {
            let channels: Vec<String> = split_list(&text, ',').map(ToOwned::to_owned).collect();
            let before = std::mem::replace(&mut self.channels, Setting::default(Vec::new()));
            self.channels = merged("CONDA_CHANNELS", channels, before, false);
        }
        for var in ["CONDA_CHANNEL_PRIORITY", "MAMBA_CHANNEL_PRIORITY"] {
            if let Some(text) = env_var(var) {
                self.channel_priority = Setting {
                    value: text
                        .trim()
                        .parse()
                        .map_err(|e: String| anyhow::anyhow!("${var}: {e}"))?,
                    origin: Origin::Env(var),
                };
                break;
            }
        }
        for var in ["CONDA_SUBDIR", "MAMBA_PLATFORM"] {
            if let Some(text) = env_var(var) {
                let subdir = text.trim();
                rattler_conda_types::Subdir::from_str(subdir)
                    .map_err(|e| anyhow::anyhow!("${var}: {e}"))?;
                self.subdir = Setting {
                    value: Some(subdir.to_owned()),
                    origin: Origin::Env(var),
                };
                break;
            }
        }
        if let Some(text) = env_var("CONDA_ALWAYS_YES") {
            self.always_yes = Setting {
                value: conda_bool(&text).ok_or_else(|| {
                    anyhow::anyhow!(
                        "$CONDA_ALWAYS_YES must be true or false (yes/no, on/off, 1/0), not `{text}`"
                    )
                })?,
                origin: Origin::Env("CONDA_ALWAYS_YES"),
            };
        }
        Ok(())
    }

    /// Sets one network key (`remote_*`) from a number.
    fn set_network(&mut self, key: &str, number: f64) -> Result<(), String> {
        if !number.is_finite() || number < 0.0 {
            return Err(format!(
                "`{key}` must be a number of 0 or more, not {number}"
            ));
        }
        let network = &mut self.network.value;
        match key {
            "remote_max_retries" => network.max_retries = number.min(100.0) as u32,
            "remote_backoff_factor" => network.backoff_factor = number,
            "remote_connect_timeout_secs" => {
                network.connect_timeout = std::time::Duration::from_secs_f64(number.max(0.1));
            }
            "remote_read_timeout_secs" => {
                network.read_timeout = std::time::Duration::from_secs_f64(number.max(0.1));
            }
            _ => return Err(format!("unknown network setting `{key}`")),
        }
        Ok(())
    }

    /// `(key, value, origin)` rows for `pkgr config list`.
    pub fn rows(&self, cache_dir: &Path) -> Vec<(&'static str, String, String)> {
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        vec![
            (
                "channels",
                list(self.channels.value.clone()),
                self.channels.origin.to_string(),
            ),
            (
                "channel_alias",
                self.channel_alias.value.clone(),
                self.channel_alias.origin.to_string(),
            ),
            (
                "pkgs_dirs",
                list(vec![cache_dir.display().to_string()]),
                self.cache_dir.origin.to_string(),
            ),
            (
                "channel_priority",
                self.channel_priority.value.to_string(),
                self.channel_priority.origin.to_string(),
            ),
            (
                "subdir",
                self.subdir
                    .value
                    .clone()
                    .unwrap_or_else(|| String::from("(this machine's)")),
                self.subdir.origin.to_string(),
            ),
            (
                "always_yes",
                self.always_yes.value.to_string(),
                self.always_yes.origin.to_string(),
            ),
            (
                "pinned_packages",
                list(self.pinned_packages.value.clone()),
                self.pinned_packages.origin.to_string(),
            ),
            (
                "run_scripts",
                self.run_scripts.value.to_string(),
                self.run_scripts.origin.to_string(),
            ),
            (
                "allow_unverified_packages",
                self.allow_unverified_packages.value.to_string(),
                self.allow_unverified_packages.origin.to_string(),
            ),
            (
                "remote_max_retries",
                self.network.value.max_retries.to_string(),
                self.network.origin.to_string(),
            ),
            (
                "remote_backoff_factor",
                self.network.value.backoff_factor.to_string(),
                self.network.origin.to_string(),
            ),
            (
                "remote_connect_timeout_secs",
                self.network.value.connect_timeout.as_secs_f64().to_string(),
                self.network.origin.to_string(),
            ),
            (
                "remote_read_timeout_secs",
                self.network.value.read_timeout.as_secs_f64().to_string(),
                self.network.origin.to_string(),
            ),
            (
                "proxy_servers",
                format!(
                    "{{http: {}, https: {}}}",
                    self.network.value.proxy_http.as_deref().map_or_else(
                        || "(from $HTTP_PROXY)".to_owned(),
                        |p| pkgr_redact::redact_urls_in_text(p, pkgr_redact::redact_url)
                    ),
                    self.network.value.proxy_https.as_deref().map_or_else(
                        || "(from $HTTPS_PROXY)".to_owned(),
                        |p| pkgr_redact::redact_urls_in_text(p, pkgr_redact::redact_url)
                    ),
                ),
                self.network.origin.to_string(),
            ),
            (
                "ssl_verify",
                match (&self.network.value.ca_bundle, self.network.value.ssl_verify) {
                    (_, false) => String::from("false"),
                    (Some(bundle), true) => bundle.display().to_string(),
                    (None, true) => String::from("true"),
                },
                self.ssl_origin.to_string(),
            ),
            (
                "read_only_caches",
                list(
                    self.read_only_caches
                        .value
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect(),
                ),
                self.read_only_caches.origin.to_string(),
            ),
            (
                "envs_dirs",
                list(
                    self.envs_dirs
                        .value
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect(),
                ),
                self.envs_dirs.origin.to_string(),
            ),
        ]
    }
}

/// `PKGR_<KEY>` for a network key, as the `&'static str` an [`Origin`] holds.
fn env_var_of(key: &str) -> &'static str {
    match key {
        "remote_max_retries" => "PKGR_REMOTE_MAX_RETRIES",
        "remote_backoff_factor" => "PKGR_REMOTE_BACKOFF_FACTOR",
        "remote_connect_timeout_secs" => "PKGR_REMOTE_CONNECT_TIMEOUT_SECS",
        _ => "PKGR_REMOTE_READ_TIMEOUT_SECS",
    }
}

/// The items of a list an environment variable holds: split on `separator`,
/// trimmed, empty ones dropped (as conda reads a list from the environment).
fn split_list(text: &str, separator: char) -> impl Iterator<Item = &str> {
    text.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `items` from environment variable `var` before the list `before`, without
/// repeats: conda merges a list setting from all its sources, the highest
/// first. pkgr's default list is replaced unless `keep_default` (as conda
/// always adds its own environment directories after the configured ones).
fn merged<T: PartialEq>(
    var: &'static str,
    items: Vec<T>,
    before: Setting<Vec<T>>,
    keep_default: bool,
) -> Setting<Vec<T>> {
    if before.origin == Origin::Default && !keep_default {
        let mut value = Vec::new();
        for item in items {
            if !value.contains(&item) {
                value.push(item);
            }
        }
        return Setting {
            value,
            origin: Origin::Env(var),
        };
    }
    let mut value: Vec<T> = Vec::new();
    for item in items.into_iter().chain(before.value) {
        if !value.contains(&item) {
            value.push(item);
        }
    }
    let mut origins = vec![Origin::Env(var)];
    match before.origin {
        Origin::Merged(more) => origins.extend(more),
        other => origins.push(other),
    }
    Setting {
        value,
        origin: Origin::Merged(origins),
    }
}

/// A boolean as conda reads one (`true`/`yes`/`on`/`y` or a number other
/// than 0; `false`/`no`/`off`/`n`/`none` or 0).
fn conda_bool(text: &str) -> Option<bool> {
    let text = text.trim().to_ascii_lowercase();
    match text.as_str() {
        "true" | "yes" | "on" | "y" => Some(true),
        "false" | "no" | "off" | "n" | "non" | "none" => Some(false),
        number => number.parse::<f64>().ok().map(|n| n != 0.0),
    }
}

/// `1`/`true`/`yes` → true, `0`/`false`/`no` → false (any case).
fn yes_or_no(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn string_list(value: &serde_yaml::Value) -> Option<Vec<String>> {
    match value {
        serde_yaml::Value::Sequence(items) => items
            .iter()
            .map(|v| v.as_str().map(ToOwned::to_owned))
            .collect(),
        serde_yaml::Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

/// Whether pkgr could write in `dir`: it exists and a temp file can be made
/// there, or it does not exist and its nearest existing ancestor can.
pub fn is_writable_dir(dir: &Path) -> bool {
    match dir.ancestors().find(|a| a.exists()) {
        Some(existing) if existing.is_dir() => tempfile::tempfile_in(existing).is_ok(),
        _ => false,
    }
}

/// `~` and `$VAR`/`${VAR}` expanded, as conda does for directory settings.
fn expand_path(text: &str) -> anyhow::Result<PathBuf> {
    let mut out = String::new();
    let mut rest = text;
    if let Some(tail) = rest.strip_prefix('~') {
        if tail.is_empty() || tail.starts_with('/') {
            let home = home().context("`~` in a setting, but HOME is not set")?;
            out.push_str(&home.display().to_string());
            rest = tail;
        }
    }
    out.push_str(&expand_env_vars(rest).map_err(|e| anyhow::anyhow!("`{text}`: {e}"))?);
    absolute(Path::new(&out))
}

/// `$VAR` and `${VAR}` replaced by their values, as conda expands them in
/// settings and environment files; an unset variable is an error naming it
/// (never an empty string); a `$` not followed by a name stays.
pub fn expand_env_vars(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| String::from("an unclosed `${`"))?;
            (&braced[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        let value = env_var(name).ok_or_else(|| format!("${name} is not set"))?;
        out.push_str(&value);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid path {}", path.display()))
}

#[cfg(test)]
mod tests;
