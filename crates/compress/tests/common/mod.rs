//! Helpers shared by the compress integration tests.

/// Class k of 4 lights up quadrant k of a 28x28 image, with deterministic noise.
pub fn quadrants(n: usize, seed: u32) -> (Vec<f32>, Vec<u32>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut s = seed;
    for i in 0..n {
        let k = i % 4;
        y.push(k as u32);
        for r in 0..28 {
            for c in 0..28 {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let q = (r >= 14) as usize * 2 + (c >= 14) as usize;
                let noise = (s >> 16) as f32 / 65536.0;
                x.push(if q == k { 1.0 + noise } else { noise - 0.5 });
            }
        }
    }
    (x, y)
}
