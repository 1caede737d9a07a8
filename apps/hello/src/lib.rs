//! # hello — the smallest Crabcat app
//!
//! `curl localhost:8080/hello/greet/Ferris` with `scripts/run.sh` running. `apps/tour` shows the rest of the SDK.

#![forbid(unsafe_code)]

use crabcat_sdk::prelude::*;

struct Hello;

impl App for Hello {
    fn init(_ctx: &InitContext) -> Result<Self> {
        Ok(Hello)
    }

    fn routes(routes: &mut Routes<Self>) {
        routes
            .get("/", || async { "Hello from Crabcat!\n" })
            .get("/greet/{name}", |Path(name): Path<String>| async move {
                format!("Hello, {name}!\n")
            });
    }
}

crabcat_sdk::export_app!(Hello);
