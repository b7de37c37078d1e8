//! Rank selection: by explained energy, by a compression budget (per layer or for the whole net),
//! and by variational Bayesian matrix factorization (VBMF).

use serde::{Deserialize, Serialize};

use crate::CompressError;

/// How ranks are chosen. Exactly one of `rank`, `energy` and `ratio` (or `vbmf` for Tucker-2)
/// is given; per-layer ranks in the pass's `layers` table override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// `ratio` is met by every layer on its own.
    #[default]
    PerLayer,
    /// `ratio` is met by the factorized layers together: ranks are cut where they lose the least
    /// explained energy per parameter saved (SVD only).
    Net,
}

/// The smallest rank whose leading singular values hold at least `energy` of the total squared
/// sum (at least 1).
pub fn energy_rank(s: &[f64], energy: f64) -> usize {
    let total: f64 = s.iter().map(|v| v * v).sum();
    if total <= 0.0 {
        return 1;
    }
    let mut acc = 0.0;
    for (i, v) in s.iter().enumerate() {
        acc += v * v;
        if acc >= energy * total * (1.0 - 1e-12) {
            return i + 1;
        }
    }
    s.len().max(1)
}

/// The largest rank in `1..=max` whose cost is at most `budget`, if any (`cost` must grow with
/// the rank).
pub fn largest_within(max: usize, budget: f64, cost: impl Fn(usize) -> f64) -> Option<usize> {
    (1..=max).take_while(|&r| cost(r) <= budget).last()
}

/// Ranks for several SVD layers together so that `sum(rank_l * per_rank_l)` is at most
/// `budget`: starting from full rank, the singular component with the least normalised energy
/// (`s_i² / ‖W‖²`) per unit of cost is dropped first. Every layer keeps rank 1 at least.
/// `layers` holds each layer's singular values (non-increasing) and cost per unit of rank.
pub fn net_ranks(layers: &[(&[f64], f64)], budget: f64) -> Vec<usize> {
    let mut comps: Vec<(f64, usize)> = Vec::new();
    for (l, (s, per_rank)) in layers.iter().enumerate() {
        let total: f64 = s.iter().map(|v| v * v).sum::<f64>().max(f64::MIN_POSITIVE);
        for v in s.iter().skip(1) {
            comps.push((v * v / total / per_rank, l));
        }
    }
    // Ascending score; within a layer the tail scores lowest, so dropping in this order always
    // removes a layer's smallest remaining component.
    comps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut ranks: Vec<usize> = layers.iter().map(|(s, _)| s.len()).collect();
    let mut cost: f64 = layers.iter().zip(&ranks).map(|((_, c), &r)| c * r as f64).sum();
    for (_, l) in comps {
        if cost <= budget {
            break;
        }
        ranks[l] -= 1;
        cost -= layers[l].1;
    }
    ranks
}

/// Empirical VBMF (Nakajima, Sugiyama, Babacan and Tomioka, JMLR 2013, Theorem 2 with the noise
/// variance estimated by minimising the free energy) of an `l x m` matrix with singular values
/// `s`: the estimated rank. `l` and `m` may come in either order.
///
/// This is the estimator Kim et al. (ICLR 2016) apply to the mode unfoldings of a kernel to pick
/// Tucker-2 ranks.
pub fn evbmf_rank(s: &[f64], l: usize, m: usize, frobenius2: f64) -> usize {
    let (l, m) = if l <= m { (l, m) } else { (m, l) };
    let h = s.len().min(l);
    if h == 0 {
        return 0;
    }
    let s = &s[..h];
    let (lf, mf) = (l as f64, m as f64);
    let alpha = lf / mf;
    let tauubar = 2.5129 * alpha.sqrt();
    let xubar = (1.0 + tauubar) * (1.0 + alpha / tauubar);
    let s2: f64 = s.iter().map(|v| v * v).sum();
    let residual = if h < l { (frobenius2 - s2).max(0.0) } else { 0.0 };
    let eh_ub = (((lf / (1.0 + alpha)).ceil() as usize).saturating_sub(1).min(h)).saturating_sub(1);
    let upper = (s2 + residual) / (lf * mf);
    let tail = &s[(eh_ub + 1).min(h - 1)..];
    let lower = (s[(eh_ub + 1).min(h - 1)].powi(2) / (mf * xubar))
        .max(tail.iter().map(|v| v * v).sum::<f64>() / tail.len() as f64 / mf);
    let objective = |sigma2: f64| -> f64 {
        let mut obj = 0.0;
        for &v in s {
            let x = v * v / (mf * sigma2);
            if x > xubar {
                let tau = 0.5 * (x - (1.0 + alpha) + ((x - (1.0 + alpha)).powi(2) - 4.0 * alpha).sqrt());
                obj += x - tau + ((tau + 1.0) / x).ln() + alpha * (tau / alpha + 1.0).ln();
            } else {
                obj += x - x.ln();
            }
        }
        obj + residual / (mf * sigma2) + (lf - h as f64) * sigma2.ln()
    };
    let sigma2 = golden_min(lower.min(upper), upper.max(lower), objective);
    let threshold = (mf * sigma2 * (1.0 + tauubar) * (1.0 + alpha / tauubar)).sqrt();
    s.iter().filter(|&&v| v > threshold).count()
}

/// Minimum of a unimodal function on `[a, b]` by golden-section search.
fn golden_min(mut a: f64, mut b: f64, f: impl Fn(f64) -> f64) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..200 {
        if (b - a).abs() <= 1e-12 * (a.abs() + b.abs()) {
            break;
        }
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    (a + b) / 2.0
}

/// Checks the rank-rule fields shared by the factorization passes.
pub fn validate_rule(
    pass: &'static str,
    rank: Option<usize>,
    energy: Option<f64>,
    ratio: Option<f64>,
    extra: usize,
) -> Result<(), CompressError> {
    let bad = |detail: String| Err(CompressError::Config { pass, detail });
    let given = rank.is_some() as usize + energy.is_some() as usize + ratio.is_some() as usize + extra;
    if given != 1 {
        return bad("give exactly one rank rule: rank, energy or ratio".into());
    }
    if rank == Some(0) {
        return bad("rank 0: a rank must be at least 1".into());
    }
    if let Some(e) = energy {
        if !(e > 0.0 && e <= 1.0) {
            return bad(format!("energy {e} must be in (0, 1]"));
        }
    }
    if let Some(r) = ratio {
        if !(r.is_finite() && r > 1.0) {
            return bad(format!("ratio {r} must be above 1 (the factor by which the layer shrinks)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_rank_counts_squares() {
        // Squares 9, 4, 1 of 14: 9/14 = 0.64, 13/14 = 0.93.
        let s = [3.0, 2.0, 1.0];
        assert_eq!(energy_rank(&s, 0.6), 1);
        assert_eq!(energy_rank(&s, 0.9), 2);
        assert_eq!(energy_rank(&s, 1.0), 3);
    }

    #[test]
    fn largest_rank_within_a_budget() {
        assert_eq!(largest_within(10, 35.0, |r| 10.0 * r as f64), Some(3));
        assert_eq!(largest_within(10, 5.0, |r| 10.0 * r as f64), None);
    }

    #[test]
    fn net_ranks_cut_the_cheapest_energy_first() {
        // Layer 0: flat spectrum (every component matters); layer 1: one dominant component.
        let a = [1.0, 1.0, 1.0, 1.0];
        let b = [10.0, 0.1, 0.1, 0.1];
        let r = net_ranks(&[(&a, 1.0), (&b, 1.0)], 5.0);
        assert_eq!(r, vec![4, 1]);
    }

    #[test]
    fn vbmf_finds_the_planted_rank() {
        // Rank-3 signal well above unit noise in a 40 x 60 matrix: the noise singular values are
        // at most sqrt(40) + sqrt(60) = 14.1, the signal ones are 60, 50 and 40.
        let mut s = vec![60.0, 50.0, 40.0];
        s.extend((0..37).map(|i| 14.0 - 0.3 * i as f64));
        let f2 = s.iter().map(|v| v * v).sum();
        assert_eq!(evbmf_rank(&s, 40, 60, f2), 3);
    }

    #[test]
    fn rank_rules_are_checked() {
        assert!(validate_rule("svd", Some(0), None, None, 0).unwrap_err().to_string().contains("rank 0"));
        assert!(validate_rule("svd", Some(2), Some(0.9), None, 0).is_err());
        assert!(validate_rule("svd", None, Some(1.5), None, 0).is_err());
        assert!(validate_rule("svd", None, None, Some(0.5), 0).is_err());
        assert!(validate_rule("svd", None, None, Some(4.0), 0).is_ok());
    }
}
