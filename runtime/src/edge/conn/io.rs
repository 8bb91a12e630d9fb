//! The byte stream under a connection's HTTP codec: it first replays what the
//! protocol sniffing read, and counts what passes each way into the
//! connection's [`ConnState`], so the watchdog can tell a client that stopped
//! reading or stopped sending from one that is merely idle.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frames::FrameTracker;
use super::state::ConnState;

/// A client stream, metered.
pub struct MeteredIo<S> {
    inner: S,
    /// Bytes read before the codec started (protocol sniffing), served first.
    prefix: Bytes,
    state: Arc<ConnState>,
    /// For HTTP/2: where the client is in its frames.
    frames: Option<FrameTracker>,
}

impl<S> MeteredIo<S> {
    /// Meters `inner` into `state`, replaying `prefix` first; `http2` follows
    /// the client's frames for the header-block timeout.
    pub fn new(inner: S, prefix: Bytes, state: Arc<ConnState>, http2: bool) -> Self {
        Self {
            inner,
            prefix,
            state,
            frames: http2.then(FrameTracker::default),
        }
    }

    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        match result {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.state.bytes_written.fetch_add(*n as u64, Relaxed);
                self.state.write_blocked.store(false, Relaxed);
            }
            Poll::Pending => self.state.write_blocked.store(true, Relaxed),
            _ => {}
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        if self.prefix.is_empty() {
            ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        } else {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
        }
        let new = &buf.filled()[before..];
        self.state.bytes_read.fetch_add(new.len() as u64, Relaxed);
        let this = &mut *self;
        if let Some(frames) = &mut this.frames {
            frames.feed(new);
            this.state
                .header_block
                .store(frames.in_header_block(), Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        match result {
            Poll::Pending => self.state.write_blocked.store(true, Relaxed),
            Poll::Ready(Ok(())) => self.state.write_blocked.store(false, Relaxed),
            Poll::Ready(Err(_)) => {}
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_prefix_and_counts_both_ways() {
        let (client, server) = tokio::io::duplex(64);
        let state = Arc::new(ConnState::default());
        let mut io = MeteredIo::new(server, Bytes::from_static(b"GET "), state.clone(), false);
        let mut client = client;
        client.write_all(b"/ HTTP/1.1\r\n").await.unwrap();
        let mut got = vec![0; 16];
        let mut n = 0;
        while n < 16 {
            n += io.read(&mut got[n..]).await.unwrap();
        }
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
        assert_eq!(state.bytes_read.load(Relaxed), 16);
        io.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        assert_eq!(state.bytes_written.load(Relaxed), 17);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_blocks_writes() {
        let (_client, server) = tokio::io::duplex(8);
        let state = Arc::new(ConnState::default());
        let mut io = MeteredIo::new(server, Bytes::new(), state.clone(), false);
        let write = io.write_all(&[0; 64]);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), write)
                .await
                .is_err()
        );
        assert!(state.write_blocked.load(Relaxed));
        assert_eq!(state.bytes_written.load(Relaxed), 8);
    }
}
