//! `file://` URLs: a local file copied like a download.

use std::path::Path;

use pkgr_redact::redact_url;
use url::Url;

use crate::verify::VerifyingSink;
use crate::{Downloaded, Expected, FetchError, Tap};

/// Copies a local file like a download. Async (reads through `tokio::fs`), so
/// that dropping the future stops it and deletes the temp file, exactly as for
/// an HTTP download: nothing keeps writing after the caller has given up.
pub(crate) async fn copy_local(
    url: &Url,
    dest: &Path,
    temp_dir: &Path,
    expected: &Expected,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
    tap: &mut Tap,
) -> Result<Downloaded, FetchError> {
    use tokio::io::AsyncReadExt;
    let redacted = redact_url(url);
    let path = url.to_file_path().map_err(|()| FetchError::NotFound {
        url: redacted.clone(),
    })?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FetchError::NotFound { url: redacted });
        }
        Err(e) => {
            return Err(FetchError::Io {
                context: format!("could not read {redacted}"),
                source: e,
            });
        }
    };
    let mut sink = VerifyingSink::create(temp_dir, &redacted)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| FetchError::Io {
            context: format!("could not read {}", path.display()),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        let offset = sink.size;
        sink.write(&buf[..n])?;
        if tap.is_attached() {
            tap.send(offset, bytes::Bytes::copy_from_slice(&buf[..n]))
                .await;
        }
        on_bytes(n as u64);
    }
    tracing::debug!(bytes = sink.size, "local file copied");
    sink.finish(dest, expected)
}
