//! Downloads for pkgr: `http(s)://` and `file://` URLs are streamed to a temp file,
//! checked against the expected size and digests while they stream, and only then
//! renamed into place.
//!
//! This crate knows nothing about conda: it moves bytes and proves they are the
//! bytes that were asked for. A download that fails or does not match leaves no
//! file at the destination (the temp file is deleted when it is dropped), so a
//! caller never has to clean up after a failed download.
//!
//! One [`Fetcher`] (and so one HTTP connection pool) is meant to be shared by a
//! whole process.
//!
//! A caller that wants to work on a body while it arrives (the cache extracts
//! archives as they download) taps the download
//! ([`Fetcher::download_in_slot_tapped`], [`Tap`]): it sees every chunk with
//! its offset, in file order, through a bounded channel; the download is
//! verified and renamed into place exactly as without a tap.
//!
//! It depends on no pkgr crate but the two leaf helpers: `pkgr-redact` (how a
//! URL with credentials is shown) and `pkgr-fs` (file digests); it must not
//! depend on the cache, the solver, the linker or anything conda-specific.

mod auth;
mod retry;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use auth::{
    auth_file_exposure, env_var_for, AuthError, AuthFile, Authorization, Credential, Credentials,
};
pub use retry::{
    is_transient_status, parse_retry_after, NetworkSettings, TransportKind, MAX_BACKOFF,
    MAX_RETRY_AFTER,
};

use futures::StreamExt;
use md5::Md5;
use pkgr_fs::FileDigests;
use pkgr_redact::redact_url;
use sha2::{Digest, Sha256};
use url::Url;

/// What a download is expected to be. Every field that is `Some` is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Exact size in bytes.
    pub size: Option<u64>,
    /// SHA-256 of the content.
    pub sha256: Option<[u8; 32]>,
    /// MD5 of the content (used when that is all an index has).
    pub md5: Option<[u8; 16]>,
}

/// A completed, verified download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the file now is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its MD5.
    pub md5: [u8; 16],
}

/// Caching metadata of an HTTP response, for conditional requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCacheInfo {
    /// The `ETag` response header.
    pub etag: Option<String>,
    /// The `Last-Modified` response header.
    pub last_modified: Option<String>,
    /// The `Cache-Control` response header.
    pub cache_control: Option<String>,
}

/// The outcome of a conditional download ([`Fetcher::download_if_changed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional {
    /// The server said the copy we have is current (HTTP 304); nothing was written.
    NotModified(HttpCacheInfo),
    /// New content was downloaded to the destination.
    Downloaded(Downloaded, HttpCacheInfo),
}

/// Everything that can go wrong with a download. URLs in messages never carry
/// credentials (see [`pkgr_redact::redact_url`]).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered 404 / the local file does not exist.
    #[error("not found: {url}")]
    NotFound {
        /// The URL (redacted).
        url: String,
    },
    /// The server answered with another non-success status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL (redacted).
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed or broke off.
    #[error("could not download {url}: {message}")]
    Transport {
        /// The URL (redacted).
        url: String,
        /// What kind of failure (decides whether it is retried).
        kind: TransportKind,
        /// What the HTTP client said.
        message: String,
    },
    /// Every mirror of a URL failed.
    #[error("no mirror of {url} could serve it (tried {}; then the last one)", tried.join("; "))]
    AllMirrorsFailed {
        /// The URL asked for (redacted).
        url: String,
        /// Each mirror that failed before the last, with its error.
        tried: Vec<String>,
        /// The last mirror's error.
        #[source]
        last: Box<FetchError>,
    },
    /// Every attempt failed with a transient error: the last one, and how
    /// many attempts took how long.
    #[error("gave up on {url} after {attempts} attempts in {:.1} s", elapsed.as_secs_f64())]
    GaveUp {
        /// The URL (redacted).
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// From the first request to the last failure.
        elapsed: Duration,
        /// The last failure.
        #[source]
        last: Box<FetchError>,
    },
    /// The content does not match what the index promised.
    #[error(
        "checksum mismatch for {url}: expected {what} {expected}, got {actual} (the download was discarded; retry, or check the channel)"
    )]
    Mismatch {
        /// The URL (redacted).
        url: String,
        /// Which property differs (`sha256`, `md5`, `size`).
        what: &'static str,
        /// What the index said.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The server asked us to come back later (429 or 503 with a
    /// `Retry-After` header: seconds or an HTTP date); retried after that
    /// long (at most [`MAX_RETRY_AFTER`]).
    #[error("{url} answered HTTP {status} and asked to retry after {} s", wait.as_secs())]
    RetryAfter {
        /// The URL (redacted).
        url: String,
        /// The HTTP status code.
        status: u16,
        /// How long the server asked us to wait.
        wait: Duration,
    },
    /// A URL scheme this crate cannot fetch.
    #[error("unsupported URL scheme `{scheme}` in {url} (use http, https or file)")]
    UnsupportedScheme {
        /// The URL (redacted).
        url: String,
        /// The scheme.
        scheme: String,
    },
    /// Reading or writing a local file failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    /// True for failures worth retrying (see the `retry` module: connection
    /// trouble, timeouts, 408/429/5xx; not DNS, TLS or redirect loops).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Transport { kind, .. } => kind.is_transient(),
            FetchError::RetryAfter { .. } => true,
            FetchError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// Whether the answer was "not there" (404, a missing local file), also
    /// when every mirror tried said so or could not be reached before the
    /// last said it.
    pub fn is_not_found(&self) -> bool {
        matches!(self.last(), FetchError::NotFound { .. })
    }

    /// The error behind a [`FetchError::GaveUp`] or
    /// [`FetchError::AllMirrorsFailed`] (else this one).
    pub fn last(&self) -> &FetchError {
        match self {
            FetchError::GaveUp { last, .. } | FetchError::AllMirrorsFailed { last, .. } => {
                last.last()
            }
            other => other,
        }
    }
}

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

/// The bounded slot (a `--jobs` permit) a download works in. It is given
/// back while the download waits to retry (backoff, `Retry-After`) and
/// taken again before the next attempt, so a waiting download never keeps
/// other work from running (the design's rule: hold a bounded resource only
/// for the work itself).
#[derive(Debug)]
pub struct Slot {
    semaphore: Arc<tokio::sync::Semaphore>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slot {
    /// A slot of `semaphore`, holding `permit` (taken from it).
    pub fn new(
        semaphore: Arc<tokio::sync::Semaphore>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Self {
        Self {
            semaphore,
            permit: Some(permit),
        }
    }

    /// Takes a permit of `semaphore` (waiting for one, holding nothing).
    pub async fn acquire(semaphore: Arc<tokio::sync::Semaphore>) -> Result<Self, FetchError> {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| FetchError::Io {
                context: String::from("the jobs semaphore was closed"),
                source: std::io::Error::other(e),
            })?;
        Ok(Self::new(semaphore, permit))
    }

    /// The permit, to go on working with it (`None` only if a retry could
    /// not take one again, which the download reported as its error).
    pub fn into_permit(self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permit
    }

    fn release(&mut self) {
        self.permit = None;
    }

    async fn reacquire(&mut self) -> Result<(), FetchError> {
        if self.permit.is_none() {
            let permit =
                self.semaphore
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| FetchError::Io {
                        context: String::from("the jobs semaphore was closed"),
                        source: std::io::Error::other(e),
                    })?;
            self.permit = Some(permit);
        }
        Ok(())
    }
}

/// A chunk of a download's body as it arrived, and where in the file it
/// starts ([`Fetcher::download_in_slot_tapped`]).
#[derive(Debug, Clone)]
pub struct TapChunk {
    /// The byte offset of `bytes` in the file.
    pub offset: u64,
    /// The bytes (the very ones written to the temp file).
    pub bytes: bytes::Bytes,
}

/// The sending half of a tap: lets a caller see a download's body in file
/// order while it arrives, without this crate knowing what the bytes are
/// (see [`Fetcher::download_in_slot_tapped`]). Made by [`Tap::channel`].
///
/// The channel is bounded: when the receiver is slower than the network,
/// the download waits for it (an async send, never a blocking one), so at
/// most `capacity` chunks are held in memory; that wait does not count
/// against the read timeout (which runs only while the body is polled).
/// When the receiver is dropped, the tap detaches and the download goes on
/// at full speed without it.
#[derive(Debug)]
pub struct Tap {
    sender: Option<tokio::sync::mpsc::Sender<TapChunk>>,
}

/// The receiving half of a [`Tap`]: the chunks, then `None` once the
/// download has ended (whether it succeeded is what the download returns).
#[derive(Debug)]
pub struct TapReceiver {
    receiver: tokio::sync::mpsc::Receiver<TapChunk>,
}

impl Tap {
    /// A tap and its receiver, holding at most `capacity` chunks (at least 1)
    /// that the receiver has not taken yet.
    pub fn channel(capacity: usize) -> (Self, TapReceiver) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
        (
            Self {
                sender: Some(sender),
            },
            TapReceiver { receiver },
        )
    }

    /// A tap nobody listens to (what the untapped downloads use).
    pub fn detached() -> Self {
        Self { sender: None }
    }

    /// Whether a receiver still listens.
    fn is_attached(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Hands `bytes` (at `offset` in the file) to the receiver, waiting while
    /// its channel is full; a receiver that is gone detaches the tap.
    async fn send(&mut self, offset: u64, bytes: bytes::Bytes) {
        if let Some(sender) = &self.sender {
            if sender.send(TapChunk { offset, bytes }).await.is_err() {
                self.sender = None;
            }
        }
    }
}

impl TapReceiver {
    /// The next chunk, blocking the thread until it comes (`None`: the
    /// download ended). For a blocking thread (`spawn_blocking`) only: it
    /// panics in async code, whose threads must never block.
    pub fn blocking_recv(&mut self) -> Option<TapChunk> {
        self.receiver.blocking_recv()
    }

    /// The next chunk (`None`: the download ended).
    pub async fn recv(&mut self) -> Option<TapChunk> {
        self.receiver.recv().await
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
    client: reqwest::Client,
    settings: NetworkSettings,
    observer: Option<RetryObserver>,
    mirror_observer: Option<MirrorObserver>,
    credentials: Arc<Credentials>,
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
        unconditional(url, done)
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

    /// [`Fetcher::download_with_progress`] working in `slot`: the slot is
    /// given back while a retry waits and taken again before it.
    pub async fn download_in_slot(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        slot: &mut Slot,
    ) -> Result<Downloaded, FetchError> {
        self.download_in_slot_tapped(
            url,
            dest,
            temp_dir,
            expected,
            on_bytes,
            slot,
            Tap::detached(),
        )
        .await
    }

    /// [`Fetcher::download_in_slot`], handing every chunk of the body to
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
    pub async fn download_in_slot_tapped(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        slot: &mut Slot,
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
                Some(slot),
                &mut tap,
            )
            .await?;
        unconditional(url, done)
    }

    /// [`Fetcher::download_if_changed`] working in `slot` (see
    /// [`Fetcher::download_in_slot`]).
    pub async fn download_if_changed_in_slot(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        previous: Option<&HttpCacheInfo>,
        slot: &mut Slot,
    ) -> Result<Conditional, FetchError> {
        self.download_inner(
            url,
            dest,
            temp_dir,
            &Expected::default(),
            previous,
            &|_| {},
            Some(slot),
            &mut Tap::detached(),
        )
        .await
    }

    /// Tries `url`'s mirrors in order (itself if it has none): the next one
    /// when one fails after its retries, or answers 404 or 5xx; the last
    /// mirror's error is returned, naming every mirror tried.
    #[allow(clippy::too_many_arguments)]
    async fn download_inner(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        previous: Option<&HttpCacheInfo>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        mut slot: Option<&mut Slot>,
        tap: &mut Tap,
    ) -> Result<Conditional, FetchError> {
        let candidates = self.mirrors_of(url);
        let Some((last, earlier)) = candidates.split_last() else {
            return self
                .download_one(url, dest, temp_dir, expected, previous, on_bytes, slot, tap)
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
                    slot.as_deref_mut(),
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
            last, dest, temp_dir, expected, previous, on_bytes, slot, tap,
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

    #[allow(clippy::too_many_arguments)]
    async fn download_one(
        &self,
        url: &Url,
        dest: &Path,
        temp_dir: &Path,
        expected: &Expected,
        previous: Option<&HttpCacheInfo>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        mut slot: Option<&mut Slot>,
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
            // The slot goes back while we only wait.
            if let Some(slot) = slot.as_deref_mut() {
                slot.release();
            }
            tokio::time::sleep(wait).await;
            if let Some(slot) = slot.as_deref_mut() {
                slot.reacquire().await?;
            }
        }
    }

    /// One request. With bytes from an earlier attempt in `partial` (and no
    /// conditional request), asks for the rest with `Range` (and `If-Range`
    /// with the first answer's validator): a `206` continues the same
    /// hashing temp file, a `200` (the server ignores ranges, or the file
    /// changed) starts it over. A transfer that breaks off leaves what it
    /// received in `partial` for the next attempt.
    #[allow(clippy::too_many_arguments)]
    async fn http_once(
        &self,
        url: &Url,
        temp_dir: &Path,
        previous: Option<&HttpCacheInfo>,
        checksum_known: bool,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        partial: &mut Option<Partial>,
        tap: &mut Tap,
    ) -> Result<HttpOutcome, FetchError> {
        let redacted = redact_url(url);
        // reqwest's messages quote the URL, credentials and all: drop it,
        // ours is the redacted one.
        let transport = |e: reqwest::Error| FetchError::Transport {
            url: redacted.clone(),
            kind: TransportKind::of(&e),
            message: error_chain(&e.without_url()),
        };
        let (target, authorization) = self.credentials.apply(url);
        let mut request = self.client.get(target);
        match authorization {
            Some(Authorization::Basic(user, password)) => {
                request = request.basic_auth(user, Some(password));
            }
            Some(Authorization::Bearer(token)) => request = request.bearer_auth(token),
            None => {}
        }
        if let Some(previous) = previous {
            if let Some(etag) = &previous.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &previous.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
        }
        let resume_from = partial
            .as_ref()
            .filter(|p| previous.is_none() && p.resumable)
            .map(|p| p.sink.size)
            .filter(|&n| n > 0);
        if let Some(from) = resume_from {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
            if let Some(validator) = partial.as_ref().and_then(|p| p.validator.as_deref()) {
                request = request.header(reqwest::header::IF_RANGE, validator);
            }
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(ToOwned::to_owned)
        };
        let info = HttpCacheInfo {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
            cache_control: header(reqwest::header::CACHE_CONTROL),
        };
        if status == reqwest::StatusCode::NOT_MODIFIED && previous.is_some() {
            return Ok(HttpOutcome::NotModified(info));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(FetchError::NotFound { url: redacted });
        }
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE && resume_from.is_some() {
            // The rest cannot be had as a range: start over next time.
            *partial = None;
            return Err(FetchError::Transport {
                url: redacted,
                kind: TransportKind::Other,
                message: String::from("the server refused the range asked for; starting over"),
            });
        }
        let resumed = match (status, resume_from) {
            (reqwest::StatusCode::PARTIAL_CONTENT, Some(from)) => {
                let range = header(reqwest::header::CONTENT_RANGE).unwrap_or_default();
                if !range.starts_with(&format!("bytes {from}-")) {
                    // Not the rest we asked for: start over next time.
                    *partial = None;
                    return Err(FetchError::Transport {
                        url: redacted,
                        kind: TransportKind::Other,
                        message: format!("asked for bytes {from}- and got `{range}`"),
                    });
                }
                tracing::info!(url = %redacted, from, "resuming");
                true
            }
            _ => false,
        };
        if !status.is_success() {
            let retry_after = header(reqwest::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(&v))
                .filter(|_| matches!(status.as_u16(), 429 | 503));
            if let Some(wait) = retry_after {
                return Err(FetchError::RetryAfter {
                    url: redacted,
                    status: status.as_u16(),
                    wait,
                });
            }
            return Err(FetchError::Status {
                url: redacted,
                status: status.as_u16(),
            });
        }
        if !resumed {
            if resume_from.is_some() {
                tracing::info!(url = %redacted, "the server sent the whole file again: starting over");
            }
            *partial = Some(Partial {
                sink: VerifyingSink::create(temp_dir, &redacted)?,
                // Resuming is only safe against the same file: a strong
                // ETag, else Last-Modified, goes into If-Range.
                validator: info
                    .etag
                    .clone()
                    .filter(|e| !e.starts_with("W/"))
                    .or_else(|| info.last_modified.clone()),
                resumable: false,
            });
            if let Some(p) = partial.as_mut() {
                p.resumable = (p.validator.is_some() || checksum_known)
                    && header(reqwest::header::CONTENT_ENCODING).is_none();
            }
        }
        let Some(current) = partial.as_mut() else {
            return Err(FetchError::Transport {
                url: redacted,
                kind: TransportKind::Other,
                message: String::from("no download in progress (a pkgr bug)"),
            });
        };
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(transport)?;
            let offset = current.sink.size;
            current.sink.write(&chunk)?;
            let len = chunk.len() as u64;
            tap.send(offset, chunk).await;
            on_bytes(len);
        }
        let Some(done) = partial.take() else {
            return Err(FetchError::Transport {
                url: redacted,
                kind: TransportKind::Other,
                message: String::from("no download in progress (a pkgr bug)"),
            });
        };
        Ok(HttpOutcome::Complete(Box::new(done.sink), info))
    }
}

/// The download of an unconditional request (a 304 can only answer a
/// conditional one: here it is an error).
fn unconditional(url: &Url, done: Conditional) -> Result<Downloaded, FetchError> {
    match done {
        Conditional::Downloaded(d, _) => Ok(d),
        Conditional::NotModified(_) => Err(FetchError::Status {
            url: redact_url(url),
            status: 304,
        }),
    }
}

/// What one HTTP attempt ended with.
enum HttpOutcome {
    /// 304: the cached copy is current.
    NotModified(HttpCacheInfo),
    /// Every byte is in the sink, to be verified and moved into place.
    Complete(Box<VerifyingSink>, HttpCacheInfo),
}

/// The bytes earlier attempts received, and what identifies the file they
/// came from.
struct Partial {
    sink: VerifyingSink,
    validator: Option<String>,
    /// Whether the rest may be asked for with `Range`: the file is known
    /// (a validator for `If-Range`, or the checksums it must have) and it
    /// came without a `Content-Encoding` (ranges would count encoded bytes).
    resumable: bool,
}

/// Copies a local file like a download. Async (reads through `tokio::fs`), so
/// that dropping the future stops it and deletes the temp file, exactly as for
/// an HTTP download: nothing keeps writing after the caller has given up.
async fn copy_local(
    url: &Url,
    dest: &Path,
    temp_dir: &Path,
    expected: &Expected,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
    tap: &mut Tap,
) -> Result<Downloaded, FetchError> {
    use tokio::io::AsyncReadExt;
    let redacted = redact_url(url);
    let path = url.to_file_path().map_err(|()| FetchError::NotFound {
        url: redacted.clone(),
    })?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FetchError::NotFound { url: redacted });
        }
        Err(e) => {
            return Err(FetchError::Io {
                context: format!("could not read {redacted}"),
                source: e,
            });
        }
    };
    let mut sink = VerifyingSink::create(temp_dir, &redacted)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| FetchError::Io {
            context: format!("could not read {}", path.display()),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        let offset = sink.size;
        sink.write(&buf[..n])?;
        if tap.is_attached() {
            tap.send(offset, bytes::Bytes::copy_from_slice(&buf[..n]))
                .await;
        }
        on_bytes(n as u64);
    }
    sink.finish(dest, expected)
}

/// A temp file that hashes what is written to it and is renamed into place only
/// when the result matches what was expected. Dropping it deletes the temp file.
struct VerifyingSink {
    file: tempfile::NamedTempFile,
    sha256: Sha256,
    md5: Md5,
    size: u64,
    url: String,
}

impl VerifyingSink {
    fn create(temp_dir: &Path, url: &str) -> Result<Self, FetchError> {
        let file = tempfile::Builder::new()
            .prefix(&format!("dl-{}-", std::process::id()))
            .suffix(".part")
            .tempfile_in(temp_dir)
            .map_err(|e| FetchError::Io {
                context: format!("could not create a temp file in {}", temp_dir.display()),
                source: e,
            })?;
        Ok(Self {
            file,
            sha256: Sha256::new(),
            md5: Md5::new(),
            size: 0,
            url: url.to_owned(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        self.sha256.update(bytes);
        self.md5.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|e| FetchError::Io {
            context: format!(
                "could not write the download of {} to {}",
                self.url,
                self.file.path().display()
            ),
            source: e,
        })
    }

    fn finish(self, dest: &Path, expected: &Expected) -> Result<Downloaded, FetchError> {
        let sha256: [u8; 32] = self.sha256.finalize().into();
        let md5: [u8; 16] = self.md5.finalize().into();
        let mismatch = |what, expected: String, actual: String| FetchError::Mismatch {
            url: self.url.clone(),
            what,
            expected,
            actual,
        };
        if let Some(size) = expected.size {
            if size != self.size {
                return Err(mismatch(
                    "size",
                    format!("{size} bytes"),
                    format!("{} bytes", self.size),
                ));
            }
        }
        if let Some(want) = expected.sha256 {
            if want != sha256 {
                return Err(mismatch("sha256", hex::encode(want), hex::encode(sha256)));
            }
        } else if let Some(want) = expected.md5 {
            if want != md5 {
                return Err(mismatch("md5", hex::encode(want), hex::encode(md5)));
            }
        }
        let file = self.file;
        // Readable by everyone who shares the cache (a temp file is 0600);
        // writable by nobody but its owner.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = file
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644));
        }
        file.as_file().sync_all().map_err(|e| FetchError::Io {
            context: format!("could not flush {}", file.path().display()),
            source: e,
        })?;
        file.persist(dest).map_err(|e| FetchError::Io {
            context: format!(
                "could not move the download into place at {}",
                dest.display()
            ),
            source: e.error,
        })?;
        Ok(Downloaded {
            path: dest.to_path_buf(),
            size: self.size,
            sha256,
            md5,
        })
    }
}

impl Expected {
    /// Whether a file with these digests is what was expected (sha256 when
    /// known, else md5).
    pub fn matches(&self, file: &FileDigests) -> bool {
        self.size.is_none_or(|s| s == file.size)
            && self.sha256.is_none_or(|s| s == file.sha256)
            && (self.sha256.is_some() || self.md5.is_none_or(|m| m == file.md5))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[tokio::test]
    async fn file_download_verifies_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        fs_err::write(&src, b"hello").unwrap();
        let dest = dir.path().join("dest.bin");
        let url = Url::from_file_path(&src).unwrap();
        let fetcher = Fetcher::new().unwrap();
        let expected = Expected {
            size: Some(5),
            sha256: Some(sha(b"hello")),
            md5: None,
        };
        let d = fetcher
            .download(&url, &dest, dir.path(), &expected)
            .await
            .unwrap();
        assert_eq!(d.size, 5);
        assert_eq!(fs_err::read(&dest).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn mismatch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs_err::create_dir(&tmp).unwrap();
        let src = dir.path().join("src.bin");
        fs_err::write(&src, b"hello").unwrap();
        let dest = dir.path().join("dest.bin");
        let url = Url::from_file_path(&src).unwrap();
        let expected = Expected {
            size: None,
            sha256: Some(sha(b"other")),
            md5: None,
        };
        let err = Fetcher::new()
            .unwrap()
            .download(&url, &dest, &tmp, &expected)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Mismatch { what: "sha256", .. }),
            "{err}"
        );
        assert!(!dest.exists());
        assert_eq!(fs_err::read_dir(&tmp).unwrap().count(), 0);
    }

    /// A server on 127.0.0.1 for `body`: the first answer is a `200` with
    /// the full length and an ETag that breaks off after half the body;
    /// later ones honour `Range` if `ranges`, else send the whole body.
    fn flaky_server(body: Vec<u8>, ranges: bool) -> (Url, std::thread::JoinHandle<()>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/f.bin", listener.local_addr().unwrap())).unwrap();
        let handle = std::thread::spawn(move || {
            for (i, stream) in listener.incoming().take(2).enumerate() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut from = None;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(range) = line.strip_prefix("range: bytes=") {
                        from = range.trim().trim_end_matches('-').parse::<usize>().ok();
                    }
                }
                let head = |status: &str, len: usize, extra: &str| {
                    format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nETag: \"v1\"\r\n{extra}Connection: close\r\n\r\n")
                };
                match (i, from.filter(|_| ranges)) {
                    (0, _) => {
                        let half = body.len() / 2;
                        stream
                            .write_all(head("200 OK", body.len(), "").as_bytes())
                            .unwrap();
                        stream.write_all(&body[..half]).unwrap();
                    }
                    (_, Some(from)) => {
                        let range = format!(
                            "Content-Range: bytes {from}-{}/{}\r\n",
                            body.len() - 1,
                            body.len()
                        );
                        stream
                            .write_all(
                                head("206 Partial Content", body.len() - from, &range).as_bytes(),
                            )
                            .unwrap();
                        stream.write_all(&body[from..]).unwrap();
                    }
                    (_, None) => {
                        stream
                            .write_all(head("200 OK", body.len(), "").as_bytes())
                            .unwrap();
                        stream.write_all(&body).unwrap();
                    }
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        (url, handle)
    }

    /// Downloads `url` tapped, collecting what the tap saw: each chunk's
    /// offset and the bytes.
    async fn tapped(url: &Url, expected: &Expected, dir: &Path) -> (Vec<(u64, usize)>, Vec<u8>) {
        let settings = NetworkSettings {
            backoff_factor: 0.01,
            ..NetworkSettings::default()
        };
        let fetcher = Fetcher::with_settings(settings).unwrap();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
        let mut slot = Slot::acquire(semaphore).await.unwrap();
        let (tap, mut chunks) = Tap::channel(2);
        let collect = async {
            let mut seen = Vec::new();
            let mut bytes = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                seen.push((chunk.offset, chunk.bytes.len()));
                if chunk.offset == 0 {
                    bytes.clear();
                }
                bytes.extend_from_slice(&chunk.bytes);
            }
            (seen, bytes)
        };
        let dest = dir.join("dest.bin");
        let download =
            fetcher.download_in_slot_tapped(url, &dest, dir, expected, &|_| {}, &mut slot, tap);
        let (done, seen) = tokio::join!(download, collect);
        done.unwrap();
        seen
    }

    fn body() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_tap_sees_a_resumed_download_continue() {
        let dir = tempfile::tempdir().unwrap();
        let body = body();
        let (url, server) = flaky_server(body.clone(), true);
        let expected = Expected {
            size: Some(body.len() as u64),
            sha256: Some(sha(&body)),
            md5: None,
        };
        let (seen, bytes) = tapped(&url, &expected, dir.path()).await;
        server.join().unwrap();
        let mut next = 0;
        for (offset, len) in &seen {
            assert_eq!(*offset, next, "in order, no gap, no restart: {seen:?}");
            next += *len as u64;
        }
        assert_eq!(bytes, body);
    }

    #[tokio::test]
    async fn a_tap_sees_a_download_that_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let body = body();
        let (url, server) = flaky_server(body.clone(), false);
        let expected = Expected {
            size: Some(body.len() as u64),
            sha256: Some(sha(&body)),
            md5: None,
        };
        let (seen, bytes) = tapped(&url, &expected, dir.path()).await;
        server.join().unwrap();
        let restarts = seen
            .iter()
            .skip(1)
            .filter(|(offset, _)| *offset == 0)
            .count();
        assert_eq!(restarts, 1, "the restart is visible: {seen:?}");
        assert_eq!(bytes, body, "and after it, the whole file");
    }

    #[tokio::test]
    async fn a_tap_sees_a_local_file_and_a_dropped_receiver_detaches() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 7) as u8).collect();
        let src = dir.path().join("src.bin");
        fs_err::write(&src, &body).unwrap();
        let url = Url::from_file_path(&src).unwrap();
        let expected = Expected {
            size: Some(body.len() as u64),
            sha256: Some(sha(&body)),
            md5: None,
        };
        let (seen, bytes) = tapped(&url, &expected, dir.path()).await;
        assert!(seen.len() > 1 && seen[0].0 == 0, "{seen:?}");
        assert_eq!(bytes, body);
        // A receiver that goes away does not stop (or hang) the download.
        let fetcher = Fetcher::new().unwrap();
        let mut slot = Slot::acquire(Arc::new(tokio::sync::Semaphore::new(1)))
            .await
            .unwrap();
        let (tap, chunks) = Tap::channel(1);
        drop(chunks);
        let dest = dir.path().join("again.bin");
        let done = fetcher
            .download_in_slot_tapped(&url, &dest, dir.path(), &expected, &|_| {}, &mut slot, tap)
            .await
            .unwrap();
        assert_eq!(done.size, body.len() as u64);
    }

    #[tokio::test]
    async fn http_download_and_404() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let handle = std::thread::spawn(move || {
            for _ in 0..2 {
                let request = server.recv().unwrap();
                let response = if request.url() == "/ok" {
                    tiny_http::Response::from_data(b"payload".to_vec()).with_status_code(200)
                } else {
                    tiny_http::Response::from_data(Vec::new()).with_status_code(404)
                };
                request.respond(response).unwrap();
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let fetcher = Fetcher::new().unwrap().with_retries(0);
        let ok = Url::parse(&format!("http://{addr}/ok")).unwrap();
        let d = fetcher
            .download(&ok, &dir.path().join("a"), dir.path(), &Expected::default())
            .await
            .unwrap();
        assert_eq!(d.sha256, sha(b"payload"));
        let missing = Url::parse(&format!("http://{addr}/missing")).unwrap();
        let err = fetcher
            .download(
                &missing,
                &dir.path().join("b"),
                dir.path(),
                &Expected::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
        handle.join().unwrap();
    }
}
