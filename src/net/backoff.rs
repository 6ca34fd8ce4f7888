//! Capped exponential backoff with jitter, for redialing a peer that is down.
//!
//! Jitter keeps the nodes of a cell from redialing in lockstep after a common outage; the cap
//! bounds how long a node waits to notice that a peer came back.

use std::time::Duration;

/// First delay after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest delay between two dials of the same peer.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Delays between attempts: doubling from [`BACKOFF_BASE`] up to [`BACKOFF_MAX`], each drawn
/// uniformly from the upper half of its range ("equal jitter").
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// A backoff with no failure yet.
    pub fn new() -> Backoff {
        Backoff { failures: 0 }
    }

    /// The delay before the next attempt, given a random number (pure, so tests fix it).
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let exponent = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let cap_ms = (BACKOFF_BASE.as_millis() as u64)
            .saturating_mul(1 << exponent)
            .min(BACKOFF_MAX.as_millis() as u64);
        let half = cap_ms / 2;
        Duration::from_millis(half + random % (cap_ms - half + 1))
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new();
        for attempt in 0..40u32 {
            let cap_ms = (250u64 << attempt.min(16)).min(30_000);
            let delay = backoff.next_delay(fastrand::u64(..)).as_millis() as u64;
            assert!(
                cap_ms / 2 <= delay && delay <= cap_ms,
                "attempt {attempt}: {delay} ms"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay(fastrand::u64(..)) <= BACKOFF_BASE);
    }
}
