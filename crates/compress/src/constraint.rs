//! Constraints on weights and the training hook that keeps them.

use std::collections::BTreeMap;

use deepshrink_engine::{Params, TrainHook};

use crate::qat::Quantizer;

/// What a weight tensor is held to during fine-tuning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraint {
    /// Pruning mask: `false` entries are zero and stay zero.
    pub mask: Option<Vec<bool>>,
    /// Weight sharing: every kept entry `i` equals `centroids[assign[i]]`.
    pub codebook: Option<Codebook>,
    /// Quantization-aware training: the weights are kept quantized, and `shadow` holds the float
    /// copy the optimizer updates (straight-through estimator).
    pub quant: Option<Quantizer>,
    /// The float weights behind a quantized tensor.
    pub shadow: Option<Vec<f32>>,
}

/// A per-tensor codebook and the cluster of every entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    /// Shared values.
    pub centroids: Vec<f32>,
    /// Cluster of every entry (entries outside the mask are ignored).
    pub assign: Vec<u16>,
    /// Signs: entry `i` equals `−centroids[assign[i]]` where `negative[i]` (HashedNets' sign
    /// hash); `None` for plain weight sharing.
    pub negative: Option<Vec<bool>>,
}

impl Codebook {
    /// `±1`: the sign entry `i` applies to its centroid.
    pub fn sign(&self, i: usize) -> f32 {
        if self.negative.as_ref().is_some_and(|n| n[i]) {
            -1.0
        } else {
            1.0
        }
    }
}

impl Constraint {
    /// True if entry `i` is kept (not pruned).
    pub fn kept(&self, i: usize) -> bool {
        self.mask.as_ref().is_none_or(|m| m[i])
    }

    /// Number of kept entries out of `n`.
    pub fn kept_count(&self, n: usize) -> usize {
        self.mask.as_ref().map_or(n, |m| m.iter().filter(|&&k| k).count())
    }
}

/// Enforces constraints around every optimizer step (Han et al. 2015 and 2016):
/// - before the step, gradients of pruned entries are zeroed, and every member of a cluster gets
///   the sum of its cluster's gradients (the centroid gradient), so all members move together;
/// - after the step, pruned entries are set back to exactly zero and each cluster is snapped to
///   the mean of its members, which becomes the new centroid (this removes rounding drift).
#[derive(Debug, Default)]
pub struct ConstraintHook {
    /// Constraints by weight name.
    pub constraints: BTreeMap<String, Constraint>,
}

impl ConstraintHook {
    /// Applies every constraint to the weights (used once before fine-tuning and after it).
    pub fn enforce(&mut self, params: &mut Params<'_>) {
        for (name, c) in self.constraints.iter_mut() {
            let Some(w) = params.value_mut(name) else { continue };
            if let Some(cb) = &mut c.codebook {
                let k = cb.centroids.len();
                let (mut sum, mut count) = (vec![0.0f64; k], vec![0usize; k]);
                for (i, &v) in w.iter().enumerate() {
                    if c.mask.as_ref().is_none_or(|m| m[i]) {
                        sum[cb.assign[i] as usize] += (cb.sign(i) * v) as f64;
                        count[cb.assign[i] as usize] += 1;
                    }
                }
                for j in 0..k {
                    if count[j] > 0 {
                        cb.centroids[j] = (sum[j] / count[j] as f64) as f32;
                    }
                }
                for (i, v) in w.iter_mut().enumerate() {
                    *v = cb.sign(i) * cb.centroids[cb.assign[i] as usize];
                }
            }
            if let Some(q) = &mut c.quant {
                let mut shadow = w.to_vec();
                q.clip_shadow(&mut shadow);
                let mask = c.mask.as_deref();
                q.apply(&shadow, |i| mask.is_none_or(|m| m[i]), w);
                // Fixed point keeps no float copy: the rounded weights are the weights.
                c.shadow = q.holds_shadow().then_some(shadow);
            }
            if let Some(m) = &c.mask {
                w.iter_mut().zip(m).filter(|(_, &k)| !k).for_each(|(v, _)| *v = 0.0);
            }
        }
    }
}

impl TrainHook for ConstraintHook {
    fn before_step(&mut self, params: &mut Params<'_>) {
        for (name, c) in self.constraints.iter_mut() {
            // The gradient was taken at the quantized weights; the update goes to the floats.
            if let (Some(shadow), Some(w)) = (&c.shadow, params.value_mut(name)) {
                w.copy_from_slice(shadow);
            }
            let Some(g) = params.grad_mut(name) else { continue };
            // Learned scales (LSQ, TTQ) take their gradients and shape the weights' gradient.
            if let (Some(q), Some(shadow)) = (&mut c.quant, &c.shadow) {
                q.backward(shadow, g);
            }
            if let Some(m) = &c.mask {
                g.iter_mut().zip(m).filter(|(_, &k)| !k).for_each(|(v, _)| *v = 0.0);
            }
            if let Some(cb) = &c.codebook {
                // The centroid gradient Σ sign_i g_i, given back to each member with its sign, so
                // that every member moves with its centroid.
                let mut sum = vec![0.0f32; cb.centroids.len()];
                for (i, &v) in g.iter().enumerate() {
                    sum[cb.assign[i] as usize] += cb.sign(i) * v;
                }
                for (i, v) in g.iter_mut().enumerate() {
                    if c.kept(i) {
                        *v = cb.sign(i) * sum[cb.assign[i] as usize];
                    }
                }
            }
        }
    }

    fn after_step(&mut self, params: &mut Params<'_>) {
        self.enforce(params);
    }
}
