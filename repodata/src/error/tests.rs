use super::*;

#[test]
fn a_full_disk_and_a_network_failure_are_told_apart() {
    let full = pkgr_cache::CacheError::Fetch {
        package: String::from("https://example.com/chan/linux-64/repodata.json"),
        source: pkgr_fetch::FetchError::Io {
            context: String::from("writing /cache/tmp/x.part"),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        },
    };
    assert!(storage_full(&full));
    assert!(!network_failed(&full));
    let quota = pkgr_cache::CacheError::Io {
        context: String::from("writing the index"),
        source: std::io::Error::from(std::io::ErrorKind::QuotaExceeded),
    };
    assert!(storage_full(&quota));
    let down = pkgr_cache::CacheError::Fetch {
        package: String::from("x"),
        source: pkgr_fetch::FetchError::GaveUp {
            url: String::from("x"),
            attempts: 3,
            elapsed: std::time::Duration::from_secs(1),
            last: Box::new(pkgr_fetch::FetchError::Transport {
                url: String::from("x"),
                kind: pkgr_fetch::TransportKind::Connect,
                message: String::from("connection refused"),
            }),
        },
    };
    assert!(network_failed(&down) && !storage_full(&down));
    let status = pkgr_cache::CacheError::Fetch {
        package: String::from("x"),
        source: pkgr_fetch::FetchError::Status {
            url: String::from("x"),
            status: 500,
        },
    };
    assert!(!network_failed(&status) && !storage_full(&status));
}
