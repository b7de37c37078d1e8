//! Circulant fully-connected layers: a weight matrix defined by a few vectors, multiplied with
//! FFTs.
//!
//! **What**: a `rows x cols` fully-connected weight becomes block-circulant — `b x b` blocks,
//! each the circulant matrix of `b` numbers (entry `(u, v)` of a block is `c[(u − v) mod b]`) —
//! optionally times a fixed random sign per input column (the diagonal `D` of Cheng et al.).
//! With one block (`block = 0`, `b = max(rows, cols)`, inputs and outputs zero-padded) a layer
//! of LeNet-300-100's `784 → 300` has 784 parameters instead of 235,200. Training runs end to
//! end on the dense matrix with the exact gradient of the defining values (the sum of the
//! gradients along each circulant diagonal, [`crate::ConstraintHook`]); the file stores the
//! values only (`circulant_f32`, docs/FORMAT.md) and the runtime multiplies with real FFTs,
//! `O(b log b)` per block instead of `O(b²)`.
//! **When**: fully-connected layers that dominate the parameters; the structure is a strong
//! prior, so the layers are best trained in this form (from scratch, `init = "random"`) rather
//! than projected from a trained dense layer (`init = "project"`, the nearest block-circulant
//! matrix in Frobenius norm, which loses most of the layer).
//! **Cost**: Cheng et al. report circulant projections on MNIST and ImageNet within a small
//! accuracy loss of dense layers; smaller blocks trade parameters for accuracy (Ding et al.).
//! **Papers**: Cheng, Yu, Feris, Kumar, Choudhary and Chang, "An exploration of parameter
//! redundancy in deep networks with circulant projections", ICCV 2015; Ding et al., "CirCNN",
//! MICRO 2017 (the block form).
//! **Recipe** (recipes/circulant.toml):
//! ```toml
//! [[pass]]
//! kind = "circulant"
//! block = 0               # one circulant per layer; or e.g. 64 for 64x64 circulant blocks
//! init = "random"         # train from scratch; "project" starts from the given weights
//! epochs = 10
//! lr = 1e-3
//! ```

use std::collections::BTreeMap;

use deepshrink_codec::circulant::column_signs;
use deepshrink_codec::CirculantTensor;
use deepshrink_engine::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::constraint::Codebook;
use crate::{CompressError, LayerKind};

/// Most defining values per layer: codebook indices are `u16`.
pub const MAX_VALUES: usize = 1 << 16;

/// Where the defining values start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CirculantInit {
    /// The nearest block-circulant matrix to the current weights (each value the signed mean of
    /// its diagonal).
    Project,
    /// Fresh values, uniform with the root-mean-square of the current weights (for a fresh zoo
    /// model, its own initialisation scale): training from scratch.
    Random,
}

/// Configuration of the circulant pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CirculantConfig {
    /// Block size `b`; 0: one circulant per layer, `b = max(rows, cols)`.
    pub block: usize,
    /// Per-layer block sizes by weight name (0: one block).
    pub layers: BTreeMap<String, usize>,
    /// Fully-connected weights left dense.
    pub skip: Vec<String>,
    /// Multiply each input column by a fixed random sign (Cheng et al.'s `D`).
    pub signs: bool,
    /// Seed of the signs and of random values.
    pub seed: u64,
    /// Where the values start.
    pub init: CirculantInit,
    /// Training epochs (Adam, cosine-decayed).
    pub epochs: usize,
    /// Learning rate.
    pub lr: f32,
}

impl Default for CirculantConfig {
    fn default() -> Self {
        CirculantConfig {
            block: 0,
            layers: BTreeMap::new(),
            skip: Vec::new(),
            signs: true,
            seed: 0,
            init: CirculantInit::Random,
            epochs: 5,
            lr: 1e-3,
        }
    }
}

impl CirculantConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(CompressError::Config {
                pass: "circulant",
                detail: format!("lr {} must be positive", self.lr),
            });
        }
        Ok(())
    }

    /// Whether a layer is made circulant: fully-connected and not skipped. A convolution named
    /// in `layers` is an error (circulant convolutions are not implemented).
    pub fn applies(&self, name: &str, kind: LayerKind) -> Result<bool, CompressError> {
        if kind != LayerKind::Fc {
            if self.layers.contains_key(name) {
                return Err(CompressError::Config {
                    pass: "circulant",
                    detail: format!("{name} is a convolution; only fully-connected layers can be circulant"),
                });
            }
            return Ok(false);
        }
        Ok(!self.skip.iter().any(|s| s == name))
    }

    /// The block size of a `rows x cols` layer, checked: `1..=max(rows, cols)` and at most
    /// [`MAX_VALUES`] defining values.
    pub fn block_of(&self, name: &str, rows: usize, cols: usize) -> Result<usize, CompressError> {
        let full = rows.max(cols);
        let b = match self.layers.get(name).copied().unwrap_or(self.block) {
            0 => full,
            b => b,
        };
        let bad = |detail: String| Err(CompressError::Config { pass: "circulant", detail });
        if b > full {
            return bad(format!(
                "{name}: block {b} is larger than the {rows}x{cols} layer; use 0 for one block"
            ));
        }
        let n = CirculantTensor::value_count(rows, cols, b);
        if n > MAX_VALUES {
            return bad(format!(
                "{name}: block {b} gives {n} values (more than {MAX_VALUES}); use a larger block"
            ));
        }
        Ok(b)
    }
}

/// The constraint that holds a `rows x cols` weight block-circulant with blocks of `block`: every
/// entry is a member of its value's cluster, with its column's sign. With `init = Random` the
/// weights are overwritten with fresh values (`w` is both read and written).
pub fn circulant_codebook(
    w: &mut [f32],
    (rows, cols): (usize, usize),
    block: usize,
    sign_seed: Option<u64>,
    init: CirculantInit,
    seed: u64,
) -> Codebook {
    let n = CirculantTensor::value_count(rows, cols, block);
    let signs = sign_seed.map(|s| column_signs(s, cols));
    let mut assign = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            assign.push(CirculantTensor::index((rows, cols), block, r, c) as u16);
        }
    }
    let negative = signs.map(|s| (0..rows * cols).map(|i| s[i % cols]).collect::<Vec<bool>>());
    let sign = |i: usize| if negative.as_ref().is_some_and(|n| n[i]) { -1.0 } else { 1.0 };
    let centroids = match init {
        CirculantInit::Project => {
            let (mut sum, mut count) = (vec![0.0f64; n], vec![0usize; n]);
            for (i, &v) in w.iter().enumerate() {
                sum[assign[i] as usize] += (sign(i) * v) as f64;
                count[assign[i] as usize] += 1;
            }
            sum.iter().zip(&count).map(|(&s, &k)| if k > 0 { (s / k as f64) as f32 } else { 0.0 }).collect()
        }
        CirculantInit::Random => {
            let rms = (w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len().max(1) as f64).sqrt();
            let a = (3.0f64.sqrt() * rms) as f32;
            let mut rng = Rng::new(seed);
            (0..n).map(|_| rng.range(-a, a)).collect::<Vec<f32>>()
        }
    };
    for (i, v) in w.iter_mut().enumerate() {
        *v = sign(i) * centroids[assign[i] as usize];
    }
    Codebook { centroids, assign, negative }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_is_the_mean_of_each_diagonal_and_random_keeps_the_scale() {
        // A matrix that is already circulant (with signs) is its own projection.
        let t = CirculantTensor {
            shape: vec![5, 7],
            block: 3,
            sign_seed: Some(4),
            values: (0..CirculantTensor::value_count(5, 7, 3)).map(|i| i as f32 - 4.0).collect(),
        };
        let dense = t.to_dense();
        let mut w = dense.as_f32().unwrap().to_vec();
        let cb = circulant_codebook(&mut w, (5, 7), 3, Some(4), CirculantInit::Project, 0);
        assert_eq!(w, dense.as_f32().unwrap());
        // Values no entry reads (the padding of the last block) project to 0.
        for (j, (a, b)) in cb.centroids.iter().zip(&t.values).enumerate() {
            assert!(a == b || *a == 0.0, "value {j}: {a} vs {b}");
        }
        // Random values: fresh, with about the weights' root-mean-square.
        let mut w: Vec<f32> = (0..300 * 784).map(|i| ((i as f32) * 0.7).sin() * 0.05).collect();
        let cb = circulant_codebook(&mut w, (300, 784), 784, None, CirculantInit::Random, 1);
        let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        assert_eq!(cb.centroids.len(), 784);
        assert!((rms(&cb.centroids) / (0.05 / 2f32.sqrt()) - 1.0).abs() < 0.15, "{}", rms(&cb.centroids));
        assert_eq!(w[784 + 1], cb.centroids[0]); // entry (1, 1) reads c[0]
    }

    #[test]
    fn block_sizes_are_checked() {
        let c = CirculantConfig::default();
        assert_eq!(c.block_of("fc1", 300, 784).unwrap(), 784);
        let c = CirculantConfig { block: 64, ..Default::default() };
        assert_eq!(c.block_of("fc1", 300, 784).unwrap(), 64);
        assert!(c.block_of("fc3", 10, 50).unwrap_err().to_string().contains("larger than"));
        let c = CirculantConfig { block: 1, ..Default::default() };
        assert!(c.block_of("fc1", 300, 784).unwrap_err().to_string().contains("larger block"));
        assert!(CirculantConfig { lr: 0.0, ..Default::default() }.validate().is_err());
        let c =
            CirculantConfig { layers: BTreeMap::from([("conv1.weight".into(), 4)]), ..Default::default() };
        assert!(c.applies("conv1.weight", LayerKind::Conv).is_err());
        assert!(!c.applies("conv2.weight", LayerKind::Conv).unwrap());
    }
}
