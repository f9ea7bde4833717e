//! Conditional requests: the caching headers of a response
//! ([`HttpCacheInfo`]), sent back as `If-None-Match` / `If-Modified-Since`,
//! and the outcome that a `304 Not Modified` makes possible ([`Conditional`]).

use pkgr_redact::redact_url;
use url::Url;

use crate::{Downloaded, FetchError};

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

/// The outcome of a conditional download ([`Fetcher::download_if_changed`](crate::Fetcher::download_if_changed)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional {
    /// The server said the copy we have is current (HTTP 304); nothing was written.
    NotModified(HttpCacheInfo),
    /// New content was downloaded to the destination.
    Downloaded(Downloaded, HttpCacheInfo),
}

/// The download an unconditional request ended with: a 304 can only answer
/// a conditional request, so here it is an error (`HTTP 304`).
pub(crate) fn downloaded_or_304_error(
    url: &Url,
    done: Conditional,
) -> Result<Downloaded, FetchError> {
    match done {
        Conditional::Downloaded(d, _) => Ok(d),
        Conditional::NotModified(_) => Err(FetchError::Status {
            url: redact_url(url),
            status: 304,
        }),
    }
}
