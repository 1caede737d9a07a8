use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;

struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls once, stores a clone of the waker it was given, and answers
/// whether that waker is the one it saw on the previous poll.
struct Remember {
    waker: Option<Waker>,
    log: Arc<std::sync::Mutex<Vec<bool>>>,
}

impl Future for Remember {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let same = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        self.log.lock().unwrap().push(same);
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn a_waker_lent_across_and_back_is_the_original() {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Inner future: made "by the host", polled from "the module"; outer
    // future: made by "the module", polled by "the host". In one image
    // both sides share the tables, so this checks the unwrapping path.
    let inner = FfiFuture::new(Remember {
        waker: None,
        log: log.clone(),
    });
    let mut outer = FfiFuture::new(async move {
        inner.await;
    });
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut outer).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut outer).poll(&mut cx).is_pending());
    assert_eq!(
        *log.lock().unwrap(),
        [false, true],
        "the inner future sees the caller's own waker"
    );
    drop(outer);
    assert_eq!(
        Arc::strong_count(&counter),
        2,
        "the stored clone was released with the future"
    );
}

#[test]
fn a_foreign_waker_is_bridged_and_owned_clones_wake_and_release() {
    // A waker of a "foreign" image: an `FfiWaker` with its own table.
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let original = Waker::from(counter.clone());
    let lent = Lent {
        header: FfiWaker { vtable: &FOREIGN },
        waker: &original,
    };
    static FOREIGN: FfiWakerVtable = FfiWakerVtable {
        clone: lent_clone,
        wake: never,
        wake_by_ref: lent_wake_by_ref,
        drop: never,
    };
    let context = FfiContext {
        waker: (&raw const lent).cast::<FfiWaker>(),
        _borrow: PhantomData,
    };
    // SAFETY: `context` lends `lent`, alive for the call.
    let clone = unsafe {
        with_context(&context, |cx| {
            assert!(ptr::eq(cx.waker().vtable(), &BRIDGE), "a foreign waker is bridged");
            cx.waker().wake_by_ref();
            cx.waker().clone()
        })
    };
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(Arc::strong_count(&counter), 3, "the clone owns a reference");
    let second = clone.clone();
    second.wake(); // consumes an owned clone
    assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    drop(clone);
    assert_eq!(Arc::strong_count(&counter), 2, "owned clones are released");
}

#[test]
fn a_bridged_waker_is_lent_back_as_it_is() {
    static SEEN: std::sync::atomic::AtomicPtr<FfiWaker> = std::sync::atomic::AtomicPtr::new(ptr::null_mut());
    /// # Safety
    /// `context` is the live context of this poll.
    unsafe extern "C" fn record(_: *mut c_void, context: *mut FfiContext<'_>) -> FfiPoll<()> {
        // SAFETY: the context of this poll.
        SEEN.store(unsafe { (*context).waker }.cast_mut(), Ordering::SeqCst);
        FfiPoll::Ready(())
    }
    extern "C" fn nothing(_: *mut c_void) {}
    static FOREIGN: FfiWakerVtable = FfiWakerVtable {
        clone: lent_clone,
        wake: never,
        wake_by_ref: lent_wake_by_ref,
        drop: never,
    };
    let original = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
    let lent = Lent {
        header: FfiWaker { vtable: &FOREIGN },
        waker: &original,
    };
    let context = FfiContext {
        waker: (&raw const lent).cast::<FfiWaker>(),
        _borrow: PhantomData,
    };
    let mut other_side = FfiFuture {
        future: ptr::null_mut(),
        poll: record,
        drop: nothing,
    };
    // SAFETY: `context` lends `lent`, alive for the call.
    let polled = unsafe { with_context(&context, |cx| Pin::new(&mut other_side).poll(cx)) };
    assert!(polled.is_ready());
    assert!(
        ptr::eq(SEEN.load(Ordering::SeqCst), (&raw const lent).cast::<FfiWaker>()),
        "no second wrapper"
    );
}

#[test]
fn an_owned_clone_lent_back_is_unwrapped() {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let original = Waker::from(counter.clone());
    let header = own(original.clone());
    let context = FfiContext {
        waker: header,
        _borrow: PhantomData,
    };
    // SAFETY: `header` is a live `Owned`, released below.
    let same = unsafe { with_context(&context, |cx| cx.waker().will_wake(&original)) };
    assert!(same, "our own clone, not a bridge around it");
    // SAFETY: made by `own`, released once.
    unsafe { owned_drop(header) };
    assert_eq!(Arc::strong_count(&counter), 2, "the clone is released");
}

#[test]
fn a_panic_in_a_futures_drop_stays_on_its_side() {
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::SeqCst);
            panic!("drop");
        }
    }
    let bomb = Bomb;
    let future = FfiFuture::new(async move {
        let _bomb = &bomb;
    });
    drop(future); // unwinding out of the C drop function would abort
    assert_eq!(DROPPED.load(Ordering::SeqCst), 1);
}

#[test]
fn polling_a_future_that_panicked_on_the_other_side_panics_here() {
    let waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
    let mut future = FfiFuture::<()>::new(async { panic!("boom") });
    let mut cx = Context::from_waker(&waker);
    let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut future).poll(&mut cx)));
    assert!(polled.is_err());
}

#[test]
fn a_panicking_future_reports_it_instead_of_unwinding_across() {
    let waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
    let future = FfiFuture::<()>::new(async { panic!("boom") });
    let lent = Lent {
        header: FfiWaker { vtable: &LENT },
        waker: &waker,
    };
    let mut context = FfiContext {
        waker: (&raw const lent).cast::<FfiWaker>(),
        _borrow: PhantomData,
    };
    // SAFETY: a live future of our own and a context valid for the call.
    let polled = unsafe { (future.poll)(future.future, &raw mut context) };
    assert!(matches!(polled, FfiPoll::Panicked));
}
