//! Magnitude pruning with retraining.
//!
//! **What**: removes the weights of smallest magnitude from every fully-connected and
//! convolution weight, then retrains the rest with the removed ones held at exactly zero.
//! **When**: the first stage of Deep Compression; on its own it shrinks fully-connected layers
//! 10x or more with sparse storage and sparse kernels.
//! **Cost**: none measurable at LeNet sizes with retraining (Han et al. 2015: LeNet-300-100 keeps
//! 8% of its weights at 1.59% error vs 1.64%); without retraining accuracy drops quickly.
//! **Paper**: Han, Pool, Tran and Dally, "Learning both Weights and Connections for Efficient
//! Neural Networks", NIPS 2015; the gradual schedule is Zhu and Gupta, "To prune, or not to
//! prune", 2017.
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "prune"
//! sparsity = 0.92                      # fraction removed per layer
//! layers = { "fc3.weight" = 0.75 }     # per-layer overrides
//! schedule = "iterative"               # one-shot | iterative | agp
//! steps = 3
//! retrain_epochs = 3
//! ```
//!
//! The four concerns are kept apart: the *criterion* is |w| (or Han's quality x std threshold),
//! the *group* is a single weight, the *surgery* is a mask (the container later stores only the
//! survivors), and the *schedule* is one-shot, iterative (linear) or AGP (cubic).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CompressError;

/// How the target is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Prune to the target once, then retrain.
    OneShot,
    /// `steps` prune → retrain cycles, sparsity rising linearly to the target (Han et al. 2015).
    #[default]
    Iterative,
    /// Automated gradual pruning: sparsity `s_f (1 - (1 - t/steps)^3)` at step `t`, fast early
    /// and slow near the target (Zhu and Gupta 2017), applied at epoch granularity.
    Agp,
}

/// Where weights are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Each layer loses its own fraction.
    #[default]
    PerLayer,
    /// One magnitude threshold for all layers together (then `layers` overrides are an error).
    Global,
}

/// Configuration of the prune pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PruneConfig {
    /// Fraction of weights removed from each layer, in [0, 1).
    pub sparsity: Option<f32>,
    /// Han et al. 2015's rule instead of a fraction: remove |w| < quality x std(w) of the layer.
    pub quality: Option<f32>,
    /// Per-layer sparsity by weight name, overriding `sparsity`.
    pub layers: BTreeMap<String, f32>,
    /// Ranking scope.
    pub scope: Scope,
    /// How the target is reached.
    pub schedule: Schedule,
    /// Number of prune → retrain cycles (iterative, agp).
    pub steps: usize,
    /// Retraining epochs after each pruning step.
    pub retrain_epochs: usize,
    /// Retraining learning rate (Adam, cosine-decayed within each cycle).
    pub lr: f32,
    /// Prune fully-connected weights in aligned groups of this many consecutive entries of a row
    /// (consecutive inputs for a `[out, in]` weight), ranked by the group's L2 norm. With 4 the
    /// runtime's 1x4-block kernel runs the layer: one index and one 4-wide load per group
    /// instead of per weight. 1 (the default) prunes weight by weight. Convolutions are always
    /// pruned weight by weight.
    pub block: usize,
    /// Per-layer block sizes by weight name, overriding `block` (e.g. `{ "fc3.weight" = 1 }`
    /// keeps a small classifier layer element-wise).
    pub block_layers: BTreeMap<String, usize>,
}

impl PruneConfig {
    /// The block size of a fully-connected weight.
    pub fn block_of(&self, name: &str) -> usize {
        self.block_layers.get(name).copied().unwrap_or(self.block)
    }
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            sparsity: Some(0.9),
            quality: None,
            layers: BTreeMap::new(),
            scope: Scope::PerLayer,
            schedule: Schedule::Iterative,
            steps: 3,
            retrain_epochs: 2,
            lr: 1e-4,
            block: 1,
            block_layers: BTreeMap::new(),
        }
    }
}

impl PruneConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        let bad = |detail: String| Err(CompressError::Config { pass: "prune", detail });
        let check = |name: &str, s: f32| -> Result<(), CompressError> {
            if (0.0..1.0).contains(&s) {
                Ok(())
            } else {
                bad(format!("sparsity of {name} is {s}; it must be in [0, 1)"))
            }
        };
        if let Some(s) = self.sparsity {
            check("every layer", s)?;
        }
        for (name, &s) in &self.layers {
            check(name, s)?;
        }
        match (self.sparsity, self.quality) {
            (None, None) if self.layers.is_empty() => return bad("give sparsity, quality or layers".into()),
            (Some(_), Some(_)) => return bad("give either sparsity or quality, not both".into()),
            (_, Some(q)) if !(q.is_finite() && q > 0.0) => {
                return bad(format!("quality {q} must be positive"))
            }
            _ => {}
        }
        if self.scope == Scope::Global && (!self.layers.is_empty() || self.quality.is_some()) {
            return bad(
                "global scope ranks all layers together: per-layer overrides and quality do not apply".into(),
            );
        }
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        for (name, &b) in std::iter::once((&"every layer".to_string(), &self.block)).chain(&self.block_layers)
        {
            if !(1..=64).contains(&b) {
                return bad(format!("block of {name} is {b}; it must be in 1..=64"));
            }
        }
        let blocked = self.block > 1 || self.block_layers.values().any(|&b| b > 1);
        if blocked && (self.scope == Scope::Global || self.quality.is_some()) {
            return bad("block pruning ranks blocks within a layer: use per-layer sparsity".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {} must be positive", self.lr));
        }
        Ok(())
    }

    /// Fraction of the way to the target after step `t` of `steps` (1-based).
    pub fn progress(&self, t: usize) -> f32 {
        let steps = self.steps.max(1) as f32;
        match self.schedule {
            Schedule::OneShot => 1.0,
            Schedule::Iterative => t as f32 / steps,
            Schedule::Agp => 1.0 - (1.0 - t as f32 / steps).powi(3),
        }
    }

    /// Number of prune → retrain cycles.
    pub fn cycles(&self) -> usize {
        if self.schedule == Schedule::OneShot {
            1
        } else {
            self.steps
        }
    }
}

/// A mask keeping all but the `drop` smallest-magnitude entries of `w` that are not already
/// pruned (`prev`); pruned entries stay pruned. Ties break by position, so results are stable.
pub fn magnitude_mask(w: &[f32], prev: Option<&[bool]>, drop: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..w.len()).collect();
    let key = |i: usize| if prev.is_some_and(|p| !p[i]) { -1.0 } else { w[i].abs() };
    order.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
    let mut mask = vec![true; w.len()];
    for &i in order.iter().take(drop.min(w.len())) {
        mask[i] = false;
    }
    if let Some(p) = prev {
        mask.iter_mut().zip(p).for_each(|(m, &k)| *m &= k);
    }
    mask
}

/// [`magnitude_mask`] over aligned groups of `block` consecutive entries of each row of
/// `row_len` entries (the last group of a row may be shorter): the `drop` groups of smallest L2
/// norm that are not already pruned lose all their entries. A group counts as pruned when none
/// of its entries is kept.
pub fn block_magnitude_mask(
    w: &[f32],
    row_len: usize,
    block: usize,
    prev: Option<&[bool]>,
    drop: usize,
) -> Vec<bool> {
    let row_len = row_len.max(1);
    let block = block.clamp(1, row_len);
    // Group g covers entries [start, end) of one row.
    let groups: Vec<(usize, usize)> = (0..w.len())
        .step_by(row_len)
        .flat_map(|r| (r..r + row_len.min(w.len() - r)).step_by(block).map(move |s| (s, r + row_len)))
        .map(|(s, row_end)| (s, (s + block).min(row_end).min(w.len())))
        .collect();
    let norms: Vec<f32> =
        groups.iter().map(|&(s, e)| w[s..e].iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
    let alive: Option<Vec<bool>> =
        prev.map(|p| groups.iter().map(|&(s, e)| p[s..e].iter().any(|&k| k)).collect());
    let keep_groups = magnitude_mask(&norms, alive.as_deref(), drop);
    let mut mask = vec![true; w.len()];
    for (&(s, e), &keep) in groups.iter().zip(&keep_groups) {
        mask[s..e].iter_mut().for_each(|m| *m = keep);
    }
    if let Some(p) = prev {
        mask.iter_mut().zip(p).for_each(|(m, &k)| *m &= k);
    }
    mask
}

/// Han et al. 2015's threshold: keep |w| >= quality x std(w).
pub fn quality_mask(w: &[f32], prev: Option<&[bool]>, quality: f32) -> Vec<bool> {
    let n = w.len().max(1) as f64;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let t = quality as f64 * std;
    w.iter().enumerate().map(|(i, &v)| (v as f64).abs() >= t && prev.is_none_or(|p| p[i])).collect()
}

/// One magnitude threshold over several tensors that removes `fraction` of all their entries.
pub fn global_threshold(tensors: &[&[f32]], fraction: f32) -> f32 {
    let mut all: Vec<f32> = tensors.iter().flat_map(|t| t.iter().map(|v| v.abs())).collect();
    if all.is_empty() {
        return 0.0;
    }
    let k = ((fraction as f64 * all.len() as f64).floor() as usize).min(all.len() - 1);
    let (_, t, _) = all.select_nth_unstable_by(k, f32::total_cmp);
    *t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_mask_drops_the_smallest_and_keeps_old_pruning() {
        let w = [0.5, -0.1, 0.0, 2.0, -0.3];
        assert_eq!(magnitude_mask(&w, None, 2), vec![true, false, false, true, true]);
        let prev = [true, true, true, false, true];
        // The already-pruned entry counts first, whatever its value.
        assert_eq!(magnitude_mask(&w, Some(&prev), 2), vec![true, true, false, false, true]);
    }

    #[test]
    fn block_mask_drops_whole_groups_within_rows() {
        // Two rows of 5: groups [0,4) [4,5) | [5,9) [9,10).
        let w = [1.0, 1.0, 1.0, 1.0, 0.1, 0.2, 0.2, 0.2, 0.2, 3.0];
        // Norms: 2.0, 0.1, 0.4, 3.0 -> dropping two removes the 0.1 and 0.4 groups.
        let m = block_magnitude_mask(&w, 5, 4, None, 2);
        assert_eq!(m, [true, true, true, true, false, false, false, false, false, true]);
        // An already-pruned group counts first; a kept entry of a group keeps it eligible.
        let mut prev = [true; 10];
        prev[..4].iter_mut().for_each(|p| *p = false);
        let m = block_magnitude_mask(&w, 5, 4, Some(&prev), 2);
        assert_eq!(m, [false, false, false, false, false, true, true, true, true, true]);
        // Block 1 is plain magnitude pruning.
        assert_eq!(block_magnitude_mask(&w, 5, 1, None, 3), magnitude_mask(&w, None, 3));
    }

    #[test]
    fn quality_threshold_and_global_threshold() {
        let w = [1.0, -1.0, 1.0, -1.0, 0.1];
        let m = quality_mask(&w, None, 0.5);
        assert_eq!(m, vec![true, true, true, true, false]);
        let a = [0.1f32, 0.2, 0.3];
        let b = [0.4f32, 0.5, 0.6, 0.7];
        assert_eq!(global_threshold(&[&a, &b], 0.5), 0.4);
    }

    #[test]
    fn schedules_reach_the_target() {
        let mut c = PruneConfig { steps: 4, ..Default::default() };
        assert_eq!(c.progress(2), 0.5);
        assert_eq!(c.progress(4), 1.0);
        c.schedule = Schedule::Agp;
        assert!((c.progress(2) - 0.875).abs() < 1e-6);
        c.sparsity = Some(1.0);
        assert!(c.validate().is_err());
    }
}
