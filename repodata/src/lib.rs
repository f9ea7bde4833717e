//! Channels' repodata, from the network (or a local channel) to the records
//! a solve or a search reads.
//!
//! [`load_channels`] gets each channel's `<platform>/` and `noarch/`
//! repodata through the cache: the CEP-16 shard index when the channel
//! serves one, else `repodata.json` (`.zst` when there), cached in the
//! cache's `repodata/` directory under the lock the cache's lock protocol
//! names ([`pkgr_cache::PackageCache::lock_repodata_file`]), with an index by
//! package name built once when it is downloaded. Each subdir becomes a
//! [`SubdirIndex`], which reads lazily (one pass that only finds where each
//! record is; a record is parsed when a solve needs its package name) and
//! is what [`pkgr_solver::solve`] reads records from
//! ([`pkgr_solver::RecordSource`]). For sharded channels,
//! [`prefetch_shards`] fetches the shards a solve can reach before it
//! starts. [`search`] finds the records a spec matches.
//!
//! The solver only solves: it knows nothing of HTTP, the cache or files.
//!
//! # What a channel is not trusted with
//!
//! A channel chooses which packages exist, not where pkgr writes or what it
//! reads locally:
//! - a record the solve chooses must name one file that is its own
//!   ([`pkgr_cache::repodata_rules::check_record`], checked by the solver);
//! - an http(s) channel's `info.base_url` (and a sharded one's
//!   `shards_base_url`) may point only at http(s) URLs
//!   ([`RepodataError::RefusedRepodata`]); a `file://` channel may point at
//!   local files;
//! - a repodata.json cut short or not JSON is never stored, a shard whose
//!   bytes do not hash to its name is refused and never cached.
//!
//! Failures to load a channel are said as what they are: the network
//! ([`RepodataError::ChannelUnreachable`]), a full cache filesystem
//! ([`RepodataError::CacheFull`]), anything else
//! ([`RepodataError::ChannelFailed`]).

mod cached;
mod channel_names;
mod channels;
mod error;
mod index;
mod search;
pub mod shards;
mod subdir;

pub use channel_names::{channel_as_recorded, channel_as_shown};
pub use channels::{load_channels, prefetch_shards, subdirs_for};
pub use error::RepodataError;
pub use search::search;
pub use subdir::SubdirIndex;
