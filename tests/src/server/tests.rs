use std::io::Write;

use super::*;

/// A GET over a raw socket: the response head (lower-cased) and body.
fn raw_get(server: &ChannelServer, path: &str, headers: &[&str]) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
    for h in headers {
        request.push_str(&format!("{h}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    (head, response[split + 4..].to_vec())
}

fn status(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap()
}

fn served_dir() -> (tempfile::TempDir, Vec<u8>, ChannelServer) {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    fs_err::write(dir.path().join("f.bin"), &bytes).unwrap();
    fs_err::create_dir(dir.path().join("noarch")).unwrap();
    fs_err::write(dir.path().join("noarch/repodata.json"), b"{}").unwrap();
    let server = ChannelServer::serve(dir.path());
    (dir, bytes, server)
}

#[test]
fn body_faults_cut_flip_or_stall_the_body() {
    let (_dir, bytes, server) = served_dir();
    server.fault("/f.bin", Fault::ResetMidBody);
    let (head, body) = raw_get(&server, "/f.bin", &[]);
    assert!(head.contains("content-length: 1000"), "{head}");
    assert_eq!(body, bytes[..500]);
    server.fault("/f.bin", Fault::Truncated);
    let (head, body) = raw_get(&server, "/f.bin", &[]);
    assert!(head.contains("content-length: 1000"), "{head}");
    assert_eq!(body, bytes[..999]);
    server.fault("/f.bin", Fault::WrongBytes);
    let (_, body) = raw_get(&server, "/f.bin", &[]);
    assert_eq!(body.len(), 1000);
    assert_eq!(
        (body[..500] == bytes[..500], body[500] == bytes[500] ^ 0xFF),
        (true, true)
    );
    server.fault("/f.bin", Fault::CutShortNoLength);
    let (head, body) = raw_get(&server, "/f.bin", &[]);
    assert!(
        status(&head) == "200" && !head.contains("content-length"),
        "{head}"
    );
    assert_eq!(body, bytes[..500]);
    server.fault(
        "/f.bin",
        Fault::StallAfterHeaders(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let (_, body) = raw_get(&server, "/f.bin", &[]);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(body, bytes);
    // A missing file with a body fault is a plain 404.
    server.fault("/missing.bin", Fault::Truncated);
    assert_eq!(status(&raw_get(&server, "/missing.bin", &[]).0), "404");
    assert_eq!(server.count("/f.bin"), 5);
    assert_eq!(server.request_times("/f.bin").len(), 5);
    server.clear_faults();
    assert_eq!(raw_get(&server, "/f.bin", &[]).1, bytes);
}

#[test]
fn status_faults_fire_as_often_as_told() {
    let (_dir, bytes, server) = served_dir();
    server.fault(
        "/f.bin",
        Fault::FailTimes {
            status: 503,
            times: 2,
        },
    );
    let statuses: Vec<String> = (0..3)
        .map(|_| status(&raw_get(&server, "/f.bin", &[]).0).to_owned())
        .collect();
    assert_eq!(statuses, ["503", "503", "200"]);
    server.fault(
        "/f.bin",
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    let (head, _) = raw_get(&server, "/f.bin", &[]);
    assert!(
        status(&head) == "429" && head.contains("retry-after: 7"),
        "{head}"
    );
    assert_eq!(raw_get(&server, "/f.bin", &[]).1, bytes);
    server.fault("/f.bin", Fault::Status(403));
    assert_eq!(status(&raw_get(&server, "/f.bin", &[]).0), "403");
    assert_eq!(status(&raw_get(&server, "/f.bin", &[]).0), "403");
    server.clear_fault("/f.bin");
    assert_eq!(status(&raw_get(&server, "/f.bin", &[]).0), "200");
}

#[test]
fn redirects_token_paths_and_delays() {
    let (_dir, bytes, server) = served_dir();
    server.fault(
        "/a.bin",
        Fault::Redirect {
            to: String::from("/f.bin"),
        },
    );
    let (head, _) = raw_get(&server, "/a.bin", &[]);
    let location = format!("location: {}/f.bin", server.url());
    assert!(status(&head) == "302" && head.contains(&location), "{head}");
    server.fault("/f.bin", Fault::RedirectLoop);
    let (head, _) = raw_get(&server, "/t/tok/f.bin", &[]);
    let location = format!("location: {}/t/tok/f.bin", server.url());
    assert!(status(&head) == "302" && head.contains(&location), "{head}");
    server.clear_faults();
    server.delay("/f.bin", Duration::from_millis(200));
    let started = Instant::now();
    let (_, body) = raw_get(&server, "/t/secret/f.bin", &["Authorization: Bearer x"]);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(body, bytes);
    assert_eq!(server.count("/t/secret/f.bin"), 1);
    assert_eq!(server.count("/f.bin"), 2);
    server.clear_delays();
}

#[test]
fn repodata_has_an_etag_and_revalidates_with_304() {
    let (_dir, _, server) = served_dir();
    let (head, body) = raw_get(&server, "/noarch/repodata.json", &[]);
    let etag = ChannelServer::etag_of(b"{}");
    assert!(head.contains(&format!("etag: {etag}")), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=1200"),
        "{head}"
    );
    assert_eq!(body, b"{}");
    let (head, body) = raw_get(
        &server,
        "/noarch/repodata.json",
        &[&format!("If-None-Match: {etag}")],
    );
    assert!(status(&head) == "304" && body.is_empty(), "{head}");
    let (head, _) = raw_get(&server, "/noarch/repodata.json", &["If-None-Match: \"x\""]);
    assert_eq!(status(&head), "200");
    server.fault("/noarch/repodata.json", Fault::NotJson);
    let (head, body) = raw_get(&server, "/noarch/repodata.json", &[]);
    assert!(status(&head) == "200" && head.contains(&etag), "{head}");
    assert_eq!(body, b"<html>oops</html>");
    // Archives get no ETag.
    assert!(!raw_get(&server, "/f.bin", &[]).0.contains("etag"));
}
