//! Quantization-aware training of weights: binary, ternary and k-bit uniform weights trained
//! with the straight-through estimator.
//!
//! **What**: the forward and backward passes see quantized weights; the optimizer updates a float
//! *shadow* copy with the gradient taken at the quantized point (the straight-through estimator,
//! Bengio et al. 2013), and the weights are re-quantized after every step. Methods:
//! - `binary`: `sign(w) · mean|w|` per layer — BinaryConnect's sign weights (Courbariaux, Bengio
//!   and David 2015) with the layer scale of Rastegari et al. 2016's binary-weight networks; the
//!   shadow is clipped to [−1, 1] as in BinaryConnect;
//! - `ternary`: ternary weight networks (Li, Zhang and Liu 2016): threshold `Δ = 0.7 · mean|w|`,
//!   weights `±α` above it (`α` = mean |w| over them) and 0 below;
//! - `uniform`: symmetric `bits`-bit grid with one scale per layer, `s = max|w| / (2^(bits−1) − 1)`.
//!
//! **When**: below 8 bits, where post-training quantization loses accuracy.
//! **Cost**: one extra copy of the weights during training; the result stores 1–`bits` bits per
//! weight (the container codes the few distinct values as codebook indices, Huffman-coded).
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "qat"
//! method = "ternary"     # binary | ternary | uniform
//! bits = 4               # uniform only
//! epochs = 5
//! lr = 1e-3
//! ```

use serde::{Deserialize, Serialize};

use crate::{CompressError, LayerKind};

/// The weight quantizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `sign(w) · mean|w|`.
    Binary,
    /// TWN: `±α` above `0.7 · mean|w|`, else 0.
    #[default]
    Ternary,
    /// Symmetric `bits`-bit uniform grid, one scale per layer.
    Uniform,
}

/// Configuration of the qat pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QatConfig {
    /// The quantizer.
    pub method: Method,
    /// Bits of the uniform grid, 2..=8.
    pub bits: u8,
    /// Also quantize convolution weights.
    pub conv: bool,
    /// Training epochs (Adam, cosine-decayed).
    pub epochs: usize,
    /// Learning rate.
    pub lr: f32,
}

impl Default for QatConfig {
    fn default() -> Self {
        QatConfig { method: Method::Ternary, bits: 4, conv: true, epochs: 5, lr: 1e-3 }
    }
}

impl QatConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        let bad = |detail: String| Err(CompressError::Config { pass: "qat", detail });
        if self.method == Method::Uniform && !(2..=8).contains(&self.bits) {
            return bad(format!("bits {} must be in 2..=8", self.bits));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {} must be positive", self.lr));
        }
        Ok(())
    }

    /// Whether a layer of this kind is quantized.
    pub fn applies(&self, kind: LayerKind) -> bool {
        kind == LayerKind::Fc || self.conv
    }

    /// Bits per stored weight.
    pub fn stored_bits(&self) -> u8 {
        match self.method {
            Method::Binary => 1,
            Method::Ternary => 2,
            Method::Uniform => self.bits,
        }
    }

    /// The quantizer of this configuration.
    pub fn quantizer(&self) -> Quantizer {
        Quantizer { method: self.method, bits: self.bits }
    }
}

/// A weight quantizer (what the constraint hook applies after every step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantizer {
    /// The method.
    pub method: Method,
    /// Bits of the uniform grid.
    pub bits: u8,
}

impl Quantizer {
    /// Writes the quantized `w` (entries where `keep` is false are ignored by the statistics and
    /// set to 0).
    pub fn apply(&self, w: &[f32], keep: impl Fn(usize) -> bool, out: &mut [f32]) {
        let kept: Vec<f64> = (0..w.len()).filter(|&i| keep(i)).map(|i| w[i].abs() as f64).collect();
        let mean = kept.iter().sum::<f64>() / kept.len().max(1) as f64;
        // Per-layer statistics first, then one rule per entry.
        let rule: Box<dyn Fn(f32) -> f32> = match self.method {
            Method::Binary => {
                let m = mean as f32;
                Box::new(move |v| if v >= 0.0 { m } else { -m })
            }
            Method::Ternary => {
                let delta = 0.7 * mean;
                let above: Vec<f64> = kept.iter().copied().filter(|&a| a > delta).collect();
                let alpha =
                    if above.is_empty() { 0.0 } else { above.iter().sum::<f64>() / above.len() as f64 };
                Box::new(move |v| if (v.abs() as f64) > delta { alpha as f32 * v.signum() } else { 0.0 })
            }
            Method::Uniform => {
                let max = kept.iter().copied().fold(0.0f64, f64::max) as f32;
                let qmax = ((1i32 << (self.bits - 1)) - 1) as f32;
                let s = max / qmax;
                Box::new(move |v| if s == 0.0 { 0.0 } else { (v / s).round().clamp(-qmax, qmax) * s })
            }
        };
        for (i, (o, &v)) in out.iter_mut().zip(w).enumerate() {
            *o = if keep(i) { rule(v) } else { 0.0 };
        }
    }

    /// Clips the float shadow copy after an update (BinaryConnect keeps it in [−1, 1]).
    pub fn clip_shadow(&self, w: &mut [f32]) {
        if self.method == Method::Binary {
            w.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values by hand from the papers' formulas.
    #[test]
    fn quantizers_follow_their_papers() {
        let w = [0.9f32, -0.1, 0.3, -0.6, 0.05, 0.0];
        let mut out = [0.0f32; 6];
        // mean|w| = 1.95 / 6 = 0.325.
        Quantizer { method: Method::Binary, bits: 1 }.apply(&w, |_| true, &mut out);
        assert!(out
            .iter()
            .zip(&w)
            .all(|(o, v)| (o.abs() - 0.325).abs() < 1e-6 && (o.signum() == v.signum() || *v == 0.0)));
        // TWN: Δ = 0.7 · 0.325 = 0.2275; above it 0.9, 0.3, 0.6 → α = 0.6.
        Quantizer { method: Method::Ternary, bits: 2 }.apply(&w, |_| true, &mut out);
        assert_eq!(out, [0.6, 0.0, 0.6, -0.6, 0.0, 0.0]);
        // 3-bit uniform: s = 0.9 / 3 = 0.3: 0.9 → 3s, −0.1 → 0, 0.3 → s, −0.6 → −2s, 0.05 → 0.
        Quantizer { method: Method::Uniform, bits: 3 }.apply(&w, |_| true, &mut out);
        let want = [0.9f32, 0.0, 0.3, -0.6, 0.0, 0.0];
        assert!(out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{out:?}");
        // Pruned entries stay zero and do not count.
        Quantizer { method: Method::Ternary, bits: 2 }.apply(&w, |i| i != 0, &mut out);
        assert_eq!(out[0], 0.0);
    }

    #[test]
    fn quantizing_twice_changes_nothing() {
        let w: Vec<f32> = (0..200).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.3).collect();
        for method in [Method::Binary, Method::Ternary, Method::Uniform] {
            let q = Quantizer { method, bits: 4 };
            let (mut a, mut b) = (vec![0.0; 200], vec![0.0; 200]);
            q.apply(&w, |_| true, &mut a);
            q.apply(&a, |_| true, &mut b);
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6), "{method:?}");
        }
    }

    #[test]
    fn rejects_bad_bits() {
        assert!(QatConfig { method: Method::Uniform, bits: 9, ..Default::default() }.validate().is_err());
        assert!(QatConfig { method: Method::Uniform, bits: 1, ..Default::default() }.validate().is_err());
        assert!(QatConfig::default().validate().is_ok());
    }
}
