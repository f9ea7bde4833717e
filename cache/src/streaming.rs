//! Extracting an archive while it downloads (the cold path of
//! [`crate::PackageCache`]'s fill; the crate docs say who owns what).
//!
//! The download hands every chunk of the body to a [`pkgr_fetch::Tap`]; a
//! blocking thread reads the chunks in order ([`TapReader`]) and unpacks
//! them into a staging directory in this process's temp directory
//! ([`archive::extract_stream`]) while the rest is still on its way. The
//! entry is published only when the download has been verified (size and
//! checksum, as for every download) **and** the stream extraction read the
//! whole body and succeeded, through the tail every fill shares
//! ([`crate::publish::publish_staging`]: `info/index.json`, paths.json complete,
//! marker, rename).
//!
//! Anything else falls back, never to a wrong result: a discontinuity (the
//! download started over from byte 0 after a retry, or moved to another
//! mirror), a stream the extractor cannot follow
//! ([`archive::ArchiveError::NotStreamable`]), a `.conda` whose zip local
//! headers are not what its central directory lists (checked against the
//! verified file: the directory is what extracting the file, and conda,
//! read), or any error of the attempt
//! removes the staging directory; once the download is verified, the entry
//! is extracted from the file exactly as without streaming
//! ([`crate::publish::extract_entry`]), so a bad archive is reported by that
//! extraction, in its usual words. The stream attempt's error is only
//! logged (debug, target `pkgr_cache::stream`). A download that fails
//! publishes nothing and leaves no staging directory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pkgr_fetch::{Tap, TapReceiver};
use pkgr_fs::lock::FileLock;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::archive::{self, ArchiveFormat, ExtractLimits, StreamedMembers};
use crate::error::join_error;
use crate::publish::{extract_entry, publish_staging};
use crate::session::Session;
use crate::{CacheError, EntryMarker};

/// How many chunks the download may be ahead of the extraction (a chunk is
/// at most a few hundred KiB: what the HTTP client reads at once, or 256 KiB
/// of a local file), so memory stays bounded whatever the archive's size:
/// about 1 MiB per fill. More buys nothing: on a fast link the extraction is
/// the bottleneck (the channel is always full), on a slow one the network
/// (always empty); the socket's buffer smooths the rest.
const TAP_CHUNKS: usize = 4;

static STREAMED: AtomicU64 = AtomicU64::new(0);
static FELL_BACK: AtomicU64 = AtomicU64::new(0);

/// How often this process extracted an archive while it downloaded, and how
/// often such an attempt was abandoned for the file ([`streaming_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamingCounts {
    /// Entries published from the stream.
    pub streamed: u64,
    /// Stream attempts abandoned, the entry extracted from the verified file.
    pub fell_back: u64,
}

/// What this process's stream extractions came to so far (for tests and
/// diagnostics; every one is also logged at debug, target
/// `pkgr_cache::stream`).
pub fn streaming_counts() -> StreamingCounts {
    StreamingCounts {
        streamed: STREAMED.load(Ordering::Relaxed),
        fell_back: FELL_BACK.load(Ordering::Relaxed),
    }
}

/// What a stream extraction is to produce.
pub(crate) struct Job {
    /// The format, from the file name.
    pub(crate) format: ArchiveFormat,
    /// The archive's size according to the index: what the stream must
    /// hold in the end, and nothing more (the extraction's budget grows
    /// with the bytes received, never with what a channel claims).
    pub(crate) size: u64,
    /// Where the verified archive will be (`pkgs/<key>.<ext>`).
    pub(crate) archive: PathBuf,
    /// The entry directory (`pkgs/<key>`).
    pub(crate) dest: PathBuf,
    /// The package's file name, for messages.
    pub(crate) display: String,
}

/// What the filling task sends once the download is verified: the marker
/// to write and the jobs permit to finish the work with.
struct Verdict {
    marker: EntryMarker,
    permit: OwnedSemaphorePermit,
}

/// A stream extraction running on its blocking thread, which owns the
/// entry's exclusive lock and the session (temp directory) from its start
/// to its end. [`Self::publish`] hands it the verified download's marker
/// and the jobs permit; [`Self::abandon`] (or dropping this) says the
/// download failed: then it removes its staging directory and only then
/// releases the lock.
pub(crate) struct Extraction {
    verdict: oneshot::Sender<Verdict>,
    handle: tokio::task::JoinHandle<Result<(), CacheError>>,
}

impl Extraction {
    /// Starts the extractor thread of `job`, owning `lock` and `session`;
    /// returns it and the tap to download with.
    pub(crate) fn start(lock: FileLock, session: Arc<Session>, job: Job) -> (Self, Tap) {
        let (tap, chunks) = Tap::channel(TAP_CHUNKS);
        let (verdict, verdict_rx) = oneshot::channel();
        // The thread's events belong to the span of the fill that started it.
        let span = tracing::Span::current();
        let handle = tokio::task::spawn_blocking(move || {
            span.in_scope(|| run(lock, &session, &job, chunks, verdict_rx))
        });
        (Self { verdict, handle }, tap)
    }

    /// The download is verified: publish the entry (from the stream, else
    /// from the file) with `marker`, finishing under `permit`. If the
    /// caller stops waiting, the thread still finishes under its lock.
    pub(crate) async fn publish(
        self,
        marker: EntryMarker,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), CacheError> {
        // A thread that is gone (it panicked) says so through its handle.
        let _ = self.verdict.send(Verdict { marker, permit });
        self.handle.await.map_err(join_error)?
    }

    /// The download failed (or was cancelled): waits until the thread has
    /// removed its staging directory and released the lock. The caller
    /// must have dropped the tap (the download did, ending).
    pub(crate) async fn abandon(self) {
        drop(self.verdict);
        let _ = self.handle.await;
    }
}

/// The extractor thread: unpacks the stream into a staging directory, then
/// waits for the download's verdict and publishes (or falls back, or
/// cleans up), releasing the lock, the permit and the session in that
/// order, only when it has stopped writing.
#[tracing::instrument(name = "extract_while_downloading", level = "debug", skip_all, fields(package = %job.display))]
fn run(
    lock: FileLock,
    session: &Arc<Session>,
    job: &Job,
    chunks: TapReceiver,
    verdict: oneshot::Receiver<Verdict>,
) -> Result<(), CacheError> {
    // The chunks' receiver is dropped in here, before we wait for the
    // verdict: a download never waits for a thread that stopped reading.
    // A panic in the archive code (a crafted archive) must not unwind
    // through here: the lock would go while the download still renames
    // the archive into `pkgs/`. It is a failed attempt like any other.
    let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        extract_streamed(job, session.dir(), chunks)
    }))
    .unwrap_or_else(|_| Err(String::from("the stream extraction panicked")));
    let Ok(Verdict { marker, permit }) = verdict.blocking_recv() else {
        // The download failed, or its task was dropped: nothing is
        // published; the staging directory goes before the lock.
        drop(streamed);
        drop(lock);
        return Err(CacheError::Cancelled);
    };
    // The verified file is in place now: the stream's members must be the
    // ones its central directory lists (what extracting the file reads).
    let attempt = streamed.and_then(|(staging, members)| {
        members.match_central_directory(&job.archive)?;
        publish_staging(
            staging,
            &job.archive,
            &job.dest,
            marker.clone(),
            &job.display,
        )
        .map_err(|e| crate::error::error_text(&e))
    });
    let result = match attempt {
        Ok(()) => {
            STREAMED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "pkgr_cache::stream", package = %job.display, "extracted while downloading");
            Ok(())
        }
        Err(why) => {
            FELL_BACK.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "pkgr_cache::stream", package = %job.display, %why, "not extracted while downloading; extracting the downloaded file");
            extract_entry(&job.archive, session.dir(), &job.dest, marker, &job.display)
        }
    };
    // Released in this order, only once the work above is over.
    drop(lock);
    drop(permit);
    result
}

/// Unpacks the stream of `job`'s archive into a new staging directory in
/// `tmp`; on any error the directory is removed (and the reason given).
/// Returns it with the zip members the stream held.
fn extract_streamed(
    job: &Job,
    tmp: &Path,
    chunks: TapReceiver,
) -> Result<(tempfile::TempDir, StreamedMembers), String> {
    let staging = tempfile::Builder::new()
        .prefix("x-")
        .tempdir_in(tmp)
        .map_err(|e| format!("no staging directory in {}: {e}", tmp.display()))?;
    let members = archive::extract_stream(
        job.format,
        TapReader::new(chunks),
        job.size,
        &job.archive,
        staging.path(),
        ExtractLimits::default(),
    )
    .map_err(|e| crate::error::error_text(&e))?;
    Ok((staging, members))
}

/// A `Read` over a tap's chunks, in file order: the end of the download is
/// the end of the stream, and a chunk that does not start where the last
/// one ended (the download started over) is an error.
pub(crate) struct TapReader {
    chunks: TapReceiver,
    current: bytes::Bytes,
    next: u64,
}

impl TapReader {
    pub(crate) fn new(chunks: TapReceiver) -> Self {
        Self {
            chunks,
            current: bytes::Bytes::new(),
            next: 0,
        }
    }
}

impl Read for TapReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            let Some(chunk) = self.chunks.blocking_recv() else {
                return Ok(0);
            };
            if chunk.offset != self.next {
                return Err(std::io::Error::other(format!(
                    "the download started over at byte {} after {} bytes",
                    chunk.offset, self.next
                )));
            }
            self.current = chunk.bytes;
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        self.next += n as u64;
        Ok(n)
    }
}
