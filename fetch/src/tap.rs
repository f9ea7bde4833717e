//! Tapping a download: a caller sees every chunk of the body, with its
//! offset in the file, while it arrives (the cache extracts archives as they
//! download), through a bounded channel.

/// A chunk of a download's body as it arrived, and where in the file it
/// starts ([`Fetcher::download_with_permit_tapped`](crate::Fetcher::download_with_permit_tapped)).
#[derive(Debug, Clone)]
pub struct TapChunk {
    /// The byte offset of `bytes` in the file.
    pub offset: u64,
    /// The bytes (the very ones written to the temp file).
    pub bytes: bytes::Bytes,
}

/// The sending half of a tap: lets a caller see a download's body in file
/// order while it arrives, without this crate knowing what the bytes are
/// (see [`Fetcher::download_with_permit_tapped`](crate::Fetcher::download_with_permit_tapped)). Made by [`Tap::channel`].
///
/// The channel is bounded: when the receiver is slower than the network,
/// the download waits for it (an async send, never a blocking one), so at
/// most `capacity` chunks are held in memory; that wait does not count
/// against the read timeout (which runs only while the body is polled).
/// When the receiver is dropped, the tap detaches and the download goes on
/// at full speed without it.
#[derive(Debug)]
pub struct Tap {
    sender: Option<tokio::sync::mpsc::Sender<TapChunk>>,
}

/// The receiving half of a [`Tap`]: the chunks, then `None` once the
/// download has ended (whether it succeeded is what the download returns).
#[derive(Debug)]
pub struct TapReceiver {
    receiver: tokio::sync::mpsc::Receiver<TapChunk>,
}

impl Tap {
    /// A tap and its receiver, holding at most `capacity` chunks (at least 1)
    /// that the receiver has not taken yet.
    pub fn channel(capacity: usize) -> (Self, TapReceiver) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
        (
            Self {
                sender: Some(sender),
            },
            TapReceiver { receiver },
        )
    }

    /// A tap nobody listens to (what the untapped downloads use).
    pub fn detached() -> Self {
        Self { sender: None }
    }

    /// Whether a receiver still listens.
    pub(crate) fn is_attached(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Hands `bytes` (at `offset` in the file) to the receiver, waiting while
    /// its channel is full; a receiver that is gone detaches the tap.
    pub(crate) async fn send(&mut self, offset: u64, bytes: bytes::Bytes) {
        if let Some(sender) = &self.sender {
            if sender.send(TapChunk { offset, bytes }).await.is_err() {
                self.sender = None;
            }
        }
    }
}

impl TapReceiver {
    /// The next chunk, blocking the thread until it comes (`None`: the
    /// download ended). For a blocking thread (`spawn_blocking`) only: it
    /// panics in async code, whose threads must never block.
    pub fn blocking_recv(&mut self) -> Option<TapChunk> {
        self.receiver.blocking_recv()
    }

    /// The next chunk (`None`: the download ended).
    pub async fn recv(&mut self) -> Option<TapChunk> {
        self.receiver.recv().await
    }
}
