//! One-dimensional k-means for weight sharing.
//!
//! In one dimension the assignment step is exact and cheap: with sorted values and sorted
//! centroids, each cluster is a contiguous run of values split at the midpoints between
//! neighbouring centroids. Lloyd's iterations on sorted data therefore cost O(n log k) each.

/// How centroids start (Han et al. 2016, Section 3.2 compares the three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Evenly spaced between the smallest and largest weight: keeps the rare large weights
    /// represented, which the paper found gives the best accuracy.
    #[default]
    Linear,
    /// Evenly spaced in the cumulative distribution (quantiles): more centroids where weights are
    /// dense.
    Density,
    /// Drawn from the weights at random (seeded).
    Random,
}

/// Result of clustering: sorted centroids and the cluster of every input value.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// Centroids in increasing order.
    pub centroids: Vec<f32>,
    /// Cluster index of every input value, in input order.
    pub assign: Vec<u16>,
}

/// Clusters `values` into at most `k` (1..=65536) groups by Lloyd's algorithm from `init`,
/// until no assignment changes or `max_iter` rounds. Empty clusters are dropped.
pub fn kmeans_1d(values: &[f32], k: usize, init: Init, seed: u64, max_iter: usize) -> Clusters {
    kmeans_1d_weighted(values, None, k, init, seed, max_iter)
}

/// [`kmeans_1d`] minimising `Σ h_i (v_i − c(i))²` for non-negative importances `h` (Choi, El-Khamy
/// and Lee 2017's Hessian-weighted k-means, with `h` a diagonal Hessian estimate). The nearest
/// centroid does not depend on `h_i`, so only the update changes: each centroid is its members'
/// `h`-weighted mean (their plain mean if all their `h` are zero).
pub fn kmeans_1d_weighted(
    values: &[f32],
    importance: Option<&[f32]>,
    k: usize,
    init: Init,
    seed: u64,
    max_iter: usize,
) -> Clusters {
    assert!((1..=65536).contains(&k), "k must be in 1..=65536");
    if values.is_empty() {
        return Clusters { centroids: Vec::new(), assign: Vec::new() };
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let sorted: Vec<f32> = order.iter().map(|&i| values[i]).collect();
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    let n = sorted.len();
    let mut c: Vec<f32> = match init {
        Init::Linear if k > 1 => (0..k).map(|i| lo + (hi - lo) * i as f32 / (k - 1) as f32).collect(),
        Init::Linear => vec![(lo + hi) / 2.0],
        Init::Density => (0..k).map(|i| sorted[((2 * i + 1) * n / (2 * k)).min(n - 1)]).collect(),
        Init::Random => {
            let mut rng = deepshrink_engine::rng::Rng::new(seed);
            (0..k).map(|_| sorted[rng.below(n)]).collect()
        }
    };
    c.sort_by(f32::total_cmp);
    c.dedup();
    // Prefix sums for O(1) cluster means: of v, of h·v and of h.
    let (mut prefix, mut prefix_hv, mut prefix_h) = (vec![0.0f64], vec![0.0f64], vec![0.0f64]);
    for (&v, &i) in sorted.iter().zip(&order) {
        let h = importance.map_or(1.0, |h| h[i].max(0.0) as f64);
        prefix.push(prefix.last().unwrap() + v as f64);
        prefix_hv.push(prefix_hv.last().unwrap() + h * v as f64);
        prefix_h.push(prefix_h.last().unwrap() + h);
    }
    let bounds = |c: &[f32]| -> Vec<usize> {
        // bounds[j]..bounds[j+1] is cluster j's run in `sorted`.
        let mut b = vec![0];
        for w in c.windows(2) {
            let mid = (w[0] + w[1]) / 2.0;
            b.push(sorted.partition_point(|&v| v < mid));
        }
        b.push(n);
        b
    };
    let mut b = bounds(&c);
    for _ in 0..max_iter {
        let mut next = Vec::with_capacity(c.len());
        for j in 0..c.len() {
            let (s, e) = (b[j], b[j + 1]);
            if e > s {
                let h = prefix_h[e] - prefix_h[s];
                let mean = if h > 0.0 {
                    (prefix_hv[e] - prefix_hv[s]) / h
                } else {
                    (prefix[e] - prefix[s]) / (e - s) as f64
                };
                next.push(mean as f32);
            }
        }
        next.dedup();
        let nb = bounds(&next);
        let done = nb == b && next == c;
        c = next;
        b = nb;
        if done {
            break;
        }
    }
    let assign = values
        .iter()
        .map(|&v| {
            let j = c.partition_point(|&x| x < v);
            let j = if j == 0 {
                0
            } else if j == c.len() || (v - c[j - 1]) <= (c[j] - v) {
                j - 1
            } else {
                j
            };
            j as u16
        })
        .collect();
    Clusters { centroids: c, assign }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(values: &[f32], cl: &Clusters) -> f64 {
        values.iter().zip(&cl.assign).map(|(&v, &a)| ((v - cl.centroids[a as usize]) as f64).powi(2)).sum()
    }

    #[test]
    fn separates_obvious_clusters() {
        let v = [-1.0, -1.1, -0.9, 2.0, 2.1, 1.9, 5.0];
        let cl = kmeans_1d(&v, 3, Init::Linear, 0, 50);
        assert_eq!(cl.centroids.len(), 3);
        assert!((cl.centroids[0] + 1.0).abs() < 1e-6 && (cl.centroids[1] - 2.0).abs() < 1e-6);
        assert_eq!(cl.assign, vec![0, 0, 0, 1, 1, 1, 2]);
    }

    /// Lloyd's result is a fixed point: every value sits at its nearest centroid and every
    /// centroid is the mean of its members; and it is never worse than its own initialisation.
    #[test]
    fn converged_result_is_a_lloyd_fixed_point() {
        let mut rng = deepshrink_engine::rng::Rng::new(5);
        let v: Vec<f32> = (0..5000).map(|_| rng.range(-1.0, 1.0) * rng.range(0.0, 1.0)).collect();
        for init in [Init::Linear, Init::Density, Init::Random] {
            let cl = kmeans_1d(&v, 16, init, 1, 1000);
            for (&x, &a) in v.iter().zip(&cl.assign) {
                let d = (x - cl.centroids[a as usize]).abs();
                assert!(cl.centroids.iter().all(|&c| (x - c).abs() >= d - 1e-7));
            }
            for (j, &c) in cl.centroids.iter().enumerate() {
                let members: Vec<f64> = v
                    .iter()
                    .zip(&cl.assign)
                    .filter(|(_, &a)| a as usize == j)
                    .map(|(&x, _)| x as f64)
                    .collect();
                let mean = members.iter().sum::<f64>() / members.len() as f64;
                assert!((mean - c as f64).abs() < 1e-5, "centroid {j}: {c} vs mean {mean}");
            }
            let start = kmeans_1d(&v, 16, init, 1, 0);
            assert!(sse(&v, &cl) <= sse(&v, &start) + 1e-9);
        }
    }

    /// Hessian weighting pulls a centroid toward its important members (expected values by hand:
    /// the h-weighted means), leaves the nearest-centroid assignment rule alone, and with equal
    /// importances reduces to plain k-means.
    #[test]
    fn weighted_centroids_are_importance_weighted_means() {
        let v = [0.0f32, 1.0, 10.0, 11.0];
        let h = [1.0f32, 3.0, 0.0, 0.0];
        let cl = kmeans_1d_weighted(&v, Some(&h), 2, Init::Linear, 0, 50);
        // Cluster {0, 1}: (0·1 + 1·3) / 4 = 0.75; cluster {10, 11} has no importance: plain mean.
        assert_eq!(cl.centroids, vec![0.75, 10.5]);
        assert_eq!(cl.assign, vec![0, 0, 1, 1]);
        let ones = [2.0f32; 4];
        assert_eq!(
            kmeans_1d_weighted(&v, Some(&ones), 2, Init::Linear, 0, 50),
            kmeans_1d(&v, 2, Init::Linear, 0, 50)
        );
    }

    /// Against brute force: for tiny inputs the best 2-clustering is a split point of the sorted
    /// values; Lloyd from linear init finds it on this well-separated case.
    #[test]
    fn matches_brute_force_two_clusters() {
        let v = [0.1f32, 0.2, 0.25, 0.9, 1.0, 1.2, 1.1];
        let cl = kmeans_1d(&v, 2, Init::Linear, 0, 100);
        let mut s = v.to_vec();
        s.sort_by(f32::total_cmp);
        let best = (1..s.len())
            .map(|i| {
                let cost = |p: &[f32]| {
                    let m = p.iter().sum::<f32>() / p.len() as f32;
                    p.iter().map(|x| ((x - m) as f64).powi(2)).sum::<f64>()
                };
                cost(&s[..i]) + cost(&s[i..])
            })
            .fold(f64::MAX, f64::min);
        assert!((sse(&v, &cl) - best).abs() < 1e-9);
    }
}
