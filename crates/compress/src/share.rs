//! Trained quantization: weight sharing by k-means with centroid fine-tuning.
//!
//! **What**: clusters the surviving weights of each layer into `2^bits` shared values (1-D
//! k-means), stores one small index per weight plus the codebook, then fine-tunes the centroids:
//! each centroid's gradient is the sum of its members' gradients.
//! **When**: after pruning, as the second stage of Deep Compression; turns 32-bit values into
//! 5-bit (fully connected) or 8-bit (convolution) indices.
//! **Cost**: Han et al. 2016 report no accuracy loss down to 4 bits (conv) and 2 bits (fc) on
//! AlexNet; fewer bits trade accuracy for size.
//! **Paper**: Han, Mao and Dally, "Deep Compression", ICLR 2016, Section 3.
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "share"
//! bits_fc = 5
//! bits_conv = 8
//! init = "linear"        # linear | density | random
//! finetune_epochs = 1
//! hessian = false        # true: Hessian-weighted k-means (Choi et al. 2017)
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::constraint::Codebook;
use crate::kmeans::{kmeans_1d_weighted, Init};
use crate::prune::Scope;
use crate::{CompressError, LayerKind};

/// Configuration of the share pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShareConfig {
    /// Index bits for fully-connected weights (1..=16).
    pub bits_fc: u8,
    /// Index bits for convolution weights (1..=16).
    pub bits_conv: u8,
    /// Per-layer bits by weight name.
    pub layers: BTreeMap<String, u8>,
    /// Centroid initialisation.
    pub init: Init,
    /// Lloyd iterations at most.
    pub max_iter: usize,
    /// Centroid fine-tuning epochs.
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate (Adam, cosine-decayed).
    pub lr: f32,
    /// Hessian-weighted k-means (Choi et al. 2017): each weight's squared distance to its
    /// centroid is weighted by a diagonal Hessian estimate, the mean squared gradient over
    /// `calibration_samples` training samples ([`crate::hessian`]).
    pub hessian: bool,
    /// Training samples of the Hessian estimate.
    pub calibration_samples: usize,
    /// Damping `λ` of the Hessian estimate: the importance is `h + λ·mean(h)` over the layer
    /// (0: pure estimate; large: plain k-means). Default 0.1: the lowest *training* loss over
    /// 0, 0.1, 0.3, 1 and 3 on LeNet-300-100 at 2 bits (bench/results/quantization/hessian-damping.md).
    pub damping: f32,
    /// `per-layer`: one codebook per layer (Han et al.); `global`: one codebook for every layer
    /// together (Choi et al.'s network-wide setting, where the Hessian weighs layers against each
    /// other), which needs one bit width for all layers. Each layer still stores its own copy
    /// of the codebook, and fine-tuning moves each layer's centroids on their own.
    /// Use `damping = 1.0` with it (chosen on training loss:
    /// bench/results/quantization/hessian-damping-global.md).
    pub scope: Scope,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            bits_fc: 5,
            bits_conv: 8,
            layers: BTreeMap::new(),
            init: Init::Linear,
            max_iter: 100,
            finetune_epochs: 1,
            lr: 1e-4,
            hessian: false,
            calibration_samples: 2048,
            damping: 0.1,
            scope: Scope::PerLayer,
        }
    }
}

impl ShareConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        let all = [("bits_fc", self.bits_fc), ("bits_conv", self.bits_conv)];
        for (name, b) in all.iter().copied().chain(self.layers.iter().map(|(n, &b)| (n.as_str(), b))) {
            if !(1..=16).contains(&b) {
                return Err(CompressError::Config {
                    pass: "share",
                    detail: format!("{name} = {b} bits; bits must be in 1..=16"),
                });
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(CompressError::Config {
                pass: "share",
                detail: format!("lr {} must be positive", self.lr),
            });
        }
        if !(self.damping.is_finite() && self.damping >= 0.0) {
            return Err(CompressError::Config {
                pass: "share",
                detail: format!("damping {} must be finite and >= 0", self.damping),
            });
        }
        if self.hessian && self.calibration_samples == 0 {
            return Err(CompressError::Config {
                pass: "share",
                detail: "hessian weighting needs calibration_samples >= 1".into(),
            });
        }
        Ok(())
    }

    /// Index bits for a weight.
    pub fn bits(&self, name: &str, kind: LayerKind) -> u8 {
        self.layers.get(name).copied().unwrap_or(match kind {
            LayerKind::Fc => self.bits_fc,
            LayerKind::Conv => self.bits_conv,
        })
    }
}

/// Clusters the kept entries of `w` into at most `2^bits` centroids, weighting each entry's
/// squared error by `importance` if given (Hessian-weighted k-means).
pub fn cluster(
    w: &[f32],
    mask: Option<&[bool]>,
    importance: Option<&[f32]>,
    bits: u8,
    init: Init,
    seed: u64,
    max_iter: usize,
) -> Codebook {
    let kept: Vec<usize> = (0..w.len()).filter(|&i| mask.is_none_or(|m| m[i])).collect();
    let values: Vec<f32> = kept.iter().map(|&i| w[i]).collect();
    let h: Option<Vec<f32>> = importance.map(|h| kept.iter().map(|&i| h[i]).collect());
    let cl = kmeans_1d_weighted(&values, h.as_deref(), 1usize << bits, init, seed, max_iter);
    let mut assign = vec![0u16; w.len()];
    for (&i, &a) in kept.iter().zip(&cl.assign) {
        assign[i] = a;
    }
    let centroids = if cl.centroids.is_empty() { vec![0.0] } else { cl.centroids };
    Codebook { centroids, assign, negative: None }
}

/// A tensor to cluster: its weights, pruning mask and importance (Hessian estimate).
pub type ClusterInput<'a> = (&'a [f32], Option<&'a [bool]>, Option<&'a [f32]>);

/// One codebook for several tensors (weights, masks, importances): k-means over all their kept
/// entries together, then each tensor gets the shared centroids and its own assignments.
pub fn cluster_global(
    tensors: &[ClusterInput<'_>],
    bits: u8,
    init: Init,
    seed: u64,
    max_iter: usize,
) -> Vec<Codebook> {
    let w: Vec<f32> = tensors.iter().flat_map(|t| t.0.iter().copied()).collect();
    let mask: Vec<bool> =
        tensors.iter().flat_map(|t| (0..t.0.len()).map(move |i| t.1.is_none_or(|m| m[i]))).collect();
    let h: Option<Vec<f32>> = tensors
        .iter()
        .all(|t| t.2.is_some())
        .then(|| tensors.iter().flat_map(|t| t.2.unwrap().iter().copied()).collect());
    let cb = cluster(&w, Some(&mask), h.as_deref(), bits, init, seed, max_iter);
    let mut at = 0;
    tensors
        .iter()
        .map(|t| {
            let assign = cb.assign[at..at + t.0.len()].to_vec();
            at += t.0.len();
            Codebook { centroids: cb.centroids.clone(), assign, negative: None }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_only_kept_weights() {
        let w = [0.0, 1.0, 1.1, -1.0, -1.1, 0.0];
        let mask = [false, true, true, true, true, false];
        let cb = cluster(&w, Some(&mask), None, 1, Init::Linear, 0, 50);
        assert_eq!(cb.centroids.len(), 2);
        assert!((cb.centroids[0] + 1.05).abs() < 1e-6 && (cb.centroids[1] - 1.05).abs() < 1e-6);
        assert_eq!(&cb.assign[1..5], &[1, 1, 0, 0]);
    }

    /// Two layers of very different scales: one global 1-bit codebook puts both centroids where
    /// the large layer is, the small layer collapses onto the centroid nearest zero; weighting the
    /// small layer's entries heavily pulls a centroid to it.
    #[test]
    fn a_global_codebook_is_shared_and_importance_weighs_layers() {
        let big = [-1.0, -1.0, 1.0, 1.0];
        let small = [0.1, 0.1, 0.1];
        let cbs = cluster_global(&[(&big, None, None), (&small, None, None)], 1, Init::Linear, 0, 50);
        assert_eq!(cbs[0].centroids, cbs[1].centroids);
        assert_eq!(cbs[0].assign.len(), 4);
        assert_eq!(cbs[1].assign.len(), 3);
        let heavy = [100.0f32; 3];
        let ones = [1.0f32; 4];
        let cbs = cluster_global(
            &[(&big, None, Some(&ones)), (&small, None, Some(&heavy))],
            1,
            Init::Linear,
            0,
            50,
        );
        let c = cbs[1].centroids[cbs[1].assign[0] as usize];
        assert!((c - 0.1).abs() < 0.05, "{:?}", cbs[1].centroids);
    }

    #[test]
    fn bits_out_of_range_are_rejected() {
        assert!(ShareConfig { bits_fc: 0, ..Default::default() }.validate().is_err());
        assert!(ShareConfig { bits_conv: 17, ..Default::default() }.validate().is_err());
        assert!(ShareConfig::default().validate().is_ok());
    }
}
