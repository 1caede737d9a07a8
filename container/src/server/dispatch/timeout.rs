//! The request timeout, armed only when the call has to wait.
//!
//! `tokio::time::timeout` registers a timer in the runtime's wheel for
//! every request and removes it again: with the handle it clones and the
//! clock it reads, a few percent of a `/plaintext` request that the handler
//! answers on its first poll. Here the call is polled first; only a call
//! that is not done makes the timer, and with the deadline the request's
//! start already fixed.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio::time::{Instant, Sleep, sleep_until};

/// The call did not finish by its deadline.
pub(super) struct Elapsed;

/// `future`'s output, or [`Elapsed`] when it is not done by `deadline`.
/// The future is pinned by the caller: this one holds a pointer to it, so
/// a large call is not moved once more.
pub(super) async fn within<F: Future>(deadline: Instant, mut future: Pin<&mut F>) -> Result<F::Output, Elapsed> {
    // Boxed: the timer is large, and only a call that waits needs one.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
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
        assert!(matches!(within(past, pin!(async { 7 })).await, Ok(7)));
        // Waits longer than its deadline: expires at the deadline.
        let start = Instant::now();
        let slow = pin!(tokio::time::sleep(Duration::from_secs(60)));
        assert!(within(start + Duration::from_secs(30), slow).await.is_err());
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        // Waits less: its output.
        let quick = pin!(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        });
        assert!(matches!(
            within(Instant::now() + Duration::from_secs(30), quick).await,
            Ok("done")
        ));
    }
}
