//! Batch-1 latency of dense f32 GEMV against sparse (CSR) GEMV with float and codebook values,
//! on the fully-connected layer shapes of LeNet-300-100 and LeNet-5 (Han et al. 2015/2016).
//!
//! ```text
//! cargo run --release -p deepshrink-kernels --example spmv_bench [-- --samples 301]
//! ```
//!
//! Every sample times a loop of calls long enough (≥ 20 µs) for the clock to resolve it; the
//! variants are sampled round-robin so machine noise hits them alike, and medians are reported.
//! Weights stay in cache between calls (the steady state of a serving loop). Results and their
//! reading are in bench/kernels.md.

use std::hint::black_box;
use std::time::Instant;

use deepshrink_kernels::{
    dense_gemv, pair_chunks_mut, BlockPacked, Csr, RowPacked, SparseWeights, Values, BLOCK,
};

/// Layer, rows, cols, and the fraction of the layer's input that is zero on real data: MNIST
/// pixels are 81% zero, ReLU outputs about half; LeNet-5's fc1 reads max-pooled conv outputs
/// without a ReLU (dense).
/// The density is the one the committed models have (bench/results/deep-compression/).
const SHAPES: &[(&str, usize, usize, f32, f32)] = &[
    ("lenet-300-100 fc1", 300, 784, 0.06, 0.81),
    ("lenet-300-100 fc2", 100, 300, 0.10, 0.5),
    ("lenet-300-100 fc3", 10, 100, 0.25, 0.5),
    ("lenet-5 fc1", 500, 800, 0.06, 0.0),
    ("lenet-5 fc2", 10, 500, 0.20, 0.5),
];
/// Codebook size: 5-bit shared weights, as Han et al. 2016 use for fully-connected layers.
const CENTROIDS: usize = 32;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Median of per-call times (ns) for each closure, sampled round-robin.
fn measure(samples: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let reps: Vec<usize> = fs
        .iter_mut()
        .map(|f| {
            let t = Instant::now();
            let mut n = 0;
            while t.elapsed().as_micros() < 20 || n < 3 {
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

fn gemm_gemv(rows: usize, cols: usize, w: &[f32], x: &[f32], y: &mut [f32], par: gemm::Parallelism) {
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
            par,
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let samples = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(301);
    println!("samples per variant: {samples}; rayon threads: {}", rayon::current_num_threads());
    println!();
    println!("| layer | rows x cols | density | ours dense µs | gemm 1T µs | gemm rayon µs | gemm pair µs | CSR LUT µs | packed 1T µs | packed pair µs | 1T: gemm / packed | best dense / best packed | x zeros | packed scatter, real x µs | packed 1T, real x µs |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = Rng(42);
    for &(name, rows, cols, density, zeros) in SHAPES {
        let mut w = vec![0.0f32; rows * cols];
        let (mut rp, mut ci, mut vals, mut codes) = (vec![0u32], Vec::new(), Vec::new(), Vec::new());
        let centroids: Vec<f32> = (0..CENTROIDS).map(|i| i as f32 / CENTROIDS as f32 - 0.5).collect();
        for r in 0..rows {
            for c in 0..cols {
                if rng.next() < density {
                    let code = (rng.next() * CENTROIDS as f32) as u16 % CENTROIDS as u16;
                    w[r * cols + c] = centroids[code as usize];
                    ci.push(c as u32);
                    vals.push(centroids[code as usize]);
                    codes.push(code);
                }
            }
            rp.push(ci.len() as u32);
        }
        let csr = Csr::new(rows, cols, rp, ci).expect("valid CSR");
        let sf = SparseWeights::new(csr.clone(), Values::F32(vals)).expect("valid").with_column_index();
        let sl = SparseWeights::new(csr, Values::lut(centroids, &codes)).expect("valid").with_column_index();
        let pk = RowPacked::new(&sl).expect("u16 columns");
        let pt = RowPacked::new(&sl.transpose()).expect("u16 rows");
        let x: Vec<f32> = (0..cols).map(|_| rng.next() + 0.01).collect();
        // The same input with the layer's typical fraction of zeros.
        let xz: Vec<f32> = x.iter().map(|&v| if rng.next() < zeros { 0.0 } else { v }).collect();
        let mut y = vec![0.0f32; rows];
        let mut ys = vec![vec![0.0f32; rows]; 9];
        sf.matmul(&x, 1, &mut ys[0]).expect("fits");
        sl.matmul(&x, 1, &mut ys[1]).expect("fits");
        pk.gemv(&x, &mut ys[2]).expect("fits");
        dense_gemv(rows, cols, &w, &x, &mut y).expect("fits");
        assert!(ys[..3].iter().all(|v| v.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-3)));
        let [y0, y1, y2, y3, y4, y5, y6, y7, y8] = &mut ys[..] else { unreachable!() };
        let t = measure(
            samples,
            &mut [
                &mut || dense_gemv(rows, cols, black_box(&w), black_box(&x), y0).unwrap(),
                &mut || gemm_gemv(rows, cols, black_box(&w), black_box(&x), y1, gemm::Parallelism::None),
                &mut || gemm_gemv(rows, cols, black_box(&w), black_box(&x), y2, gemm::Parallelism::Rayon(0)),
                &mut || {
                    pair_chunks_mut(y3, rows.div_ceil(2), |r0, ys| {
                        gemm_gemv(ys.len(), cols, &w[r0 * cols..], black_box(&x), ys, gemm::Parallelism::None)
                    })
                },
                &mut || sl.matmul(black_box(&x), 1, y4).unwrap(),
                &mut || pk.gemv_rows(black_box(&x), y5, 0).unwrap(),
                &mut || pk.gemv_paired(black_box(&x), y6).unwrap(),
                &mut || pt.scatter(black_box(&xz), y7).unwrap(),
                &mut || pk.gemv(black_box(&xz), y8).unwrap(),
            ],
        );
        let dense = t[0].min(t[1]).min(t[2]).min(t[3]);
        println!(
            "| {name} | {rows}x{cols} | {:.0}% | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}x | {:.1}x | {:.0}% | {:.2} | {:.2} |",
            density * 100.0,
            t[0] / 1e3,
            t[1] / 1e3,
            t[2] / 1e3,
            t[3] / 1e3,
            t[4] / 1e3,
            t[5] / 1e3,
            t[6] / 1e3,
            t[1] / t[5],
            dense / t[5].min(t[6]),
            zeros * 100.0,
            t[7] / 1e3,
            t[8] / 1e3,
        );
    }
    println!();
    println!("Break-even of the column path (packed scatter) against the packed row GEMV, by fraction of zero inputs:");
    println!();
    println!("| layer | zeros | packed rows µs | packed scatter µs |");
    println!("|---|---|---|---|");
    for &(name, rows, cols, density, _) in &SHAPES[..2] {
        let (mut rp, mut ci) = (vec![0u32], Vec::new());
        for _ in 0..rows {
            ci.extend((0..cols as u32).filter(|_| rng.next() < density));
            rp.push(ci.len() as u32);
        }
        let vals: Vec<f32> = ci.iter().map(|_| rng.next() - 0.5).collect();
        let w = SparseWeights::new(Csr::new(rows, cols, rp, ci).expect("valid CSR"), Values::F32(vals))
            .expect("valid");
        let (pk, pt) = (RowPacked::new(&w).expect("u16"), RowPacked::new(&w.transpose()).expect("u16"));
        for zeros in [0.2f32, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8] {
            let x: Vec<f32> =
                (0..cols).map(|_| if rng.next() < zeros { 0.0 } else { rng.next() + 0.01 }).collect();
            let (mut y0, mut y1) = (vec![0.0f32; rows], vec![0.0f32; rows]);
            let t = measure(
                samples,
                &mut [&mut || pk.gemv(black_box(&x), &mut y0).unwrap(), &mut || {
                    pt.scatter(black_box(&x), &mut y1).unwrap()
                }],
            );
            println!("| {name} | {:.0}% | {:.2} | {:.2} |", zeros * 100.0, t[0] / 1e3, t[1] / 1e3);
        }
    }
    println!();
    println!("The same densities pruned in aligned 1x4 blocks (`block = 4`): dense f32 on the `gemm` crate, the element-wise packed GEMV and the block GEMV on the same matrix:");
    println!();
    println!("| layer | rows x cols | density | gemm 1T µs | packed 1T µs | 1x4 blocks µs | gemm / blocks |");
    println!("|---|---|---|---|---|---|---|");
    for &(name, rows, cols, density, _) in SHAPES {
        let mut w = vec![0.0f32; rows * cols];
        let (mut rp, mut ci, mut vals) = (vec![0u32], Vec::new(), Vec::new());
        for r in 0..rows {
            for c0 in (0..cols).step_by(BLOCK) {
                if rng.next() < density {
                    for c in c0..(c0 + BLOCK).min(cols) {
                        let v = rng.next() - 0.5;
                        w[r * cols + c] = v;
                        ci.push(c as u32);
                        vals.push(v);
                    }
                }
            }
            rp.push(ci.len() as u32);
        }
        let sw = SparseWeights::new(Csr::new(rows, cols, rp, ci).expect("valid CSR"), Values::F32(vals))
            .expect("valid");
        let (pk, bk) = (RowPacked::new(&sw).expect("u16"), BlockPacked::new(&sw, 0.5).expect("full blocks"));
        let x: Vec<f32> = (0..cols).map(|_| rng.next() + 0.01).collect();
        let mut ys = vec![vec![0.0f32; rows]; 3];
        let [y0, y1, y2] = &mut ys[..] else { unreachable!() };
        let t = measure(
            samples,
            &mut [
                &mut || gemm_gemv(rows, cols, black_box(&w), black_box(&x), y0, gemm::Parallelism::None),
                &mut || pk.gemv(black_box(&x), y1).unwrap(),
                &mut || bk.gemv(black_box(&x), y2).unwrap(),
            ],
        );
        assert!(ys[2].iter().zip(&ys[0]).all(|(a, b)| (a - b).abs() < 1e-3));
        println!(
            "| {name} | {rows}x{cols} | {:.0}% | {:.2} | {:.2} | {:.2} | {:.1}x |",
            density * 100.0,
            t[0] / 1e3,
            t[1] / 1e3,
            t[2] / 1e3,
            t[0] / t[2]
        );
    }
}
