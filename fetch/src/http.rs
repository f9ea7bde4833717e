//! One HTTP request of a download: credentials, conditional headers,
//! resuming with `Range`, the answer's status, and streaming the body into
//! the verifying temp file (and the tap).

use std::path::Path;

use futures::StreamExt;
use pkgr_redact::redact_url;
use url::Url;

use crate::error::error_chain;
use crate::verify::VerifyingSink;
use crate::{
    parse_retry_after, Authorization, FetchError, Fetcher, HttpCacheInfo, Tap, TransportKind,
};

impl Fetcher {
    /// One request. With bytes from an earlier attempt in `partial` (and no
    /// conditional request), asks for the rest with `Range` (and `If-Range`
    /// with the first answer's validator): a `206` continues the same
    /// hashing temp file, a `200` (the server ignores ranges, or the file
    /// changed) starts it over. A transfer that breaks off leaves what it
    /// received in `partial` for the next attempt.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(
        name = "request",
        level = "debug",
        skip_all,
        fields(resume_from = tracing::field::Empty, status = tracing::field::Empty)
    )]
    pub(crate) async fn http_once(
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
            tracing::Span::current().record("resume_from", from);
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
            if let Some(validator) = partial.as_ref().and_then(|p| p.validator.as_deref()) {
                request = request.header(reqwest::header::IF_RANGE, validator);
            }
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        tracing::debug!(status = status.as_u16(), "response");
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
        tracing::debug!(bytes = current.sink.size, "body received");
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

/// What one HTTP attempt ended with.
pub(crate) enum HttpOutcome {
    /// 304: the cached copy is current.
    NotModified(HttpCacheInfo),
    /// Every byte is in the sink, to be verified and moved into place.
    Complete(Box<VerifyingSink>, HttpCacheInfo),
}

/// The bytes earlier attempts received, and what identifies the file they
/// came from.
pub(crate) struct Partial {
    sink: VerifyingSink,
    validator: Option<String>,
    /// Whether the rest may be asked for with `Range`: the file is known
    /// (a validator for `If-Range`, or the checksums it must have) and it
    /// came without a `Content-Encoding` (ranges would count encoded bytes).
    resumable: bool,
}
