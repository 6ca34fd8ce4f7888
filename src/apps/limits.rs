//! Every bound of the app host (`spec/apps.md` section 9). The ones a node may tune (and
//! tests shorten) are in [`Limits`]; the others are part of the ABI.

/// Largest request an app may `send`: a mutation is one chain entry.
pub const REQUEST_BYTES_MAX: usize = 1024 * 1024;
/// A log line longer than this is cut.
pub const LOG_LINE_BYTES_MAX: usize = 4096;
/// Lines an app may log in one call; the rest are dropped and counted.
pub const LOG_LINES_PER_CALL: u32 = 64;
/// Longest timer delay.
pub const TIMER_DELAY_MS_MAX: u64 = 30 * 24 * 3600 * 1000;
/// Largest package file: a package travels in one chain entry.
pub const PACKAGE_BYTES_MAX: usize = 1_000_000;
/// Recent log lines kept per app for `exo cell app list` and tests.
pub const RECENT_LOGS_MAX: usize = 64;

/// The host's tunable bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Fuel (about one per wasm instruction) each call into an app may use.
    pub fuel_per_call: u64,
    /// Linear memory an instance may have.
    pub memory_bytes_max: usize,
    /// Requests and watches an instance may have unanswered.
    pub in_flight_max: usize,
    /// Delay before the first restart after a fault.
    pub backoff_initial_ms: u64,
    /// Longest delay between restarts.
    pub backoff_max_ms: u64,
    /// An instance that ran this long without a fault resets the backoff.
    pub healthy_after_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel_per_call: 10_000_000,
            memory_bytes_max: 16 * 1024 * 1024,
            in_flight_max: 64,
            backoff_initial_ms: 1000,
            backoff_max_ms: 5 * 60 * 1000,
            healthy_after_ms: 60_000,
        }
    }
}

impl Limits {
    /// The delay before restarting after `failures` consecutive faults (1 for the first).
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(30);
        self.backoff_initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.backoff_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let limits = Limits::default();
        assert_eq!(limits.backoff_ms(1), 1000);
        assert_eq!(limits.backoff_ms(2), 2000);
        assert_eq!(limits.backoff_ms(4), 8000);
        assert_eq!(limits.backoff_ms(100), 300_000);
    }
}
