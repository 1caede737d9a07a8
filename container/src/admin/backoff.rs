//! Failed-token backoff per client address: after [`FREE_FAILURES`] wrong
//! tokens in a row, an address is refused (`429`, `Retry-After`) without
//! its token being looked at, for a period that doubles with each further
//! failure, from one second up to [`MAX_BLOCK`]. A right token clears its
//! record. At most [`MAX_TRACKED`] addresses are remembered (the oldest
//! records that block nothing are forgotten first), so the table cannot
//! grow without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens an address may present before it is blocked.
pub const FREE_FAILURES: u32 = 5;
/// The longest block.
pub const MAX_BLOCK: Duration = Duration::from_secs(300);
/// Addresses remembered at most.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// The failures of every address that failed lately.
#[derive(Default)]
pub struct Backoff {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Backoff {
    /// How long `address` is still blocked at `now`, if it is.
    pub fn blocked(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock().expect("backoff lock");
        let until = records.get(&address)?.blocked_until?;
        until.checked_duration_since(now).filter(|left| !left.is_zero())
    }

    /// Records a wrong token from `address`; returns the block it now
    /// has, if any, and the failures in a row.
    pub fn failed(&self, address: IpAddr, now: Instant) -> (u32, Option<Duration>) {
        let mut records = self.records.lock().expect("backoff lock");
        if records.len() >= MAX_TRACKED && !records.contains_key(&address) {
            forget_idle(&mut records, now);
        }
        let record = records.entry(address).or_insert(Record {
            failures: 0,
            last: now,
            blocked_until: None,
        });
        record.failures += 1;
        record.last = now;
        let block = block_for(record.failures);
        record.blocked_until = block.map(|b| now + b);
        (record.failures, block)
    }

    /// A right token from `address`: its record is cleared.
    pub fn succeeded(&self, address: IpAddr) {
        self.records.lock().expect("backoff lock").remove(&address);
    }
}

/// The block after `failures` failures in a row.
fn block_for(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_FAILURES)?;
    let seconds = 1u64.checked_shl(over).unwrap_or(u64::MAX);
    Some(Duration::from_secs(seconds).min(MAX_BLOCK))
}

/// Forgets records that block nothing now, oldest first, down to half the
/// table; if every record blocks, the oldest half goes anyway.
fn forget_idle(records: &mut HashMap<IpAddr, Record>, now: Instant) {
    records.retain(|_, r| r.blocked_until.is_some_and(|until| until > now));
    if records.len() >= MAX_TRACKED / 2 {
        let mut ages: Vec<Instant> = records.values().map(|r| r.last).collect();
        ages.sort();
        let cutoff = ages[ages.len() / 2];
        records.retain(|_, r| r.last > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_double_after_the_free_failures_and_a_success_clears_them() {
        let backoff = Backoff::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for n in 1..FREE_FAILURES {
            assert_eq!(backoff.failed(ip, t0), (n, None));
        }
        assert_eq!(backoff.failed(ip, t0), (5, Some(Duration::from_secs(1))));
        assert_eq!(backoff.blocked(ip, t0), Some(Duration::from_secs(1)));
        assert_eq!(backoff.blocked(ip, t0 + Duration::from_secs(2)), None);
        assert_eq!(backoff.failed(ip, t0).1, Some(Duration::from_secs(2)));
        assert_eq!(backoff.failed(ip, t0).1, Some(Duration::from_secs(4)));
        for _ in 0..40 {
            backoff.failed(ip, t0);
        }
        assert_eq!(backoff.blocked(ip, t0), Some(MAX_BLOCK));
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(backoff.blocked(other, t0), None, "per address");
        backoff.succeeded(ip);
        assert_eq!(backoff.blocked(ip, t0), None);
    }

    #[test]
    fn the_table_stays_bounded() {
        let backoff = Backoff::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            backoff.failed(ip, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(backoff.records.lock().unwrap().len() <= MAX_TRACKED);
    }
}
