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
//! ([`Fetcher::download_with_permit_tapped`], [`Tap`]): it sees every chunk with
//! its offset, in file order, through a bounded channel; the download is
//! verified and renamed into place exactly as without a tap.
//!
//! It depends on no pkgr crate but the two leaf helpers: `pkgr-redact` (how a
//! URL with credentials is shown) and `pkgr-fs` (file digests); it must not
//! depend on the cache, the solver, the linker or anything conda-specific.

mod auth;
mod error;
mod fetcher;
mod http;
mod http_cache;
mod local;
mod permit;
mod retry;
mod tap;
mod verify;

pub use auth::{
    auth_file_exposure, env_var_for, AuthError, AuthFile, Authorization, Credential, Credentials,
};
pub use error::FetchError;
pub use fetcher::{Fetcher, MirrorObserver, RetryNotice, RetryObserver};
pub use http_cache::{Conditional, HttpCacheInfo};
pub use permit::DownloadPermit;
pub use retry::{
    is_transient_status, parse_retry_after, NetworkSettings, TransportKind, MAX_BACKOFF,
    MAX_RETRY_AFTER,
};
pub use tap::{Tap, TapChunk, TapReceiver};
pub use verify::{Downloaded, Expected};
