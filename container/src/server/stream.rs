//! A response body that a module produces over time, as an `http_body::Body`
//! that hyper polls: the module's stream is pulled only when the client can
//! take more, and dropped when the client goes away.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use crabcat_sdk::abi::{Chunk, FfiBodyStream};
use http_body::Frame;
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::lifecycle::{Lease, Permit};
use crate::watchdog::AppWatch;

/// Why a streamed body ended before it was complete.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The module's stream yielded an error (or panicked).
    #[error("the app's body stream failed: {0}")]
    Module(String),
    /// The app was reloaded or stopped, and the grace period ran out.
    #[error("the app went away (reload or stop) and the connection grace ran out")]
    Retired,
}

/// The body of one streamed response. Field order matters: the module's
/// stream is dropped before the lease that keeps its instance alive.
pub struct ModuleBody {
    stream: FfiBodyStream,
    app: std::sync::Arc<str>,
    farewell: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Running once the instance said farewell.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
    grace_period: Duration,
    watch: &'static AppWatch,
    _permit: Permit,
    _lease: Lease,
}

impl ModuleBody {
    /// The body of `stream`, which holds `lease` (and the request's
    /// `permit`) until it ends; cut `grace` after the instance is retired.
    pub fn new(stream: FfiBodyStream, app: std::sync::Arc<str>, lease: Lease, permit: Permit, grace: Duration) -> Self {
        ModuleBody {
            stream,
            app,
            farewell: Box::pin(lease.farewell().token().clone().cancelled_owned()),
            grace: None,
            grace_period: grace,
            watch: lease.watch(),
            _permit: permit,
            _lease: lease,
        }
    }

    /// `true` once the grace after a farewell has run out.
    fn retired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.grace.is_none() && self.farewell.as_mut().poll(cx).is_ready() {
            self.grace = Some(Box::pin(tokio::time::sleep(self.grace_period)));
        }
        self.grace
            .as_mut()
            .is_some_and(|grace| grace.as_mut().poll(cx).is_ready())
    }
}

impl ModuleBody {
    /// This body, produced on `runtime` (the app's own) by a task that
    /// sends its frames here; the task ends, dropping the module's stream,
    /// when the body ends or the client goes away.
    pub fn forwarded(self, runtime: &tokio::runtime::Handle) -> Forwarded {
        let (frames, received) = mpsc::channel(1);
        runtime.spawn(async move {
            let mut body = self;
            loop {
                let frame = tokio::select! {
                    () = frames.closed() => return,
                    frame = body.frame() => frame,
                };
                let Some(frame) = frame else { return };
                let failed = frame.is_err();
                if frames.send(frame).await.is_err() || failed {
                    return;
                }
            }
        });
        Forwarded { frames: received }
    }
}

/// A [`ModuleBody`] produced on another runtime.
pub struct Forwarded {
    frames: mpsc::Receiver<Result<Frame<Bytes>, StreamError>>,
}

impl http_body::Body for Forwarded {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        self.get_mut().frames.poll_recv(cx)
    }
}

impl http_body::Body for ModuleBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = self.get_mut();
        if this.retired(cx) {
            return Poll::Ready(Some(Err(StreamError::Retired)));
        }
        let stream = &mut this.stream;
        // Copied at once (the module lends the chunk until the next poll),
        // within the marked poll.
        let polled = this.watch.poll(|| match stream.poll_next_chunk(cx) {
            Poll::Ready(Chunk::Data(data)) => Poll::Ready(Ok(Some(Bytes::copy_from_slice(data)))),
            Poll::Ready(Chunk::End) => Poll::Ready(Ok(None)),
            Poll::Ready(Chunk::Error(message)) => Poll::Ready(Err(message)),
            Poll::Pending => Poll::Pending,
        });
        match polled {
            Poll::Ready(Ok(Some(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(message)) => {
                tracing::warn!(app = &*this.app, "a streamed response was cut off: {message}");
                Poll::Ready(Some(Err(StreamError::Module(message))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
