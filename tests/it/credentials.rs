//! Credentials in channel URLs (`user:password@`, `/t/<token>/`) reach nothing
//! pkgr writes or prints (issue #10, point 6): conda-meta keeps conda's
//! `/t/<TOKEN>/` form, `history` and every output are redacted, and a later
//! install without `-c` says the channel needs credentials again. Also: a
//! package not found in a channel missing a subdir names the URL that failed
//! (point 12).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pkgr_test_support::{current_subdir, Format, LocalChannel, Package};

use crate::common::{assert_ok, list_files, stderr, stdout, World};

const TOKEN: &str = "tok-SECRET123";
const USER: &str = "user";
const PASSWORD: &str = "pw-SECRET456";
/// What must appear nowhere: the token, the password, and the
/// `Authorization: Basic` value of `user:pw-SECRET456`.
const SECRETS: [&str; 3] = ["SECRET123", "SECRET456", "dXNlcjpwdy1TRUNSRVQ0NTY"];
/// The header value reqwest sends for `user:pw-SECRET456@`.
const BASIC_AUTH: &str = "Basic dXNlcjpwdy1TRUNSRVQ0NTY=";

/// A file server on 127.0.0.1 that answers 401 to any request without
/// `Authorization: Basic base64(user:pw-SECRET456)` (which reqwest sends for a
/// URL with `user:password@`), 404 for a missing file. Records the paths asked
/// for. Stops when dropped.
struct AuthServer {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuthServer {
    fn serve(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (paths, stop, root) = (paths.clone(), stop.clone(), root.to_path_buf());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (paths, root) = (paths.clone(), root.clone());
                    std::thread::spawn(move || {
                        let _ = respond(stream, &root, &paths);
                    });
                }
            })
        };
        Self {
            addr,
            paths,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://user:pw-SECRET456@127.0.0.1:PORT/<path>`
    fn url_with_credentials(&self, path: &str) -> String {
        format!("http://{USER}:{PASSWORD}@{}/{path}", self.addr)
    }

    fn requested(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

fn respond(mut stream: TcpStream, root: &Path, paths: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorized = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            authorized |= name.eq_ignore_ascii_case("authorization") && value.trim() == BASIC_AUTH;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    paths.lock().unwrap().push(path.clone());
    let relative = path.trim_start_matches('/');
    let file = root.join(relative);
    let (status, body) = if !authorized {
        ("401 Unauthorized", Vec::new())
    } else if relative.split('/').any(|c| c == "..") || !file.is_file() {
        ("404 Not Found", Vec::new())
    } else {
        ("200 OK", fs_err::read(&file)?)
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    stream.write_all(&response)?;
    stream.flush()
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `pkgr args...`, keeping the output for the final secret check.
fn run(world: &World, outputs: &mut Vec<(String, Output)>, args: &[&str]) -> Output {
    let out = world.run(args);
    outputs.push((args.join(" "), out.clone()));
    out
}

/// Every file below `dir` whose name or content holds a secret.
fn files_with_secrets(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for relative in list_files(dir) {
        let path: PathBuf = dir.join(&relative);
        let content = if path.is_file() {
            fs_err::read(&path).unwrap_or_default()
        } else {
            Vec::new()
        };
        let content = String::from_utf8_lossy(&content);
        for secret in SECRETS {
            if relative.contains(secret) || content.contains(secret) {
                found.push(format!("{} holds {secret}", path.display()));
            }
        }
    }
    found
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
}

#[test]
fn credentials_are_never_written_or_printed() {
    let world = World::new();
    // Served tree (outside everything pkgr may write): a channel behind a
    // token, a channel behind the token with only noarch/, and a channel
    // behind basic auth alone.
    let served = world.path().join("served");
    let mut channel = LocalChannel::new(&served.join("t").join(TOKEN));
    channel.add(&Package::new("lib", "1.0"), Format::Conda);
    channel.add(
        &Package::new("app", "1.0")
            .depends("lib")
            .file("share/app.txt", "app\n"),
        Format::TarBz2,
    );
    channel.add(&Package::new("other", "1.0"), Format::Conda);
    channel.add(&Package::new("extra", "1.0"), Format::Conda);
    channel.write_repodata();
    let mut noarch_only = LocalChannel::new(&served.join("t").join(TOKEN).join("noarchonly"));
    noarch_only.add(&Package::new("data", "1").noarch_generic(), Format::Conda);
    noarch_only.write_repodata();
    let mut plain = LocalChannel::new(&served.join("plain"));
    plain.add(&Package::new("tool", "1.0"), Format::Conda);
    plain.add(&Package::new("tool2", "1.0"), Format::Conda);
    plain.write_repodata();
    let server = AuthServer::serve(&served);
    let addr = server.addr;
    let url = server.url_with_credentials(&format!("t/{TOKEN}/"));
    let record_channel = format!("http://{addr}/t/<TOKEN>/");
    let subdir = current_subdir();

    let env = world.env("tokens");
    let prefix = env.to_str().unwrap();
    let mut outputs = Vec::new();

    // create, install with -c and with --channel=, list, list --json.
    assert_ok(&run(
        &world,
        &mut outputs,
        &["create", "-p", prefix, "-c", &url, "app"],
    ));
    assert_ok(&run(
        &world,
        &mut outputs,
        &["install", "-p", prefix, "-c", &url, "other"],
    ));
    assert_ok(&run(
        &world,
        &mut outputs,
        &[
            "install",
            "-p",
            prefix,
            &format!("--channel={url}"),
            "--json",
            "extra",
        ],
    ));
    let out = run(&world, &mut outputs, &["list", "-p", prefix]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(record_channel.trim_end_matches('/')),
        "{}",
        stdout(&out)
    );
    let out = run(&world, &mut outputs, &["list", "--json", "-p", prefix]);
    assert_ok(&out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for entry in list.as_array().unwrap() {
        // conda's shape: `channel` is the channel's name, `base_url` its URL.
        assert_eq!(entry["base_url"], record_channel.as_str(), "{entry}");
        assert_eq!(
            entry["channel"],
            record_channel.trim_end_matches('/'),
            "{entry}"
        );
    }

    // The plan as JSON, without and with a dry run.
    let dry = world.env("dry");
    let out = run(
        &world,
        &mut outputs,
        &[
            "create",
            "--dry-run",
            "--json",
            "-p",
            dry.to_str().unwrap(),
            "-c",
            &url,
            "app",
        ],
    );
    assert_ok(&out);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let link = plan["actions"]["LINK"].as_array().unwrap();
    assert_eq!(link.len(), 2, "{plan}");
    for record in link {
        let url = record["url"].as_str().unwrap();
        assert!(url.starts_with(&record_channel), "{record}");
        assert_eq!(record["base_url"], record_channel.as_str(), "{record}");
        assert_eq!(
            record["channel"],
            record_channel.trim_end_matches('/'),
            "{record}"
        );
    }
    assert!(!dry.exists());

    // conda-meta: conda's form of the URL, no user info, the same channel.
    let meta = env.join("conda-meta");
    let records: Vec<PathBuf> = fs_err::read_dir(&meta)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(records.len(), 4, "{records:?}");
    for path in &records {
        let record = json_file(path);
        let url = record["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{record_channel}{subdir}/")),
            "{}: {url}",
            path.display()
        );
        assert!(!url.contains(USER), "{}: {url}", path.display());
        assert_eq!(
            record["channel"],
            record_channel.as_str(),
            "{}",
            path.display()
        );
    }
    let history = fs_err::read_to_string(meta.join("history")).unwrap();
    assert!(
        history.contains(&format!(
            "# cmd: {} create -p {prefix} -c {record_channel} app",
            env!("CARGO_BIN_EXE_pkgr")
        )),
        "{history}"
    );
    assert!(
        history.contains(&format!("--channel={record_channel} --json extra")),
        "{history}"
    );
    assert!(
        history.contains(&format!("+{record_channel}{subdir}::app-1.0-0")),
        "{history}"
    );

    // Without -c the channel comes from the records, which keep no
    // credentials: a clear refusal, and no request with the placeholder.
    let out = run(&world, &mut outputs, &["install", "-p", prefix, "lib"]);
    snapshot_failure!(&world, "install_needs_credentials", out);
    let out = run(&world, &mut outputs, &["update", "-p", prefix, "--all"]);
    snapshot_failure!(&world, "update_needs_credentials", out);
    assert!(
        server.requested().iter().all(|p| !p.contains("TOKEN")),
        "{:?}",
        server.requested()
    );

    // With -c again it works, and the installed packages stay as they are.
    let out = run(
        &world,
        &mut outputs,
        &["update", "-p", prefix, "-c", &url, "--all"],
    );
    assert_ok(&out);
    assert!(
        stdout(&out).contains("Nothing to change"),
        "{}",
        stdout(&out)
    );

    assert_ok(&run(
        &world,
        &mut outputs,
        &["remove", "-p", prefix, "other"],
    ));
    assert!(!meta.join("other-1.0-0.json").exists());

    // Failures: an unknown package; one in a channel without this platform's
    // subdir (the message names the URL that answered 404); a channel with no
    // repodata at all; a channel that cannot be reached.
    let failed = world.env("failed");
    let failed = failed.to_str().unwrap();
    snapshot_failure!(
        &world,
        "unknown_package",
        run(
            &world,
            &mut outputs,
            &["create", "-p", failed, "-c", &url, "no-such-package"],
        )
    );
    let noarch_url = format!("{url}noarchonly/");
    snapshot_failure!(
        &world,
        "subdir_answered_404",
        run(
            &world,
            &mut outputs,
            &["create", "-p", failed, "-c", &noarch_url, "app"],
        )
    );
    snapshot_failure!(
        &world,
        "channel_without_repodata",
        run(
            &world,
            &mut outputs,
            &[
                "create",
                "-p",
                failed,
                "-c",
                &format!("{url}nothing/"),
                "app",
            ],
        )
    );
    let unreachable = format!("http://{USER}:{PASSWORD}@127.0.0.1:1/t/{TOKEN}/");
    // From the error on: the retries of the two subdirs interleave.
    snapshot_error!(
        &world,
        "channel_unreachable",
        run(
            &world,
            &mut outputs,
            &["create", "-p", failed, "-c", &unreachable, "app"],
        )
    );

    // Basic auth alone: the record's channel is the plain URL; without -c the
    // server answers 401 and pkgr says what to do.
    let basic = world.env("basic");
    let basic = basic.to_str().unwrap();
    let plain_url = server.url_with_credentials("plain/");
    assert_ok(&run(
        &world,
        &mut outputs,
        &["create", "-p", basic, "-c", &plain_url, "tool"],
    ));
    let record = json_file(&Path::new(basic).join("conda-meta/tool-1.0-0.json"));
    assert_eq!(
        record["url"],
        format!("http://{addr}/plain/{subdir}/tool-1.0-0.conda")
    );
    snapshot_failure!(
        &world,
        "basic_auth_needs_credentials",
        run(&world, &mut outputs, &["install", "-p", basic, "tool2"])
    );
    assert_ok(&run(
        &world,
        &mut outputs,
        &["install", "-p", basic, "-c", &plain_url, "tool2"],
    ));

    // A record written by an older pkgr (or another tool) with the channel
    // masked for display (`user:********@`, `/t/********/`): the same refusal,
    // not a request with `********` as the credentials.
    let tool_record = Path::new(basic).join("conda-meta/tool-1.0-0.json");
    let mut record = json_file(&tool_record);
    record["channel"] = format!("http://{USER}:********@{addr}/t/********/").into();
    fs_err::write(&tool_record, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    let requests = server.requested().len();
    snapshot_failure!(
        &world,
        "masked_record_needs_credentials",
        run(&world, &mut outputs, &["install", "-p", basic, "lib"])
    );
    assert_eq!(server.requested().len(), requests);

    // Nothing pkgr wrote or printed holds a secret: environments, PKGR_ROOT,
    // the cache, HOME (everything in this world but the served tree).
    let mut leaks = Vec::new();
    for entry in fs_err::read_dir(world.path()).unwrap() {
        let path = entry.unwrap().path();
        if path != served {
            leaks.extend(files_with_secrets(&path));
        }
    }
    assert!(world.cache().join("pkgs").is_dir());
    for (command, out) in &outputs {
        for secret in SECRETS {
            for (stream, text) in [("stdout", stdout(out)), ("stderr", stderr(out))] {
                if text.contains(secret) {
                    leaks.push(format!("{stream} of `{command}` holds {secret}:\n{text}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
