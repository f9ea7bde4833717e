//! When a failed request is tried again, after how long, and when pkgr gives
//! up: the network settings (conda's `remote_max_retries`,
//! `remote_backoff_factor`, `remote_connect_timeout_secs`,
//! `remote_read_timeout_secs`), the classification of transport errors, and
//! `Retry-After`.
//!
//! Retried: connection failures, timeouts (no byte for the read timeout), a
//! body cut off, HTTP 408, 429 and 5xx. Never retried: other 4xx, a name
//! that does not resolve, a certificate or TLS failure, a redirect loop —
//! trying again cannot help, and each try costs the user time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a [`crate::Fetcher`] talks to servers.
#[derive(Clone, PartialEq)]
pub struct NetworkSettings {
    /// How many times a transient failure is retried (conda's
    /// `remote_max_retries`).
    pub max_retries: u32,
    /// The backoff before retry *n* is `backoff_factor × 2^(n-1)` seconds,
    /// with jitter (a random 50–100 % of it), capped at [`MAX_BACKOFF`]
    /// (conda's `remote_backoff_factor`).
    pub backoff_factor: f64,
    /// How long connecting may take (conda's `remote_connect_timeout_secs`).
    pub connect_timeout: Duration,
    /// How long a response may go without a byte before the attempt is
    /// given up (conda's `remote_read_timeout_secs`).
    pub read_timeout: Duration,
    /// The proxy for `http://` URLs (conda's `proxy_servers.http`); `None`:
    /// `$HTTP_PROXY`/`$ALL_PROXY` (and `$NO_PROXY`), as reqwest reads them.
    pub proxy_http: Option<String>,
    /// The proxy for `https://` URLs (`proxy_servers.https`; else `$HTTPS_PROXY`).
    pub proxy_https: Option<String>,
    /// Whether TLS certificates are checked (conda's `ssl_verify: false`
    /// turns it off; the CLI warns loudly).
    pub ssl_verify: bool,
    /// More trusted certificates, a PEM bundle (`ssl_verify: <path>`,
    /// `$REQUESTS_CA_BUNDLE`, `$SSL_CERT_FILE`), beside the built-in roots.
    pub ca_bundle: Option<std::path::PathBuf>,
}

impl Default for NetworkSettings {
    /// 3 retries, backoff factor 1, 30 s to connect, 30 s without a byte: a
    /// server that stalls for ever is given up on after about 2 minutes
    /// (4 × 30 s plus ~4 s of backoff).
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff_factor: 1.0,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            proxy_http: None,
            proxy_https: None,
            ssl_verify: true,
            ca_bundle: None,
        }
    }
}

impl std::fmt::Debug for NetworkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proxy = |p: &Option<String>| {
            p.as_deref()
                .map(|p| pkgr_redact::redact_urls_in_text(p, pkgr_redact::redact_url))
        };
        f.debug_struct("NetworkSettings")
            .field("max_retries", &self.max_retries)
            .field("backoff_factor", &self.backoff_factor)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("proxy_http", &proxy(&self.proxy_http))
            .field("proxy_https", &proxy(&self.proxy_https))
            .field("ssl_verify", &self.ssl_verify)
            .field("ca_bundle", &self.ca_bundle)
            .finish()
    }
}

/// The longest backoff between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The longest `Retry-After` pkgr honours; a server asking for more gets
/// its retry after this long (and a failure if it still refuses).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl NetworkSettings {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self.backoff_factor.max(0.0) * 2f64.powi(retry.saturating_sub(1).min(16) as i32);
        let jittered = base * (0.5 + 0.5 * jitter());
        Duration::from_secs_f64(jittered).min(MAX_BACKOFF)
    }
}

/// A number in [0, 1) that differs between processes and calls (enough to
/// keep a fleet of clients from retrying in step; not for anything secret).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(nanos);
    hasher.write_u32(std::process::id());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What kind of transport failure a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Connecting failed (refused, reset, unreachable).
    Connect,
    /// No answer, or no byte, within the timeout.
    Timeout,
    /// The body broke off before its end.
    Body,
    /// The host name does not resolve.
    Dns,
    /// TLS failed: a certificate not trusted, a handshake refused.
    Tls,
    /// Too many redirects (a loop).
    Redirect,
    /// Anything else the HTTP client reported.
    Other,
}

impl TransportKind {
    /// Whether trying again can help.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Connect | Self::Timeout | Self::Body | Self::Other
        )
    }

    /// The kind of a `reqwest` error, from its flags and its cause chain
    /// (DNS and TLS failures are connect errors to reqwest; their causes
    /// say which). The chain is read without the URL (a package named
    /// `ca-certificates` or `gnutls` must not look like a TLS failure), and
    /// only connect errors are searched for DNS/TLS words: a connection
    /// dropped mid-body ("peer closed connection without sending TLS
    /// close_notify") is a body error, retried and resumed.
    pub fn of(error: &reqwest::Error) -> Self {
        if error.is_redirect() {
            return Self::Redirect;
        }
        if error.is_timeout() {
            return Self::Timeout;
        }
        if error.is_body() || error.is_decode() {
            return Self::Body;
        }
        if !error.is_connect() {
            return Self::Other;
        }
        let mut chain = crate::error::error_chain(error);
        if let Some(url) = error.url() {
            chain = chain.replace(url.as_str(), "");
        }
        Self::of_connect_message(&chain)
    }

    /// The kind of a connect error from its (URL-less) message chain.
    pub fn of_connect_message(chain: &str) -> Self {
        let chain = chain.to_ascii_lowercase();
        if chain.contains("temporary failure in name resolution") || chain.contains("try again") {
            // The resolver could not answer now: worth another try.
            Self::Connect
        } else if chain.contains("dns error")
            || chain.contains("failed to lookup address")
            || chain.contains("name or service not known")
            || chain.contains("no such host")
        {
            Self::Dns
        } else if chain.contains("certificate")
            || chain.contains("invalid peer")
            || chain.contains("handshake")
            || chain.contains("tls")
            || chain.contains("corrupt message")
            || chain.contains("invalidcontenttype")
        {
            Self::Tls
        } else {
            Self::Connect
        }
    }
}

/// Whether an HTTP status is worth retrying: 408, 429 and 5xx.
pub fn is_transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// A `Retry-After` value: seconds, or an HTTP date (RFC 9110), as the wait
/// from now (a date in the past is no wait).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let settings = NetworkSettings::default();
        for retry in 1u32..=4 {
            let full = 2f64.powi(retry as i32 - 1);
            for _ in 0..20 {
                let wait = settings.backoff(retry).as_secs_f64();
                assert!(
                    wait >= full * 0.5 - 1e-9 && wait <= full + 1e-9,
                    "{retry}: {wait}"
                );
            }
        }
        assert_eq!(settings.backoff(40), MAX_BACKOFF.min(settings.backoff(40)));
        assert!(settings.backoff(40) <= MAX_BACKOFF);
        let none = NetworkSettings {
            backoff_factor: 0.0,
            ..NetworkSettings::default()
        };
        assert_eq!(none.backoff(3), Duration::ZERO);
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn connect_messages_are_classified_without_guessing_from_names() {
        use TransportKind::*;
        let cases = [
            ("client error (Connect): dns error: failed to lookup address information: Name or service not known", Dns),
            ("client error (Connect): dns error: failed to lookup address information: Temporary failure in name resolution", Connect),
            ("client error (Connect): invalid peer certificate: UnknownIssuer", Tls),
            ("client error (Connect): received corrupt message of type InvalidContentType", Tls),
            ("client error (Connect): tcp connect error: Connection refused (os error 111)", Connect),
        ];
        for (message, kind) in cases {
            assert_eq!(
                TransportKind::of_connect_message(message),
                kind,
                "{message}"
            );
        }
    }

    #[test]
    fn statuses_worth_retrying() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 416] {
            assert!(!is_transient_status(status), "{status}");
        }
    }
}
