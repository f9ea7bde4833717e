//! [`FetchError`]: everything that can go wrong with a download.

use std::time::Duration;

use crate::{is_transient_status, TransportKind};

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
    /// long (at most [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER)).
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

/// `e` and its sources, as one line (a source whose text is already in it
/// is not repeated).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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
