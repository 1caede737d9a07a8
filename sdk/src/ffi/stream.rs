//! Bodies that cross the boundary as they are produced: a boxed stream with
//! C `poll_next` and `drop` functions, in the manner of [`FfiFuture`](super::future::FfiFuture).
//!
//! The side that made a stream lends each chunk until its next poll (or the
//! drop); the side that polls copies it. One copy, and no memory is ever
//! freed by the other image's allocator.

use core::ffi::c_void;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures_util::Stream;

use super::future::{FfiContext, FfiPoll, with_context};
use crate::abi::{BodyChunk, RawSlice};

/// A response body produced over time: a boxed stream polled and dropped
/// by the functions of the side that made it. The receiving side owns it;
/// dropping it (with `drop`) cancels the producer.
#[repr(C)]
pub struct FfiBodyStream {
    pub(crate) stream: *mut c_void,
    pub(crate) poll_next: unsafe extern "C" fn(*mut c_void, *mut FfiContext<'_>) -> FfiPoll<BodyChunk>,
    pub(crate) drop: unsafe extern "C" fn(*mut c_void),
}

// SAFETY: `FfiBodyStream::new` accepts only `Send` streams, and the foreign
// side's constructor is this same code (the layout hash checks the contract).
unsafe impl Send for FfiBodyStream {}

// SAFETY: a chunk's slice is lent under a rule about time (until the
// lender's next call), not about threads: the bytes may be read from any
// thread while the loan lasts.
unsafe impl Send for BodyChunk {}
// SAFETY: as for `BodyChunk`.
unsafe impl Send for crate::abi::WsEvent {}

/// The box behind an [`FfiBodyStream`]: the stream, and the chunk lent out
/// by the last poll (kept alive until the next one).
struct Boxed<S, T> {
    stream: S,
    lent: Option<Result<T, String>>,
    done: bool,
}

impl FfiBodyStream {
    /// Boxes `stream` for the other side. An `Err` item ends the body
    /// abruptly, with its message in the container's log.
    pub fn new<S, T, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        T: AsRef<[u8]> + Send + 'static,
        E: Display,
    {
        let boxed: Box<Boxed<Pin<Box<S>>, T>> = Box::new(Boxed {
            stream: Box::pin(stream),
            lent: None,
            done: false,
        });
        FfiBodyStream {
            stream: Box::into_raw(boxed).cast(),
            poll_next: poll_boxed::<Pin<Box<S>>, T, E>,
            drop: drop_boxed::<Pin<Box<S>>, T>,
        }
    }

    /// Polls the next chunk, as the side that received the stream. The
    /// borrow of `self` keeps the data valid: the loan ends with the next
    /// poll or the drop. A producer that panicked (logged where it
    /// happened) yields an error that says so.
    pub fn poll_next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Chunk<'_>> {
        let mut result = FfiPoll::Pending;
        super::future::lend_context(cx, |context| {
            // SAFETY: `poll_next` and `stream` come from the same
            // `FfiBodyStream::new` (either side), the box lives until
            // `drop`, and `context` is valid for this call.
            result = unsafe { (self.poll_next)(self.stream, context) };
        });
        // SAFETY: the producer lends the bytes until its next poll or drop,
        // and both need `&mut self`, which the returned borrow holds.
        let lent = |slice| unsafe { super::host::bytes(slice) };
        match result {
            FfiPoll::Ready(BodyChunk::Data(data)) => Poll::Ready(Chunk::Data(lent(data))),
            FfiPoll::Ready(BodyChunk::End) => Poll::Ready(Chunk::End),
            FfiPoll::Ready(BodyChunk::Error(message)) => {
                Poll::Ready(Chunk::Error(String::from_utf8_lossy(lent(message)).into_owned()))
            }
            FfiPoll::Pending => Poll::Pending,
            FfiPoll::Panicked => Poll::Ready(Chunk::Error("the body stream panicked".to_owned())),
        }
    }
}

/// One step of an [`FfiBodyStream`], as its receiver sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// More bytes, borrowed until the next poll.
    Data(&'a [u8]),
    /// The body is complete.
    End,
    /// The body cannot be completed.
    Error(String),
}

impl Drop for FfiBodyStream {
    fn drop(&mut self) {
        // SAFETY: `drop` and `stream` come from the same `FfiBodyStream::new`,
        // and this is the only place that calls it.
        unsafe { (self.drop)(self.stream) }
    }
}

/// The `poll_next` of a stream made by [`FfiBodyStream::new`].
///
/// # Safety
/// `stream` must be the pointer of an `FfiBodyStream` made for `S`, `T` and
/// not yet dropped; `context` must be valid for this call.
unsafe extern "C" fn poll_boxed<S, T, E>(stream: *mut c_void, context: *mut FfiContext<'_>) -> FfiPoll<BodyChunk>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    T: AsRef<[u8]>,
    E: Display,
{
    let polled = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: by this function's contract, `stream` is our live box and
        // `context` lends a waker for this call.
        let boxed = unsafe { &mut *stream.cast::<Boxed<S, T>>() };
        // The previous chunk's loan ends with this poll.
        boxed.lent = None;
        if boxed.done {
            return Poll::Ready(BodyChunk::End);
        }
        // SAFETY: `context` is valid for this call (our contract).
        let next = unsafe { with_context(&*context, |cx| Pin::new(&mut boxed.stream).poll_next(cx)) };
        match next {
            Poll::Ready(Some(item)) => {
                let lent = boxed.lent.insert(item.map_err(|e| e.to_string()));
                Poll::Ready(match lent {
                    Ok(data) => BodyChunk::Data(RawSlice::new(data.as_ref())),
                    Err(message) => BodyChunk::Error(RawSlice::from_str(message)),
                })
            }
            Poll::Ready(None) => {
                boxed.done = true;
                Poll::Ready(BodyChunk::End)
            }
            Poll::Pending => Poll::Pending,
        }
    }));
    match polled {
        Ok(Poll::Ready(chunk)) => FfiPoll::Ready(chunk),
        Ok(Poll::Pending) => FfiPoll::Pending,
        Err(payload) => {
            // See `future::poll_boxed`.
            drop(payload);
            FfiPoll::Panicked
        }
    }
}

/// The `drop` of a stream made by [`FfiBodyStream::new`].
///
/// # Safety
/// `stream` must be the pointer of an `FfiBodyStream` made for `S`, `T`,
/// dropped once.
unsafe extern "C" fn drop_boxed<S, T>(stream: *mut c_void) {
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: by this function's contract, the box is ours and live.
        drop(unsafe { Box::from_raw(stream.cast::<Boxed<S, T>>()) })
    }));
    // A panic in a drop has been reported by the hook; it must not unwind
    // into the other side.
    drop(dropped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;

    fn collect(mut s: FfiBodyStream) -> (Vec<u8>, Option<String>) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut body = Vec::new();
        loop {
            match s.poll_next_chunk(&mut cx) {
                Poll::Ready(Chunk::Data(d)) => body.extend_from_slice(d),
                Poll::Ready(Chunk::End) => return (body, None),
                Poll::Ready(Chunk::Error(m)) => return (body, Some(m)),
                Poll::Pending => panic!("a ready stream returned pending"),
            }
        }
    }

    #[test]
    fn chunks_then_end() {
        let s = FfiBodyStream::new(stream::iter(["ab", "", "cd"].map(Ok::<_, String>)));
        assert_eq!(collect(s), (b"abcd".to_vec(), None));
    }

    #[test]
    fn an_error_item_ends_the_body_with_its_message() {
        let s = FfiBodyStream::new(stream::iter([Ok("ab".to_owned()), Err("disk gone"), Ok("x".into())]));
        assert_eq!(collect(s), (b"ab".to_vec(), Some("disk gone".into())));
    }

    #[test]
    fn dropping_drops_the_producer() {
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = Guard(Arc::clone(&drops));
        let s = FfiBodyStream::new(stream::pending::<Result<Vec<u8>, String>>().map(move |x| {
            let _ = &guard;
            x
        }));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(s);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_producer_ends_the_body_with_an_error() {
        let s = FfiBodyStream::new(stream::poll_fn(|_| -> Poll<Option<Result<Vec<u8>, String>>> {
            panic!("producer bug")
        }));
        assert_eq!(collect(s), (Vec::new(), Some("the body stream panicked".into())));
    }

    use futures_util::StreamExt as _;
}
