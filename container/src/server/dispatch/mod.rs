//! The one handler behind every request: find the app, the route, call the
//! module, and turn the outcome into a response.
//!
//! `admit` resolves the request and checks what it can before the body is
//! read; `call` reads the body, calls the module and builds the response;
//! a [`Reject`] on the way becomes the response in one place, `reject`.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::Connection;
use super::observe;
use super::static_files;

use crate::abi::CallError;
use crate::lifecycle::ServeError;

mod admit;
mod call;
mod reject;
mod timeout;

pub use reject::Reject;

use admit::{Admitted, admit};
use timeout::{Expiry, within};

/// The handler behind every request: resolve the app, enforce the body
/// limit and the timeout, call the module, record metrics and the access log.
///
/// Everything up to the call is synchronous and done here, before the
/// future exists: the future holds only what the call needs, not the
/// request. It stays small, and every request's future is moved into a box
/// by the server and moved again at each level it awaits.
pub fn dispatch(connection: Arc<Connection>, request: Request) -> impl Future<Output = Response> + Send + 'static {
    let start = Instant::now();
    let (state, peer) = (&*connection.state, connection.peer);
    // Boxed: only when the log is on, and the future stays small.
    let access = state.access_log.as_ref().map(|log| Box::new(log.capture(&request)));
    // HTTP/1: the connection's deadline polls the call often enough.
    let expiry = match request.version() < http::Version::HTTP_2 && connection.activity.ticks_for_requests() {
        true => Expiry::Ticks,
        false => Expiry::Timer,
    };
    let admitted = admit(state, peer, request);
    async move {
        let (state, peer) = (&*connection.state, connection.peer);
        let mut mount = None;
        let (slot, result) = match admitted {
            Ok(Admitted::Call(slot, call)) => {
                let timed = call.timed();
                // A box of its own: glibc's thread cache serves blocks of
                // up to 1 KiB from a per-thread list, larger ones from its
                // arenas (about 850 instructions more per request, to
                // allocate and free). The call's future and this one each
                // fit; together they would not.
                let mut run = Box::pin(call.run(&slot, state));
                let result = match timed {
                    true => {
                        // The request timeout, from the request's start.
                        let deadline = tokio::time::Instant::from_std(start + state.request_timeout);
                        let result = within(deadline, expiry, run.as_mut()).await;
                        drop(run);
                        result.unwrap_or(Err(Reject::Timeout))
                    }
                    false => run.await,
                };
                (Some(slot), result)
            }
            Ok(Admitted::AppFile {
                slot,
                root,
                strip,
                request,
            }) => {
                // Boxed: keeps the future of module requests as small as it was.
                (Some(slot), Box::pin(static_files::serve(&root, strip, *request)).await)
            }
            Ok(Admitted::MountFile { mount: m, request }) => {
                let served = Box::pin(static_files::serve(&m.root, m.prefix_len(), *request)).await;
                mount = Some(m);
                (None, served)
            }
            Err((slot, reject)) => (slot, Err(reject)),
        };
        let response = result.unwrap_or_else(|reject| {
            match (&reject, &slot) {
                (Reject::Failed(error), Some(slot)) => log_failure(&slot.name, error),
                (Reject::Transaction(_, message), Some(slot)) => {
                    tracing::error!(app = &*slot.name, "managed transaction failed: {message}");
                }
                _ => {}
            }
            reject.into_response()
        });
        let owner = match (&slot, &mount) {
            (Some(slot), _) => Some((&slot.name, slot.metrics(&state.metrics))),
            (None, Some(mount)) => Some((&mount.label, mount.metrics(&state.metrics))),
            (None, None) => None,
        };
        observe::record(state, peer, owner, access.as_deref(), &response, start.elapsed());
        response
    }
}

fn log_failure(app: &str, error: &ServeError) {
    match error {
        ServeError::Call(CallError::Panicked) => {
            tracing::error!(
                app,
                "handler panicked (the module logged the panic above); answered 500"
            )
        }
        ServeError::Cancelled => tracing::warn!(app, "request cancelled because the app is stopping"),
        other => tracing::error!(app, error = %other, "request failed"),
    }
}

#[cfg(test)]
mod tests;
