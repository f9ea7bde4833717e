//! Credentials for channels: where they come from and how a request gets
//! them.
//!
//! Sources, first match wins for a host (`host:port`, else `host`):
//! 1. credentials in the URL itself (`user:password@`, `/t/<token>/`);
//! 2. `$PKGR_AUTH_<HOST>` (the host in capitals, every character that is
//!    not a letter or digit as `_`; e.g. `PKGR_AUTH_CONDA_EXAMPLE_COM`):
//!    `token:<T>`, `bearer:<T>` or `<user>:<password>`;
//! 3. pkgr's auth file (`pkgr auth login`; `$PKGR_AUTH_FILE`, else
//!    `$XDG_CONFIG_HOME/pkgr/auth.json`, else `~/.config/pkgr/auth.json`),
//!    written with mode 0600 through a temp file and a rename; a file that
//!    others can read is still used, with a warning
//!    ([`Credentials::warnings`], [`auth_file_exposure`]);
//! 4. `~/.netrc` (`$NETRC`): `machine HOST login U password P` (or
//!    `default`), as basic auth.
//!
//! How a credential is sent: a conda token goes into the URL's path as
//! `/t/<token>/` right after the host (anaconda.org's form), basic auth and
//! bearer tokens as an `Authorization` header. Nothing here is ever logged;
//! messages use [`pkgr_redact::redact_url`] of the URL without the credential.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

/// One host's credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A conda token, sent as `/t/<token>/` in the path.
    Token(String),
    /// An `Authorization: Bearer` token.
    Bearer(String),
    /// Basic auth.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself, not even in a debug print.
        f.write_str(match self {
            Self::Token(_) => "Token(********)",
            Self::Bearer(_) => "Bearer(********)",
            Self::Basic { .. } => "Basic(********)",
        })
    }
}

/// The auth file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthFile {
    /// Host (`host` or `host:port`) → its credential.
    #[serde(default)]
    pub hosts: BTreeMap<String, Credential>,
}

/// Errors of the auth file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// It cannot be read or written.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid.
    #[error("{} is not a valid pkgr auth file: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl AuthFile {
    /// Reads `path`; a missing file is an empty one.
    pub fn read(path: &Path) -> Result<Self, AuthError> {
        match fs_err::read_to_string(path) {
            // Where, not what: serde's message may quote a secret.
            Ok(text) => serde_json::from_str(&text).map_err(|e| AuthError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "not a pkgr auth file (line {}, column {}): each host maps to {{\"token\": ...}}, {{\"bearer\": ...}} or {{\"basic\": {{\"username\": ..., \"password\": ...}}}}",
                    e.line(),
                    e.column()
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(AuthError::Io {
                context: format!("could not read {}", path.display()),
                source,
            }),
        }
    }

    /// Writes it to `path` (mode 0600, through a temp file beside it and a
    /// rename, so a reader never sees half a file).
    pub fn write(&self, path: &Path) -> Result<(), AuthError> {
        let io = |what: &str| {
            let context = format!("could not {what} {}", path.display());
            move |source| AuthError::Io { context, source }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir).map_err(io("create the directory of"))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".auth-")
            .tempfile_in(dir)
            .map_err(io("write"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io("protect"))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| AuthError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io("write"))?;
        tmp.persist(path).map_err(|e| AuthError::Io {
            context: format!("could not write {}", path.display()),
            source: e.error,
        })?;
        Ok(())
    }
}

/// Whether users other than its owner can read or change the auth file at
/// `path` (any group or other permission bit): a warning naming the file,
/// who, and the fix; `None` when it is private (or cannot be looked at).
/// The file is used either way (refusing it would break a setup that works
/// the day a umask changes), but its owner should know that the
/// credentials in it are exposed, and may want to replace them.
pub fn auth_file_exposure(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs_err::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return None;
        }
        let who = if mode & 0o007 != 0 {
            "every user of this machine"
        } else {
            "the members of its group"
        };
        Some(format!(
            "the auth file {} is open to {who} (mode {mode:04o}) though it holds credentials: fix it with `chmod 600 {}` (pkgr uses it anyway; consider the credentials in it exposed)",
            path.display(),
            path.display()
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Where credentials are looked up (see the module docs for the order).
#[derive(Clone, Default)]
pub struct Credentials {
    file: AuthFile,
    netrc: Vec<(Option<String>, String, String)>,
    env: BTreeMap<String, Credential>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hosts only, never a secret.
        f.debug_struct("Credentials")
            .field("file_hosts", &self.file.hosts.keys().collect::<Vec<_>>())
            .field("netrc_machines", &self.netrc.len())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `host:port` (the port only when the URL has one) and `host`.
fn host_keys(url: &Url) -> Vec<String> {
    let Some(host) = url.host_str() else {
        return Vec::new();
    };
    match url.port() {
        Some(port) => vec![format!("{host}:{port}"), host.to_owned()],
        None => vec![host.to_owned()],
    }
}

/// The `$PKGR_AUTH_<HOST>` name for a host key.
pub fn env_var_for(host: &str) -> String {
    let mut name = String::from("PKGR_AUTH_");
    name.extend(host.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    name
}

/// `token:T`, `bearer:T` or `user:password`.
fn parse_env_credential(value: &str) -> Option<Credential> {
    if let Some(token) = value.strip_prefix("token:") {
        return Some(Credential::Token(token.to_owned()));
    }
    if let Some(token) = value.strip_prefix("bearer:") {
        return Some(Credential::Bearer(token.to_owned()));
    }
    let (username, password) = value.split_once(':')?;
    Some(Credential::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// `(machine or None for default, login, password)` entries of a netrc.
fn parse_netrc(text: &str) -> Vec<(Option<String>, String, String)> {
    let mut entries = Vec::new();
    let mut tokens = text.split_whitespace();
    let mut current: Option<(Option<String>, String, String)> = None;
    while let Some(token) = tokens.next() {
        match token {
            "machine" | "default" => {
                if let Some(entry) = current.take() {
                    entries.push(entry);
                }
                let machine = if token == "machine" {
                    tokens.next().map(ToOwned::to_owned)
                } else {
                    None
                };
                current = Some((machine, String::new(), String::new()));
            }
            "login" => {
                if let (Some(entry), Some(value)) = (current.as_mut(), tokens.next()) {
                    entry.1 = value.to_owned();
                }
            }
            "password" => {
                if let (Some(entry), Some(value)) = (current.as_mut(), tokens.next()) {
                    entry.2 = value.to_owned();
                }
            }
            "account" => {
                tokens.next();
            }
            // A macro runs to the next blank line; pkgr has no use for it.
            "macdef" => break,
            _ => {}
        }
    }
    entries.extend(current);
    entries
}

impl Credentials {
    /// No credentials but those in URLs.
    pub fn none() -> Self {
        Self::default()
    }

    /// Credentials from `auth_file`, `netrc` (either may be missing) and
    /// the `PKGR_AUTH_*` variables of `env`.
    pub fn load(
        auth_file: Option<&Path>,
        netrc: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, AuthError> {
        let mut warnings = Vec::new();
        let file = match auth_file {
            Some(path) => {
                let file = AuthFile::read(path)?;
                if !file.hosts.is_empty() {
                    warnings.extend(auth_file_exposure(path));
                }
                file
            }
            None => AuthFile::default(),
        };
        let netrc = netrc
            .and_then(|p| fs_err::read_to_string(p).ok())
            .map(|t| parse_netrc(&t))
            .unwrap_or_default();
        let env = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("PKGR_AUTH_") && k != "PKGR_AUTH_FILE")
            .filter_map(|(k, v)| parse_env_credential(&v).map(|c| (k, c)))
            .collect();
        Ok(Self {
            file,
            netrc,
            env,
            warnings,
        })
    }

    /// What the user should hear about the sources read (an auth file that
    /// others can read), for the front-end to show.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The credential for `url`'s host, if any source has one.
    pub fn for_url(&self, url: &Url) -> Option<Credential> {
        let keys = host_keys(url);
        for key in &keys {
            if let Some(credential) = self.env.get(&env_var_for(key)) {
                return Some(credential.clone());
            }
        }
        for key in &keys {
            if let Some(credential) = self.file.hosts.get(key) {
                return Some(credential.clone());
            }
        }
        let host = url.host_str()?;
        self.netrc
            .iter()
            .find(|(m, _, _)| m.as_deref() == Some(host))
            .or_else(|| self.netrc.iter().find(|(m, _, _)| m.is_none()))
            .map(|(_, login, password)| Credential::Basic {
                username: login.clone(),
                password: password.clone(),
            })
    }

    /// `url` with a stored conda token in place of `/t/<TOKEN>/` (the form
    /// records keep), if there is one for its host; else `None`.
    pub fn fill_token_placeholder(&self, url: &Url) -> Option<Url> {
        if !pkgr_redact::url_has_token_placeholder(url) {
            return None;
        }
        let Some(Credential::Token(token)) = self.for_url(url) else {
            return None;
        };
        let text = pkgr_redact::url_for_record(url).replacen(
            &format!("/t/{}/", pkgr_redact::TOKEN_PLACEHOLDER),
            &format!("/t/{token}/"),
            1,
        );
        Url::parse(&text).ok()
    }

    /// How to send a request for `url`: the URL to ask for (with a conda
    /// token in its path) and the `Authorization` to add. A URL that
    /// carries credentials already is sent as it is.
    pub fn apply(&self, url: &Url) -> (Url, Option<Authorization>) {
        // `/t/<TOKEN>/` (what records and exported lists keep): the stored
        // token goes in its place; without one the request goes as it is
        // and its 401 says credentials are needed.
        if pkgr_redact::url_has_token_placeholder(url) {
            let filled = self.fill_token_placeholder(url);
            return (filled.unwrap_or_else(|| url.clone()), None);
        }
        if pkgr_redact::url_has_credentials(url) {
            if !url.username().is_empty() {
                let mut bare = url.clone();
                let (user, password) = (
                    percent_decode(url.username()),
                    url.password().map(percent_decode).unwrap_or_default(),
                );
                let _ = bare.set_username("");
                let _ = bare.set_password(None);
                return (bare, Some(Authorization::Basic(user, password)));
            }
            return (url.clone(), None);
        }
        match self.for_url(url) {
            None => (url.clone(), None),
            Some(Credential::Token(token)) => {
                let mut with_token = url.clone();
                with_token.set_path(&format!("/t/{token}{}", url.path()));
                (with_token, None)
            }
            Some(Credential::Bearer(token)) => (url.clone(), Some(Authorization::Bearer(token))),
            Some(Credential::Basic { username, password }) => {
                (url.clone(), Some(Authorization::Basic(username, password)))
            }
        }
    }
}

/// An `Authorization` header to send.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    /// `Basic` user and password.
    Basic(String, String),
    /// `Bearer` token.
    Bearer(String),
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorization(********)")
    }
}

/// `%XX` decoded (a `+` stays a `+`: this is a URL's user info, not a form).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn netrc_machines_and_default() {
        let entries = parse_netrc(
            "machine a.example login alice password s3cret\n# x\ndefault login anon password guest\n",
        );
        assert_eq!(entries.len(), 2);
        let creds = Credentials {
            netrc: entries,
            ..Credentials::default()
        };
        assert_eq!(
            creds.for_url(&url("https://a.example/ch")),
            Some(Credential::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            creds.for_url(&url("https://other.example/ch")),
            Some(Credential::Basic {
                username: "anon".into(),
                password: "guest".into()
            })
        );
    }

    #[test]
    fn env_wins_over_the_file_and_ports_are_part_of_the_key() {
        let mut file = AuthFile::default();
        file.hosts.insert(
            "h.example:8080".into(),
            Credential::Bearer("from-file".into()),
        );
        let creds = Credentials {
            file,
            netrc: Vec::new(),
            env: [(
                env_var_for("h.example"),
                parse_env_credential("token:from-env").unwrap(),
            )]
            .into_iter()
            .collect(),
            warnings: Vec::new(),
        };
        assert_eq!(env_var_for("h.example:8080"), "PKGR_AUTH_H_EXAMPLE_8080");
        // The environment wins over the file, for either key.
        assert_eq!(
            creds.for_url(&url("http://h.example:8080/c")),
            Some(Credential::Token("from-env".into()))
        );
        let (applied, auth) = creds.apply(&url("http://h.example:8080/c/linux-64/x.conda"));
        assert_eq!(
            applied.as_str(),
            "http://h.example:8080/t/from-env/c/linux-64/x.conda"
        );
        assert!(auth.is_none());
    }

    #[test]
    fn credentials_in_the_url_win_and_user_info_becomes_a_header() {
        let creds = Credentials::none();
        let (applied, auth) = creds.apply(&url("https://u:p%40ss+x@h.example/c"));
        assert_eq!(applied.as_str(), "https://h.example/c");
        assert_eq!(
            auth,
            Some(Authorization::Basic("u".into(), "p@ss+x".into()))
        );
        let (applied, auth) = creds.apply(&url("https://h.example/t/tok/c"));
        assert_eq!(applied.as_str(), "https://h.example/t/tok/c");
        assert!(auth.is_none());
    }

    #[test]
    fn a_stored_token_fills_the_placeholder_records_keep() {
        let mut file = AuthFile::default();
        file.hosts
            .insert("h.example".into(), Credential::Token("tok".into()));
        let creds = Credentials {
            file,
            ..Credentials::default()
        };
        let filled = creds
            .fill_token_placeholder(&url("https://h.example/t/<TOKEN>/c/"))
            .unwrap();
        assert_eq!(filled.as_str(), "https://h.example/t/tok/c/");
        assert!(creds
            .fill_token_placeholder(&url("https://h.example/c/"))
            .is_none());
        // A request for such a URL gets the token in the placeholder's place.
        let (applied, _) = creds.apply(&url("https://h.example/t/<TOKEN>/c/linux-64/x.conda"));
        assert_eq!(
            applied.as_str(),
            "https://h.example/t/tok/c/linux-64/x.conda"
        );
        // A malformed file's error never quotes its content.
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("auth.json");
        fs_err::write(&bad, r#"{"hosts": {"h": "s3cr3t-token"}}"#).unwrap();
        let err = AuthFile::read(&bad).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn an_auth_file_others_can_read_is_used_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let mut file = AuthFile::default();
        file.hosts
            .insert("h.example".into(), Credential::Token("tok".into()));
        file.write(&path).unwrap();
        let load = || Credentials::load(Some(&path), None, Vec::new()).unwrap();
        assert!(load().warnings().is_empty());
        for (mode, who) in [(0o644, "every user"), (0o640, "members of its group")] {
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let creds = load();
            assert_eq!(
                creds.for_url(&url("https://h.example/c")),
                Some(Credential::Token("tok".into()))
            );
            let [warning] = creds.warnings() else {
                panic!("{:?}", creds.warnings());
            };
            assert!(warning.contains(who), "{warning}");
            assert!(
                warning.contains(&format!("chmod 600 {}", path.display())),
                "{warning}"
            );
        }
    }

    #[test]
    fn the_auth_file_round_trips_with_mode_0600_and_debug_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pkgr").join("auth.json");
        let mut file = AuthFile::default();
        file.hosts.insert(
            "h".into(),
            Credential::Basic {
                username: "u".into(),
                password: "hunter2".into(),
            },
        );
        file.write(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs_err::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let read = AuthFile::read(&path).unwrap();
        assert_eq!(read.hosts, file.hosts);
        assert!(!format!("{read:?}").contains("hunter2"));
        assert!(AuthFile::read(&dir.path().join("none.json"))
            .unwrap()
            .hosts
            .is_empty());
    }
}
