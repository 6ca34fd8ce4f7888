//! Fail points: how the tests make a service fail for real inside the release binary, to
//! check that the daemon contains and restarts it.
//!
//! `EXO_FAILPOINTS=NAME:N[,NAME:N...]` in the daemon's environment makes the `N`th pass
//! through fail point `NAME` panic (once: later passes go through). Without the variable,
//! a pass costs one relaxed atomic load after the first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The fail points armed for this process: name -> (pass that fails, passes so far).
fn armed() -> &'static HashMap<String, (u64, AtomicU64)> {
    static ARMED: OnceLock<HashMap<String, (u64, AtomicU64)>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let spec = std::env::var("EXO_FAILPOINTS").unwrap_or_default();
        spec.split(',')
            .filter_map(|item| {
                let (name, n) = item.trim().split_once(':')?;
                Some((name.to_string(), (n.parse().ok()?, AtomicU64::new(0))))
            })
            .collect()
    })
}

/// Passes fail point `name`: panics if this is the pass it is armed for.
pub fn trigger(name: &str) {
    let Some((fail_at, passes)) = armed().get(name) else {
        return;
    };
    if passes.fetch_add(1, Ordering::Relaxed) + 1 == *fail_at {
        panic!("fail point `{name}` (EXO_FAILPOINTS)");
    }
}
