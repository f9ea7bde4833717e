//! [`Fetcher`]: its configuration (settings, mirrors, credentials,
//! observers), the public download calls, trying mirrors in turn, and the
//! retry loop around each attempt.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pkgr_redact::redact_url;
use url::Url;

use crate::error::error_chain;
use crate::http::{HttpOutcome, Partial};
use crate::http_cache::downloaded_or_304_error;
use crate::local::copy_local;
use crate::{
    is_transient_status, Conditional, Credentials, DownloadPermit, Downloaded, Expected,
    FetchError, HttpCacheInfo, NetworkSettings, Tap, TransportKind, MAX_RETRY_AFTER,
};

/// Whether another mirror may do better than the one that gave `error`:
/// it could not be reached, failed after its retries, or lacks the file.
fn worth_another_mirror(error: &FetchError) -> bool {
    match error.last() {
        FetchError::NotFound { .. } => true,
        FetchError::Status { status, .. } => is_transient_status(*status),
        FetchError::Transport { .. } | FetchError::RetryAfter { .. } => true,
        // A mirror serving other bytes than the index promises: another
        // one may have the right file.
        FetchError::Mismatch { .. } => true,
        _ => false,
    }
}

/// Called when a mirror failed and the next is tried.
pub type MirrorObserver = Arc<dyn Fn(&str, &FetchError) + Send + Sync>;

/// A retry about to happen, for whoever shows progress.
#[derive(Debug)]
pub struct RetryNotice<'a> {
    /// The URL (redacted).
    pub url: &'a str,
    /// Which retry this is (1 for the first).
    pub retry: u32,
    /// How many retries there may be.
    pub of: u32,
    /// How long until it is sent.
    pub wait: Duration,
    /// What went wrong.
    pub error: &'a FetchError,
    /// The read timeout in force (what "no data for N s" means).
    pub read_timeout: Duration,
}

/// Called before each retry.
pub type RetryObserver = Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>;

/// Downloads files. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct Fetcher {
    pub(crate) client: reqwest::Client,
    settings: NetworkSettings,
    observer: Option<RetryObserver>,
    mirror_observer: Option<MirrorObserver>,
    pub(crate) credentials: Arc<Credentials>,
    /// URL prefix (ending in `/`) → the mirrors to try for it, in order.
    mirrors: Arc<Vec<(String, Vec<Url>)>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher with pkgr's user agent and the default [`NetworkSettings`].
    pub fn new() -> Result<Self, FetchError> {
        Self::with_settings(NetworkSettings::default())
    }

    /// A fetcher with these timeouts and retries.
    pub fn with_settings(settings: NetworkSettings) -> Result<Self, FetchError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| FetchError::Transport {
            url: String::from("(client setup)"),
            kind: TransportKind::Other,
            message: format!("{what}: {e}"),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("pkgr/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout);
        // A configured proxy replaces the ones from the environment, and
        // reqwest then reads none of them: a scheme without a configured
        // proxy keeps the environment's. $NO_PROXY applies to both.
        let configured = settings.proxy_http.is_some() || settings.proxy_https.is_some();
        for (given, https, names) in [
            (
                &settings.proxy_http,
                false,
                ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
            ),
            (
                &settings.proxy_https,
                true,
                ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
            ),
        ] {
            let from_env = || {
                names
                    .iter()
                    .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            };
            let url = match given {
                Some(url) => url.clone(),
                None if configured => match from_env() {
                    Some(url) => url,
                    None => continue,
                },
                None => continue,
            };
            let proxy = if https {
                reqwest::Proxy::https(url.as_str())
            } else {
                reqwest::Proxy::http(url.as_str())
            }
            .map_err(|e| setup("invalid proxy", &e.without_url()))?
            .no_proxy(reqwest::NoProxy::from_env());
            builder = builder.proxy(proxy);
        }
        if let Some(bundle) = &settings.ca_bundle {
            let pem = fs_err::read(bundle).map_err(|source| FetchError::Io {
                context: format!("could not read the certificate bundle {}", bundle.display()),
                source,
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                setup(
                    &format!("{} is not a PEM certificate bundle", bundle.display()),
                    &e,
                )
            })?;
            if certificates.is_empty() {
                return Err(setup(
                    &format!("{} holds no certificate", bundle.display()),
                    &"expected PEM `-----BEGIN CERTIFICATE-----` blocks",
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if !settings.ssl_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| setup("the HTTP client", &e))?;
        Ok(Self {
            client,
            settings,
            observer: None,
            mirror_observer: None,
            credentials: Arc::new(Credentials::none()),
            mirrors: Arc::new(Vec::new()),
        })
    }

    /// Requests for a URL under a channel of `mirrors` (base URL → mirror
    /// base URLs) go to each mirror in turn (see [`Self::download`]); the
    /// channel's own URL is tried only if it is in its list.
    #[must_use]
    pub fn with_mirrors(mut self, mirrors: Vec<(Url, Vec<Url>)>) -> Self {
        let slash = |u: &Url| {
            let text = u.as_str();
            if text.ends_with('/') {
                text.to_owned()
            } else {
                format!("{text}/")
            }
        };
        self.mirrors = Arc::new(
            mirrors
                .iter()
                .map(|(channel, list)| {
                    (
                        slash(channel),
                        list.iter()
                            .filter_map(|m| Url::parse(&slash(m)).ok())
                            .collect(),
                    )
                })
                .collect(),
        );
        self
    }

    /// Calls `observer` when a mirror fails and the next one is tried.
    #[must_use]
    pub fn with_mirror_observer(mut self, observer: MirrorObserver) -> Self {
        self.mirror_observer = Some(observer);
        self
    }

    /// Sends each request with the credential `credentials` has for its
    /// host (see the `auth` module).
    #[must_use]
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Arc::new(credentials);
        self
    }

    /// The credentials requests are sent with.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Sets how many times a transient failure is retried.
    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.settings.max_retries = retries;
        self
    }

    /// Calls `observer` before every retry (to say on the terminal what is
    /// being waited for).
    #[must_use]
    pub fn with_retry_observer(mut self, observer: RetryObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &NetworkSettings {
        &self.settings
    }

    /// Downloads `url` to `dest`: the bytes stream into a temp file in
    /// `temp_dir` (which must be on the same filesystem as `dest`), are checked
    /// against `expected`, and the temp file is renamed to `dest` only when they
    /// match. On any error nothing is left at `dest` or in `temp_dir`.
    pub async fn download(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
    ) -> Result<Downloaded, FetchError> {
        self.download_with_progress(url, dest, temp_dir, expected, &|_| {})
            .await
    }

    /// [`Fetcher::download`], calling `on_bytes` with the size of every chunk
    /// as it arrives (for progress bars).
    pub async fn download_with_progress(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Downloaded, FetchError> {
        let done = self
            .download_inner(
                url,
                dest,
                temp_dir,
                expected,
                None,
                on_bytes,
                None,
                &mut Tap::detached(),
            )
            .await?;
        downloaded_or_304_error(url, done)
    }

    /// Like [`Fetcher::download`], but sends `If-None-Match` / `If-Modified-Since`
    /// from `previous`, and writes nothing when the server answers 304.
    /// `file://` URLs are always copied.
    pub async fn download_if_changed(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        previous: Option<&HttpCacheInfo>,
    ) -> Result<Conditional, FetchError> {
        self.download_inner(
            url,
            dest,
            temp_dir,
            &Expected::default(),
            previous,
            &|_| {},
            None,
            &mut Tap::detached(),
        )
        .await
    }

    /// [`Fetcher::download_with_progress`] holding `permit_guard`: the permit is
    /// given back while a retry waits and taken again before it.
    pub async fn download_with_permit(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        permit_guard: &mut DownloadPermit,
    ) -> Result<Downloaded, FetchError> {
        self.download_with_permit_tapped(
            url,
            dest,
            temp_dir,
            expected,
            on_bytes,
            permit_guard,
            Tap::detached(),
        )
        .await
    }

    /// [`Fetcher::download_with_permit`], handing every chunk of the body to
    /// `tap` as it arrives (after it is written to the temp file, and
    /// before `on_bytes` hears of it), for a caller that wants to work on
    /// the bytes while they come. The download itself is unchanged: it is
    /// verified and renamed into place as always, and only its result says
    /// whether the bytes the tap saw are the file's.
    ///
    /// What the tap sees, in order: the chunks of each attempt, each with
    /// its offset in the file. A retry that resumes with `Range` continues
    /// at the offset where the last chunk ended; anything that starts the
    /// file over (a `200` to a `Range` request, a retry that cannot resume,
    /// the next mirror) starts again at offset 0, so a receiver that checks
    /// each offset against the bytes it has seen notices the discontinuity.
    /// `file://` URLs are tapped too (one attempt, from 0). The tap is
    /// dropped (its receiver then gets `None`) when this returns.
    #[allow(clippy::too_many_arguments)]
    pub async fn download_with_permit_tapped(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        permit_guard: &mut DownloadPermit,
        mut tap: Tap,
    ) -> Result<Downloaded, FetchError> {
        let done = self
            .download_inner(
                url,
                dest,
                temp_dir,
                expected,
                None,
                on_bytes,
                Some(permit_guard),
                &mut tap,
            )
            .await?;
        downloaded_or_304_error(url, done)
    }

    /// [`Fetcher::download_if_changed`] holding `permit_guard` (see
    /// [`Fetcher::download_with_permit`]).
    pub async fn download_if_changed_with_permit(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        previous: Option<&HttpCacheInfo>,
        permit_guard: &mut DownloadPermit,
    ) -> Result<Conditional, FetchError> {
        self.download_inner(
            url,
            dest,
            temp_dir,
            &Expected::default(),
            previous,
            &|_| {},
            Some(permit_guard),
            &mut Tap::detached(),
        )
        .await
    }

    /// Tries `url`'s mirrors in order (itself if it has none): the next one
    /// when one fails after its retries, or answers 404 or 5xx; the last
    /// mirror's error is returned, naming every mirror tried.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(
        name = "download",
        level = "debug",
        skip_all,
        fields(url = %redact_url(url), dest = %dest.display(), conditional = previous.is_some())
    )]
    async fn download_inner(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        previous: Option<&HttpCacheInfo>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        mut permit_guard: Option<&mut DownloadPermit>,
        tap: &mut Tap,
    ) -> Result<Conditional, FetchError> {
        let candidates = self.mirrors_of(url);
        let Some((last, earlier)) = candidates.split_last() else {
            return self
                .download_one(
                    url,
                    dest,
                    temp_dir,
                    expected,
                    previous,
                    on_bytes,
                    permit_guard,
                    tap,
                )
                .await;
        };
        let mut failed: Vec<String> = Vec::new();
        for mirror in earlier {
            match self
                .download_one(
                    mirror,
                    dest,
                    temp_dir,
                    expected,
                    previous,
                    on_bytes,
                    permit_guard.as_deref_mut(),
                    tap,
                )
                .await
            {
                Ok(done) => return Ok(done),
                Err(error) if worth_another_mirror(&error) => {
                    tracing::info!(mirror = %redact_url(mirror), error = %error, "trying the next mirror");
                    if let Some(observer) = &self.mirror_observer {
                        observer(&redact_url(mirror), &error);
                    }
                    failed.push(format!("{}: {}", redact_url(mirror), error_chain(&error)));
                }
                Err(error) => return Err(error),
            }
        }
        self.download_one(
            last,
            dest,
            temp_dir,
            expected,
            previous,
            on_bytes,
            permit_guard,
            tap,
        )
        .await
        .map_err(|error| {
            if failed.is_empty() {
                error
            } else {
                FetchError::AllMirrorsFailed {
                    url: redact_url(url),
                    tried: failed,
                    last: Box::new(error),
                }
            }
        })
    }

    /// The URLs to try for `url`: each mirror of the longest mirrored prefix
    /// it starts with, with the rest of `url` after it; none if no prefix
    /// is mirrored.
    fn mirrors_of(&self, url: &Url) -> Vec<Url> {
        let text = url.as_str();
        let Some((prefix, mirrors)) = self
            .mirrors
            .iter()
            .filter(|(prefix, _)| text.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
        else {
            return Vec::new();
        };
        let rest = &text[prefix.len()..];
        mirrors
            .iter()
            .filter_map(|m| Url::parse(&format!("{}{rest}", m.as_str())).ok())
            .collect()
    }

    /// Downloads from `url` itself (one mirror, or the URL asked for),
    /// retrying transient failures; the permit is given back while a retry
    /// waits.
    #[allow(clippy::too_many_arguments)]
    // The URL is not the last field: a log line's `url}:` would not end it
    // for the redaction of what pkgr prints.
    #[tracing::instrument(
        name = "fetch",
        level = "debug",
        skip_all,
        fields(url = %redact_url(url), max_retries = self.settings.max_retries)
    )]
    async fn download_one(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        previous: Option<&HttpCacheInfo>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        mut permit_guard: Option<&mut DownloadPermit>,
        tap: &mut Tap,
    ) -> Result<Conditional, FetchError> {
        let started = Instant::now();
        let mut retry = 0;
        // What earlier attempts received, continued with `Range`.
        let mut partial: Option<Partial> = None;
        let checksum_known = expected.sha256.is_some() || expected.md5.is_some();
        loop {
            tracing::debug!(url = %redact_url(url), retry, "fetching");
            let result = match url.scheme() {
                "http" | "https" => self
                    .http_once(
                        url,
                        temp_dir,
                        previous,
                        checksum_known,
                        on_bytes,
                        &mut partial,
                        tap,
                    )
                    .await
                    .and_then(|done| match done {
                        HttpOutcome::NotModified(info) => Ok(Conditional::NotModified(info)),
                        HttpOutcome::Complete(sink, info) => sink
                            .finish(dest, expected)
                            .map(|d| Conditional::Downloaded(d, info)),
                    }),
                "file" => copy_local(url, dest, temp_dir, expected, on_bytes, tap)
                    .await
                    .map(|d| Conditional::Downloaded(d, HttpCacheInfo::default())),
                scheme => {
                    return Err(FetchError::UnsupportedScheme {
                        url: redact_url(url),
                        scheme: scheme.to_owned(),
                    });
                }
            };
            let error = match result {
                Ok(done) => return Ok(done),
                Err(error) => error,
            };
            if !error.is_transient() {
                return Err(error);
            }
            if retry >= self.settings.max_retries {
                if retry == 0 {
                    return Err(error);
                }
                return Err(FetchError::GaveUp {
                    url: redact_url(url),
                    attempts: retry + 1,
                    elapsed: started.elapsed(),
                    last: Box::new(error),
                });
            }
            retry += 1;
            let wait = match &error {
                // What the server asked for, within reason.
                FetchError::RetryAfter { wait, .. } => (*wait).min(MAX_RETRY_AFTER),
                _ => self.settings.backoff(retry),
            };
            tracing::info!(url = %redact_url(url), retry, error = %error, ?wait, "retrying");
            if let Some(observer) = &self.observer {
                observer(&RetryNotice {
                    url: &redact_url(url),
                    retry,
                    of: self.settings.max_retries,
                    wait,
                    error: &error,
                    read_timeout: self.settings.read_timeout,
                });
            }
            // The permit goes back while we only wait.
            if let Some(permit_guard) = permit_guard.as_deref_mut() {
                permit_guard.release();
            }
            tokio::time::sleep(wait).await;
            if let Some(permit_guard) = permit_guard.as_deref_mut() {
                permit_guard.reacquire().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests;
