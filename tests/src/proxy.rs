//! Servers in front of a [`ChannelServer`]: a forward HTTP proxy
//! ([`ForwardProxy`]) and a TLS front ([`TlsFront`]).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::server::{head, send};

/// A forward HTTP proxy on 127.0.0.1 (ephemeral port) that passes plain
/// `GET http://127.0.0.1:<port>/...` requests on to their server (only to
/// 127.0.0.1: anything else gets `403`), one connection per request, and
/// counts what it forwarded. Stops when dropped.
pub struct ForwardProxy {
    addr: std::net::SocketAddr,
    forwarded: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForwardProxy {
    /// Starts the proxy.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (forwarded, stop) = (forwarded.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let forwarded = forwarded.clone();
                    std::thread::spawn(move || {
                        let _ = forward_one(stream, &forwarded);
                    });
                }
            })
        };
        Self {
            addr,
            forwarded,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URLs forwarded so far.
    pub fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }
}

fn forward_one(
    mut client: std::net::TcpStream,
    forwarded: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read};
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        let name = header
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "proxy-connection" | "connection" | "proxy-authorization"
        ) {
            headers.push(header);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        // A tunnel (for https://), only to this machine.
        let port = target
            .strip_prefix("localhost:")
            .or_else(|| target.strip_prefix("127.0.0.1:"));
        let Some(port) = port else {
            return send(
                &mut client,
                &head(403, &[("Content-Length", String::from("0"))]),
                &[],
            );
        };
        forwarded.lock().unwrap().push(format!("CONNECT {target}"));
        let upstream = std::net::TcpStream::connect(format!("127.0.0.1:{port}"))?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let (mut up_read, mut up_write) = (upstream.try_clone()?, upstream);
        let (mut client_read, mut client_write) = (client.try_clone()?, client);
        let pump = std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_read, &mut up_write);
            let _ = up_write.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(std::net::Shutdown::Write);
        let _ = pump.join();
        return Ok(());
    }
    let Some(rest) = target.strip_prefix("http://127.0.0.1:") else {
        return send(
            &mut client,
            &head(403, &[("Content-Length", String::from("0"))]),
            &[],
        );
    };
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    forwarded.lock().unwrap().push(target.to_owned());
    let mut upstream = std::net::TcpStream::connect(format!("127.0.0.1:{port}"))?;
    let mut request = format!(
        "{method} {} HTTP/1.1\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for header in headers {
        request.push_str(&header);
    }
    request.push_str("Connection: close\r\n\r\n");
    upstream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    client.write_all(&response)?;
    client.flush()
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A TLS front for a [`ChannelServer`](crate::ChannelServer) (or any plain HTTP server on
/// 127.0.0.1): `https://127.0.0.1:<port>` with a certificate made for
/// `localhost` and `127.0.0.1` at start, each request passed on to the
/// backend in plain HTTP. The certificate's PEM is what a client must trust.
/// [`TlsFront::url`] names it by IP (`https://127.0.0.1:<port>`), so no name
/// is looked up.
pub struct TlsFront {
    addr: std::net::SocketAddr,
    cert_pem: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsFront {
    /// Starts the front for `backend` (`http://127.0.0.1:<port>`).
    pub fn start(backend: &str) -> Self {
        let backend = backend.trim_start_matches("http://").to_owned();
        let certified = rcgen::generate_simple_self_signed(vec![
            String::from("localhost"),
            String::from("127.0.0.1"),
        ])
        .unwrap();
        let cert_pem = certified.cert.pem();
        let cert_der = certified.cert.der().clone();
        let key_der =
            rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
                .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert_der], key_der)
                .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, backend) = (config.clone(), backend.clone());
                    std::thread::spawn(move || {
                        let _ = tls_forward_one(stream, config, &backend);
                    });
                }
            })
        };
        Self {
            addr,
            cert_pem,
            stop,
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The certificate (PEM) a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

fn tls_forward_one(
    stream: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    backend: &str,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read};
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, stream);
    // The request head (the clients here send no bodies).
    let mut head = Vec::new();
    {
        let mut reader = BufReader::new(&mut tls);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n" || line == "\n";
            if !line.to_ascii_lowercase().starts_with("connection:") {
                head.extend_from_slice(line.as_bytes());
            }
            if end {
                break;
            }
        }
    }
    head.truncate(head.len().saturating_sub(2));
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut upstream = std::net::TcpStream::connect(backend)?;
    upstream.write_all(&head)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    tls.write_all(&response)?;
    tls.conn.send_close_notify();
    tls.flush()
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
