//! The request timeout, armed only when the call has to wait.
//!
//! `tokio::time::timeout` registers a timer in the runtime's wheel for
//! every request and removes it again: with the handle it clones and the
//! clock it reads, a few percent of a `/plaintext` request that the handler
//! answers on its first poll. Here the call is polled first; only a call
//! that is not done makes the timer, and with the deadline the request's
//! start already fixed.
//!
//! An HTTP/1 request needs no timer at all: its connection's deadline
//! ([`crate::server::deadline`]) polls the connection, and so the call, at
//! least four times per request timeout, and a call still waiting past its
//! deadline ends at the next of those polls. That saves the timer's
//! allocation, its registration in the wheel and its removal, about 600
//! instructions of a `/db` request (`bench/callgrind.sh db`), for a timeout
//! that fires up to a quarter late. HTTP/2 requests run in tasks of their
//! own, which the deadline does not poll: they keep the timer.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio::time::{Instant, Sleep, sleep_until};

/// The call did not finish by its deadline.
pub(super) struct Elapsed;

/// Who wakes a call that waits past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A timer of the call's own.
    Timer,
    /// Something that polls the call anyway, at least as often as the
    /// lateness allowed (the connection's deadline): the call only looks
    /// at the clock when it is polled.
    Ticks,
}

/// `future`'s output, or [`Elapsed`] when it is not done by `deadline`.
/// The future is pinned by the caller: this one holds a pointer to it, so
/// a large call is not moved once more.
pub(super) async fn within<F: Future>(
    deadline: Instant,
    expiry: Expiry,
    mut future: Pin<&mut F>,
) -> Result<F::Output, Elapsed> {
    // Boxed: the timer is large, and only a call that waits needs one.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if expiry == Expiry::Ticks {
            return match Instant::now() >= deadline {
                true => Poll::Ready(Err(Elapsed)),
                false => Poll::Pending,
            };
        }
        let timer = timer.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        timer.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_call_needs_no_timer_and_a_slow_one_expires() {
        // Already past its deadline, but done on the first poll: answered.
        let past = Instant::now() - Duration::from_secs(1);
        assert!(matches!(within(past, Expiry::Timer, pin!(async { 7 })).await, Ok(7)));
        // Waits longer than its deadline: expires at the deadline.
        let start = Instant::now();
        let slow = pin!(tokio::time::sleep(Duration::from_secs(60)));
        assert!(
            within(start + Duration::from_secs(30), Expiry::Timer, slow)
                .await
                .is_err()
        );
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        // Waits less: its output.
        let quick = pin!(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        });
        assert!(matches!(
            within(Instant::now() + Duration::from_secs(30), Expiry::Timer, quick).await,
            Ok("done")
        ));
    }

    /// A call kept by the connection's ticks, as an HTTP/1 request is: it
    /// ends at the first tick past its deadline.
    #[tokio::test(start_paused = true)]
    async fn a_call_without_a_timer_ends_at_the_first_tick_past_its_deadline() {
        use std::sync::{Arc, Mutex};

        use crate::server::deadline::{Activity, Deadline};

        let (header, request) = (Duration::from_secs(20), Duration::from_secs(6));
        let activity = Activity::new();
        let busy = activity.busy(http::Version::HTTP_11);
        let start = Instant::now();
        let outcome = Arc::new(Mutex::new(None));
        let call = {
            let outcome = Arc::clone(&outcome);
            async move {
                let never = pin!(std::future::pending::<()>());
                let result = within(start + request, Expiry::Ticks, never).await;
                *outcome.lock().unwrap() = Some((result.is_err(), start.elapsed()));
            }
        };
        Deadline::new(call, Arc::clone(&activity), header, Some(request)).await;
        drop(busy);
        let (elapsed_out, after) = outcome.lock().unwrap().expect("the call ended");
        assert!(elapsed_out, "the call timed out");
        // Ticks every 1.5 s, a quarter of the shorter timeout (at a quarter
        // of the header timeout, 5 s, it would end at 10 s).
        assert!(after >= request && after <= request + request / 4, "after {after:?}");
        assert!(activity.ticks_for_requests());
    }
}
