//! The network as it is: interrupted downloads resume with `Range`, a
//! server that ignores ranges gets a clean restart, a stalled server is given
//! up on within the configured deadlines (and said so while waiting),
//! `Retry-After` dates are honoured, and what cannot get better by trying
//! again (a redirect loop, a TLS failure) is not retried. Against the
//! switchable-fault loopback server; timings asserted loosely.

use std::path::Path;
use std::time::{Duration, Instant};

use pkgr_test_support::{current_subdir, ChannelServer, Fault, Format, LocalChannel, Package};

use crate::common::{assert_ok, run_with_timeout, stderr, World, TIMEOUT};

/// One big-ish archive (`big`, ~1 MB of incompressible bytes, so half of it
/// is a real amount) and a small one it depends on.
fn channel(root: &Path) -> (LocalChannel, String) {
    let mut channel = LocalChannel::new(root);
    let mut noise = Vec::with_capacity(1 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while noise.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    channel.add(
        &Package::new("small", "1.0").file("share/small.txt", "s\n"),
        Format::Conda,
    );
    let path = channel.add(
        &Package::new("big", "1.0")
            .depends("small")
            .file("share/big.bin", noise),
        Format::Conda,
    );
    channel.write_repodata();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    (channel, format!("/{}/{file}", current_subdir()))
}

/// `pkgr` with fast network settings for tests.
fn pkgr_fast(world: &World, retries: u32, read_timeout: &str) -> std::process::Command {
    let mut cmd = world.pkgr();
    cmd.env("PKGR_REMOTE_MAX_RETRIES", retries.to_string())
        .env("PKGR_REMOTE_BACKOFF_FACTOR", "0.1")
        .env("PKGR_REMOTE_READ_TIMEOUT_SECS", read_timeout)
        .env("PKGR_REMOTE_CONNECT_TIMEOUT_SECS", "2");
    cmd
}

#[test]
fn a_connection_that_dies_mid_body_resumes_with_range() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.fault(&big, Fault::ResetMidBodyTimes(1));
    let size = fs_err::metadata(channel.root().join(big.trim_start_matches('/')))
        .unwrap()
        .len();
    let mut cmd = pkgr_fast(&world, 3, "10");
    cmd.args([
        "create",
        "-p",
        world.env("r").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    let ranges = server.ranges(&big);
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    let from: u64 = ranges[1]
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the retry asked for no range: {ranges:?}"));
    // It asked for what it did not have (the first half, give or take what
    // the kernel buffered), and the whole file was verified.
    assert!(from > 0 && from <= size / 2 + 1, "from {from} of {size}");
    assert_ok(&world.run(&["cache", "verify"]));
    assert!(
        world.env("r").join("share/big.bin").is_file(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_server_that_ignores_range_gets_a_clean_restart() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.ignore_ranges();
    server.fault(&big, Fault::ResetMidBodyTimes(1));
    let mut cmd = pkgr_fast(&world, 3, "10");
    cmd.args([
        "create",
        "-p",
        world.env("r").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    assert_eq!(server.count(&big), 2);
    assert!(server.ranges(&big)[1].is_some(), "it asked to resume");
    assert_ok(&world.run(&["cache", "verify"]));
}

#[test]
fn a_stalled_server_is_given_up_on_within_the_deadline_and_said_so() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.fault(&big, Fault::StallAfterHeaders(Duration::from_secs(20)));
    let mut cmd = pkgr_fast(&world, 2, "1");
    cmd.args([
        "create",
        "-p",
        world.env("s").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    let started = Instant::now();
    let out = run_with_timeout(cmd, TIMEOUT);
    let elapsed = started.elapsed();
    // Each retry said ("no data from ... retrying in ... (2/2)"), then
    // "gave up on ... after 3 attempts in ...".
    let err = snapshot_messages!(&world, "stalled_server", out);
    // 3 attempts × 1 s without a byte, plus a little backoff: far from the
    // 20 s the server would stall, let alone minutes.
    assert!(elapsed < Duration::from_secs(12), "{elapsed:?}\n{err}");
    assert_eq!(server.count(&big), 3, "{err}");
    assert!(!world.env("s").exists());
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.fault(&big, Fault::RetryAfterDate(Duration::from_secs(1)));
    let mut cmd = pkgr_fast(&world, 2, "10");
    cmd.args([
        "create",
        "-p",
        world.env("d").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    let times = server.request_times(&big);
    assert_eq!(times.len(), 2);
    // The date is rounded up to a whole second past now + 1 s: at least 1 s.
    assert!(
        times[1] - times[0] >= Duration::from_millis(900),
        "{:?}",
        times[1] - times[0]
    );
}

#[test]
fn the_number_of_retries_is_configurable() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.fault(
        &big,
        Fault::FailTimes {
            status: 500,
            times: 2,
        },
    );
    let mut cmd = pkgr_fast(&world, 1, "10");
    cmd.args([
        "create",
        "-p",
        world.env("a").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    snapshot_messages!(&world, "configured_retries", run_with_timeout(cmd, TIMEOUT));
    assert_eq!(server.count(&big), 2);
    // In pkgr's config file this time; the third request is served.
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(
        config.join("config.yaml"),
        "remote_max_retries: 2\nremote_backoff_factor: 0.1\n",
    )
    .unwrap();
    server.fault(
        &big,
        Fault::FailTimes {
            status: 503,
            times: 2,
        },
    );
    let out = world.run(&[
        "create",
        "-p",
        world.env("b").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    assert_ok(&out);
    assert_eq!(server.count(&big), 2 + 3);
}

#[test]
fn a_redirect_loop_and_a_tls_failure_are_not_retried() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.fault(&big, Fault::RedirectLoop);
    let mut cmd = pkgr_fast(&world, 3, "10");
    cmd.args([
        "create",
        "-p",
        world.env("l").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    // Not retried.
    let err = snapshot_messages!(&world, "redirect_loop", run_with_timeout(cmd, TIMEOUT));
    assert!(!err.contains("retrying"), "{err}");
    // reqwest follows 10 redirects, then gives up: one attempt.
    assert!(server.count(&big) <= 11, "{} requests", server.count(&big));

    // https:// to a plain-HTTP port: the TLS handshake fails, at once.
    // With a backoff that would make three retries take seconds.
    let tls_url = server.url().replace("http://", "https://");
    let mut cmd = pkgr_fast(&world, 3, "10");
    cmd.env("PKGR_REMOTE_BACKOFF_FACTOR", "2").args([
        "create",
        "-p",
        world.env("t").to_str().unwrap(),
        "-c",
        &tls_url,
        "big",
    ]);
    let started = Instant::now();
    let out = run_with_timeout(cmd, TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Names the URL; no "retrying", no "gave up".
    let err = snapshot_error!(&world, "tls_to_a_plain_port", out);
    assert!(
        !err.contains("retrying") && !err.contains("gave up"),
        "{err}"
    );
}

#[test]
fn proxies_from_the_environment_and_from_proxy_servers() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let proxy = pkgr_test_support::ForwardProxy::start();
    // $HTTP_PROXY, as curl and conda read it.
    let mut cmd = pkgr_fast(&world, 0, "10");
    cmd.env("HTTP_PROXY", proxy.url())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args([
            "create",
            "-p",
            world.env("e").to_str().unwrap(),
            "-c",
            server.url(),
            "big",
        ]);
    assert_ok(&run_with_timeout(cmd, TIMEOUT));
    let through: Vec<String> = proxy.forwarded();
    assert!(
        through.iter().any(|u| u.ends_with(&big)),
        "the archive did not go through the proxy: {through:?}"
    );
    let before = through.len();
    // proxy_servers in pkgr's config file, with a fresh cache.
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(
        config.join("config.yaml"),
        format!("proxy_servers:\n  http: {}\n", proxy.url()),
    )
    .unwrap();
    let mut cmd = pkgr_fast(&world, 0, "10");
    cmd.env("PKGR_CACHE_DIR", world.path().join("cache2"))
        .env_remove("HTTP_PROXY")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args([
            "create",
            "-p",
            world.env("c").to_str().unwrap(),
            "-c",
            server.url(),
            "big",
        ]);
    assert_ok(&run_with_timeout(cmd, TIMEOUT));
    assert!(proxy.forwarded().len() > before);
    // $NO_PROXY still applies to a configured proxy.
    let mid = proxy.forwarded().len();
    let mut cmd = pkgr_fast(&world, 0, "10");
    cmd.env("PKGR_CACHE_DIR", world.path().join("cache3"))
        .env("NO_PROXY", "127.0.0.1")
        .args([
            "create",
            "-p",
            world.env("n").to_str().unwrap(),
            "-c",
            server.url(),
            "big",
        ]);
    assert_ok(&run_with_timeout(cmd, TIMEOUT));
    assert_eq!(proxy.forwarded().len(), mid);
}

#[test]
fn a_broken_ca_bundle_and_ssl_verify_false_are_said_clearly() {
    let world = World::new();
    let (channel, _) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let bundle = world.path().join("not-a-bundle.pem");
    fs_err::write(&bundle, "hello\n").unwrap();
    let mut cmd = world.pkgr();
    cmd.env("SSL_CERT_FILE", &bundle)
        .env_remove("REQUESTS_CA_BUNDLE")
        .args([
            "create",
            "--dry-run",
            "-p",
            world.env("b").to_str().unwrap(),
            "-c",
            server.url(),
            "big",
        ]);
    snapshot_failure!(&world, "broken_ca_bundle", run_with_timeout(cmd, TIMEOUT));
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(config.join("config.yaml"), "ssl_verify: false\n").unwrap();
    let out = world.run(&[
        "create",
        "--dry-run",
        "-p",
        world.env("v").to_str().unwrap(),
        "-c",
        server.url(),
        "big",
    ]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("TLS certificates are NOT checked"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mirrors_are_tried_in_order_when_one_is_down() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let good = ChannelServer::serve(channel.root());
    // A mirror that lacks the archive (an empty channel) and one that is down
    // (a port nothing listens on any more).
    let empty_root = world.path().join("empty");
    fs_err::create_dir_all(&empty_root).unwrap();
    let empty = ChannelServer::serve(&empty_root);
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // The channel is known by the down server's URL; its mirrors: down, the
    // empty one, the good one.
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(
        config.join("config.yaml"),
        format!(
            "mirrored_channels:\n  {down}/:\n    - {down}/\n    - {}/\n    - {}/\n",
            empty.url(),
            good.url()
        ),
    )
    .unwrap();
    let env = world.env("m");
    let mut cmd = pkgr_fast(&world, 1, "10");
    cmd.args(["create", "-p", env.to_str().unwrap(), "-c", &down, "big"]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    assert_eq!(good.count(&big), 1);
    assert!(empty.count(&big) <= 1);
    assert!(
        stderr(&out).contains("trying the next mirror"),
        "{}",
        stderr(&out)
    );
    // The records name the channel, not the mirror that served it.
    let listed = world.run(&["list", "--json", "-p", env.to_str().unwrap()]);
    assert!(
        crate::common::stdout(&listed).contains(&down),
        "{}",
        crate::common::stdout(&listed)
    );
    // No mirror has it: one error naming every mirror.
    fs_err::write(
        config.join("config.yaml"),
        format!("mirrored_channels:\n  {}/:\n    - {down}/\n", good.url()),
    )
    .unwrap();
    let mut cmd = pkgr_fast(&world, 0, "10");
    cmd.env("PKGR_CACHE_DIR", world.path().join("cache2"))
        .args([
            "create",
            "-p",
            world.env("n").to_str().unwrap(),
            "-c",
            good.url(),
            "big",
        ]);
    snapshot_failure!(
        &world,
        "no_mirror_has_it",
        run_with_timeout(cmd, TIMEOUT),
        "[DOWN]" => &down,
        "[GOOD]" => good.url(),
    );
}

#[test]
fn tls_certificates_a_ca_bundle_ssl_verify_and_a_connect_proxy() {
    let world = World::new();
    let (channel, big) = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let front = pkgr_test_support::TlsFront::start(server.url());
    let pem = world.path().join("front.pem");
    fs_err::write(&pem, front.cert_pem()).unwrap();
    let create = |name: &str, env: &[(&str, &str)], cache: &str| {
        let mut cmd = pkgr_fast(&world, 3, "10");
        cmd.env("PKGR_REMOTE_BACKOFF_FACTOR", "2")
            .env("PKGR_CACHE_DIR", world.path().join(cache))
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("SSL_CERT_FILE")
            .args([
                "create",
                "-p",
                world.env(name).to_str().unwrap(),
                "-c",
                &front.url(),
                "big",
            ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let out = run_with_timeout(cmd, TIMEOUT);
        (out, started.elapsed())
    };
    // A certificate nobody vouches for: refused at once, not retried.
    let (out, elapsed) = create("untrusted", &[], "c1");
    // Says "certificate", and no "retrying".
    let err = snapshot_error!(&world, "untrusted_certificate", out);
    assert!(!err.contains("retrying"), "{err}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(server.count(&big), 0);
    // Trusted through $SSL_CERT_FILE.
    let (out, _) = create("trusted", &[("SSL_CERT_FILE", pem.to_str().unwrap())], "c2");
    assert_ok(&out);
    assert_eq!(server.count(&big), 1);
    // ssl_verify: false: works, with a loud warning.
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(config.join("config.yaml"), "ssl_verify: false\n").unwrap();
    let (out, _) = create("unverified", &[], "c3");
    assert_ok(&out);
    assert!(stderr(&out).contains("NOT checked"), "{}", stderr(&out));
    fs_err::remove_file(config.join("config.yaml")).unwrap();
    // https through a CONNECT proxy ($HTTPS_PROXY), trusting the front.
    let proxy = pkgr_test_support::ForwardProxy::start();
    let (out, _) = create(
        "proxied",
        &[
            ("HTTPS_PROXY", &proxy.url()),
            ("SSL_CERT_FILE", pem.to_str().unwrap()),
            ("NO_PROXY", ""),
        ],
        "c4",
    );
    assert_ok(&out);
    assert!(
        proxy
            .forwarded()
            .iter()
            .any(|f| f.starts_with("CONNECT 127.0.0.1:")),
        "{:?}",
        proxy.forwarded()
    );
}

/// A download waiting to retry gives its `--jobs` slot back: with one job,
/// another package is fetched while the first waits out its Retry-After.
#[test]
fn a_download_waiting_to_retry_holds_no_job_slot() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("first", "1.0").file("share/first.txt", "1\n"),
        Format::Conda,
    );
    channel.add(
        &Package::new("second", "1.0")
            .depends("first")
            .file("share/second.txt", "2\n"),
        Format::Conda,
    );
    channel.write_repodata();
    let server = ChannelServer::serve(channel.root());
    let first = format!("/{}/first-1.0-0.conda", current_subdir());
    let second = format!("/{}/second-1.0-0.conda", current_subdir());
    server.fault(
        &first,
        Fault::TooManyRequests {
            retry_after_secs: 2,
        },
    );
    let mut cmd = pkgr_fast(&world, 2, "10");
    cmd.args([
        "create",
        "--jobs",
        "1",
        "-p",
        world.env("j").to_str().unwrap(),
        "-c",
        server.url(),
        "second",
    ]);
    assert_ok(&run_with_timeout(cmd, TIMEOUT));
    let (a, b) = (server.request_times(&first), server.request_times(&second));
    assert_eq!((a.len(), b.len()), (2, 1), "{a:?} {b:?}");
    // `second` was asked for while `first` waited (or before it started).
    assert!(
        b[0] < a[1],
        "second at {:?}, first retried at {:?}",
        b[0] - a[0],
        a[1] - a[0]
    );
}
