//! The cache's public API used from many tokio tasks and many threads at once:
//! one download per entry, no error, every user gets the complete entry.

#![allow(clippy::unwrap_used, missing_docs)]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pkgr_cache::{PackageCache, Reporter};
use pkgr_fetch::Fetcher;
use pkgr_test_support::{Format, LocalChannel, Package};
use rattler_conda_types::package::DistArchiveIdentifier;
use rattler_conda_types::{PackageRecord, RepoDataRecord};
use url::Url;

#[derive(Default)]
struct Counting {
    downloads: AtomicUsize,
    extractions: AtomicUsize,
}

impl Reporter for Counting {
    fn download_started(&self, _what: &str, _size: Option<u64>) {
        self.downloads.fetch_add(1, Ordering::SeqCst);
    }
    fn extracted(&self, _what: &str) {
        self.extractions.fetch_add(1, Ordering::SeqCst);
    }
}

fn record(dir: &std::path::Path) -> RepoDataRecord {
    let mut channel = LocalChannel::new(dir);
    let package = Package::new("shared", "1.0").file("share/shared.txt", "shared\n");
    let archive = channel.add(&package, Format::Conda);
    channel.write_repodata();
    let repodata: serde_json::Value = serde_json::from_slice(
        &std::fs::read(archive.parent().unwrap().join("repodata.json")).unwrap(),
    )
    .unwrap();
    let file_name = package.file_name(Format::Conda);
    let package_record: PackageRecord =
        serde_json::from_value(repodata["packages.conda"][&file_name].clone()).unwrap();
    RepoDataRecord {
        package_record,
        identifier: DistArchiveIdentifier::from_str(&file_name).unwrap(),
        url: Url::from_file_path(&archive).unwrap(),
        channel: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_share_one_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let record = Arc::new(record(&tmp.path().join("channel")));
    let cache = PackageCache::open(tmp.path().join("cache"), Fetcher::new().unwrap()).unwrap();
    let counting = Arc::new(Counting::default());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (cache, record, counting) = (cache.clone(), record.clone(), counting.clone());
        tasks.push(tokio::spawn(async move {
            let entry = cache
                .get_or_fetch(&record, counting.as_ref())
                .await
                .unwrap();
            std::fs::read_to_string(entry.dir().join("share/shared.txt")).unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "shared\n");
    }
    assert_eq!(counting.downloads.load(Ordering::SeqCst), 1);
    assert_eq!(counting.extractions.load(Ordering::SeqCst), 1);
}

#[test]
fn many_threads_with_their_own_runtimes_share_one_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let record = Arc::new(record(&tmp.path().join("channel")));
    let root = tmp.path().join("does-not-exist-yet").join("cache");
    let counting = Arc::new(Counting::default());
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (record, counting, root) = (record.clone(), counting.clone(), root.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    // Every thread opens the (missing) root itself: creation is tolerant.
                    let cache = PackageCache::open(&root, Fetcher::new().unwrap()).unwrap();
                    let entry = cache
                        .get_or_fetch(&record, counting.as_ref())
                        .await
                        .unwrap();
                    assert!(entry.dir().join("share/shared.txt").is_file());
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(counting.downloads.load(Ordering::SeqCst), 1);
}
