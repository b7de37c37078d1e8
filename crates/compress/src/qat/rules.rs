//! The quantizers' forward rules and the gradients of their learned parameters, on plain slices
//! (one group: a layer or one output channel). Checked against a PyTorch autograd script in
//! `crates/compress/tests/fixtures/qat_reference.py`.

/// LSQ (Esser et al. 2020) forward: `q = clamp(round(w / s), −qn, qp) · s`.
pub fn lsq_forward(w: &[f32], s: f32, qn: f32, qp: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(w) {
        *o = if s > 0.0 { (v / s).round().clamp(-qn, qp) * s } else { 0.0 };
    }
}

/// LSQ backward for one group: given `g = ∂L/∂q`, returns `∂L/∂s` times the gradient scale
/// `1 / sqrt(N · qp)` and writes the straight-through weight gradient (`g` inside the clipping
/// range, 0 outside) into `gw`:
/// `∂q/∂s = round(w/s) − w/s` inside, `−qn` below, `qp` above.
pub fn lsq_backward(w: &[f32], s: f32, qn: f32, qp: f32, g: &[f32], gw: &mut [f32]) -> f32 {
    let mut ds = 0.0f64;
    for ((&v, &gi), o) in w.iter().zip(g).zip(gw.iter_mut()) {
        let x = if s > 0.0 { v / s } else { 0.0 };
        let (dq_ds, pass) = if x <= -qn {
            (-qn, 0.0)
        } else if x >= qp {
            (qp, 0.0)
        } else {
            (x.round() - x, 1.0)
        };
        ds += (gi * dq_ds) as f64;
        *o = gi * pass;
    }
    let scale = 1.0 / ((w.len() as f64) * qp as f64).sqrt();
    (ds * scale) as f32
}

/// LSQ step initialisation: `2 · mean|w| / sqrt(qp)`.
pub fn lsq_init(w: &[f32], qp: f32) -> f32 {
    let mean = w.iter().map(|v| v.abs() as f64).sum::<f64>() / w.len().max(1) as f64;
    (2.0 * mean / (qp as f64).sqrt()) as f32
}

/// TTQ (Zhu, Han, Mao and Dally 2017) threshold `t · max|w|`.
pub fn ttq_threshold(w: &[f32], t: f32) -> f32 {
    t * w.iter().fold(0.0f32, |a, v| a.max(v.abs()))
}

/// TTQ forward: `+wp` above `delta`, `−wn` below `−delta`, else 0.
pub fn ttq_forward(w: &[f32], delta: f32, wp: f32, wn: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(w) {
        *o = if v > delta {
            wp
        } else if v < -delta {
            -wn
        } else {
            0.0
        };
    }
}

/// TTQ backward: returns `(∂L/∂wp, ∂L/∂wn)` = `(Σ_{w>Δ} g, −Σ_{w<−Δ} g)` (the paper's eq. 7
/// writes the second without its minus sign; this is the derivative of `q = −wn` that autograd
/// gives) and writes the latent-weight gradient of the paper's eq. 8 into `gw`: `wp · g` above
/// the threshold, `g` inside, `wn · g` below.
pub fn ttq_backward(w: &[f32], delta: f32, wp: f32, wn: f32, g: &[f32], gw: &mut [f32]) -> (f32, f32) {
    let (mut dp, mut dn) = (0.0f64, 0.0f64);
    for ((&v, &gi), o) in w.iter().zip(g).zip(gw.iter_mut()) {
        *o = if v > delta {
            dp += gi as f64;
            wp * gi
        } else if v < -delta {
            dn -= gi as f64;
            wn * gi
        } else {
            gi
        };
    }
    (dp as f32, dn as f32)
}

/// TTQ scale initialisation: the mean magnitude of the weights beyond the threshold on each side
/// (TWN's `α` taken per side), or `delta` where a side is empty.
pub fn ttq_init(w: &[f32], delta: f32) -> (f32, f32) {
    let side = |pick: &dyn Fn(f32) -> bool| {
        let v: Vec<f64> = w.iter().filter(|&&x| pick(x)).map(|x| x.abs() as f64).collect();
        if v.is_empty() {
            delta
        } else {
            (v.iter().sum::<f64>() / v.len() as f64) as f32
        }
    };
    (side(&|x| x > delta), side(&|x| x < -delta))
}

/// Fraction bits of a `word`-bit fixed-point number ⟨IL, FL⟩ (IL counts the sign bit) whose
/// range `[−2^(IL−1), 2^(IL−1) − 2^−FL]` holds `max_abs`: `IL = floor(log2 max) + 2`.
pub fn fixed_frac_bits(max_abs: f32, word: u8) -> i32 {
    let il = if max_abs > 0.0 { max_abs.log2().floor() as i32 + 2 } else { 1 };
    word as i32 - il
}

/// Rounds `v` to the fixed-point grid of `frac` fraction bits and `word` bits, saturating:
/// to nearest, or stochastically (Gupta et al. 2015: up with probability equal to the distance
/// from the lower grid point, in steps) with the uniform draw `u` in [0, 1).
pub fn fixed_round(v: f32, frac: i32, word: u8, u: Option<f32>) -> f32 {
    let step = (2.0f64).powi(-frac);
    let x = v as f64 / step;
    let k = match u {
        Some(u) => (x + u as f64).floor(),
        None => x.round(),
    };
    let half = (1i64 << (word - 1)) as f64;
    (k.clamp(-half, half - 1.0) * step) as f32
}

/// A small, fast generator of uniform draws in [0, 1) (SplitMix64).
#[derive(Debug, Clone, PartialEq)]
pub struct Uniform(pub u64);

impl Uniform {
    /// The next draw.
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite differences of the loss `L = Σ c_i q_i` in `s` away from rounding jumps: LSQ's step
    /// gradient is that of the STE-relaxed function `s · clamp(w/s)` with `round` held fixed.
    #[test]
    fn lsq_step_gradient_matches_the_relaxed_derivative() {
        let w = [0.31f32, -0.07, 0.52, -0.9, 0.013];
        let c = [0.5f32, -1.0, 0.25, 2.0, 1.5];
        let (s, qn, qp) = (0.1f32, 7.0, 7.0);
        let mut gw = [0.0; 5];
        let ds = lsq_backward(&w, s, qn, qp, &c, &mut gw) * (5.0f32 * 7.0).sqrt();
        // d/ds [s · r_i] = r_i with r_i = round(w/s) held, minus the chain through w/s: −w/s.
        let want: f32 = w
            .iter()
            .zip(&c)
            .map(|(&v, &ci)| {
                let x = v / s;
                ci * if x >= qp {
                    qp
                } else if x <= -qn {
                    -qn
                } else {
                    x.round() - x
                }
            })
            .sum();
        assert!((ds - want).abs() < 1e-5, "{ds} {want}");
        // −0.9 / 0.1 = −9 is clipped: no weight gradient there.
        assert_eq!(gw, [0.5, -1.0, 0.25, 0.0, 1.5]);
    }

    #[test]
    fn fixed_point_rounding() {
        // 8 bits, 6 fraction bits: step 1/64, range [−2, 2 − 1/64].
        assert_eq!(fixed_round(0.1, 6, 8, None), 6.0 / 64.0);
        assert_eq!(fixed_round(5.0, 6, 8, None), 127.0 / 64.0);
        assert_eq!(fixed_round(-5.0, 6, 8, None), -2.0);
        // Stochastic: 0.1 = 6.4 steps, rounds to 6 for u < 0.6 and to 7 above.
        assert_eq!(fixed_round(0.1, 6, 8, Some(0.59)), 6.0 / 64.0);
        assert_eq!(fixed_round(0.1, 6, 8, Some(0.61)), 7.0 / 64.0);
        // Unbiased on average.
        let mut u = Uniform(3);
        let n = 20_000;
        let mean = (0..n).map(|_| fixed_round(0.1, 6, 8, Some(u.next_f32())) as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.1).abs() < 1e-3, "{mean}");
        // max 0.6 → IL = floor(log2 0.6) + 2 = 1; max 1.0 → IL 2; max 0.3 → IL 0.
        assert_eq!(fixed_frac_bits(0.6, 8), 7);
        assert_eq!(fixed_frac_bits(1.0, 16), 14);
        assert_eq!(fixed_frac_bits(0.3, 8), 8);
    }
}
