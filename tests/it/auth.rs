//! Credentials from every source a fleet uses: `pkgr auth login` (basic,
//! conda token, bearer), `~/.netrc`, `$PKGR_AUTH_<HOST>`; a later install
//! without `-c` finds them; they are never written or printed anywhere but
//! the auth file (mode 0600).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pkgr_test_support::{ChannelServer, Format, LocalChannel, Package, RequiredAuth};

use crate::common::{assert_ok, list_files, run_with_timeout, stderr, stdout, World, TIMEOUT};

const PASSWORD: &str = "pa55-w0rd-only-here";
const TOKEN: &str = "tok-3f9a1c-only-here";
const BEARER: &str = "bearer-77d1-only-here";

fn channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    channel.add(
        &Package::new("app", "1.0").file("share/app.txt", "a\n"),
        Format::Conda,
    );
    channel.add(
        &Package::new("extra", "1.0").file("share/extra.txt", "e\n"),
        Format::TarBz2,
    );
    channel.write_repodata();
    channel
}

/// The server's `host:port`.
fn host(server: &ChannelServer) -> String {
    server.url().trim_start_matches("http://").to_owned()
}

/// `pkgr ARGS` with `input` on stdin, failing the test after the timeout.
fn run_with_stdin(world: &World, args: &[&str], input: &str) -> Output {
    let mut cmd: Command = world.pkgr();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("pkgr timed out")
        .unwrap()
}

/// No file below the world (but the auth file and the user's own
/// `.netrc`) and no output holds `secret`.
#[track_caller]
fn assert_nowhere(world: &World, secret: &str, outputs: &[&Output]) {
    for file in list_files(world.path()) {
        let path = world.path().join(&file);
        if file.ends_with("auth.json") || file.ends_with(".netrc") || !path.is_file() {
            continue;
        }
        let bytes = fs_err::read(&path).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{file} holds the secret"
        );
    }
    for out in outputs {
        assert!(!stdout(out).contains(secret) && !stderr(out).contains(secret));
    }
}

#[test]
fn basic_auth_from_auth_login_and_from_netrc() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.require_auth(RequiredAuth::Basic {
        user: "ci".into(),
        password: PASSWORD.into(),
    });
    let env = world.env("basic");
    let p = env.to_str().unwrap();
    let refused = world.run(&["create", "-p", p, "-c", server.url(), "app"]);
    snapshot_failure!(&world, "basic_refused", refused);

    // `--password-stdin` is required: a password on the command line shows in ps.
    snapshot_failure!(
        &world,
        "password_not_from_stdin",
        world.run(&["auth", "login", &host(&server), "--username", "ci"])
    );
    let login = run_with_stdin(
        &world,
        &[
            "auth",
            "login",
            &host(&server),
            "--username",
            "ci",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_ok(&login);
    let auth_file = world.path().join("home/.config/pkgr/auth.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs_err::metadata(&auth_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let created = world.run(&["create", "-p", p, "-c", server.url(), "app"]);
    assert_ok(&created);
    let listed = world.run(&["auth", "list"]);
    assert_ok(&listed);
    assert!(stdout(&listed).contains(&host(&server)) && stdout(&listed).contains("basic"));
    // A later install without -c takes the environment's channel, and the
    // credential for its host.
    let installed = world.run(&["install", "-p", p, "extra"]);
    assert_ok(&installed);
    assert_nowhere(
        &world,
        PASSWORD,
        &[&refused, &login, &created, &listed, &installed],
    );

    let logout = world.run(&["auth", "logout", &host(&server)]);
    assert_ok(&logout);
    let mut cmd = world.pkgr();
    cmd.env("PKGR_CACHE_DIR", world.path().join("cache2"))
        .args(["create", "-y", "-p", p, "-c", server.url(), "app"]);
    snapshot_failure!(
        &world,
        "basic_refused_after_logout",
        run_with_timeout(cmd, TIMEOUT)
    );

    // ~/.netrc, as curl and conda read it.
    fs_err::write(
        world.path().join("home/.netrc"),
        format!("machine 127.0.0.1\n  login ci\n  password {PASSWORD}\n"),
    )
    .unwrap();
    let mut cmd = world.pkgr();
    cmd.env("PKGR_CACHE_DIR", world.path().join("cache3"))
        .args(["create", "-y", "-p", p, "-c", server.url(), "app"]);
    let netrc = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&netrc);
    assert_nowhere(&world, PASSWORD, &[&netrc]);
}

#[test]
fn a_stored_conda_token_serves_channels_given_without_it_and_records_placeholders() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.require_auth(RequiredAuth::Token(TOKEN.into()));
    // The channel given with its token: records keep /t/<TOKEN>/.
    let env = world.env("token");
    let p = env.to_str().unwrap();
    let with_token = format!("{}/t/{TOKEN}/", server.url());
    let created = world.run(&["create", "-p", p, "-c", &with_token, "app"]);
    assert_ok(&created);
    // Without a stored token, the environment's channel cannot be used.
    snapshot_failure!(
        &world,
        "token_needed",
        world.run(&["install", "-p", p, "extra"])
    );
    let login = world.run(&["auth", "login", &host(&server), "--token", TOKEN]);
    assert_ok(&login);
    let installed = world.run(&["install", "-p", p, "extra"]);
    assert_ok(&installed);
    // A channel given without the token gets it from the store.
    let other = world.env("plain");
    let plain = world.run(&[
        "create",
        "-p",
        other.to_str().unwrap(),
        "-c",
        server.url(),
        "app",
    ]);
    assert_ok(&plain);
    // Every request carried the token: none was refused.
    assert_eq!(server.refused(), 0);
    assert_nowhere(&world, TOKEN, &[&created, &installed, &plain]);
}

#[test]
fn a_bearer_token_from_the_environment() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    server.require_auth(RequiredAuth::Bearer(BEARER.into()));
    let env = world.env("bearer");
    let var = pkgr_fetch::env_var_for(&host(&server));
    assert!(var.starts_with("PKGR_AUTH_127_0_0_1_"), "{var}");
    let mut cmd = world.pkgr();
    cmd.env(&var, format!("bearer:{BEARER}")).args([
        "create",
        "-p",
        env.to_str().unwrap(),
        "-c",
        server.url(),
        "app",
    ]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    assert_nowhere(&world, BEARER, &[&out]);
    // Without it: refused (a fresh cache, so the request is made).
    let mut cmd = world.pkgr();
    cmd.env("PKGR_CACHE_DIR", world.path().join("cache2"))
        .args([
            "create",
            "-y",
            "-p",
            env.to_str().unwrap(),
            "-c",
            server.url(),
            "app",
        ]);
    snapshot_failure!(&world, "bearer_refused", run_with_timeout(cmd, TIMEOUT));
}
