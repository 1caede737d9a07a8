//! What a reference count that every worker thread writes costs, against
//! one counted in stripes ([`StripedArc`]), the way the request path
//! takes its app's slot, instance and quota.
//!
//! Every thread (one per core) takes and drops a reference, then does
//! `work` nanoseconds of work of its own, a stand-in for the rest of a
//! request: with no work between them the threads queue on the shared
//! line; with some, each take finds the line last written by another
//! core and waits for it to come over. Run by `bench/contention.sh`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crabcat::striped::StripedArc;

/// Nanoseconds per take-and-drop, each followed by `work` of private work,
/// over `threads` threads each doing `rounds`.
fn measure(threads: usize, rounds: u32, work: Duration, take: &(dyn Fn() + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..rounds {
                    take();
                    spin(work);
                }
            });
        }
    });
    let per_round = start.elapsed().as_nanos() as f64 / f64::from(rounds);
    per_round - work.as_nanos() as f64
}

fn spin(work: Duration) {
    if work.is_zero() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < work {
        std::hint::spin_loop();
    }
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let shared = Arc::new(0_u64);
    let striped = StripedArc::new(Arc::new(0_u64));
    let plain = || drop(black_box(Arc::clone(&shared)));
    let local = || drop(black_box(striped.local()));
    println!("{threads} threads; nanoseconds per reference taken and dropped, beyond the work between them");
    println!("| work between | shared Arc | striped | shared - striped |");
    println!("|---:|---:|---:|---:|");
    for (work, rounds) in [(0, 2_000_000), (500, 200_000), (2_000, 100_000)] {
        let work = Duration::from_nanos(work);
        // Alternating, best of three each: the machine's other load
        // only ever adds.
        let (mut a, mut b) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            a = a.min(measure(threads, rounds, work, &plain));
            b = b.min(measure(threads, rounds, work, &local));
        }
        println!("| {} ns | {a:.1} | {b:.1} | {:.1} |", work.as_nanos(), a - b);
    }
}
