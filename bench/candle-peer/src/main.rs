//! Our integer GEMV kernels against candle's quantized matmul (Q8_0, Q4_K) and both f32
//! baselines, batch 1, on a 384->1536 and a 1536->384 layer, sampled round-robin in one run.
//!
//! ```text
//! cargo run --release --manifest-path bench/candle-peer/Cargo.toml [-- --samples 301]
//! ```
//!
//! Our variants come from `crates/kernels/examples/quant_bench.rs` (same shapes, same weights,
//! every call includes quantizing the activation vector); candle's `QMatMul::forward` also
//! quantizes the activation on every call (to Q8_0 / Q8_K blocks). Candle runs with its own
//! threads unless `RAYON_NUM_THREADS=1` (bench/quant_gemv.sh runs both); ours run on one.

#[path = "../../../crates/kernels/examples/quant_bench.rs"]
#[allow(dead_code, unused_imports)]
mod ours;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::hint::black_box;

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let samples = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(301);
    let threads = candle_core::utils::get_num_threads();
    let names = [
        "ours f32 (gemm 1T)",
        "ours int8",
        "ours int4",
        "candle f32",
        "candle Q8_0",
        "candle Q4_0",
        "candle Q4_K",
    ];
    println!("candle threads: {threads}; ours: 1 thread; median µs of {samples} samples\n");
    println!(
        "| shape | {} | int8 / ours f32 | int4 / ours f32 | Q8_0 / candle f32 | Q4_0 / candle f32 | Q4_K / candle f32 | ours int8 vs Q8_0 | ours int4 vs Q4_0 | ours int4 vs Q4_K |",
        names.join(" µs | ") + " µs"
    );
    println!("|---|{}---|---|---|---|---|---|---|---|", "---|".repeat(names.len()));
    for &(label, rows, cols) in ours::SHAPES {
        let l = ours::Layer::new(rows, cols);
        let dev = Device::Cpu;
        let w = Tensor::from_vec(l.w.clone(), (rows, cols), &dev)?;
        let wt = w.t()?.contiguous()?;
        let x = Tensor::from_vec(l.x.clone(), (1, cols), &dev)?;
        let q8 = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?)?;
        let q40 = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4_0)?)?;
        // Q4_K packs 256-weight super-blocks: a 384-input row does not divide into them.
        let q4k = if cols % 256 == 0 {
            Some(QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4K)?)?)
        } else {
            None
        };
        // Sanity: candle's outputs agree with ours (relative L2 error printed below the table).
        let reference = x.matmul(&wt)?.flatten_all()?.to_vec1::<f32>()?;
        let err = |y: Vec<f32>| {
            let n: f32 = reference.iter().map(|v| v * v).sum::<f32>().sqrt();
            y.iter().zip(&reference).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt() / n
        };
        let e8 = err(q8.forward(&x)?.flatten_all()?.to_vec1()?);
        let e40 = err(q40.forward(&x)?.flatten_all()?.to_vec1()?);
        let e4k = match &q4k {
            Some(q) => err(q.forward(&x)?.flatten_all()?.to_vec1()?),
            None => f32::NAN,
        };
        let mut fs = ours::ours(&l);
        fs.truncate(3);
        fs.push(Box::new(|| {
            black_box(black_box(&x).matmul(&wt).unwrap());
        }));
        fs.push(Box::new(|| {
            black_box(q8.forward(black_box(&x)).unwrap());
        }));
        fs.push(Box::new(|| {
            black_box(q40.forward(black_box(&x)).unwrap());
        }));
        if let Some(q) = &q4k {
            fs.push(Box::new(|| {
                black_box(q.forward(black_box(&x)).unwrap());
            }));
        }
        let mut refs: Vec<&mut dyn FnMut()> = fs.iter_mut().map(|f| &mut **f as &mut dyn FnMut()).collect();
        let mut t = ours::measure(samples, &mut refs);
        t.resize(names.len(), f64::NAN);
        let cells: Vec<String> = t
            .iter()
            .map(|ns| if ns.is_nan() { "n/a".to_string() } else { format!("{:.2}", ns / 1000.0) })
            .collect();
        let r = |a: f64, b: f64| if (a / b).is_nan() { "n/a".to_string() } else { format!("{:.2}x", a / b) };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cells.join(" | "),
            r(t[0], t[1]),
            r(t[0], t[2]),
            r(t[3], t[4]),
            r(t[3], t[5]),
            r(t[3], t[6]),
            r(t[4], t[1]),
            r(t[5], t[2]),
            r(t[6], t[2]),
        );
        let (o8, o4) = l.errors();
        eprintln!("{label}: relative L2 error vs f32: ours int8 {o8:.4}, int4 {o4:.4}; candle Q8_0 {e8:.4}, Q4_0 {e40:.4}, Q4_K {e4k:.4}");
    }
    Ok(())
}
