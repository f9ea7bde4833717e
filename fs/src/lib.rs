//! The small filesystem helpers that pkgr's cache (`pkgr-cache`), its
//! downloader (`pkgr-fetch`) and its linker (`pkgr-prefix`) share:
//!
//! - [`dir`] (Unix): directory handles that never follow a symlink, for
//!   the directories of a cache other accounts can write to (open,
//!   create, list, rename, chmod and remove relative to a held handle);
//! - [`lock`]: one OS file lock (fs4's `flock`/`LockFileEx`), shared or
//!   exclusive, taken without blocking the async runtime and with a timeout
//!   that names the holder. The *protocol* built on it (per-entry locks, the
//!   global lock order) is the cache's and is written down in the crate docs
//!   of `pkgr_cache`;
//! - [`paths`]: the checks that keep a package's paths and symlink targets
//!   inside the directory they are relative to;
//! - [`resolve`]: where a path below a root really leads through the
//!   symlinks there (a package's, an environment's), checked without
//!   following them;
//! - [`hash`]: a file's size, sha256 and md5 in one streaming pass;
//! - [`bounded`]: reading a package's metadata file whole, but never more
//!   of it than a limit by its name.
//!
//! It exists so that the linker does not depend on the HTTP client or on the
//! cache for a few small things. **It must not depend on** any other pkgr
//! crate, on an HTTP client, or on the conda data model: it knows files, not
//! packages.

pub mod bounded;
#[cfg(unix)]
pub mod dir;
pub mod hash;
pub mod lock;
pub mod paths;
pub mod resolve;

pub use hash::{hash_file, FileDigests};
pub use lock::{FileLock, LockError, LockMode};
pub use paths::{check_link_target, check_relative_path};
pub use resolve::{Escape, Resolver};
