//! Optional per-step timing: set `DEEPSHRINK_PROFILE=1` and call [`report`] to print where
//! training time goes (forward and backward of every node).

use std::sync::Mutex;
use std::time::Instant;

static TIMES: Mutex<Vec<(usize, bool, &'static str, f64)>> = Mutex::new(Vec::new());

fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DEEPSHRINK_PROFILE").is_some())
}

pub(crate) fn record(step: usize, backward: bool, op: &'static str, start: Instant) {
    if !enabled() {
        return;
    }
    let dt = start.elapsed().as_secs_f64();
    let mut t = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    match t.iter_mut().find(|e| e.0 == step && e.1 == backward) {
        Some(e) => e.3 += dt,
        None => t.push((step, backward, op, dt)),
    }
}

/// The accumulated time per (step, direction) as lines of text, empty when profiling is off.
pub fn report() -> String {
    let mut t = TIMES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    t.sort_by_key(|e| (e.1, e.0));
    t.iter()
        .map(|(s, b, op, dt)| {
            format!("{:>3} {:<8} {:<20} {:8.3} s\n", s, if *b { "backward" } else { "forward" }, op, dt)
        })
        .collect()
}
