//! Futures and wakers that cross the boundary.
//!
//! The shapes follow async-ffi 0.5 (which this replaces): a future is a box
//! with C poll and drop functions, a waker is a pointer to a table of C
//! functions, a context lends one waker for the length of one poll. What
//! async-ffi cannot do, and the reason this module exists, is to recognise a
//! waker coming back. A database call is polled host → module → host: with
//! async-ffi the host's future saw a waker wrapped twice, every clone of it
//! (tokio's I/O and timers clone the waker they are polled with) allocated
//! on both sides, and `Waker::will_wake` never matched, so it cloned on every
//! poll. Here a side that is handed a waker it lent out unwraps it instead of
//! wrapping it again, and the host's future is polled with the host's own
//! waker: no allocation, and `will_wake` holds (`bench/callgrind.sh db`).
//!
//! Recognition is by address: each image has its own copy of the `static`
//! tables below, and a `static` has one address, so a table pointer equal to
//! this image's table was made by this image's code.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The FFI form of [`Poll`].
#[repr(C, u8)]
pub enum FfiPoll<T> {
    /// The future finished with this value.
    Ready(T),
    /// The future will wake its waker when it can make progress.
    Pending,
    /// The poll function panicked; the future must not be polled again.
    Panicked,
}

/// A waker as seen across the boundary: a pointer to this header, which
/// starts a larger struct known only to the side that made it.
#[repr(C)]
pub struct FfiWaker {
    pub(crate) vtable: *const FfiWakerVtable,
}

/// The functions of an [`FfiWaker`]; they never unwind (a panic in a
/// waker's `wake` or `drop` is caught and dropped; one in its `clone`
/// aborts, as there is no waker to return).
#[repr(C)]
pub struct FfiWakerVtable {
    /// Returns a new owned waker that wakes the same task.
    pub(crate) clone: unsafe extern "C" fn(*const FfiWaker) -> *const FfiWaker,
    /// Wakes the task and releases an owned waker.
    pub(crate) wake: unsafe extern "C" fn(*const FfiWaker),
    /// Wakes the task.
    pub(crate) wake_by_ref: unsafe extern "C" fn(*const FfiWaker),
    /// Releases an owned waker.
    pub(crate) drop: unsafe extern "C" fn(*const FfiWaker),
}

/// The FFI form of [`Context`]: lends a waker for the length of one poll.
/// The callee may clone it or wake it by reference, never drop or consume it.
#[repr(C)]
pub struct FfiContext<'a> {
    pub(crate) waker: *const FfiWaker,
    pub(crate) _borrow: PhantomData<&'a FfiWaker>,
}

/// A boxed `Send + 'static` future that crosses the boundary. It is polled
/// and dropped by the functions of the side that made it.
#[repr(C)]
#[must_use = "futures do nothing unless polled"]
pub struct FfiFuture<T> {
    pub(crate) future: *mut c_void,
    pub(crate) poll: unsafe extern "C" fn(*mut c_void, *mut FfiContext<'_>) -> FfiPoll<T>,
    pub(crate) drop: unsafe extern "C" fn(*mut c_void),
}

// SAFETY: `FfiFuture::new` accepts only `Send` futures, and the foreign
// side's constructor is this same code (the layout hash checks the contract).
unsafe impl<T> Send for FfiFuture<T> {}

impl<T> FfiFuture<T> {
    /// Boxes `future` for the other side.
    pub fn new<F>(future: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        FfiFuture {
            future: Box::into_raw(Box::new(future)).cast(),
            poll: poll_boxed::<F>,
            drop: drop_boxed::<F>,
        }
    }
}

/// The `poll` of an [`FfiFuture`] made by [`FfiFuture::new`].
///
/// # Safety
/// `future` must be the pointer of an `FfiFuture` made for `F` and not yet
/// dropped; `context` must be valid for this call.
unsafe extern "C" fn poll_boxed<F: Future>(future: *mut c_void, context: *mut FfiContext<'_>) -> FfiPoll<F::Output> {
    let polled = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: by this function's contract, `future` is our live box,
        // which never moves, and `context` lends a waker for this call.
        unsafe {
            let future = Pin::new_unchecked(&mut *future.cast::<F>());
            with_context(&*context, |cx| future.poll(cx))
        }
    }));
    match polled {
        Ok(Poll::Ready(value)) => FfiPoll::Ready(value),
        Ok(Poll::Pending) => FfiPoll::Pending,
        Err(payload) => {
            // Dropping a payload can itself panic; that aborts here (a C
            // function), which is the best left to do.
            drop(payload);
            FfiPoll::Panicked
        }
    }
}

/// The `drop` of an [`FfiFuture`] made by [`FfiFuture::new`].
///
/// # Safety
/// `future` must be the pointer of an `FfiFuture` made for `F`, dropped once.
unsafe extern "C" fn drop_boxed<F>(future: *mut c_void) {
    // SAFETY: by this function's contract, the box is ours and live.
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(future.cast::<F>()) })));
    // A future whose drop panics is gone either way; the panic has been
    // reported by the hook, and must not unwind into the other side.
    drop(dropped);
}

impl<T> Future for FfiFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut polled = FfiPoll::Pending;
        lend_context(cx, |context| {
            // Polling again after `Ready` is sound: it is the boxed future's
            // own, safe, `poll`.
            // SAFETY: `poll` and `future` come from the same `FfiFuture::new`
            // (either side), the box lives until `drop`, `context` is valid.
            polled = unsafe { (self.poll)(self.future, context) };
        });
        match polled {
            FfiPoll::Ready(value) => Poll::Ready(value),
            FfiPoll::Pending => Poll::Pending,
            FfiPoll::Panicked => panic!("a future across the module boundary panicked"),
        }
    }
}

/// Runs `f` with an [`FfiContext`] lending `cx`'s waker to the other side:
/// a waker the other side lent us goes back as it is, any other is wrapped
/// for the length of the call.
pub(super) fn lend_context(cx: &mut Context<'_>, f: impl FnOnce(*mut FfiContext<'_>)) {
    let waker = cx.waker();
    let lent;
    let ffi_waker = if ptr::eq(waker.vtable(), &BRIDGE) {
        // A waker the other side lent us: lend it back as it is.
        waker.data().cast::<FfiWaker>()
    } else {
        lent = Lent {
            header: FfiWaker { vtable: &LENT },
            waker,
        };
        // From the whole `Lent` (the header is its first field): the
        // other side's `lent_*` functions read all of it.
        (&raw const lent).cast::<FfiWaker>()
    };
    let mut context = FfiContext {
        waker: ffi_waker,
        _borrow: PhantomData,
    };
    f(&raw mut context);
}

impl<T> Drop for FfiFuture<T> {
    fn drop(&mut self) {
        // SAFETY: `drop` and `future` come from the same `FfiFuture::new`,
        // and this is the only place that calls it.
        unsafe { (self.drop)(self.future) }
    }
}

/// Runs `f` with a [`Context`] for `context`: this image's own waker if it
/// lent it, otherwise a bridge to the foreign one.
///
/// # Safety
/// `context` must lend a valid waker for the duration of the call.
pub(super) unsafe fn with_context<R>(context: &FfiContext<'_>, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
    let ffi_waker = context.waker;
    // SAFETY: the header of a valid waker.
    let vtable = unsafe { (*ffi_waker).vtable };
    if ptr::eq(vtable, &LENT) {
        // SAFETY: our table, so the header starts a `Lent` whose waker
        // outlives the poll that lent it, which encloses this call.
        let waker = unsafe { (*ffi_waker.cast::<Lent<'_>>()).waker };
        f(&mut Context::from_waker(waker))
    } else if ptr::eq(vtable, &OWNED) {
        // SAFETY: our table, so the header starts an `Owned`, kept alive by
        // whoever lent it for this call.
        let waker = unsafe { &(*ffi_waker.cast::<Owned>()).waker };
        f(&mut Context::from_waker(waker))
    } else {
        // SAFETY: `BRIDGE` forwards to the foreign table, which behaves as a
        // waker by the contract of `FfiWaker`. The waker is borrowed, so it
        // must not be dropped: `ManuallyDrop`.
        let waker = ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(ffi_waker.cast(), &BRIDGE)) });
        f(&mut Context::from_waker(&waker))
    }
}

/// A [`Waker`] of this image lent to the other side for one poll.
#[repr(C)]
struct Lent<'a> {
    header: FfiWaker,
    waker: &'a Waker,
}

/// A clone of a [`Waker`] of this image owned by the other side.
#[repr(C)]
struct Owned {
    header: FfiWaker,
    waker: Waker,
}

fn own(waker: Waker) -> *const FfiWaker {
    Box::into_raw(Box::new(Owned {
        header: FfiWaker { vtable: &OWNED },
        waker,
    }))
    .cast()
}

static LENT: FfiWakerVtable = FfiWakerVtable {
    clone: lent_clone,
    wake: never,
    wake_by_ref: lent_wake_by_ref,
    drop: never,
};

/// # Safety
/// `header` starts a live `Lent`.
unsafe extern "C" fn lent_clone(header: *const FfiWaker) -> *const FfiWaker {
    // SAFETY: by this function's contract.
    own(unsafe { (*header.cast::<Lent<'_>>()).waker }.clone())
}

/// # Safety
/// `header` starts a live `Lent`.
unsafe extern "C" fn lent_wake_by_ref(header: *const FfiWaker) {
    // SAFETY: by this function's contract.
    let waker = unsafe { (*header.cast::<Lent<'_>>()).waker };
    contain(|| waker.wake_by_ref());
}

/// Runs a waker's `wake` or `drop`, which may be user code, without letting
/// a panic unwind into a C function (which would abort the process): the
/// panic has been reported by the hook; a lost wake-up of the panicking
/// waker's own task is all that is left of it.
fn contain(f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        drop(payload);
    }
}

/// A lent waker is never owned by the other side, so never consumed.
///
/// # Safety
/// Never safe to call: it aborts (a caller broke the contract).
unsafe extern "C" fn never(_: *const FfiWaker) {
    std::process::abort();
}

static OWNED: FfiWakerVtable = FfiWakerVtable {
    clone: owned_clone,
    wake: owned_wake,
    wake_by_ref: owned_wake_by_ref,
    drop: owned_drop,
};

/// # Safety
/// `header` starts a live `Owned` (for all four functions below).
unsafe extern "C" fn owned_clone(header: *const FfiWaker) -> *const FfiWaker {
    // SAFETY: by this function's contract.
    own(unsafe { &(*header.cast::<Owned>()).waker }.clone())
}

/// # Safety
/// `header` is an owned waker made by `own`; the call consumes it.
unsafe extern "C" fn owned_wake(header: *const FfiWaker) {
    // SAFETY: made by `own`, and released here once (the caller gives it up).
    let owned = unsafe { Box::from_raw(header.cast::<Owned>().cast_mut()) };
    contain(|| owned.waker.wake());
}

/// # Safety
/// `header` starts a live `Owned`.
unsafe extern "C" fn owned_wake_by_ref(header: *const FfiWaker) {
    // SAFETY: live, by this function's contract.
    let waker = unsafe { &(*header.cast::<Owned>()).waker };
    contain(|| waker.wake_by_ref());
}

/// # Safety
/// `header` is an owned waker made by `own`; the call releases it.
unsafe extern "C" fn owned_drop(header: *const FfiWaker) {
    // SAFETY: as in `owned_wake`.
    let owned = unsafe { Box::from_raw(header.cast::<Owned>().cast_mut()) };
    contain(|| drop(owned));
}

/// A [`Waker`] around a foreign [`FfiWaker`]; its data is the header.
static BRIDGE: RawWakerVTable = RawWakerVTable::new(bridge_clone, bridge_wake, bridge_wake_by_ref, bridge_drop);

/// # Safety
/// `data` is a valid foreign `FfiWaker` (for all four functions below).
unsafe fn bridge_clone(data: *const ()) -> RawWaker {
    let header = data.cast::<FfiWaker>();
    // SAFETY: by this function's contract.
    let clone = unsafe { ((*(*header).vtable).clone)(header) };
    RawWaker::new(clone.cast(), &BRIDGE)
}

/// # Safety
/// `data` is an owned `FfiWaker` clone (a bridged waker's data); the call
/// gives it up.
unsafe fn bridge_wake(data: *const ()) {
    let header = data.cast::<FfiWaker>();
    // SAFETY: by this function's contract; an owned clone, given up here.
    unsafe { ((*(*header).vtable).wake)(header) }
}

/// # Safety
/// `data` is a live `FfiWaker` (a bridged waker's data).
unsafe fn bridge_wake_by_ref(data: *const ()) {
    let header = data.cast::<FfiWaker>();
    // SAFETY: by this function's contract.
    unsafe { ((*(*header).vtable).wake_by_ref)(header) }
}

/// # Safety
/// `data` is an owned `FfiWaker` clone (a bridged waker's data); the call
/// releases it.
unsafe fn bridge_drop(data: *const ()) {
    let header = data.cast::<FfiWaker>();
    // SAFETY: by this function's contract; an owned clone, released here.
    unsafe { ((*(*header).vtable).drop)(header) }
}

#[cfg(test)]
mod tests;
