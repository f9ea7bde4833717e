//! [`ChannelServer`]: a channel served over HTTP on 127.0.0.1, with request
//! counts, delays and switchable [`Fault`]s.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::*;

/// A channel served over HTTP on 127.0.0.1 (ephemeral port) from a directory.
/// Counts requests per path; can delay chosen paths and inject [`Fault`]s into
/// them; sends `Cache-Control: public, max-age=1200` and an `ETag` (a hash of
/// the file's bytes) with repodata.json and answers a matching
/// `If-None-Match` with `304 Not Modified`, as conda-forge's CDN does. Stops
/// when dropped.
///
/// `/t/<token>/<rest>` is served as `/<rest>` (conda's token URLs); such a
/// request is counted under both paths, and delays and faults set for either
/// path apply. `Authorization` headers are ignored unless
/// [`ChannelServer::require_auth`] says otherwise.
///
/// Plain HTTP/1.1 on `std::net`, one thread per connection, `Connection:
/// close` on every response: nothing clever that could itself stall a test.
/// Every connection thread ends by itself (reads and writes time out after
/// 30 s; a [`Fault::StallAfterHeaders`] sleeps only as long as it was told).
pub struct ChannelServer {
    addr: std::net::SocketAddr,
    url: String,
    state: Arc<ServerState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A failure the server injects into its answers for one path (see
/// [`ChannelServer::fault`]). A fault fires after the path's
/// [`ChannelServer::delay`], if any. Faults that need the file's bytes
/// (`ResetMidBody`, `Truncated`, `WrongBytes`, `StallAfterHeaders`,
/// `CutShortNoLength`) answer a plain 404 when the file does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `200` with the file's full `Content-Length`, half of the body, then the
    /// connection is shut down at once (both directions) and dropped: the
    /// connection dies mid-body. (Rust's std cannot set `SO_LINGER` to 0, so
    /// the kernel closes with a FIN, not an RST; to a client both are a body
    /// that ends before its `Content-Length`.) Every request.
    ResetMidBody,
    /// [`Fault::ResetMidBody`] for the first `times` requests, then the file
    /// is served normally (ranges included): a connection that dies once.
    ResetMidBodyTimes(usize),
    /// `200` with the file's full `Content-Length` and every byte of the body
    /// but the last, then a normal close. Every request.
    Truncated,
    /// `200`, full length, but 64 bytes in the middle of the body are flipped
    /// (XOR 0xFF): the size is right, the sha256 is not. Every request.
    WrongBytes,
    /// The first `times` requests get `status` (e.g. 500, 503) with an empty
    /// body; later ones are served normally.
    FailTimes {
        /// The HTTP status to answer.
        status: u16,
        /// How many requests get it.
        times: usize,
    },
    /// The first request gets `429 Too Many Requests` with
    /// `Retry-After: <retry_after_secs>`; later ones are served normally.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// The first request gets `503 Service Unavailable` with `Retry-After`
    /// as an HTTP date this far in the future; later ones are served.
    RetryAfterDate(Duration),
    /// Every request gets this status (404, 401, 403, 500...), empty body.
    Status(u16),
    /// `302 Found` with `Location: http://127.0.0.1:<port><to>` (`to` is a
    /// path on this server, e.g. `/mirror/noarch/x.conda`). Every request.
    Redirect {
        /// The path to redirect to.
        to: String,
    },
    /// `302 Found` with `Location` pointing at the requested path itself.
    RedirectLoop,
    /// `200` with the full headers at once, then a sleep of this long, then
    /// the body. The thread ends after the sleep.
    StallAfterHeaders(Duration),
    /// `200` with `<html>oops</html>` (`Content-Type: text/html`) and, for
    /// repodata.json, the caching headers (`ETag` of the real file,
    /// `Cache-Control`) the real file gets: an edge that cached an error page
    /// under the object's ETag. Every request.
    NotJson,
    /// `200` with **no** `Content-Length` (the body ends when the connection
    /// closes, legal for HTTP/1.1 with `Connection: close`), the real file's
    /// caching headers, and only the first half of the file, then a normal
    /// close: a transfer cut short that the client cannot tell from a
    /// complete one by its length. Every request.
    CutShortNoLength,
    /// `200` with the full headers and the first half of the body at once,
    /// then a sleep of this long, then the rest: a download kept mid-body
    /// (a client that streams has seen the first half). Every request.
    StallMidBody(Duration),
}

/// What [`ChannelServer::require_auth`] asks every request for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredAuth {
    /// `Authorization: Basic` with this user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// A path starting `/t/<token>/` (conda's token URLs).
    Token(String),
}

struct FaultSlot {
    fault: Fault,
    fired: usize,
}

/// What one request gets, once delays and faults are decided.
enum Action {
    Serve,
    Fault(Fault),
}

#[derive(Default)]
struct ServerState {
    counts: Mutex<HashMap<String, usize>>,
    times: Mutex<HashMap<String, Vec<Instant>>>,
    bytes_served: Mutex<u64>,
    delays: Mutex<HashMap<String, Duration>>,
    faults: Mutex<HashMap<String, FaultSlot>>,
    ranges: Mutex<HashMap<String, Vec<Option<String>>>>,
    ignore_ranges: std::sync::atomic::AtomicBool,
    required_auth: Mutex<Option<RequiredAuth>>,
    refused: Mutex<usize>,
    stop: std::sync::atomic::AtomicBool,
}

impl ChannelServer {
    /// Serves `root` until dropped.
    pub fn serve(root: &Path) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState::default());
        let thread = {
            let state = state.clone();
            let root = root.to_path_buf();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if state.stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, root) = (state.clone(), root.clone());
                    std::thread::spawn(move || {
                        let _ = handle_connection(stream, &root, &state);
                    });
                }
            })
        };
        Self {
            addr,
            url: format!("http://{addr}"),
            state,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests `path` (e.g. `/linux-64/repodata.json`) got.
    pub fn count(&self, path: &str) -> usize {
        self.state
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// All request counts by path.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.state.counts.lock().unwrap().clone()
    }

    /// When each request for `path` arrived (before any delay), oldest first.
    pub fn request_times(&self, path: &str) -> Vec<Instant> {
        self.state
            .times
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// The `Range` header of each request for `path` (`None`: none), oldest first.
    pub fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .ranges
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// From now on every request must carry `auth`, else it gets `401`.
    pub fn require_auth(&self, auth: RequiredAuth) {
        *self.state.required_auth.lock().unwrap() = Some(auth);
    }

    /// How many requests were refused with `401` for missing credentials.
    pub fn refused(&self) -> usize {
        *self.state.refused.lock().unwrap()
    }

    /// From now on, `Range` headers are ignored: every answer is the whole
    /// file with `200` and no `Accept-Ranges` (as some servers and proxies).
    pub fn ignore_ranges(&self) {
        self.state
            .ignore_ranges
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Total bytes of file content served (for faults: what was actually sent).
    pub fn bytes_served(&self) -> u64 {
        *self.state.bytes_served.lock().unwrap()
    }

    /// Delays every response for `path` by `delay` (before any fault fires).
    pub fn delay(&self, path: &str, delay: Duration) {
        self.state
            .delays
            .lock()
            .unwrap()
            .insert(path.to_owned(), delay);
    }

    /// Removes every delay.
    pub fn clear_delays(&self) {
        self.state.delays.lock().unwrap().clear();
    }

    /// Injects `fault` into the answers for `path` (replacing an earlier
    /// fault there, and starting its `times`/once count afresh).
    pub fn fault(&self, path: &str, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .insert(path.to_owned(), FaultSlot { fault, fired: 0 });
    }

    /// Removes the fault of `path`.
    pub fn clear_fault(&self, path: &str) {
        self.state.faults.lock().unwrap().remove(path);
    }

    /// Removes every fault: from now on every path is served normally.
    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// The `ETag` this server sends for a file with these bytes.
    pub fn etag_of(bytes: &[u8]) -> String {
        format!("\"{}\"", &sha256_hex(bytes)[..16])
    }
}

fn action_for(state: &ServerState, paths: &[&str]) -> Action {
    let mut faults = state.faults.lock().unwrap();
    let Some(key) = paths.iter().find(|p| faults.contains_key(**p)) else {
        return Action::Serve;
    };
    let Some(slot) = faults.get_mut(*key) else {
        return Action::Serve;
    };
    let fires = match &slot.fault {
        Fault::FailTimes { times, .. } => slot.fired < *times,
        Fault::TooManyRequests { .. } | Fault::RetryAfterDate(_) => slot.fired == 0,
        Fault::ResetMidBodyTimes(times) => slot.fired < *times,
        _ => true,
    };
    if fires {
        slot.fired += 1;
        Action::Fault(slot.fault.clone())
    } else {
        Action::Serve
    }
}

/// `/t/<token>/rest` → `/rest`; other paths unchanged.
fn strip_token(path: &str) -> &str {
    path.strip_prefix("/t/")
        .and_then(|rest| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or(path)
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// A response head: status line, `Connection: close`, `extra` headers.
pub(crate) fn head(status: u16, extra: &[(&str, String)]) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
        reason(status)
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

fn handle_connection(
    mut stream: std::net::TcpStream,
    root: &Path,
    state: &ServerState,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader};
    let arrived = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut if_none_match = None;
    let mut range = None;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(value.trim().to_owned());
            }
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
            if name.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let requested = parts
        .next()
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let path = strip_token(&requested).to_owned();
    let mut paths = vec![requested.as_str()];
    if path != requested {
        paths.push(path.as_str());
    }
    for p in &paths {
        *state
            .counts
            .lock()
            .unwrap()
            .entry((*p).to_owned())
            .or_insert(0) += 1;
        state
            .times
            .lock()
            .unwrap()
            .entry((*p).to_owned())
            .or_default()
            .push(arrived);
        state
            .ranges
            .lock()
            .unwrap()
            .entry((*p).to_owned())
            .or_default()
            .push(range.clone());
    }
    let ranges_served = !state
        .ignore_ranges
        .load(std::sync::atomic::Ordering::SeqCst);
    let required = state.required_auth.lock().unwrap().clone();
    let allowed = match &required {
        None => true,
        Some(RequiredAuth::Basic { user, password }) => {
            use base64::Engine;
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            authorization.as_deref() == Some(format!("Basic {expected}").as_str())
        }
        Some(RequiredAuth::Bearer(token)) => {
            authorization.as_deref() == Some(format!("Bearer {token}").as_str())
        }
        Some(RequiredAuth::Token(token)) => requested.starts_with(&format!("/t/{token}/")),
    };
    if !allowed {
        *state.refused.lock().unwrap() += 1;
        let headers = [
            (
                "WWW-Authenticate",
                String::from("Basic realm=\"pkgr-test\""),
            ),
            ("Content-Length", String::from("0")),
        ];
        return send(&mut stream, &head(401, &headers), &[]);
    }
    let delay = {
        let delays = state.delays.lock().unwrap();
        paths.iter().find_map(|p| delays.get(*p).copied())
    };
    if let Some(delay) = delay {
        std::thread::sleep(delay);
    }
    let action = action_for(state, &paths);

    let relative = path.trim_start_matches('/');
    let file = if relative.split('/').any(|c| c == "..") {
        None
    } else {
        fs_err::read(root.join(relative))
            .ok()
            .filter(|_| root.join(relative).is_file())
    };
    let is_repodata = relative.ends_with("repodata.json");
    // As conda-forge's CDN does.
    let caching: Vec<(&str, String)> = match (&file, is_repodata) {
        (Some(bytes), true) => vec![
            ("Cache-Control", String::from("public, max-age=1200")),
            ("ETag", ChannelServer::etag_of(bytes)),
        ],
        _ => Vec::new(),
    };
    stream.set_nodelay(true)?;
    let served = |n: usize| *state.bytes_served.lock().unwrap() += n as u64;
    let length = |n: usize| ("Content-Length", n.to_string());
    let with = |headers: &[(&'static str, String)], more: (&'static str, String)| {
        let mut headers = headers.to_vec();
        headers.push(more);
        headers
    };

    let fault = match action {
        Action::Fault(fault) => fault,
        Action::Serve => {
            let Some(body) = file else {
                return send(&mut stream, &head(404, &[length(0)]), &[]);
            };
            let etag = caching.iter().find(|(n, _)| *n == "ETag").map(|(_, v)| v);
            if let (Some(etag), Some(wanted)) = (etag, &if_none_match) {
                if wanted
                    .split(',')
                    .any(|w| w.trim() == etag || w.trim() == "*")
                {
                    return send(&mut stream, &head(304, &caching), &[]);
                }
            }
            // `Range: bytes=N-` (what a resuming client sends).
            let from = range
                .as_deref()
                .filter(|_| ranges_served)
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(from) = from.filter(|&f| f < body.len()) {
                let mut headers = with(&caching, length(body.len() - from));
                headers.push((
                    "Content-Range",
                    format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
                ));
                headers.push(("Accept-Ranges", String::from("bytes")));
                served(body.len() - from);
                return send(&mut stream, &head(206, &headers), &body[from..]);
            }
            let mut headers = with(&caching, length(body.len()));
            if ranges_served {
                headers.push(("Accept-Ranges", String::from("bytes")));
            }
            let head = head(200, &headers);
            if method == "HEAD" {
                return send(&mut stream, &head, &[]);
            }
            served(body.len());
            return send(&mut stream, &head, &body);
        }
    };
    let here = stream.local_addr()?;
    let redirect = |to: &str| {
        let location = format!("http://{here}{to}");
        head(302, &[("Location", location), length(0)])
    };
    // Faults that do not need the file.
    match &fault {
        Fault::Status(status) | Fault::FailTimes { status, .. } => {
            return send(&mut stream, &head(*status, &[length(0)]), &[]);
        }
        Fault::TooManyRequests { retry_after_secs } => {
            let headers = [("Retry-After", retry_after_secs.to_string()), length(0)];
            return send(&mut stream, &head(429, &headers), &[]);
        }
        Fault::RetryAfterDate(after) => {
            let headers = [("Retry-After", http_date_in(*after)), length(0)];
            return send(&mut stream, &head(503, &headers), &[]);
        }
        Fault::Redirect { to } => return send(&mut stream, &redirect(to), &[]),
        Fault::RedirectLoop => return send(&mut stream, &redirect(&requested), &[]),
        Fault::NotJson => {
            let body = b"<html>oops</html>";
            let mut headers = with(&caching, length(body.len()));
            headers.push(("Content-Type", String::from("text/html")));
            return send(&mut stream, &head(200, &headers), body);
        }
        _ => {}
    }
    let Some(mut body) = file else {
        return send(&mut stream, &head(404, &[length(0)]), &[]);
    };
    let full = head(200, &with(&caching, length(body.len())));
    match fault {
        Fault::ResetMidBody | Fault::ResetMidBodyTimes(_) => {
            served(body.len() / 2);
            send(&mut stream, &full, &body[..body.len() / 2])?;
            stream.shutdown(std::net::Shutdown::Both)
        }
        Fault::Truncated => {
            let sent = body.len().saturating_sub(1);
            served(sent);
            send(&mut stream, &full, &body[..sent])?;
            stream.shutdown(std::net::Shutdown::Write)
        }
        Fault::WrongBytes => {
            let start = body.len() / 2;
            let end = (start + 64).min(body.len());
            for b in &mut body[start..end] {
                *b ^= 0xFF;
            }
            served(body.len());
            send(&mut stream, &full, &body)
        }
        Fault::StallAfterHeaders(stall) => {
            send(&mut stream, &full, &[])?;
            std::thread::sleep(stall);
            served(body.len());
            send(&mut stream, &[], &body)
        }
        Fault::StallMidBody(stall) => {
            let half = body.len() / 2;
            send(&mut stream, &full, &body[..half])?;
            std::thread::sleep(stall);
            served(body.len());
            send(&mut stream, &[], &body[half..])
        }
        Fault::CutShortNoLength => {
            served(body.len() / 2);
            send(&mut stream, &head(200, &caching), &body[..body.len() / 2])?;
            stream.shutdown(std::net::Shutdown::Write)
        }
        // Answered above.
        Fault::FailTimes { .. }
        | Fault::TooManyRequests { .. }
        | Fault::RetryAfterDate(_)
        | Fault::Status(_)
        | Fault::Redirect { .. }
        | Fault::RedirectLoop
        | Fault::NotJson => Ok(()),
    }
}

/// An HTTP date `after` from now, rounded up to the next whole second.
pub(crate) fn http_date_in(after: Duration) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + after + Duration::from_secs(1))
}

/// Writes `head` and `body` in one write (no Nagle: a small header write
/// followed by the body would wait for a delayed ACK on every response).
pub(crate) fn send(
    stream: &mut std::net::TcpStream,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(head.len() + body.len());
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    stream.flush()
}

impl Drop for ChannelServer {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;
