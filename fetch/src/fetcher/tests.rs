use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[tokio::test]
async fn file_download_verifies_and_renames() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    fs_err::write(&src, b"hello").unwrap();
    let dest = dir.path().join("dest.bin");
    let url = Url::from_file_path(&src).unwrap();
    let fetcher = Fetcher::new().unwrap();
    let expected = Expected {
        size: Some(5),
        sha256: Some(sha(b"hello")),
        md5: None,
    };
    let d = fetcher
        .download(&url, &dest, dir.path(), &expected)
        .await
        .unwrap();
    assert_eq!(d.size, 5);
    assert_eq!(fs_err::read(&dest).unwrap(), b"hello");
}

#[tokio::test]
async fn mismatch_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    fs_err::create_dir(&tmp).unwrap();
    let src = dir.path().join("src.bin");
    fs_err::write(&src, b"hello").unwrap();
    let dest = dir.path().join("dest.bin");
    let url = Url::from_file_path(&src).unwrap();
    let expected = Expected {
        size: None,
        sha256: Some(sha(b"other")),
        md5: None,
    };
    let err = Fetcher::new()
        .unwrap()
        .download(&url, &dest, &tmp, &expected)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Mismatch { what: "sha256", .. }),
        "{err}"
    );
    assert!(!dest.exists());
    assert_eq!(fs_err::read_dir(&tmp).unwrap().count(), 0);
}

/// A server on 127.0.0.1 for `body`: the first answer is a `200` with
/// the full length and an ETag that breaks off after half the body;
/// later ones honour `Range` if `ranges`, else send the whole body.
fn flaky_server(body: Vec<u8>, ranges: bool) -> (Url, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/f.bin", listener.local_addr().unwrap())).unwrap();
    let handle = std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(2).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut from = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(range) = line.strip_prefix("range: bytes=") {
                    from = range.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            let head = |status: &str, len: usize, extra: &str| {
                format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nETag: \"v1\"\r\n{extra}Connection: close\r\n\r\n")
            };
            match (i, from.filter(|_| ranges)) {
                (0, _) => {
                    let half = body.len() / 2;
                    stream
                        .write_all(head("200 OK", body.len(), "").as_bytes())
                        .unwrap();
                    stream.write_all(&body[..half]).unwrap();
                }
                (_, Some(from)) => {
                    let range = format!(
                        "Content-Range: bytes {from}-{}/{}\r\n",
                        body.len() - 1,
                        body.len()
                    );
                    stream
                        .write_all(
                            head("206 Partial Content", body.len() - from, &range).as_bytes(),
                        )
                        .unwrap();
                    stream.write_all(&body[from..]).unwrap();
                }
                (_, None) => {
                    stream
                        .write_all(head("200 OK", body.len(), "").as_bytes())
                        .unwrap();
                    stream.write_all(&body).unwrap();
                }
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    (url, handle)
}

/// Downloads `url` tapped, collecting what the tap saw: each chunk's
/// offset and the bytes.
async fn tapped(url: &Url, expected: &Expected, dir: &Path) -> (Vec<(u64, usize)>, Vec<u8>) {
    let settings = NetworkSettings {
        backoff_factor: 0.01,
        ..NetworkSettings::default()
    };
    let fetcher = Fetcher::with_settings(settings).unwrap();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
    let mut permit_guard = DownloadPermit::acquire(semaphore).await.unwrap();
    let (tap, mut chunks) = Tap::channel(2);
    let collect = async {
        let mut seen = Vec::new();
        let mut bytes = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            seen.push((chunk.offset, chunk.bytes.len()));
            if chunk.offset == 0 {
                bytes.clear();
            }
            bytes.extend_from_slice(&chunk.bytes);
        }
        (seen, bytes)
    };
    let dest = dir.join("dest.bin");
    let download = fetcher.download_with_permit_tapped(
        url,
        &dest,
        dir,
        expected,
        &|_| {},
        &mut permit_guard,
        tap,
    );
    let (done, seen) = tokio::join!(download, collect);
    done.unwrap();
    seen
}

fn body() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_tap_sees_a_resumed_download_continue() {
    let dir = tempfile::tempdir().unwrap();
    let body = body();
    let (url, server) = flaky_server(body.clone(), true);
    let expected = Expected {
        size: Some(body.len() as u64),
        sha256: Some(sha(&body)),
        md5: None,
    };
    let (seen, bytes) = tapped(&url, &expected, dir.path()).await;
    server.join().unwrap();
    let mut next = 0;
    for (offset, len) in &seen {
        assert_eq!(*offset, next, "in order, no gap, no restart: {seen:?}");
        next += *len as u64;
    }
    assert_eq!(bytes, body);
}

#[tokio::test]
async fn a_tap_sees_a_download_that_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let body = body();
    let (url, server) = flaky_server(body.clone(), false);
    let expected = Expected {
        size: Some(body.len() as u64),
        sha256: Some(sha(&body)),
        md5: None,
    };
    let (seen, bytes) = tapped(&url, &expected, dir.path()).await;
    server.join().unwrap();
    let restarts = seen
        .iter()
        .skip(1)
        .filter(|(offset, _)| *offset == 0)
        .count();
    assert_eq!(restarts, 1, "the restart is visible: {seen:?}");
    assert_eq!(bytes, body, "and after it, the whole file");
}

#[tokio::test]
async fn a_tap_sees_a_local_file_and_a_dropped_receiver_detaches() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 7) as u8).collect();
    let src = dir.path().join("src.bin");
    fs_err::write(&src, &body).unwrap();
    let url = Url::from_file_path(&src).unwrap();
    let expected = Expected {
        size: Some(body.len() as u64),
        sha256: Some(sha(&body)),
        md5: None,
    };
    let (seen, bytes) = tapped(&url, &expected, dir.path()).await;
    assert!(seen.len() > 1 && seen[0].0 == 0, "{seen:?}");
    assert_eq!(bytes, body);
    // A receiver that goes away does not stop (or hang) the download.
    let fetcher = Fetcher::new().unwrap();
    let mut permit_guard = DownloadPermit::acquire(Arc::new(tokio::sync::Semaphore::new(1)))
        .await
        .unwrap();
    let (tap, chunks) = Tap::channel(1);
    drop(chunks);
    let dest = dir.path().join("again.bin");
    let done = fetcher
        .download_with_permit_tapped(
            &url,
            &dest,
            dir.path(),
            &expected,
            &|_| {},
            &mut permit_guard,
            tap,
        )
        .await
        .unwrap();
    assert_eq!(done.size, body.len() as u64);
}

#[tokio::test]
async fn http_download_and_404() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let handle = std::thread::spawn(move || {
        for _ in 0..2 {
            let request = server.recv().unwrap();
            let response = if request.url() == "/ok" {
                tiny_http::Response::from_data(b"payload".to_vec()).with_status_code(200)
            } else {
                tiny_http::Response::from_data(Vec::new()).with_status_code(404)
            };
            request.respond(response).unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new().unwrap().with_retries(0);
    let ok = Url::parse(&format!("http://{addr}/ok")).unwrap();
    let d = fetcher
        .download(&ok, &dir.path().join("a"), dir.path(), &Expected::default())
        .await
        .unwrap();
    assert_eq!(d.sha256, sha(b"payload"));
    let missing = Url::parse(&format!("http://{addr}/missing")).unwrap();
    let err = fetcher
        .download(
            &missing,
            &dir.path().join("b"),
            dir.path(),
            &Expected::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    handle.join().unwrap();
}
