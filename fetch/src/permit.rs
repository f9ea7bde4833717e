//! The `--jobs` permit a download works in, given back while it waits to
//! retry.

use std::sync::Arc;

use crate::FetchError;

/// The `--jobs` permit a download works in (its share of the bounded concurrency). It is given
/// back while the download waits to retry (backoff, `Retry-After`) and
/// taken again before the next attempt, so a waiting download never keeps
/// other work from running (the design's rule: hold a bounded resource only
/// for the work itself).
#[derive(Debug)]
pub struct DownloadPermit {
    semaphore: Arc<tokio::sync::Semaphore>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl DownloadPermit {
    /// A download permit of `semaphore`, holding `permit` (taken from it).
    pub fn new(
        semaphore: Arc<tokio::sync::Semaphore>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Self {
        Self {
            semaphore,
            permit: Some(permit),
        }
    }

    /// Takes a permit of `semaphore` (waiting for one, holding nothing).
    pub async fn acquire(semaphore: Arc<tokio::sync::Semaphore>) -> Result<Self, FetchError> {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| FetchError::Io {
                context: String::from("the jobs semaphore was closed"),
                source: std::io::Error::other(e),
            })?;
        Ok(Self::new(semaphore, permit))
    }

    /// The permit, to go on working with it (`None` only if a retry could
    /// not take one again, which the download reported as its error).
    pub fn into_permit(self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permit
    }

    pub(crate) fn release(&mut self) {
        self.permit = None;
    }

    pub(crate) async fn reacquire(&mut self) -> Result<(), FetchError> {
        if self.permit.is_none() {
            let permit =
                self.semaphore
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| FetchError::Io {
                        context: String::from("the jobs semaphore was closed"),
                        source: std::io::Error::other(e),
                    })?;
            self.permit = Some(permit);
        }
        Ok(())
    }
}
