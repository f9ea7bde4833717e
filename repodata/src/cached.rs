//! Cached repodata: `repodata.json` (and `.zst`) per subdir, its index, and
//! sharded repodata's shard index, each fetched under its own lock
//! ([`pkgr_cache::PackageCache::lock_repodata_file`]) in the cache's
//! `repodata/` directory, with its HTTP validators in `<hash>.info.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pkgr_cache::{write_atomically, CacheError, PackageCache, Reporter};
use pkgr_fetch::{Conditional, HttpCacheInfo};
use pkgr_fs::lock::FileLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::index::RepodataIndex;
use crate::shards::{self, ShardIndex};

/// A failed I/O step, said with what was being done.
fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
    let context = context.into();
    move |source| CacheError::Io { context, source }
}

/// Returns the path of an up-to-date copy of `<subdir_url>/repodata.json`.
///
/// `file://` channels are read in place. For http(s) the copy in
/// `repodata/` is used when it is fresh (fetched by any process since this
/// one started, or within the longer of the server's `Cache-Control:
/// max-age` and the TTL of [`pkgr_cache::RepodataPolicy`]), else it is
/// revalidated or downloaded under the file's exclusive lock. `Ok(None)` when
/// the channel has no such subdir (404 / no file).
#[tracing::instrument(level = "debug", skip_all, fields(url = %pkgr_redact::redact_url(subdir_url)))]
pub(crate) async fn fetch_repodata(
    cache: &PackageCache,
    subdir_url: &Url,
    reporter: &dyn Reporter,
) -> Result<Option<RepodataFile>, CacheError> {
    let url = join_url(subdir_url, "repodata.json");
    let redacted = pkgr_redact::redact_url(&url);
    if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|()| CacheError::Io {
            context: format!("{redacted} is not a local path"),
            source: std::io::Error::other("bad file URL"),
        })?;
        return open_local_indexed(cache, path, &url, redacted).await;
    }
    if cache.is_read_only() {
        return read_only_repodata(cache, &url, &redacted).await;
    }
    let (paths, _lock) = lock_repodata(cache, &url, &redacted, reporter).await?;
    let info: Option<RepodataInfo> = fs_err::read_to_string(&paths.info)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let policy = cache.repodata_policy();
    let have_copy = paths.json.is_file();
    if let Some(info) = &info {
        // A subdir the channel did not have is asked for again (a 404
        // may be passing), except offline.
        if info.not_found && policy.offline {
            return Ok(None);
        }
        let usable = policy.offline || (!policy.refresh && info.is_fresh(policy.ttl));
        if usable && have_copy && !info.not_found {
            return open_indexed(cache, &paths, &redacted).await.map(Some);
        }
    }
    if policy.offline {
        return Err(CacheError::Offline { what: redacted });
    }
    let tmp = cache.tmp_at();
    let now = unix_now();
    // `repodata.json.zst` (about 1/5 of the JSON) when the channel has it;
    // whether it has is remembered for a while, so the probe is not paid
    // on every run.
    let try_zst = info.as_ref().is_none_or(|i| i.zst_worth_trying(now));
    let mut zst_known = info.as_ref().and_then(|i| i.zst);
    let mut fetched = None;
    reporter.download_started(&redacted, None);
    if try_zst {
        let zst_url = join_url(subdir_url, "repodata.json.zst");
        let previous = info
            .as_ref()
            .filter(|i| have_copy && i.source.as_deref() == Some("zst"))
            .map(RepodataInfo::http_cache_info);
        match download_repodata(cache, &zst_url, &paths, previous.as_ref(), true).await {
            Ok(result) => {
                zst_known = Some(true);
                fetched = Some((result, "zst"));
            }
            Err(CacheError::Fetch { source, .. }) if source.is_not_found() => {
                zst_known = Some(false);
            }
            Err(e) => {
                reporter.download_failed(&redacted);
                return Err(with_url(e, &redacted));
            }
        }
    }
    let (result, source) = match fetched {
        Some(fetched) => fetched,
        None => {
            let previous = info
                .as_ref()
                .filter(|i| have_copy && i.source.as_deref() != Some("zst"))
                .map(RepodataInfo::http_cache_info);
            match download_repodata(cache, &url, &paths, previous.as_ref(), false).await {
                Ok(result) => (result, "json"),
                Err(CacheError::Fetch { source, .. }) if source.is_not_found() => {
                    reporter.download_failed(&redacted);
                    // Remembered (the channel has no such subdir), so
                    // that --offline knows it.
                    let info = RepodataInfo {
                        url: redacted,
                        etag: None,
                        last_modified: None,
                        cache_control: None,
                        fetched_at_unix: now,
                        source: None,
                        zst: zst_known,
                        zst_checked_unix: Some(now),
                        not_found: true,
                    };
                    write_atomically(
                        &paths.info,
                        &tmp,
                        &serde_json::to_vec_pretty(&info).unwrap_or_default(),
                    )?;
                    return Ok(None);
                }
                Err(e) => {
                    reporter.download_failed(&redacted);
                    return Err(with_url(e, &redacted));
                }
            }
        }
    };
    let (http, size) = match result {
        Conditional::NotModified(http) => (validators_after_304(http, info.as_ref()), None),
        Conditional::Downloaded(d, http) => (http, Some(d.size)),
    };
    match size {
        Some(size) => reporter.download_finished(&redacted, size),
        None => reporter.download_failed(&redacted),
    }
    let info = RepodataInfo {
        url: redacted.clone(),
        etag: http.etag,
        last_modified: http.last_modified,
        cache_control: http.cache_control,
        fetched_at_unix: now,
        source: Some(source.to_owned()),
        zst: zst_known,
        zst_checked_unix: if try_zst {
            Some(now)
        } else {
            info.as_ref().and_then(|i| i.zst_checked_unix)
        },
        not_found: false,
    };
    write_atomically(
        &paths.info,
        &tmp,
        &serde_json::to_vec_pretty(&info).unwrap_or_default(),
    )?;
    // Opened while we hold the lock: a `clean --all` that removes the file
    // later does not take it away from us.
    open_indexed(cache, &paths, &redacted).await.map(Some)
}

/// [`fetch_repodata`] in a read-only cache (no lock: nothing
/// writes it): the cached copy when it may be used as it is (fresh, or
/// `--offline`), a subdir the channel was found not to have as missing;
/// anything else needs a download, which cannot be stored.
async fn read_only_repodata(
    cache: &PackageCache,
    url: &Url,
    redacted: &str,
) -> Result<Option<RepodataFile>, CacheError> {
    let paths = repodata_paths(cache, url);
    let info: Option<RepodataInfo> = fs_err::read_to_string(&paths.info)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let policy = cache.repodata_policy();
    let have_copy = paths.json.is_file();
    match info {
        Some(info) if info.not_found => Ok(None),
        Some(info)
            if have_copy && (policy.offline || (!policy.refresh && info.is_fresh(policy.ttl))) =>
        {
            open_indexed(cache, &paths, redacted).await.map(Some)
        }
        _ if policy.offline => Err(CacheError::Offline {
            what: redacted.to_owned(),
        }),
        _ if have_copy => Err(cache.read_only_error(format!(
            "download {redacted} into it (its copy is out of date; --offline uses it as it is)"
        ))),
        _ => Err(cache.read_only_error(format!("download {redacted} into it"))),
    }
}

/// A local channel's repodata.json, read in place through an index kept
/// in the cache (keyed by the file's URL, size and modification time, so
/// a changed file is indexed again): a solve reads only what it needs,
/// as for a remote channel. The index is written by temp file and rename,
/// so processes that build it at once are harmless.
async fn open_local_indexed(
    cache: &PackageCache,
    path: PathBuf,
    url: &Url,
    redacted: String,
) -> Result<Option<RepodataFile>, CacheError> {
    let Some(mut file) = RepodataFile::open(path)? else {
        return Ok(None);
    };
    let index_path = repodata_paths(cache, url).index;
    let tmp = cache.tmp_at();
    let writable = !cache.is_read_only();
    // Keeps the directories the paths above are anchored at open.
    let session = cache.session_guard();
    tokio::task::spawn_blocking(move || {
        let _session = session;
        let meta = file
            .file
            .metadata()
            .map_err(io_error(format!("reading {}", file.path.display())))?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        if let Some(index) = RepodataIndex::read(&index_path, meta.len(), Some(modified_ns)) {
            file.index = Some(index);
            return Ok(Some(file));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file.file, &mut bytes)
            .map_err(io_error(format!("reading {}", file.path.display())))?;
        let index = RepodataIndex::build(&bytes).map_err(|problem| CacheError::BrokenRepodata {
            url: redacted,
            problem,
        })?;
        if writable {
            write_index(&index, meta.len(), Some(modified_ns), &index_path, &tmp)?;
        }
        file.index = Some(index);
        Ok(Some(file))
    })
    .await
    .map_err(pkgr_cache::background_task_error)?
}

/// The CEP-16 shard index of `subdir_url` (`repodata_shards.msgpack.zst`),
/// cached like repodata.json (validators, lock, TTL, `--refresh`,
/// `--offline`); `Ok(None)` when the channel has none (404, remembered for
/// the TTL so the probe is not paid on every run). A body that does not
/// decode is never stored.
#[tracing::instrument(level = "debug", skip_all, fields(url = %pkgr_redact::redact_url(subdir_url)))]
pub(crate) async fn fetch_shard_index(
    cache: &PackageCache,
    subdir_url: &Url,
    reporter: &dyn Reporter,
) -> Result<Option<ShardIndex>, CacheError> {
    let url = join_url(subdir_url, "repodata_shards.msgpack.zst");
    let redacted = pkgr_redact::redact_url(&url);
    let parse = |bytes: &[u8]| {
        shards::decode_msgpack_zst(bytes)
            .and_then(|value| ShardIndex::parse(&value, subdir_url))
            .map_err(|problem| CacheError::BrokenRepodata {
                url: redacted.clone(),
                problem,
            })
    };
    if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|()| CacheError::Io {
            context: format!("{redacted} is not a local path"),
            source: std::io::Error::other("bad file URL"),
        })?;
        return match fs_err::read(&path) {
            Ok(bytes) => parse(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading a shard index")(e)),
        };
    }
    if cache.is_read_only() {
        // What is cached and may be used as it is; else none, and the
        // channel's repodata.json serves (as offline).
        let paths = repodata_paths(cache, &url);
        let stored = paths.json.with_extension("msgpack.zst");
        let info: Option<RepodataInfo> = fs_err::read_to_string(&paths.info)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let policy = cache.repodata_policy();
        let usable = info.filter(|info| {
            !info.not_found && (policy.offline || (!policy.refresh && info.is_fresh(policy.ttl)))
        });
        return match (usable, fs_err::read(&stored)) {
            (Some(_), Ok(bytes)) => parse(&bytes).map(Some),
            _ => Ok(None),
        };
    }
    let (paths, _lock) = lock_repodata(cache, &url, &redacted, reporter).await?;
    let stored = paths.json.with_extension("msgpack.zst");
    let info: Option<RepodataInfo> = fs_err::read_to_string(&paths.info)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let policy = cache.repodata_policy();
    let have_copy = stored.is_file();
    if let Some(info) = &info {
        let usable = policy.offline || (!policy.refresh && info.is_fresh(policy.ttl));
        if usable && info.not_found {
            return Ok(None);
        }
        if usable && have_copy {
            let bytes = fs_err::read(&stored).map_err(io_error("reading a shard index"))?;
            return parse(&bytes).map(Some);
        }
    }
    if policy.offline {
        // Not cached: the channel's repodata.json, if cached, serves.
        return Ok(None);
    }
    let tmp = cache.tmp_at();
    let previous = info
        .as_ref()
        .filter(|i| have_copy && !i.not_found)
        .map(RepodataInfo::http_cache_info);
    let download = tmp.join(format!("shards-{}.msgpack.zst", paths.name));
    let result = {
        let mut permit_guard = pkgr_fetch::DownloadPermit::acquire(cache.jobs().clone())
            .await
            .map_err(|source| CacheError::Fetch {
                package: redacted.clone(),
                source,
            })?;
        cache
            .fetcher()
            .download_if_changed_with_permit(
                &url,
                &download,
                &tmp,
                previous.as_ref(),
                &mut permit_guard,
            )
            .await
    };
    let now = unix_now();
    let (http, not_found) = match result {
        Ok(Conditional::NotModified(http)) => (validators_after_304(http, info.as_ref()), false),
        Ok(Conditional::Downloaded(d, http)) => {
            let bytes = fs_err::read(&download).map_err(io_error("reading a shard index"));
            let checked = bytes.and_then(|b| parse(&b));
            if let Err(e) = checked {
                let _ = fs_err::remove_file(&download);
                return Err(e);
            }
            fs_err::rename(&download, &stored)
                .map_err(io_error("putting a shard index in place"))?;
            reporter.download_finished(&redacted, d.size);
            (http, false)
        }
        Err(e) if e.is_not_found() => (HttpCacheInfo::default(), true),
        Err(source) => {
            return Err(CacheError::Fetch {
                package: redacted,
                source,
            })
        }
    };
    let record = RepodataInfo {
        url: redacted.clone(),
        etag: http.etag,
        last_modified: http.last_modified,
        cache_control: http.cache_control,
        fetched_at_unix: now,
        source: Some(String::from("shards")),
        zst: None,
        zst_checked_unix: None,
        not_found,
    };
    write_atomically(
        &paths.info,
        &tmp,
        &serde_json::to_vec_pretty(&record).unwrap_or_default(),
    )?;
    if not_found {
        return Ok(None);
    }
    let bytes = fs_err::read(&stored).map_err(io_error("reading a shard index"))?;
    parse(&bytes).map(Some)
}

/// Downloads `url` (conditionally on `previous`) and, if new content came,
/// decompresses it (`zst`), checks it and indexes it in one pass
/// ([`RepodataIndex::build`]), and puts the JSON and its index in place.
/// A body cut short or not JSON never replaces a good copy and is never
/// stored under the server's validators (which would make every later
/// run get a 304 for it). The caller holds the repodata lock.
async fn download_repodata(
    cache: &PackageCache,
    url: &Url,
    paths: &RepodataPaths,
    previous: Option<&HttpCacheInfo>,
    zst: bool,
) -> Result<Conditional, CacheError> {
    let tmp = cache.tmp_at();
    let download = tmp.join(format!(
        "repodata-{}.{}",
        paths.name,
        if zst { "json.zst" } else { "json" }
    ));
    let result = {
        let mut permit_guard = pkgr_fetch::DownloadPermit::acquire(cache.jobs().clone())
            .await
            .map_err(|source| CacheError::Fetch {
                package: pkgr_redact::redact_url(url),
                source,
            })?;
        cache
            .fetcher()
            .download_if_changed_with_permit(url, &download, &tmp, previous, &mut permit_guard)
            .await
            .map_err(|source| CacheError::Fetch {
                package: pkgr_redact::redact_url(url),
                source,
            })?
    };
    if let Conditional::Downloaded(..) = &result {
        let (json, index, downloaded) = (paths.json.clone(), paths.index.clone(), download.clone());
        let redacted = pkgr_redact::redact_url(url);
        let session = cache.session_guard();
        tokio::task::spawn_blocking(move || {
            let _session = session;
            let placed = place_repodata(&downloaded, zst, &json, &index, &tmp);
            let _ = fs_err::remove_file(&downloaded);
            placed.map_err(|problem| CacheError::BrokenRepodata {
                url: redacted,
                problem,
            })
        })
        .await
        .map_err(pkgr_cache::background_task_error)??;
    }
    Ok(result)
}

/// Opens the cached JSON and reads its index (both under the lock the
/// caller holds); an index that is missing or was written for another
/// file (a crash in between, an older pkgr) is built now.
async fn open_indexed(
    cache: &PackageCache,
    paths: &RepodataPaths,
    redacted: &str,
) -> Result<RepodataFile, CacheError> {
    let (json, index_path, tmp) = (paths.json.clone(), paths.index.clone(), cache.tmp_at());
    let redacted = redacted.to_owned();
    let writable = !cache.is_read_only();
    let session = cache.session_guard();
    tokio::task::spawn_blocking(move || {
        let _session = session;
        let file = fs_err::File::open(&json).map_err(io_error("opening cached repodata"))?;
        let size = file
            .metadata()
            .map_err(io_error("reading cached repodata"))?
            .len();
        let index = match RepodataIndex::read(&index_path, size, None) {
            Some(index) => index,
            None => {
                let bytes = fs_err::read(&json).map_err(io_error("reading cached repodata"))?;
                let index =
                    RepodataIndex::build(&bytes).map_err(|problem| CacheError::BrokenRepodata {
                        url: redacted.clone(),
                        problem,
                    })?;
                if writable {
                    write_index(&index, bytes.len() as u64, None, &index_path, &tmp)?;
                }
                index
            }
        };
        Ok(RepodataFile {
            path: pkgr_fs::dir::real_path(&json),
            file,
            index: Some(index),
        })
    })
    .await
    .map_err(pkgr_cache::background_task_error)?
}

/// Forgets the cached copy of `<subdir_url>/repodata.json` (its validators
/// first, so it is never revalidated again), for a copy that turned out
/// not to parse: the next [`fetch_repodata`] downloads it anew.
/// `file://` channels have no cached copy.
pub(crate) async fn discard_repodata(
    cache: &PackageCache,
    subdir_url: &Url,
    reporter: &dyn Reporter,
) -> Result<(), CacheError> {
    let url = join_url(subdir_url, "repodata.json");
    if url.scheme() == "file" {
        return Ok(());
    }
    let redacted = pkgr_redact::redact_url(&url);
    if cache.is_read_only() {
        return Err(cache.read_only_error(format!("replace its broken copy of {redacted}")));
    }
    let (paths, _lock) = lock_repodata(cache, &url, &redacted, reporter).await?;
    for path in [&paths.info, &paths.json, &paths.index] {
        match fs_err::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("removing broken cached repodata")(e)),
        }
    }
    Ok(())
}

/// Takes the exclusive lock of the cached copy of the repodata at `url`.
async fn lock_repodata(
    cache: &PackageCache,
    url: &Url,
    redacted: &str,
    reporter: &dyn Reporter,
) -> Result<(RepodataPaths, FileLock), CacheError> {
    let paths = repodata_paths(cache, url);
    let lock = cache
        .lock_repodata_file(&paths.name, redacted, reporter)
        .await?;
    Ok((paths, lock))
}

/// Where the cached copy of the repodata at `url` lives.
fn repodata_paths(cache: &PackageCache, url: &Url) -> RepodataPaths {
    let hash = hex::encode(Sha256::digest(url.as_str().as_bytes()));
    let name = hash[..16].to_owned();
    // Through the held `repodata/` in a writable cache.
    let base = cache.repodata_dir().join(&name);
    RepodataPaths {
        json: base.with_extension("json"),
        info: base.with_extension("info.json"),
        index: base.with_extension("index"),
        name,
    }
}

/// The files of one cached repodata.json.
struct RepodataPaths {
    json: PathBuf,
    info: PathBuf,
    index: PathBuf,
    name: String,
}

/// Decompresses (`zst`) the downloaded repodata, checks and indexes it, and
/// renames the JSON to `json`, then writes its index (the index names the
/// JSON's size, so an index left from an older file is never used with it).
fn place_repodata(
    downloaded: &Path,
    zst: bool,
    json: &Path,
    index_path: &Path,
    tmp: &Path,
) -> Result<(), String> {
    let bytes = if zst {
        let file = fs_err::File::open(downloaded).map_err(|e| e.to_string())?;
        zstd::stream::decode_all(std::io::BufReader::new(file))
            .map_err(|e| format!("its zstd stream is broken ({e})"))?
    } else {
        fs_err::read(downloaded).map_err(|e| e.to_string())?
    };
    let index = RepodataIndex::build(&bytes)?;
    if zst {
        write_atomically(json, tmp, &bytes).map_err(|e| pkgr_cache::error_chain_text(&e))?;
    } else {
        fs_err::rename(downloaded, json).map_err(|e| e.to_string())?;
    }
    write_index(&index, bytes.len() as u64, None, index_path, tmp)
        .map_err(|e| pkgr_cache::error_chain_text(&e))
}

fn write_index(
    index: &RepodataIndex,
    json_size: u64,
    modified_ns: Option<u128>,
    path: &Path,
    tmp: &Path,
) -> Result<(), CacheError> {
    let mut text = Vec::new();
    index
        .write_to(&mut text, json_size, modified_ns)
        .map_err(io_error("writing a repodata index"))?;
    write_atomically(path, tmp, &text)
}

/// The validators after a 304: a 304 need not repeat them (Python's
/// http.server sends none), so the ones it confirmed are kept.
fn validators_after_304(http: HttpCacheInfo, previous: Option<&RepodataInfo>) -> HttpCacheInfo {
    let kept = previous
        .map(RepodataInfo::http_cache_info)
        .unwrap_or_default();
    HttpCacheInfo {
        etag: http.etag.or(kept.etag),
        last_modified: http.last_modified.or(kept.last_modified),
        cache_control: http.cache_control.or(kept.cache_control),
    }
}

/// A download error, said with the redacted URL of the repodata it was for.
fn with_url(e: CacheError, redacted: &str) -> CacheError {
    match e {
        CacheError::Fetch { source, .. } => CacheError::Fetch {
            package: redacted.to_owned(),
            source,
        },
        other => other,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An up-to-date repodata.json, opened while its lock was held (so it stays
/// readable even if it is replaced or removed afterwards).
#[derive(Debug)]
pub struct RepodataFile {
    /// Where it is.
    pub path: PathBuf,
    /// The open file.
    pub file: fs_err::File,
    /// Its index by package name, read with it (cached repodata); `None` for
    /// a local channel's file, which the reader indexes itself.
    pub index: Option<RepodataIndex>,
}

impl RepodataFile {
    fn open(path: PathBuf) -> Result<Option<Self>, CacheError> {
        match fs_err::File::open(&path) {
            Ok(file) => Ok(Some(Self {
                path,
                file,
                index: None,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Io {
                context: format!("opening {}", path.display()),
                source,
            }),
        }
    }
}

/// The `.info.json` beside a cached repodata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RepodataInfo {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    cache_control: Option<String>,
    fetched_at_unix: f64,
    /// What the validators above belong to: `json` or `zst`.
    #[serde(default)]
    source: Option<String>,
    /// Whether the channel serves `repodata.json.zst`, when last checked.
    #[serde(default)]
    zst: Option<bool>,
    #[serde(default)]
    zst_checked_unix: Option<f64>,
    /// The channel has no such subdir (404), as of `fetched_at_unix`.
    #[serde(default)]
    not_found: bool,
}

/// How long "this channel has no repodata.json.zst" is believed.
const ZST_ABSENT_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

impl RepodataInfo {
    fn zst_worth_trying(&self, now: f64) -> bool {
        match (self.zst, self.zst_checked_unix) {
            (Some(false), Some(checked)) => now - checked > ZST_ABSENT_TTL.as_secs_f64(),
            _ => true,
        }
    }

    fn http_cache_info(&self) -> HttpCacheInfo {
        HttpCacheInfo {
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
            cache_control: self.cache_control.clone(),
        }
    }

    /// Whether the copy may be used without asking the server: fetched by
    /// any process since this one started, or younger than the longer of
    /// the server's `max-age` and `ttl`.
    fn is_fresh(&self, ttl: Duration) -> bool {
        let fetched =
            SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.fetched_at_unix.max(0.0));
        if fetched >= PackageCache::process_start() {
            return true;
        }
        let max_age = self
            .cache_control
            .as_deref()
            .and_then(|cc| {
                cc.split(',')
                    .filter_map(|d| d.trim().strip_prefix("max-age="))
                    .find_map(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        let lifetime = Duration::from_secs(max_age).max(ttl);
        SystemTime::now()
            .duration_since(fetched)
            .map(|age| age < lifetime)
            .unwrap_or(false)
    }
}

fn join_url(base: &Url, file: &str) -> Url {
    let mut url = base.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.join(file).unwrap_or(url)
}

#[cfg(test)]
mod tests;
