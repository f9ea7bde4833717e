//! [`Reporter`]: what the cache tells its user while it works, and
//! [`Silent`], which tells nothing.

/// Things the cache tells its user about while it works. All methods have
/// empty defaults.
pub trait Reporter: Send + Sync {
    /// Waiting for a lock held by another process (or task).
    fn waiting(&self, _what: &str, _holder_pid: Option<u32>) {}
    /// A download started; `size` if known.
    fn download_started(&self, _what: &str, _size: Option<u64>) {}
    /// Bytes of a download arrived.
    fn download_progress(&self, _what: &str, _bytes: u64) {}
    /// A download finished.
    fn download_finished(&self, _what: &str, _size: u64) {}
    /// A package was extracted into the cache.
    fn extracted(&self, _what: &str) {}
    /// A package was already complete in the cache.
    fn cached(&self, _what: &str) {}
    /// A download stopped without a result (failed, or cancelled because
    /// another package failed).
    fn download_failed(&self, _what: &str) {}
    /// A complete entry was found damaged (`problem`) and is fetched again.
    fn repairing(&self, _what: &str, _problem: &str) {}
}

/// A reporter that says nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl Reporter for Silent {}
