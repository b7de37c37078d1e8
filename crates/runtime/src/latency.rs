//! Median latency of a runtime, per node and in total, for `deepshrink bench`.

use std::time::{Duration, Instant};

use crate::{NodeTiming, Runtime, RuntimeError};

/// Runs `rt` on `x` `runs` times (after one warm-up run) and returns the median wall time of a
/// whole run and the median time of each node (in plan order). `runs` of 0 is treated as 1.
pub fn median_latency(
    rt: &Runtime,
    x: &[f32],
    batch: usize,
    runs: usize,
) -> Result<(Duration, Vec<NodeTiming>), RuntimeError> {
    rt.run(x, batch)?;
    let runs = runs.max(1);
    let mut totals = Vec::with_capacity(runs);
    let mut per_node: Vec<Vec<Duration>> = Vec::new();
    let mut last = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let (_, _, t) = rt.run_timed(x, batch)?;
        totals.push(start.elapsed());
        per_node.resize(t.len(), Vec::with_capacity(runs));
        for (acc, nt) in per_node.iter_mut().zip(&t) {
            acc.push(nt.time);
        }
        last = t;
    }
    for (nt, mut ts) in last.iter_mut().zip(per_node) {
        nt.time = median(&mut ts);
    }
    Ok((median(&mut totals), last))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}
