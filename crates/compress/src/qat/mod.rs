//! Quantization-aware training of weights: binary, ternary, trained ternary, k-bit uniform (with
//! a learned step size) and fixed-point weights.
//!
//! **What**: the forward and backward passes see quantized weights; the optimizer updates a float
//! *shadow* copy with the gradient taken at the quantized point (the straight-through estimator,
//! Bengio et al. 2013), and the weights are re-quantized after every step. Methods:
//! - `binary`: `sign(w) · mean|w|` per layer (or per output channel) — BinaryConnect's sign
//!   weights (Courbariaux, Bengio and David 2015) with the scale of Rastegari et al. 2016's
//!   binary-weight networks; the shadow is clipped to [−1, 1] as in BinaryConnect;
//! - `ternary`: ternary weight networks (Li, Zhang and Liu 2016): threshold `Δ = 0.7 · mean|w|`,
//!   weights `±α` above it (`α` = mean |w| over them) and 0 below;
//! - `uniform`: symmetric `bits`-bit grid `−qp..=qp` (`qp = 2^(bits−1) − 1`), one scale per layer
//!   or per output channel, `s = max|w| / qp`; with `lsq = true` the step `s` is learned (LSQ,
//!   Esser et al. 2020: gradient scale `1/sqrt(N · qp)`, initialised at `2 · mean|w| / sqrt(qp)`);
//! - `ttq`: trained ternary quantization (Zhu, Han, Mao and Dally 2017): threshold
//!   `t · max|w|`, two learned scales `+wp` / `−wn` per layer;
//! - `xnor`: XNOR-Net (Rastegari et al. 2016): `binary` weights with one `α_c = mean|w_c|` per
//!   output channel *and* binary inputs: a `Sign` node (clipped STE) on the input of every
//!   binarized layer; the first and last layer stay float (see [`xnor`]);
//! - `fixed`: fixed-point weights ⟨IL, FL⟩ of `bits` (8 or 16) bits with every update rounded
//!   stochastically (Gupta et al. 2015) or to nearest; no float shadow: the weights *are* the
//!   fixed-point numbers. FL is chosen per layer so that max|w| of the trained model fits.
//!
//! Learned scales (LSQ steps, TTQ's `wp`/`wn`) are updated by their own Adam at the pass's `lr`
//! times their initial value (Adam is invariant to a constant factor on a gradient, so LSQ's
//! gradient scale only matters for plain SGD; it is applied as the paper says).
//!
//! **When**: below 8 bits, where post-training quantization loses accuracy.
//! **Cost**: one extra copy of the weights during training. The file stores the codes packed in
//! the `quant` encoding (1 bit for binary, 2 for ternary and TTQ, 2/4/8 for uniform — 3 bits go
//! in 4-bit codes, 5 to 7 in 8 — and 8 for 8-bit fixed point; 16-bit fixed point stays f32),
//! run by the integer kernels.
//! **Paper**: see each method above.
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "qat"
//! method = "uniform"     # binary | ternary | uniform | ttq | fixed | xnor
//! bits = 4               # uniform: 2..=8; fixed: 8 or 16
//! granularity = "channel" # layer | channel (binary, uniform)
//! lsq = true             # uniform only
//! threshold = 0.05       # ttq only
//! rounding = "stochastic" # fixed only: stochastic | nearest
//! int_bits = 2           # fixed only: IL (with sign); default per layer from max|w|
//! float_ends = true      # xnor only: first and last layer stay float (false: binary weights)
//! epochs = 5
//! lr = 1e-3
//! ```

mod pack;
pub mod rules;
pub mod xnor;

use serde::{Deserialize, Serialize};

pub use pack::{pack_state, to_quant_matrix};
use rules::Uniform;

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
    /// Symmetric `bits`-bit uniform grid.
    Uniform,
    /// Trained ternary quantization: `+wp`, 0, `−wn`, both learned.
    Ttq,
    /// Fixed point with stochastic (or nearest) rounding of every update.
    Fixed,
    /// XNOR-Net: `sign(w) · mean|w_c|` per output channel and `sign(x)` inputs.
    Xnor,
}

/// One scale per layer or per output channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One scale for the whole tensor.
    #[default]
    Layer,
    /// One per output channel (row `r` of the `shape[0] x rest` view).
    Channel,
}

/// How fixed-point weights are rounded after every update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    /// Up with probability equal to the remainder (unbiased).
    #[default]
    Stochastic,
    /// To the nearest grid point.
    Nearest,
}

/// Configuration of the qat pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QatConfig {
    /// The quantizer.
    pub method: Method,
    /// Bits: uniform 2..=8, fixed 8 or 16.
    pub bits: u8,
    /// One scale per layer or per output channel (binary and uniform).
    pub granularity: Granularity,
    /// Learn the step size (LSQ); uniform only.
    pub lsq: bool,
    /// TTQ threshold as a fraction of max|w|.
    pub threshold: f32,
    /// Rounding of fixed-point updates.
    pub rounding: Rounding,
    /// Integer bits IL of fixed point (with the sign bit; FL = bits − IL); default: per layer,
    /// the fewest that hold max|w| at the start.
    pub int_bits: Option<i32>,
    /// Also quantize convolution weights.
    pub conv: bool,
    /// XNOR-Net only: the first and last quantizable layer keep float weights and inputs.
    pub float_ends: bool,
    /// Training epochs (Adam, cosine-decayed).
    pub epochs: usize,
    /// Learning rate.
    pub lr: f32,
}

impl Default for QatConfig {
    fn default() -> Self {
        QatConfig {
            method: Method::Ternary,
            bits: 4,
            granularity: Granularity::Layer,
            lsq: false,
            threshold: 0.05,
            rounding: Rounding::Stochastic,
            int_bits: None,
            conv: true,
            float_ends: true,
            epochs: 5,
            lr: 1e-3,
        }
    }
}

impl QatConfig {
    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), CompressError> {
        let bad = |detail: String| Err(CompressError::Config { pass: "qat", detail });
        if self.method == Method::Uniform && !(2..=8).contains(&self.bits) {
            return bad(format!("bits {} must be in 2..=8 for uniform", self.bits));
        }
        if self.method == Method::Fixed && ![8, 16].contains(&self.bits) {
            return bad(format!("bits {} must be 8 or 16 for fixed point", self.bits));
        }
        if self.lsq && self.method != Method::Uniform {
            return bad(format!("lsq = true needs method = \"uniform\", not {:?}", self.method));
        }
        if self.granularity == Granularity::Channel
            && !matches!(self.method, Method::Uniform | Method::Binary | Method::Xnor)
        {
            return bad(format!(
                "granularity = \"channel\" is for binary, uniform and xnor, not {:?}",
                self.method
            ));
        }
        if !self.float_ends && self.method != Method::Xnor {
            return bad(format!("float_ends = false needs method = \"xnor\", not {:?}", self.method));
        }
        if self.int_bits.is_some() && self.method != Method::Fixed {
            return bad(format!("int_bits is for method = \"fixed\", not {:?}", self.method));
        }
        if self.int_bits.is_some_and(|il| !(-8..=self.bits as i32).contains(&il)) {
            return bad(format!("int_bits {:?} must be in -8..={}", self.int_bits, self.bits));
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return bad(format!("threshold {} must be in (0, 1)", self.threshold));
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
            Method::Binary | Method::Xnor => 1,
            Method::Ternary | Method::Ttq => 2,
            Method::Uniform | Method::Fixed => self.bits,
        }
    }

    /// A quantizer of this configuration for a weight with `rows` output channels; fails if a
    /// channel has fewer than two weights for per-channel scales.
    pub fn quantizer(&self, name: &str, shape: &[usize], seed: u64) -> Result<Quantizer, CompressError> {
        let rows = shape.first().copied().unwrap_or(1);
        let cols: usize = shape.iter().skip(1).product();
        // XNOR-Net's α is per output channel (filter) whatever `granularity` says.
        let channel = self.granularity == Granularity::Channel || self.method == Method::Xnor;
        if channel && cols < 2 {
            return Err(CompressError::Config {
                pass: "qat",
                detail: format!(
                    "'{name}' {shape:?} has {cols} weight per channel: too small for per-channel scales"
                ),
            });
        }
        let groups = if channel { rows } else { 1 };
        let mut h = seed ^ 0x5EED;
        name.bytes().for_each(|b| h = h.wrapping_mul(0x100_0000_01B3) ^ b as u64);
        Ok(Quantizer::new(self, groups, h))
    }
}

/// A weight quantizer with its learned and running state (what the constraint hook applies
/// after every step).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    /// The method.
    pub method: Method,
    /// Bits of the uniform or fixed-point grid.
    pub bits: u8,
    /// Scale groups: 1 (per layer) or the number of output channels.
    pub groups: usize,
    lsq: bool,
    threshold: f32,
    rounding: Rounding,
    int_bits: Option<i32>,
    lr: f32,
    /// The scales of the last [`Quantizer::apply`], per group: binary/ternary `α`, uniform step,
    /// TTQ `[wp, wn]`, fixed point `2^−FL`.
    pub scales: Vec<f32>,
    /// TTQ's threshold of the last apply.
    delta: f32,
    /// Learned parameters (LSQ steps, TTQ `[wp, wn]`), empty until the first apply.
    learned: Vec<f32>,
    /// Adam moments of the learned parameters, their learning rates and the step count.
    adam: Vec<(f32, f32, f32)>,
    steps: i32,
    /// Fraction bits of fixed point, fixed at the first apply.
    frac: Option<i32>,
    rng: Uniform,
}

impl Quantizer {
    /// A quantizer of `cfg` with `groups` scale groups; `seed` drives stochastic rounding.
    pub fn new(cfg: &QatConfig, groups: usize, seed: u64) -> Quantizer {
        Quantizer {
            method: cfg.method,
            bits: cfg.bits,
            groups: groups.max(1),
            lsq: cfg.lsq,
            threshold: cfg.threshold,
            rounding: cfg.rounding,
            int_bits: cfg.int_bits,
            lr: cfg.lr,
            scales: Vec::new(),
            delta: 0.0,
            learned: Vec::new(),
            adam: Vec::new(),
            steps: 0,
            frac: None,
            rng: Uniform(seed),
        }
    }

    /// A per-layer quantizer with default settings (tests).
    pub fn simple(method: Method, bits: u8) -> Quantizer {
        Quantizer::new(&QatConfig { method, bits, ..QatConfig::default() }, 1, 0)
    }

    /// False for fixed point, whose weights are the stored numbers themselves (no float shadow).
    pub fn holds_shadow(&self) -> bool {
        self.method != Method::Fixed
    }

    /// Largest code magnitude of the uniform grid.
    pub fn qmax(&self) -> f32 {
        ((1i32 << (self.bits - 1)) - 1) as f32
    }

    /// Writes the quantized `w` (entries where `keep` is false are ignored by the statistics and
    /// set to 0). Records the scales in [`Quantizer::scales`].
    pub fn apply(&mut self, w: &[f32], keep: impl Fn(usize) -> bool, out: &mut [f32]) {
        let glen = w.len() / self.groups;
        let kept: Vec<bool> = (0..w.len()).map(&keep).collect();
        let masked: Vec<f32> = w.iter().zip(&kept).map(|(&v, &k)| if k { v } else { 0.0 }).collect();
        self.scales.clear();
        if self.method == Method::Ttq {
            self.ttq_apply(&masked, out);
        } else if self.method == Method::Fixed {
            let (word, il) = (self.bits, self.int_bits);
            let frac = *self.frac.get_or_insert_with(|| match il {
                Some(il) => word as i32 - il,
                None => rules::fixed_frac_bits(masked.iter().fold(0.0f32, |a, v| a.max(v.abs())), word),
            });
            for (o, &v) in out.iter_mut().zip(&masked) {
                let u = (self.rounding == Rounding::Stochastic).then(|| self.rng.next_f32());
                *o = rules::fixed_round(v, frac, self.bits, u);
            }
            self.scales.push((2.0f32).powi(-frac));
        } else {
            if self.lsq && self.learned.is_empty() {
                let qp = self.qmax();
                self.learned = masked.chunks(glen).map(|g| rules::lsq_init(g, qp)).collect();
                self.adam = self.learned.iter().map(|&s| (0.0, 0.0, self.lr * s)).collect();
            }
            let groups = masked.chunks(glen).zip(kept.chunks(glen)).zip(out.chunks_mut(glen));
            for (gi, ((g, k), o)) in groups.enumerate() {
                let s = self.group_apply(gi, g, k, o);
                self.scales.push(s);
            }
        }
        for (i, o) in out.iter_mut().enumerate() {
            if !keep(i) {
                *o = 0.0;
            }
        }
    }

    /// Quantizes one group; returns its scale.
    fn group_apply(&self, gi: usize, w: &[f32], kept: &[bool], out: &mut [f32]) -> f32 {
        let n = kept.iter().filter(|&&k| k).count().max(1) as f64;
        let mean = (w.iter().map(|v| v.abs() as f64).sum::<f64>() / n) as f32;
        match self.method {
            Method::Binary | Method::Xnor => {
                out.iter_mut().zip(w).for_each(|(o, &v)| *o = if v >= 0.0 { mean } else { -mean });
                mean
            }
            Method::Ternary => {
                let delta = 0.7 * mean as f64;
                let above: Vec<f64> = w
                    .iter()
                    .zip(kept)
                    .filter(|(_, &k)| k)
                    .map(|(v, _)| v.abs() as f64)
                    .filter(|&a| a > delta)
                    .collect();
                let alpha = if above.is_empty() {
                    0.0
                } else {
                    (above.iter().sum::<f64>() / above.len() as f64) as f32
                };
                for (o, &v) in out.iter_mut().zip(w) {
                    *o = if (v.abs() as f64) > delta { alpha * v.signum() } else { 0.0 };
                }
                alpha
            }
            _ => {
                let qp = self.qmax();
                let s = if self.lsq {
                    self.learned[gi]
                } else {
                    w.iter().fold(0.0f32, |a, v| a.max(v.abs())) / qp
                };
                rules::lsq_forward(w, s, qp, qp, out);
                s
            }
        }
    }

    fn ttq_apply(&mut self, w: &[f32], out: &mut [f32]) {
        self.delta = rules::ttq_threshold(w, self.threshold);
        if self.learned.is_empty() {
            let (wp, wn) = rules::ttq_init(w, self.delta);
            self.learned = vec![wp, wn];
            self.adam = self.learned.iter().map(|&s| (0.0, 0.0, self.lr * s)).collect();
        }
        rules::ttq_forward(w, self.delta, self.learned[0], self.learned[1], out);
        self.scales.extend_from_slice(&self.learned);
    }

    /// Before the optimizer step: given the float `shadow` and the gradient `g` taken at the
    /// quantized weights, updates the learned scales (LSQ, TTQ) and rewrites `g` into the
    /// gradient of the float weights. Other methods pass `g` through unchanged.
    pub fn backward(&mut self, shadow: &[f32], g: &mut [f32]) {
        let grads: Vec<f32> = match self.method {
            Method::Uniform if self.lsq && !self.learned.is_empty() => {
                let glen = shadow.len() / self.groups;
                let qp = self.qmax();
                let upstream = g.to_vec();
                let learned = &self.learned;
                shadow
                    .chunks(glen)
                    .zip(upstream.chunks(glen))
                    .zip(g.chunks_mut(glen))
                    .enumerate()
                    .map(|(gi, ((w, up), gw))| rules::lsq_backward(w, learned[gi], qp, qp, up, gw))
                    .collect()
            }
            Method::Ttq if !self.learned.is_empty() => {
                let upstream = g.to_vec();
                let (dp, dn) =
                    rules::ttq_backward(shadow, self.delta, self.learned[0], self.learned[1], &upstream, g);
                vec![dp, dn]
            }
            _ => return,
        };
        self.adam_step(&grads);
    }

    /// One Adam step (β = 0.9, 0.999) on the learned scales, kept positive.
    fn adam_step(&mut self, grads: &[f32]) {
        self.steps += 1;
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(self.steps), 1.0 - b2.powi(self.steps));
        for ((p, (m, v, lr)), &g) in self.learned.iter_mut().zip(self.adam.iter_mut()).zip(grads) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let step = *lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
            *p = (*p - step).max(1e-8);
        }
    }

    /// Clips the float shadow copy after an update (BinaryConnect keeps it in [−1, 1]).
    pub fn clip_shadow(&self, w: &mut [f32]) {
        if matches!(self.method, Method::Binary | Method::Xnor) {
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
        Quantizer::simple(Method::Binary, 1).apply(&w, |_| true, &mut out);
        assert!(out
            .iter()
            .zip(&w)
            .all(|(o, v)| (o.abs() - 0.325).abs() < 1e-6 && (o.signum() == v.signum() || *v == 0.0)));
        // TWN: Δ = 0.7 · 0.325 = 0.2275; above it 0.9, 0.3, 0.6 → α = 0.6.
        Quantizer::simple(Method::Ternary, 2).apply(&w, |_| true, &mut out);
        assert_eq!(out, [0.6, 0.0, 0.6, -0.6, 0.0, 0.0]);
        // 3-bit uniform: s = 0.9 / 3 = 0.3: 0.9 → 3s, −0.1 → 0, 0.3 → s, −0.6 → −2s, 0.05 → 0.
        Quantizer::simple(Method::Uniform, 3).apply(&w, |_| true, &mut out);
        let want = [0.9f32, 0.0, 0.3, -0.6, 0.0, 0.0];
        assert!(out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{out:?}");
        // Pruned entries stay zero and do not count.
        Quantizer::simple(Method::Ternary, 2).apply(&w, |i| i != 0, &mut out);
        assert_eq!(out[0], 0.0);
    }

    #[test]
    fn quantizing_twice_changes_nothing() {
        let w: Vec<f32> = (0..200).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.3).collect();
        for method in [Method::Binary, Method::Ternary, Method::Uniform] {
            let mut q = Quantizer::simple(method, 4);
            let (mut a, mut b) = (vec![0.0; 200], vec![0.0; 200]);
            q.apply(&w, |_| true, &mut a);
            q.apply(&a, |_| true, &mut b);
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6), "{method:?}");
        }
    }

    #[test]
    fn rejects_bad_combinations_and_small_channels() {
        let cfg = |method, lsq, granularity| QatConfig { method, lsq, granularity, ..QatConfig::default() };
        let e = |c: QatConfig| c.validate().unwrap_err().to_string();
        assert!(e(cfg(Method::Ternary, true, Granularity::Layer)).contains("lsq"));
        assert!(e(cfg(Method::Ttq, false, Granularity::Channel)).contains("channel"));
        assert!(e(QatConfig { method: Method::Fixed, bits: 4, ..QatConfig::default() }).contains("8 or 16"));
        assert!(
            e(QatConfig { method: Method::Ttq, threshold: 1.5, ..QatConfig::default() }).contains("(0, 1)")
        );
        let c = cfg(Method::Uniform, true, Granularity::Channel);
        let err = c.quantizer("fc.weight", &[3, 1], 0).unwrap_err().to_string();
        assert!(err.contains("'fc.weight'") && err.contains("too small"), "{err}");
        assert!(c.quantizer("fc.weight", &[3, 2], 0).is_ok());
    }

    #[test]
    fn rejects_bad_bits() {
        assert!(QatConfig { method: Method::Uniform, bits: 9, ..Default::default() }.validate().is_err());
        assert!(QatConfig { method: Method::Uniform, bits: 1, ..Default::default() }.validate().is_err());
        assert!(QatConfig::default().validate().is_ok());
    }
}
