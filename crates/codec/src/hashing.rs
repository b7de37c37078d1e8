//! The hash of HashedNets (Chen, Wilson, Tyree, Weinberger and Chen, "Compressing Neural
//! Networks with the Hashing Trick", ICML 2015): entry `p` (row-major position) of a hashed
//! tensor reads one of `k` shared values, with a sign, both drawn from `(seed, p)` alone, so a
//! file stores the `k` values and the seed, and no index at all (docs/FORMAT.md).

/// SplitMix64's finaliser (Steele, Lea and Flood 2014): a bijection of `u64` with good
/// avalanche, the same mixer the engine's random numbers use.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Bucket in `0..k` and sign (`true`: negative) of position `p` under `seed`:
/// `z = mix(seed + (p + 1) · 0x9E3779B97F4A7C15)`, bucket `(z >> 32) mod k`, sign bit `z & 1`.
/// `k` must be at least 1.
pub fn bucket(seed: u64, p: u64, k: u32) -> (u32, bool) {
    let z = mix(seed.wrapping_add(p.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    (((z >> 32) % k as u64) as u32, z & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets are used evenly and signs are balanced (a chi-square-style bound), and the
    /// values for a fixed input never change (they define the file format): the first entries
    /// for seed 7 and k = 10 are pinned to what this independent Python transcription gives:
    ///
    /// ```text
    /// M = 2**64 - 1
    /// def mix(z):
    ///     z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    ///     z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    ///     return z ^ (z >> 31)
    /// def bucket(seed, p, k):
    ///     z = mix((seed + ((p + 1) * 0x9E3779B97F4A7C15 & M)) & M)
    ///     return (z >> 32) % k, z & 1 == 1
    /// ```
    #[test]
    fn buckets_are_even_signs_balanced_and_stable() {
        let (k, n) = (64u32, 64_000u64);
        let mut count = vec![0u32; k as usize];
        let mut neg = 0;
        for p in 0..n {
            let (b, s) = bucket(3, p, k);
            count[b as usize] += 1;
            neg += s as u32;
        }
        let expect = (n / k as u64) as f64;
        let chi2: f64 = count.iter().map(|&c| (c as f64 - expect).powi(2) / expect).sum();
        assert!(chi2 < 120.0, "chi2 {chi2} for 63 degrees of freedom");
        assert!((neg as f64 / n as f64 - 0.5).abs() < 0.01);
        let first: Vec<(u32, bool)> = (0..4).map(|p| bucket(7, p, 10)).collect();
        assert_eq!(first, PINNED);
    }

    const PINNED: [(u32, bool); 4] = [(0, true), (5, false), (4, false), (4, true)];
}
