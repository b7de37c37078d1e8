//! HashedNets: a layer's weights drawn from a few shared values by a hash.
//!
//! **What**: every entry `(r, c)` of a weight matrix reads one of `K` shared values, chosen — with
//! a sign — by a hash of its position, so the layer is `K` trainable numbers plus a seed; the
//! gradient of a shared value is the signed sum of its entries' gradients, and training runs end
//! to end on the virtual matrix.
//! **When**: memory-bound deployment where even indices are too costly: no per-weight index is
//! stored at all (contrast weight sharing, which stores a code per weight).
//! **Cost**: Chen et al. report LeNet-300-100 on MNIST at 1.7% error with 1/8 of the parameters
//! and 2.8% at 1/64 (their Table 1, HashNet); accuracy falls as `K` shrinks.
//! **Paper**: Chen, Wilson, Tyree, Weinberger and Chen, "Compressing Neural Networks with the
//! Hashing Trick", ICML 2015.
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "hash"
//! fraction = 0.125        # shared values per layer / weights of the layer
//! seed = 0
//! epochs = 10
//! lr = 1e-3
//! ```
//!
//! The hash is [`deepshrink_codec::hashing::bucket`]; the shared values start as the signed
//! mean of the weights that map to them (the projection of the current weights), so the pass
//! can start from a trained model or from a fresh zoo initialisation.

use std::collections::BTreeMap;

use deepshrink_codec::hashing::bucket;
use serde::{Deserialize, Serialize};

use crate::constraint::Codebook;
use crate::{CompressError, LayerKind};

/// Largest number of shared values per layer: codes of the signed codebook (`2K` entries) fit
/// `u16`.
pub const MAX_BUCKETS: usize = 1 << 15;

/// Configuration of the hash pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashConfig {
    /// Shared values per layer as a fraction of the layer's weights, in (0, 1].
    pub fraction: f32,
    /// Per-layer fractions by weight name.
    pub layers: BTreeMap<String, f32>,
    /// Hash seed.
    pub seed: u64,
    /// Also hash convolution weights (the paper hashes fully-connected layers).
    pub conv: bool,
    /// Training epochs on the hashed weights (Adam, cosine-decayed).
    pub epochs: usize,
    /// Learning rate.
    pub lr: f32,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig { fraction: 0.125, layers: BTreeMap::new(), seed: 0, conv: false, epochs: 5, lr: 1e-3 }
    }
}

impl HashConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        let bad = |detail: String| Err(CompressError::Config { pass: "hash", detail });
        for (name, f) in std::iter::once(("every layer", self.fraction))
            .chain(self.layers.iter().map(|(n, &f)| (n.as_str(), f)))
        {
            if !(f > 0.0 && f <= 1.0) {
                return bad(format!("fraction of {name} is {f}; it must be in (0, 1]"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {} must be positive", self.lr));
        }
        Ok(())
    }

    /// Whether a layer of this kind is hashed.
    pub fn applies(&self, name: &str, kind: LayerKind) -> bool {
        self.layers.contains_key(name) || kind == LayerKind::Fc || self.conv
    }

    /// Number of shared values for a layer of `numel` weights.
    pub fn buckets(&self, name: &str, numel: usize) -> Result<usize, CompressError> {
        let f = self.layers.get(name).copied().unwrap_or(self.fraction);
        let k = ((f as f64 * numel as f64).round() as usize).max(1);
        if k > MAX_BUCKETS {
            return Err(CompressError::Config {
                pass: "hash",
                detail: format!(
                    "{name}: {k} shared values ({f} of {numel}) exceed {MAX_BUCKETS}; use a smaller fraction"
                ),
            });
        }
        Ok(k)
    }
}

/// The hashed codebook of a weight `w` with `k` shared values: entry `p` reads bucket
/// `bucket(seed, p, k)` with its sign; each shared value starts as the signed mean of its
/// entries (0 for an empty bucket).
pub fn hashed_codebook(w: &[f32], k: usize, seed: u64) -> Codebook {
    let (mut sum, mut count) = (vec![0.0f64; k], vec![0usize; k]);
    let mut assign = Vec::with_capacity(w.len());
    let mut negative = Vec::with_capacity(w.len());
    for (p, &v) in w.iter().enumerate() {
        let (b, neg) = bucket(seed, p as u64, k as u32);
        sum[b as usize] += if neg { -v } else { v } as f64;
        count[b as usize] += 1;
        assign.push(b as u16);
        negative.push(neg);
    }
    let centroids =
        sum.iter().zip(&count).map(|(&s, &n)| if n > 0 { (s / n as f64) as f32 } else { 0.0 }).collect();
    Codebook { centroids, assign, negative: Some(negative) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codebook_projects_weights_onto_signed_buckets() {
        let w: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let cb = hashed_codebook(&w, 16, 3);
        assert_eq!(cb.centroids.len(), 16);
        for j in 0..16 {
            let members: Vec<f64> = (0..w.len())
                .filter(|&i| cb.assign[i] as usize == j)
                .map(|i| (cb.sign(i) * w[i]) as f64)
                .collect();
            let mean = members.iter().sum::<f64>() / members.len() as f64;
            assert!((mean - cb.centroids[j] as f64).abs() < 1e-6);
        }
        // Both signs occur.
        let neg = cb.negative.as_ref().unwrap().iter().filter(|&&n| n).count();
        assert!(neg > 400 && neg < 600, "{neg}");
    }

    #[test]
    fn validates_fractions_and_bucket_counts() {
        assert!(HashConfig { fraction: 0.0, ..Default::default() }.validate().is_err());
        assert!(HashConfig { fraction: 1.5, ..Default::default() }.validate().is_err());
        assert!(HashConfig::default().validate().is_ok());
        let c = HashConfig { fraction: 1.0, ..Default::default() };
        assert!(c.buckets("fc1.weight", 235_200).unwrap_err().to_string().contains("fc1.weight"));
        assert_eq!(HashConfig::default().buckets("w", 1000).unwrap(), 125);
        assert_eq!(HashConfig::default().buckets("w", 3).unwrap(), 1);
    }
}
