//! Shared fixtures: small models with dense and compressed tensors, and a deterministic RNG.
#![allow(dead_code)]

use std::collections::BTreeMap;

use deepshrink_codec::{DskModel, SparseMatrix, SparseValues};
use deepshrink_graph::{Graph, Op, Tensor};

/// SplitMix64: a deterministic generator for tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random `[rows, cols]` matrix keeping each entry with probability `density`.
pub fn random_sparse(
    rng: &mut Rng,
    shape: &[usize],
    density: f64,
    codebook_bits: Option<u32>,
) -> SparseMatrix {
    let n: usize = shape.iter().product();
    let dense: Vec<f32> = (0..n)
        .map(|_| if rng.unit() < density { (rng.unit() as f32 - 0.5) * 0.2 + 1e-3 } else { 0.0 })
        .collect();
    let mut m = SparseMatrix::from_dense(shape, &dense);
    if let Some(bits) = codebook_bits {
        let k = 1usize << bits;
        let centroids: Vec<f32> = (0..k).map(|i| -0.1 + 0.2 * i as f32 / k as f32).collect();
        // Skewed codes, as k-means on a bell-shaped weight distribution gives.
        let codes = (0..m.nnz())
            .map(|_| {
                let g = (rng.unit() + rng.unit() + rng.unit()) / 3.0;
                ((g * k as f64) as usize).min(k - 1) as u16
            })
            .collect();
        m.values = SparseValues::Codebook { centroids, codes };
    }
    m
}

/// LeNet-300-100 as Gemm layers, weights pruned to `density` and shared with `bits`-bit codebooks.
pub fn lenet_300_100(seed: u64, density: f64, bits: Option<u32>) -> DskModel {
    let mut rng = Rng(seed);
    let mut g = Graph::new("lenet-300-100", "input", &[784]);
    let mut x = g.push("flatten", Op::Flatten { axis: 1 }, &["input"]);
    let mut sparse = BTreeMap::new();
    let dims = [(784, 300), (300, 100), (100, 10)];
    for (i, &(fan_in, fan_out)) in dims.iter().enumerate() {
        let (w, b) = (format!("fc{}.weight", i + 1), format!("fc{}.bias", i + 1));
        sparse.insert(w.clone(), random_sparse(&mut rng, &[fan_out, fan_in], density, bits));
        let bias = (0..fan_out).map(|_| rng.unit() as f32 * 0.1).collect();
        g.add_weight(&b, Tensor::f32(vec![fan_out], bias));
        let op = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true };
        x = g.push(&format!("fc{}", i + 1), op, &[&x, &w, &b]);
        if i < 2 {
            x = g.push(&format!("relu{}", i + 1), Op::Relu, &[&x]);
        }
    }
    g.outputs = vec![deepshrink_graph::ValueInfo::batched(&x, &[10])];
    DskModel { graph: g, sparse, ..Default::default() }
}

/// A random matrix (`shape[0]` rows) whose stored entries are complete aligned runs of `block`
/// columns, each run kept with probability `density`: what pruning with `block = B` leaves.
pub fn random_blocked(
    rng: &mut Rng,
    shape: &[usize],
    block: usize,
    density: f64,
    codebook_bits: Option<u32>,
) -> SparseMatrix {
    let n: usize = shape.iter().product();
    let mut dense = vec![0.0f32; n];
    for start in (0..n).step_by(block) {
        if rng.unit() < density {
            for v in &mut dense[start..start + block] {
                *v = (rng.unit() as f32 - 0.5) * 0.2 + 1e-3;
            }
        }
    }
    let mut m = random_sparse(rng, shape, 0.0, codebook_bits);
    let base = SparseMatrix::from_dense(shape, &dense);
    m.row_ptr = base.row_ptr;
    m.col_idx = base.col_idx;
    m.values = match m.values {
        SparseValues::F32(_) => base.values,
        SparseValues::Codebook { centroids, .. } => {
            let k = centroids.len() as u64;
            let codes = (0..m.col_idx.len()).map(|_| rng.below(k) as u16).collect();
            SparseValues::Codebook { centroids, codes }
        }
    };
    m
}
