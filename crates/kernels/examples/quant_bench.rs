//! Batch-1 latency of the integer kernels against our dense f32 GEMV, on a 384→1536 and a
//! 1536→384 fully-connected layer (W `[1536, 384]` and `[384, 1536]`).
//!
//! ```text
//! cargo run --release -p deepshrink-kernels --example quant_bench [-- --samples 501]
//! ```
//!
//! Every call includes the dynamic quantization of the activation vector (what a runtime pays).
//! Each sample times a loop of calls of at least 50 µs; variants are sampled round-robin so
//! machine noise hits them alike; medians are printed. bench/candle-peer reuses these variants
//! and adds candle's, all in the same run (bench/quant_gemv.sh).
#![allow(dead_code)]

use std::hint::black_box;
use std::time::Instant;

use deepshrink_kernels::{pack_codes, BinaryWeights, Int8Weights, LowBitWeights};

/// (label, rows = outputs, cols = inputs).
pub const SHAPES: &[(&str, usize, usize)] = &[("384->1536", 1536, 384), ("1536->384", 384, 1536)];

/// A deterministic pseudo-random vector in [-1, 1) (splitmix64).
pub fn vector(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Median of per-call times (ns) for each closure, sampled round-robin.
pub fn measure(samples: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let reps: Vec<usize> = fs
        .iter_mut()
        .map(|f| {
            let t = Instant::now();
            let mut n = 0;
            while t.elapsed().as_micros() < 50 || n < 3 {
                f();
                n += 1;
            }
            n
        })
        .collect();
    let mut times = vec![Vec::with_capacity(samples); fs.len()];
    for _ in 0..samples {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..reps[i] {
                f();
            }
            times[i].push(t.elapsed().as_nanos() as f64 / reps[i] as f64);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(|a, b| a.total_cmp(b));
            t[t.len() / 2]
        })
        .collect()
}

/// Our dense f32 GEMV: the `gemm` crate on one thread (what `deepshrink bench` runs).
pub fn gemm_gemv(rows: usize, cols: usize, w: &[f32], x: &[f32], y: &mut [f32]) {
    // SAFETY: W is rows x cols row-major, x is cols x 1 and y rows x 1, all fully in bounds.
    unsafe {
        gemm::gemm(
            rows,
            1,
            cols,
            y.as_mut_ptr(),
            1,
            1,
            false,
            w.as_ptr(),
            1,
            cols as isize,
            x.as_ptr(),
            1,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Symmetric per-row codes of `bits` bits for `w` (`rows x cols`): (codes as unsigned, scales,
/// zero point 2^(bits-1)).
pub fn quantize_rows(w: &[f32], rows: usize, cols: usize, bits: u32) -> (Vec<u8>, Vec<f32>, Vec<i32>) {
    let z = 1i32 << (bits - 1);
    let qmax = (z - 1) as f32;
    let mut codes = Vec::with_capacity(w.len());
    let mut scale = Vec::with_capacity(rows);
    for r in w.chunks_exact(cols) {
        let s = r.iter().fold(0.0f32, |m, v| m.max(v.abs())) / qmax;
        scale.push(s);
        codes.extend(r.iter().map(|v| ((v / s).round().clamp(-qmax - 1.0, qmax) as i32 + z) as u8));
    }
    (codes, scale, vec![z; rows])
}

/// The kernels of one shape, by name: dense f32 first.
pub struct Layer {
    pub rows: usize,
    pub cols: usize,
    pub w: Vec<f32>,
    pub x: Vec<f32>,
    pub int8: Int8Weights,
    pub int4: LowBitWeights,
    pub int2: LowBitWeights,
    pub binary: BinaryWeights,
}

impl Layer {
    pub fn new(rows: usize, cols: usize) -> Layer {
        let (w, x) = (vector(rows * cols, 1), vector(cols, 2));
        let (c8, s8, _) = quantize_rows(&w, rows, cols, 8);
        let q8: Vec<i8> = c8.iter().map(|&c| (c as i32 - 128) as i8).collect();
        let int8 = Int8Weights::new(rows, cols, q8, s8, vec![0; rows]).unwrap();
        let (c4, s4, z4) = quantize_rows(&w, rows, cols, 4);
        let int4 = LowBitWeights::new(4, rows, cols, pack_codes(&c4, rows, cols, 4), s4, z4).unwrap();
        let (c2, s2, z2) = quantize_rows(&w, rows, cols, 2);
        let int2 = LowBitWeights::new(2, rows, cols, pack_codes(&c2, rows, cols, 2), s2, z2).unwrap();
        let signs: Vec<u8> = w.iter().map(|&v| (v >= 0.0) as u8).collect();
        let binary =
            BinaryWeights::from_bytes(rows, cols, &pack_codes(&signs, rows, cols, 1), vec![0.5; rows])
                .unwrap();
        Layer { rows, cols, w, x, int8, int4, int2, binary }
    }

    /// Relative error of the int8 and int4 outputs against f32 (a sanity check, printed).
    pub fn errors(&self) -> (f32, f32) {
        let mut d = vec![0.0; self.rows];
        gemm_gemv(self.rows, self.cols, &self.w, &self.x, &mut d);
        let norm = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        let err = |y: &[f32]| y.iter().zip(&d).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt() / norm;
        let (mut y8, mut y4) = (vec![0.0; self.rows], vec![0.0; self.rows]);
        self.int8.matmul(&self.x, 1, &mut y8).unwrap();
        self.int4.matmul(&self.x, 1, &mut y4).unwrap();
        (err(&y8), err(&y4))
    }
}

/// Names of the variants [`run_ours`] measures, in order.
pub const OURS: &[&str] = &["f32 gemm", "int8", "int4", "int2", "binary int8-act", "binary xnor"];

/// Closures for our variants on `l`, each writing into its own output.
pub fn ours(l: &Layer) -> Vec<Box<dyn FnMut() + '_>> {
    let n = l.rows;
    let mut y = [vec![0.0f32; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    let [y0, y1, y2, y3, y4, y5] = std::mem::take(&mut y);
    vec![
        Box::new(move || {
            let mut y0 = y0.clone();
            gemm_gemv(l.rows, l.cols, &l.w, black_box(&l.x), &mut y0);
            black_box(&y0);
        }),
        Box::new(move || {
            let mut y = y1.clone();
            l.int8.matmul(black_box(&l.x), 1, &mut y).unwrap();
            black_box(&y);
        }),
        Box::new(move || {
            let mut y = y2.clone();
            l.int4.matmul(black_box(&l.x), 1, &mut y).unwrap();
            black_box(&y);
        }),
        Box::new(move || {
            let mut y = y3.clone();
            l.int2.matmul(black_box(&l.x), 1, &mut y).unwrap();
            black_box(&y);
        }),
        Box::new(move || {
            let mut y = y4.clone();
            l.binary.matmul(black_box(&l.x), 1, &mut y, false).unwrap();
            black_box(&y);
        }),
        Box::new(move || {
            let mut y = y5.clone();
            l.binary.gemv_xnor(black_box(&l.x), &mut y).unwrap();
            black_box(&y);
        }),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let samples = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(501);
    println!(
        "| shape | {} | int8 speed-up | int4 speed-up | int8 rel. err | int4 rel. err |",
        OURS.join(" µs | ") + " µs"
    );
    println!("|---|{}---|---|---|---|", "---|".repeat(OURS.len()));
    for &(label, rows, cols) in SHAPES {
        let l = Layer::new(rows, cols);
        let mut fs = ours(&l);
        let mut refs: Vec<&mut dyn FnMut()> = fs.iter_mut().map(|f| &mut **f as &mut dyn FnMut()).collect();
        let t = measure(samples, &mut refs);
        let (e8, e4) = l.errors();
        let cells: Vec<String> = t.iter().map(|ns| format!("{:.2}", ns / 1000.0)).collect();
        println!(
            "| {label} | {} | {:.2}x | {:.2}x | {e8:.4} | {e4:.4} |",
            cells.join(" | "),
            t[0] / t[1],
            t[0] / t[2]
        );
    }
}
