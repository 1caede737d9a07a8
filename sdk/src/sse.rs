//! Server-Sent Events: a [`Response::stream`] of `text/event-stream` events.
//!
//! ```
//! use std::time::Duration;
//! use crabcat_sdk::prelude::*;
//! use futures_util::stream::{self, StreamExt as _};
//!
//! // One event a second, with an id the browser sends back as
//! // `Last-Event-ID` when it reconnects.
//! async fn clock() -> Sse<impl futures_util::Stream<Item = Event> + Send> {
//!     let ticks = stream::unfold(0u64, |n| async move {
//!         crabcat_sdk::sleep(Duration::from_secs(1)).await;
//!         Some((Event::default().id(n.to_string()).event("tick").data(n.to_string()), n + 1))
//!     });
//!     Sse::new(ticks)
//! }
//! ```

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{FutureExt as _, Stream, StreamExt as _};

use crate::response::{IntoResponse, Response};

/// One event of an [`Sse`] stream: `data` (split into one `data:` line per
/// line), and optionally `event` (its type), `id` and `retry`.
#[derive(Debug, Clone, Default)]
pub struct Event {
    buffer: String,
}

impl Event {
    /// The event's data; a multi-line string becomes one `data:` line per
    /// line, which the browser joins with `\n`.
    pub fn data(mut self, data: impl AsRef<str>) -> Self {
        for line in data.as_ref().split('\n') {
            self.field("data", line.strip_suffix('\r').unwrap_or(line));
        }
        self
    }

    /// The event's data as JSON.
    ///
    /// # Errors
    /// If `value` cannot be serialised.
    pub fn json_data<T: serde::Serialize>(self, value: &T) -> Result<Self, serde_json::Error> {
        Ok(self.data(serde_json::to_string(value)?))
    }

    /// The event type (`addEventListener(type, …)` in the browser);
    /// without one it is a `message`.
    pub fn event(mut self, event: impl AsRef<str>) -> Self {
        self.field("event", &single_line(event.as_ref()));
        self
    }

    /// The event id, which the browser sends back as `Last-Event-ID` when it
    /// reconnects.
    pub fn id(mut self, id: impl AsRef<str>) -> Self {
        self.field("id", &single_line(id.as_ref()).replace('\0', ""));
        self
    }

    /// How long the browser waits before reconnecting after the stream ends.
    pub fn retry(mut self, after: Duration) -> Self {
        self.field("retry", &after.as_millis().to_string());
        self
    }

    /// A comment line (ignored by the browser).
    pub fn comment(mut self, comment: impl AsRef<str>) -> Self {
        for line in comment.as_ref().split('\n') {
            self.buffer.push(':');
            self.buffer.push_str(line.strip_suffix('\r').unwrap_or(line));
            self.buffer.push('\n');
        }
        self
    }

    fn field(&mut self, name: &str, value: &str) {
        self.buffer.push_str(name);
        self.buffer.push_str(": ");
        self.buffer.push_str(value);
        self.buffer.push('\n');
    }

    /// The event as it goes on the wire, ending with the blank line.
    pub fn to_wire(&self) -> String {
        format!("{}\n", self.buffer)
    }
}

/// Keeps a field on one line: a line break would start another field.
fn single_line(value: &str) -> Cow<'_, str> {
    match value.contains(['\n', '\r']) {
        true => Cow::Owned(value.replace(['\n', '\r'], " ")),
        false => Cow::Borrowed(value),
    }
}

/// A Server-Sent Events response: `text/event-stream`, not cached, one
/// event per item of the stream, and a keep-alive comment every 15 seconds
/// when no event was sent (so proxies do not time the connection out).
/// Return it from a handler.
pub struct Sse<S> {
    events: S,
    keep_alive: Option<Duration>,
}

impl<S> Sse<S>
where
    S: Stream<Item = Event> + Send + 'static,
{
    /// Events from `events`.
    pub fn new(events: S) -> Self {
        Sse {
            events,
            keep_alive: Some(Duration::from_secs(15)),
        }
    }

    /// Sends a keep-alive comment after `interval` without an event
    /// (`None`: never).
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive = interval;
        self
    }
}

impl<S> IntoResponse for Sse<S>
where
    S: Stream<Item = Event> + Send + 'static,
{
    fn into_response(self) -> Response {
        let stream = KeepAlive {
            events: Box::pin(self.events.fuse()),
            interval: self.keep_alive,
            timer: None,
        }
        .map(Ok::<_, std::convert::Infallible>);
        Response::stream("text/event-stream", stream)
            .with_header("cache-control", "no-cache")
            .with_header("x-accel-buffering", "no")
    }
}

type Timer = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The events as wire text, with a comment after each quiet `interval`.
struct KeepAlive<S> {
    events: Pin<Box<futures_util::stream::Fuse<S>>>,
    interval: Option<Duration>,
    timer: Option<Timer>,
}

impl<S: Stream<Item = Event>> Stream for KeepAlive<S> {
    type Item = String;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
        let this = self.get_mut();
        if let Poll::Ready(next) = this.events.poll_next_unpin(cx) {
            this.timer = None;
            return Poll::Ready(next.map(|event| event.to_wire()));
        }
        let Some(interval) = this.interval else {
            return Poll::Pending;
        };
        let timer = this.timer.get_or_insert_with(|| Box::pin(crate::sleep(interval)));
        match timer.poll_unpin(cx) {
            Poll::Ready(()) => {
                this.timer = None;
                Poll::Ready(Some(":\n\n".to_owned()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_multiline_data() {
        let e = Event::default()
            .id("7")
            .event("tick")
            .data("a\nb")
            .retry(Duration::from_secs(2));
        assert_eq!(e.to_wire(), "id: 7\nevent: tick\ndata: a\ndata: b\nretry: 2000\n\n");
    }

    #[test]
    fn a_line_break_cannot_inject_a_field() {
        let e = Event::default().event("x\ndata: evil").id("1\r\nretry: 0");
        assert_eq!(e.to_wire(), "event: x data: evil\nid: 1  retry: 0\n\n");
    }

    #[test]
    fn comments() {
        assert_eq!(Event::default().comment("hi\nthere").to_wire(), ":hi\n:there\n\n");
    }
}
