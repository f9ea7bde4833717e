//! Sharded repodata (CEP-16): `<subdir>/repodata_shards.msgpack.zst`, an index
//! of package name → sha256 of that name's shard, and one content-addressed
//! `<sha256>.msgpack.zst` shard per name holding its records. A solve fetches
//! the index (~1 MB for conda-forge) and the shards of the names it reaches
//! (a few hundred KB), instead of a repodata.json of hundreds of MB.
//!
//! The index is cached like repodata.json (HTTP validators, the repodata lock,
//! the TTL). Shards are immutable: cached by hash in `repodata/shards/`,
//! written by a verified download's rename and read with no lock; a shard
//! whose bytes do not hash to its name is refused and never cached.

use std::collections::HashMap;
use std::path::PathBuf;

use pkgr_fetch::Expected;
use sha2::{Digest, Sha256};
use url::Url;

use pkgr_cache::{CacheError, PackageCache};

/// The shard index of one channel subdir.
#[derive(Debug, Clone)]
pub struct ShardIndex {
    /// Where package files are (`info.base_url`, resolved against the
    /// subdir URL).
    pub packages_base: Url,
    /// Where shards are (`info.shards_base_url`, resolved likewise).
    pub shards_base: Url,
    /// Package name → sha256 of its shard file.
    pub shards: HashMap<String, [u8; 32]>,
}

/// Decodes zstd-compressed msgpack.
pub fn decode_msgpack_zst(bytes: &[u8]) -> Result<rmpv::Value, String> {
    let raw = zstd::decode_all(bytes).map_err(|e| format!("its zstd stream is broken ({e})"))?;
    rmpv::decode::read_value(&mut &raw[..]).map_err(|e| format!("it is not valid msgpack ({e})"))
}

fn map_get<'a>(map: &'a rmpv::Value, key: &str) -> Option<&'a rmpv::Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Resolves a CEP-16 base URL (absolute, or relative to the subdir URL;
/// empty or absent means the subdir itself), with a trailing slash.
fn resolve_base(subdir_url: &Url, base: Option<&str>) -> Result<Url, String> {
    let mut subdir = subdir_url.clone();
    if !subdir.path().ends_with('/') {
        let path = format!("{}/", subdir.path());
        subdir.set_path(&path);
    }
    let mut url = match base.filter(|b| !b.is_empty()) {
        None => subdir,
        Some(b) => subdir.join(b).map_err(|e| format!("base URL `{b}`: {e}"))?,
    };
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Refuses a base URL (`key`: `info.base_url`, `info.shards_base_url`) that a
/// channel at `subdir_url` may not point at. A channel served over http(s)
/// may point only at http(s) URLs: a `file://` base would make pkgr read
/// (and, once hashed, install) whatever local file the channel names, and
/// other schemes are nothing pkgr fetches. A `file://` channel may point at
/// local files (relative bases are how such channels are laid out) and at
/// http(s).
pub fn check_base_scheme(subdir_url: &Url, base: &Url, key: &str) -> Result<(), String> {
    let (allowed, said): (&[&str], _) = match subdir_url.scheme() {
        "file" => (&["file", "http", "https"], "file, http or https"),
        _ => (&["http", "https"], "http or https"),
    };
    if allowed.contains(&base.scheme()) {
        return Ok(());
    }
    Err(format!(
        "its {key} points at {}, a {}: URL; a channel served over {} may only point at {said} URLs",
        pkgr_redact::redact_url(base),
        base.scheme(),
        subdir_url.scheme(),
    ))
}

/// A sha256 given as 32 raw bytes (CEP-16) or as hex text (some writers).
fn sha256_of(value: &rmpv::Value) -> Option<[u8; 32]> {
    match value {
        rmpv::Value::Binary(bytes) => bytes.as_slice().try_into().ok(),
        rmpv::Value::String(text) => {
            let bytes = hex::decode(text.as_str()?).ok()?;
            bytes.as_slice().try_into().ok()
        }
        _ => None,
    }
}

impl ShardIndex {
    /// Parses a decoded shard index of the subdir at `subdir_url`.
    pub fn parse(value: &rmpv::Value, subdir_url: &Url) -> Result<Self, String> {
        let info = map_get(value, "info");
        let text = |key| {
            info.and_then(|i| map_get(i, key))
                .and_then(rmpv::Value::as_str)
        };
        let packages_base = resolve_base(subdir_url, text("base_url"))?;
        check_base_scheme(subdir_url, &packages_base, "info.base_url")?;
        let shards_base = resolve_base(subdir_url, text("shards_base_url"))?;
        check_base_scheme(subdir_url, &shards_base, "info.shards_base_url")?;
        let entries = map_get(value, "shards")
            .and_then(rmpv::Value::as_map)
            .ok_or_else(|| String::from("it has no `shards` map"))?;
        let mut shards = HashMap::with_capacity(entries.len());
        for (name, hash) in entries {
            let name = name
                .as_str()
                .ok_or_else(|| String::from("a shard name is not text"))?;
            let hash =
                sha256_of(hash).ok_or_else(|| format!("the hash of `{name}` is not a sha256"))?;
            shards.insert(name.to_owned(), hash);
        }
        Ok(Self {
            packages_base,
            shards_base,
            shards,
        })
    }
}

/// Converts a msgpack value to JSON, with binary `md5`/`sha256` (CEP-16
/// shards store digests as bytes) as hex text, as repodata.json has them.
pub fn msgpack_to_json(value: &rmpv::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        rmpv::Value::Nil => J::Null,
        rmpv::Value::Boolean(b) => J::Bool(*b),
        rmpv::Value::Integer(i) => i
            .as_u64()
            .map(J::from)
            .or_else(|| i.as_i64().map(J::from))
            .unwrap_or(J::Null),
        rmpv::Value::F32(f) => J::from(f64::from(*f)),
        rmpv::Value::F64(f) => J::from(*f),
        rmpv::Value::String(s) => J::String(s.as_str().unwrap_or_default().to_owned()),
        rmpv::Value::Binary(b) => J::String(hex::encode(b)),
        rmpv::Value::Array(items) => J::Array(items.iter().map(msgpack_to_json).collect()),
        rmpv::Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        rmpv::Value::String(s) => s.as_str().unwrap_or_default().to_owned(),
                        other => other.to_string(),
                    };
                    (key, msgpack_to_json(v))
                })
                .collect(),
        ),
        rmpv::Value::Ext(_, bytes) => J::String(hex::encode(bytes)),
    }
}

/// Converts a repodata record (or any JSON) to msgpack as CEP-16 stores it:
/// `md5` and `sha256` as raw bytes, everything else as it is. The inverse of
/// [`msgpack_to_json`].
pub fn json_to_msgpack(value: &serde_json::Value) -> rmpv::Value {
    use rmpv::Value as M;
    match value {
        serde_json::Value::Null => M::Nil,
        serde_json::Value::Bool(b) => M::from(*b),
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(M::from)
            .or_else(|| n.as_i64().map(M::from))
            .unwrap_or_else(|| M::from(n.as_f64().unwrap_or_default())),
        serde_json::Value::String(s) => M::from(s.as_str()),
        serde_json::Value::Array(items) => M::Array(items.iter().map(json_to_msgpack).collect()),
        serde_json::Value::Object(map) => M::Map(
            map.iter()
                .map(|(k, v)| {
                    let value = match (k.as_str(), v) {
                        ("md5" | "sha256", serde_json::Value::String(h)) => {
                            hex::decode(h).map_or_else(|_| json_to_msgpack(v), M::Binary)
                        }
                        _ => json_to_msgpack(v),
                    };
                    (M::from(k.as_str()), value)
                })
                .collect(),
        ),
    }
}

/// Encodes `value` as zstd-compressed msgpack.
pub fn encode_msgpack_zst(value: &rmpv::Value) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    rmpv::encode::write_value(&mut raw, value).map_err(std::io::Error::other)?;
    zstd::encode_all(&raw[..], 3)
}

/// Where the shard with sha256 `hash` is cached.
fn shard_path(cache: &PackageCache, hash: &[u8; 32]) -> PathBuf {
    cache
        .shards_dir()
        .join(format!("{}.msgpack.zst", hex::encode(hash)))
}

/// The decoded shard with sha256 `hash` from `index`: from the cache when
/// there (checked against its hash), else downloaded, verified and put
/// in the cache. Shards are immutable and named by their hash, so no lock
/// is needed: two processes that download one shard at once write the
/// same bytes, each by an atomic rename.
pub(crate) async fn fetch_shard(
    cache: &PackageCache,
    index: &ShardIndex,
    hash: &[u8; 32],
) -> Result<rmpv::Value, CacheError> {
    let path = shard_path(cache, hash);
    let file_name = format!("{}.msgpack.zst", hex::encode(hash));
    let url = index
        .shards_base
        .join(&file_name)
        .map_err(|e| CacheError::BrokenRepodata {
            url: pkgr_redact::redact_url(&index.shards_base),
            problem: e.to_string(),
        })?;
    let redacted = pkgr_redact::redact_url(&url);
    let broken = |problem| CacheError::BrokenRepodata {
        url: redacted.clone(),
        problem,
    };
    if let Ok(bytes) = fs_err::read(&path) {
        if Sha256::digest(&bytes).as_slice() == hash.as_slice() {
            return decode_msgpack_zst(&bytes).map_err(broken);
        }
        // Damaged on disk: fetched again below (the download replaces it).
    }
    if cache.repodata_policy().offline && url.scheme() != "file" {
        return Err(CacheError::Offline { what: redacted });
    }
    if cache.is_read_only() {
        return Err(cache.read_only_error(format!("download {redacted} into it")));
    }
    let dir = path.parent().map(ToOwned::to_owned).unwrap_or_default();
    fs_err::create_dir_all(&dir).map_err(|source| CacheError::NotWritable {
        path: dir.clone(),
        source,
    })?;
    let expected = Expected {
        size: None,
        sha256: Some(*hash),
        md5: None,
    };
    cache
        .fetcher()
        .download(&url, &path, &cache.tmp_dir(), &expected)
        .await
        .map_err(|source| CacheError::Fetch {
            package: redacted.clone(),
            source,
        })?;
    let bytes = fs_err::read(&path).map_err(|source| CacheError::Io {
        context: String::from("reading a shard"),
        source,
    })?;
    decode_msgpack_zst(&bytes).map_err(broken)
}

#[cfg(test)]
mod tests;
