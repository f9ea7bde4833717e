//! What can go wrong getting channels' repodata, said as what it is: the
//! network ([`RepodataError::ChannelUnreachable`]), a full cache filesystem
//! ([`RepodataError::CacheFull`]), credentials
//! ([`RepodataError::NeedsCredentials`]), anything else
//! ([`RepodataError::ChannelFailed`]).

use std::path::PathBuf;

use pkgr_cache::PackageCache;
use rattler_conda_types::Channel;

use crate::channel_names::channel_as_shown;

/// Everything that can go wrong getting the repodata of channels and the
/// records in it.
#[derive(Debug, thiserror::Error)]
pub enum RepodataError {
    /// Neither `<platform>/` nor `noarch/` of a channel exists.
    #[error("channel {channel} has no repodata.json (tried {})", tried.join(", "))]
    ChannelNotFound {
        /// The channel.
        channel: String,
        /// URLs tried (redacted).
        tried: Vec<String>,
    },
    /// A channel answered 401 or 403: it needs credentials pkgr was not given
    /// (or not the right ones).
    #[error("channel {channel} needs credentials: {url} answered HTTP {status} (store them with `pkgr auth login <host>`, or in ~/.netrc, or give them in the channel URL)")]
    NeedsCredentials {
        /// The channel's URL (redacted).
        channel: String,
        /// The URL that was refused (redacted).
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// A channel could not be reached: the network failed (no connection,
    /// a timeout, a broken-off transfer), as the error it carries says.
    #[error("channel {channel} is unreachable")]
    ChannelUnreachable {
        /// The channel.
        channel: String,
        /// Why.
        #[source]
        source: Box<pkgr_cache::CacheError>,
    },
    /// The filesystem of the cache is full (or the user's quota there is
    /// used up) while a channel's repodata was being stored: nothing is
    /// wrong with the channel.
    #[error("no space left on the filesystem of the cache {} while storing the repodata of channel {channel}: free some space there (`pkgr clean --all` removes cached repodata and unused packages), or use a cache elsewhere (--cache-dir or PKGR_CACHE_DIR)", cache.display())]
    CacheFull {
        /// The channel.
        channel: String,
        /// The cache's root directory.
        cache: PathBuf,
        /// What failed, with the file being written.
        #[source]
        source: Box<pkgr_cache::CacheError>,
    },
    /// A channel's repodata could not be loaded for another reason than the
    /// network (an HTTP error status, the cache, a local file): the error it
    /// carries says which.
    #[error("could not load the repodata of channel {channel}")]
    ChannelFailed {
        /// The channel.
        channel: String,
        /// Why.
        #[source]
        source: Box<pkgr_cache::CacheError>,
    },
    /// A channel's repodata says its packages are somewhere pkgr must not
    /// fetch from for it (an http(s) channel pointing at `file://`).
    #[error("refusing the repodata at {url}: {message}")]
    RefusedRepodata {
        /// Where it came from (redacted).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A repodata.json is not valid.
    #[error("broken repodata.json at {url}: {message}")]
    BrokenRepodata {
        /// Where it came from (redacted).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// Reading a local file failed.
    #[error("could not read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A package name asked for (`pkgr search`, a glob resolved) exists in
    /// no channel.
    #[error(transparent)]
    PackageNotFound(#[from] pkgr_solver::PackageNotFound),
    /// Something that cannot happen did (a background task failed, a
    /// shard was not fetched before it was read): a pkgr bug. (The message
    /// is the one pkgr said when this lived in the solver.)
    #[error("the solver failed: {0}")]
    Internal(String),
}

/// What went wrong loading `channel`, said as what it was: the cache's
/// filesystem full ([`RepodataError::CacheFull`]), the network
/// ([`RepodataError::ChannelUnreachable`]), or anything else
/// ([`RepodataError::ChannelFailed`], an HTTP status or a local error, which
/// its chain names). A full disk used to be reported as an unreachable
/// channel, which sent users to check their network.
pub(crate) fn channel_error(
    cache: &PackageCache,
    channel: &Channel,
    source: pkgr_cache::CacheError,
) -> RepodataError {
    let channel = channel_as_shown(channel);
    let source = Box::new(source);
    if storage_full(source.as_ref()) {
        RepodataError::CacheFull {
            channel,
            cache: cache.root().to_path_buf(),
            source,
        }
    } else if network_failed(source.as_ref()) {
        RepodataError::ChannelUnreachable { channel, source }
    } else {
        RepodataError::ChannelFailed { channel, source }
    }
}

/// Whether `error`'s chain holds an I/O error saying the filesystem is full
/// (ENOSPC) or the user's quota on it is used up (EDQUOT).
fn storage_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// Whether `error`'s chain ends in the network failing: no connection, a
/// timeout, a transfer broken off (after retries, or on every mirror).
fn network_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(fetch) = e.downcast_ref::<pkgr_fetch::FetchError>() {
            return matches!(fetch.last(), pkgr_fetch::FetchError::Transport { .. });
        }
        current = e.source();
    }
    false
}

/// The URL and status of a 401/403 answer somewhere in `error`'s chain: an
/// HTTP refusal that credentials could lift.
pub(crate) fn http_refusal<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<(&'a str, u16)> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(pkgr_fetch::FetchError::Status { url, status }) =
            e.downcast_ref::<pkgr_fetch::FetchError>()
        {
            if matches!(status, 401 | 403) {
                return Some((url, *status));
            }
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests;
