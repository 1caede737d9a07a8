//! The header read deadline of a connection, kept by one coarse timer per
//! connection rather than a timer per request.
//!
//! hyper's own `header_read_timeout` arms a timer each time it waits for a
//! request head (between every two requests of a keep-alive connection) and
//! drops it when the head has arrived: about 1,300 instructions per request
//! on `/plaintext` (`bench/callgrind.sh`). Here the request path only bumps
//! two counters of the connection's [`Activity`]: the service marks each
//! request [`Busy`] until its response is complete, and the connection's IO
//! ([`Tracked`]) counts every write to the client. One timer per connection
//! ([`Deadline`]) ticks four times per timeout; a connection that was never
//! busy and received no byte of a response for a whole timeout is closed:
//! after between one and one and a quarter timeouts.
//!
//! So, as with hyper's timeout, a request head must be complete within the
//! timeout of the connection being ready for it (when it opens, and after
//! each response), which is also the idle keep-alive timeout; it covers the
//! protocol detection too (a client that connects and sends nothing). Unlike
//! it, a response that the client stops reading for a whole timeout is cut
//! off too. A streamed response body keeps its request busy until it ends
//! (a module may take its time between chunks); a body of known length is
//! written at the client's pace. HTTP/2 connections keep hyper's rules: the
//! first HTTP/2 request exempts its connection.
//!
//! The same tick keeps the request timeout of HTTP/1 requests (see
//! `dispatch::timeout`): it ticks four times per request timeout too, when
//! that is the shorter, and every tick polls the connection, so a request
//! still waiting past its deadline is answered at the next tick: after
//! between one and one and a quarter request timeouts, and without a timer
//! per request.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What a connection has done lately, shared by its service, its IO and
/// its [`Deadline`].
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests whose response is not complete.
    busy: AtomicU32,
    /// Bumped by every write to the client and every completed response.
    progress: AtomicU32,
    /// Set by the first HTTP/2 request: the deadline no longer applies.
    exempt: AtomicBool,
    /// Set by a [`Deadline`] that ticks for the request timeout as well.
    ticks_for_requests: AtomicBool,
}

impl Activity {
    /// The activity of a new connection.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Marks a request of `version` busy until the guard is dropped.
    pub fn busy(self: &Arc<Self>, version: http::Version) -> Busy {
        if version == http::Version::HTTP_2 {
            self.exempt.store(true, Ordering::Relaxed);
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// Whether a [`Deadline`] polls the connection at least four times
    /// per request timeout, so that an HTTP/1 request needs no timer of
    /// its own (HTTP/2 requests run in tasks of their own: they do).
    pub fn ticks_for_requests(&self) -> bool {
        self.ticks_for_requests.load(Ordering::Relaxed)
    }

    fn progressed(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request of the connection in progress; dropping it completes it.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Busy {
    /// `response`, whose streamed body (one of unknown length) holds this
    /// guard until it ends; for other bodies, the guard is dropped here and
    /// the writes of the body count as progress.
    pub fn hold_while_streamed(self, response: Response) -> Response {
        if response.body().size_hint().exact().is_some() {
            return response;
        }
        response.map(|body| Body::new(BusyBody { body, _busy: self }))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.progressed();
        // Release: a deadline that sees the request done sees its progress.
        self.0.busy.fetch_sub(1, Ordering::Release);
    }
}

/// A streamed response body, and the [`Busy`] mark of its request.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A connection's IO, counting its writes as progress.
#[derive(Debug)]
pub struct Tracked<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    /// `io`, writes counted in `activity`.
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Tracked { io, activity }
    }

    fn count<N>(&self, written: Poll<std::io::Result<N>>) -> Poll<std::io::Result<N>> {
        if let Poll::Ready(Ok(_)) = written {
            self.activity.progressed();
        }
        written
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.count(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.count(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Ticks of the timer in one timeout.
const TICKS: u32 = 4;

pin_project_lite::pin_project! {
    /// A connection's future, dropped (which closes the connection) once
    /// the connection has been idle for its timeout; see the module docs.
    pub struct Deadline<F> {
        #[pin]
        connection: F,
        #[pin]
        tick: Sleep,
        period: Duration,
        // Idle ticks after which the connection is closed.
        idle_limit: u32,
        activity: Arc<Activity>,
        // Whether `tick` was polled since its last reset: its waker (this
        // task's) is registered, and it is enough to look whether it fired.
        armed: bool,
        seen: u32,
        idle_ticks: u32,
    }
}

impl<F> Deadline<F> {
    /// `connection`, closed after `timeout` without activity; with
    /// `request_timeout`, it also ticks at least four times per request
    /// timeout (see the module docs).
    pub fn new(connection: F, activity: Arc<Activity>, timeout: Duration, request_timeout: Option<Duration>) -> Self {
        let shortest = request_timeout.map_or(timeout, |r| r.min(timeout));
        let period = (shortest / TICKS).max(Duration::from_millis(1));
        // At least TICKS: a whole header read timeout, whatever the period.
        let idle_limit = u32::try_from(timeout.as_nanos().div_ceil(period.as_nanos()))
            .unwrap_or(u32::MAX)
            .max(TICKS);
        if request_timeout.is_some() {
            activity.ticks_for_requests.store(true, Ordering::Relaxed);
        }
        Deadline {
            connection,
            tick: tokio::time::sleep(period),
            period,
            idle_limit,
            activity,
            armed: false,
            seen: 0,
            idle_ticks: 0,
        }
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.connection.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        loop {
            // Polling the timer on every wake of the connection would cost
            // about as much as the timer per request this replaces.
            if !*this.armed {
                if this.tick.as_mut().poll(cx).is_pending() {
                    *this.armed = true;
                    return Poll::Pending;
                }
            } else if !this.tick.is_elapsed() {
                return Poll::Pending;
            }
            *this.armed = false;
            let activity = &**this.activity;
            let busy = activity.busy.load(Ordering::Acquire) > 0;
            let progress = activity.progress.load(Ordering::Relaxed);
            if busy || progress != *this.seen || activity.exempt.load(Ordering::Relaxed) {
                *this.seen = progress;
                *this.idle_ticks = 0;
            } else {
                *this.idle_ticks += 1;
                if *this.idle_ticks >= *this.idle_limit {
                    tracing::debug!("closing a connection idle for the header read timeout");
                    return Poll::Ready(());
                }
            }
            this.tick.as_mut().reset(Instant::now() + *this.period);
        }
    }
}

#[cfg(test)]
mod tests;
