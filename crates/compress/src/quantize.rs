//! Post-training uniform quantization of weights to 8, 4 or 2 bits.
//!
//! **What**: maps every weight of each compressible layer to an integer code on a uniform grid,
//! `w ≈ scale * (code - zero)`, with one scale (and zero point) per tensor or per output
//! channel, symmetric (`zero = 2^(bits-1)`, grid symmetric around 0) or asymmetric (the grid
//! spans `[min(w, 0), max(w, 0)]`, so 0 stays exact). The codes are stored packed in the `.dsk`
//! (`quant` encoding) and the runtime multiplies them with integer kernels, quantizing each
//! activation vector to int8 on the fly (dynamic quantization).
//! **When**: after training, with no data: the cheapest compression there is (4x at 8 bits,
//! 8x at 4 bits). Per-channel scales matter below 8 bits. Run it as the last weight pass: it
//! replaces pruning masks and codebooks of the layers it quantizes.
//! **Cost**: 8 bits per channel typically costs under 0.2 points of accuracy; 4 and 2 bits
//! without retraining cost more (quantization-aware training, a later pass, recovers it).
//! **Paper**: Jacob et al., "Quantization and Training of Neural Networks for Efficient
//! Integer-Arithmetic-Only Inference", CVPR 2018 (affine scheme); Krishnamoorthi,
//! "Quantizing deep convolutional networks for efficient inference", 2018 (per-channel).
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "quantize"
//! bits = 8                    # 8, 4 or 2
//! granularity = "per-channel" # per-tensor | per-channel
//! scheme = "symmetric"        # symmetric | asymmetric
//! layers = { "fc3.weight" = 8 } # per-layer bits
//! activations = "static"      # dynamic (default) | static: calibrated int8 input scales
//! calibration = "mse"         # minmax | percentile | mse (see crate::calibrate)
//! ```

use std::collections::BTreeMap;

use deepshrink_codec::QuantMatrix;
use serde::{Deserialize, Serialize};

pub use crate::calibrate::{Activations, Calibration};
use crate::CompressError;

/// One scale per tensor or per output channel (row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Granularity {
    /// One scale (and zero point) for the whole tensor.
    PerTensor,
    /// One per output channel: row `r` of the `rows x cols` view (`rows = shape[0]`).
    PerChannel,
}

/// Where the grid sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Zero point fixed at `2^(bits-1)`: codes `1..2^bits` stand for `-qmax..=qmax` steps.
    Symmetric,
    /// Scale and zero point fitted to `[min(w, 0), max(w, 0)]`.
    Asymmetric,
}

/// Configuration of the quantize pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantizeConfig {
    /// Bits per weight: 8, 4 or 2.
    pub bits: u8,
    /// Per-tensor or per-channel scales.
    pub granularity: Granularity,
    /// Symmetric or asymmetric grid.
    pub scheme: Scheme,
    /// Per-layer bits by weight name.
    pub layers: BTreeMap<String, u8>,
    /// Activations quantized per call (`dynamic`) or with calibrated scales (`static`).
    pub activations: Activations,
    /// How static ranges are chosen ([`crate::calibrate`]).
    pub calibration: Calibration,
    /// Percentile of `|x|` for `calibration = "percentile"`, in `(0, 100]`.
    pub percentile: f32,
    /// Training samples of the calibration (the first ones).
    pub calibration_samples: usize,
}

impl Default for QuantizeConfig {
    fn default() -> Self {
        QuantizeConfig {
            bits: 8,
            granularity: Granularity::PerChannel,
            scheme: Scheme::Symmetric,
            layers: BTreeMap::new(),
            activations: Activations::Dynamic,
            calibration: Calibration::Minmax,
            percentile: 99.99,
            calibration_samples: 512,
        }
    }
}

fn config(detail: String) -> CompressError {
    CompressError::Config { pass: "quantize", detail }
}

impl QuantizeConfig {
    /// Checks that every bit width is 8, 4 or 2.
    pub fn validate(&self) -> Result<(), CompressError> {
        let all =
            std::iter::once(("bits", self.bits)).chain(self.layers.iter().map(|(n, &b)| (n.as_str(), b)));
        for (name, b) in all {
            if ![2, 4, 8].contains(&b) {
                return Err(config(format!("{name} = {b}: bits must be 8, 4 or 2")));
            }
        }
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(config(format!("percentile = {}: must be in (0, 100]", self.percentile)));
        }
        if self.activations == Activations::Static && self.calibration_samples == 0 {
            return Err(config("static activations need calibration_samples >= 1".into()));
        }
        Ok(())
    }

    /// Bits for weight `name`.
    pub fn bits_for(&self, name: &str) -> u8 {
        self.layers.get(name).copied().unwrap_or(self.bits)
    }
}

/// Quantizes the weight `name` (row-major `data` of `shape`) to `bits` bits.
///
/// Fails, naming the tensor, if a weight is NaN or infinite, `bits` is not 8, 4 or 2, or the
/// tensor is too small for the grouping (no elements, or fewer than one column per channel).
pub fn quantize_tensor(
    name: &str,
    shape: &[usize],
    data: &[f32],
    bits: u8,
    granularity: Granularity,
    scheme: Scheme,
) -> Result<QuantMatrix, CompressError> {
    if ![2, 4, 8].contains(&bits) {
        return Err(config(format!("'{name}': {bits} bits; bits must be 8, 4 or 2")));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(config(format!(
            "'{name}': weight {i} is {}; cannot quantize non-finite weights",
            data[i]
        )));
    }
    let rows = shape.first().copied().unwrap_or(1);
    let cols: usize = shape.iter().skip(1).product();
    if data.is_empty() || rows * cols != data.len() {
        return Err(config(format!("'{name}' {shape:?} has no elements to quantize")));
    }
    let groups = match granularity {
        Granularity::PerTensor => 1,
        Granularity::PerChannel if cols < 2 => {
            return Err(config(format!(
                "'{name}' {shape:?} has {cols} weight per channel: too small for per-channel scales"
            )))
        }
        Granularity::PerChannel => rows,
    };
    let glen = data.len() / groups;
    let levels = (1u32 << bits) - 1;
    let mut scales = Vec::with_capacity(groups);
    let mut zeros = Vec::with_capacity(groups);
    let mut codes = Vec::with_capacity(data.len());
    for g in data.chunks_exact(glen) {
        let (scale, zero) = match scheme {
            Scheme::Symmetric => {
                let qmax = (1u32 << (bits - 1)) - 1;
                let m = g.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                (m / qmax as f32, 1u32 << (bits - 1))
            }
            Scheme::Asymmetric => {
                let lo = g.iter().fold(0.0f32, |a, &v| a.min(v));
                let hi = g.iter().fold(0.0f32, |a, &v| a.max(v));
                let s = (hi - lo) / levels as f32;
                let z = if s > 0.0 { (-lo / s).round().clamp(0.0, levels as f32) as u32 } else { 0 };
                (s, z)
            }
        };
        // Symmetric grids use codes 1..=levels (-qmax..=qmax); code 0 stays unused.
        let lowest = if scheme == Scheme::Symmetric { 1.0 } else { 0.0 };
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        codes.extend(g.iter().map(|&v| ((v * inv).round() + zero as f32).clamp(lowest, levels as f32) as u8));
        scales.push(scale);
        zeros.push(zero as u8);
    }
    let zero_points = (scheme == Scheme::Asymmetric).then_some(zeros);
    Ok(QuantMatrix {
        shape: shape.to_vec(),
        bits,
        scales,
        zero_points,
        codes,
        neg_scales: None,
        act_scale: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn weights(n: usize, seed: u64, spread: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.3) * spread
            })
            .collect()
    }

    fn all_configs() -> impl Strategy<Value = (u8, Granularity, Scheme)> {
        (
            prop_oneof![Just(2u8), Just(4), Just(8)],
            prop_oneof![Just(Granularity::PerTensor), Just(Granularity::PerChannel)],
            prop_oneof![Just(Scheme::Symmetric), Just(Scheme::Asymmetric)],
        )
    }

    proptest! {
        /// Quantize then decode lands exactly on the grid: every decoded weight is
        /// `scale * (code - zero)` with an in-range integer code, within half a step of the
        /// original, and quantizing the decoded tensor again gives the same codes.
        #[test]
        fn decode_is_exact_to_the_grid(
            (bits, gran, scheme) in all_configs(),
            rows in 1usize..6,
            cols in 2usize..40,
            seed in any::<u64>(),
            spread in 0.01f32..10.0,
        ) {
            let w = weights(rows * cols, seed, spread);
            let q = quantize_tensor("w", &[rows, cols], &w, bits, gran, scheme).unwrap();
            q.check("w").unwrap();
            let d = q.to_dense();
            let d = d.as_f32().unwrap();
            for (i, (&orig, &dec)) in w.iter().zip(d).enumerate() {
                let r = i / cols;
                let s = q.scale(r);
                prop_assert_eq!(dec, s * (q.codes[i] as f32 - q.zero(r) as f32));
                prop_assert!((orig - dec).abs() <= 0.5 * s * (1.0 + 1e-4) + 1e-6,
                    "w {} decoded {} step {}", orig, dec, s);
            }
            let again = quantize_tensor("w", &[rows, cols], d, bits, gran, scheme).unwrap();
            prop_assert_eq!(&again.codes, &q.codes);
        }
    }

    /// Hand-computed: symmetric 4-bit of [-1, 0.45, 0.26, 0.7] per tensor: scale = 1/7,
    /// codes = round(w * 7) + 8 = [1, 11, 10, 13].
    #[test]
    fn symmetric_codes_by_hand() {
        let q = quantize_tensor(
            "w",
            &[1, 4],
            &[-1.0, 0.45, 0.26, 0.7],
            4,
            Granularity::PerTensor,
            Scheme::Symmetric,
        )
        .unwrap();
        assert_eq!(q.scales, vec![1.0 / 7.0]);
        assert_eq!(q.codes, vec![1, 11, 10, 13]);
        assert!(q.zero_points.is_none());
    }

    /// Asymmetric 2-bit of [0, 3] per tensor: scale 1, zero point 0, codes = w.
    #[test]
    fn asymmetric_codes_by_hand() {
        let q = quantize_tensor(
            "w",
            &[2, 2],
            &[0.0, 1.0, 2.0, 3.0],
            2,
            Granularity::PerTensor,
            Scheme::Asymmetric,
        )
        .unwrap();
        assert_eq!(
            (q.scales.clone(), q.zero_points.clone(), q.codes.clone()),
            (vec![1.0], Some(vec![0]), vec![0, 1, 2, 3])
        );
        let q = quantize_tensor("w", &[1, 2], &[-3.0, -1.0], 2, Granularity::PerTensor, Scheme::Asymmetric)
            .unwrap();
        assert_eq!((q.scales, q.zero_points, q.codes), (vec![1.0], Some(vec![3]), vec![0, 2]));
    }

    #[test]
    fn bad_input_is_one_clear_error() {
        let sym = (Granularity::PerChannel, Scheme::Symmetric);
        let e = |r: Result<QuantMatrix, CompressError>| r.unwrap_err().to_string();
        assert!(e(quantize_tensor("fc1.weight", &[1, 2], &[f32::NAN, 1.0], 8, sym.0, sym.1))
            .contains("non-finite"));
        assert!(e(quantize_tensor("w", &[1, 2], &[f32::INFINITY, 1.0], 8, sym.0, sym.1)).contains("inf"));
        assert!(e(quantize_tensor("w", &[1, 2], &[0.0, 1.0], 3, sym.0, sym.1)).contains("8, 4 or 2"));
        assert!(e(quantize_tensor("w", &[3, 1], &[0.0, 1.0, 2.0], 8, sym.0, sym.1)).contains("too small"));
        assert!(e(quantize_tensor("w", &[0, 4], &[], 8, sym.0, sym.1)).contains("no elements"));
        let bad = QuantizeConfig { bits: 16, ..QuantizeConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("8, 4 or 2"));
        let bad = QuantizeConfig {
            layers: BTreeMap::from([("fc1.weight".into(), 1)]),
            ..QuantizeConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("fc1.weight = 1"));
    }

    #[test]
    fn all_zero_rows_decode_to_zero() {
        for scheme in [Scheme::Symmetric, Scheme::Asymmetric] {
            let q = quantize_tensor("w", &[2, 2], &[0.0, 0.0, 1.0, -1.0], 4, Granularity::PerChannel, scheme)
                .unwrap();
            assert_eq!(&q.to_dense().as_f32().unwrap()[..2], &[0.0, 0.0]);
        }
    }
}
