//! What a client may hold of the server, and for how long: open connections (a cap, beyond
//! which a new connection is closed at once), the time to send a request's headers (hyper's
//! header timeout, which also ends idle keep-alive connections) and its body (a deadline for the
//! whole body, not per chunk, so a byte a second does not keep it alive), and its size. Only
//! HTTP/1.1 is spoken: the platform needs nothing more, and HTTP/2 would let an idle connection
//! stay open with no request to time.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use axum_server::Server;
use axum_server::accept::Accept;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// HTTP/1.1 only, with `header_timeout` for every request's headers — the first one's counted
/// from the connection's start, later ones' from the end of the previous response.
pub(super) fn with_timeouts<A, Acc>(server: Server<A, Acc>, header_timeout: Duration) -> Server<A, Acc>
where
    A: axum_server::Address,
{
    let mut server = server.http1_only().first_request_timeout(header_timeout);
    server.http_builder().http1().header_read_timeout(header_timeout);
    server
}

/// An acceptor that lets at most `max` connections be open at once; one more is closed as soon
/// as it is accepted. Wraps the acceptor that does the real work (none, or the TLS handshake),
/// so a refused connection costs no handshake.
#[derive(Clone)]
pub(super) struct ConnectionLimit<A> {
    inner: A,
    permits: Arc<Semaphore>,
    listener: &'static str,
}

impl<A> ConnectionLimit<A> {
    pub(super) fn new(inner: A, max: usize, listener: &'static str) -> Self {
        Self { inner, permits: Arc::new(Semaphore::new(max)), listener }
    }
}

impl<A, I, S> Accept<I, S> for ConnectionLimit<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let listener = self.listener;
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            metrics::counter!("bidder_connections_refused_total", "listener" => listener).increment(1);
            // Dropping the stream closes the connection.
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other("the connection limit is reached"))));
        };
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            metrics::gauge!("bidder_open_connections", "listener" => listener).increment(1.0);
            Ok((Counted { inner: stream, _permit: permit, listener }, service))
        })
    }
}

/// A connection that gives its place back when it closes.
pub(super) struct Counted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
    listener: &'static str,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        metrics::gauge!("bidder_open_connections", "listener" => self.listener).decrement(1.0);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The whole body, within `limit` bytes and `timeout`. A declared length over the limit is
/// refused before a byte is read; the count that matters is of the bytes that arrive.
pub(super) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::BodyTimeout { after: timeout }),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge { limit }),
        Ok(Err(_)) => Err(ApiError::UnreadableBody),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
