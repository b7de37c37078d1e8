//! Static activation ranges for int8 post-training quantization, from a calibration set.
//!
//! **What**: runs the model in float on calibration samples, records the input of every Gemm
//! whose weight is quantized, and picks one symmetric clipping range `c` per input; the runtime
//! then quantizes that input as `q = clamp(round(x · 127 / c), -127, 127)` with the fixed scale
//! `c / 127` stored beside the weight (`.dsk` tag 7, flag bit 3) instead of measuring `max|x|`
//! on every call. Three ways to pick `c`:
//! - `minmax`: the largest `|x|` seen (nothing saturates on the calibration set);
//! - `percentile`: the `p`-th percentile of `|x|` (outliers saturate, the rest gets finer steps);
//! - `mse`: the `c` among 200 evenly spaced candidates in `(0, max|x|]` that minimises the
//!   squared error between `x` and its quantized value over the calibration set.
//!
//! **When**: integer-only pipelines need static scales (no per-call reduction); clipping
//! (`percentile`, `mse`) helps when a few large activations would waste most of the int8 grid.
//! **Cost**: a forward pass over the calibration samples.
//! **Paper**: Jacob et al., CVPR 2018 (static ranges); Krishnamoorthi 2018 and Wu et al.,
//! "Integer Quantization for Deep Learning Inference", 2020 (min-max, percentile and MSE
//! calibration compared).
//! **Recipe**: in the `quantize` pass,
//! ```toml
//! activations = "static"       # dynamic (default) | static
//! calibration = "percentile"   # minmax | percentile | mse
//! percentile = 99.99
//! calibration_samples = 512    # the first training samples
//! ```

use std::collections::BTreeMap;

use deepshrink_engine::{Data, Model};
use deepshrink_graph::{Graph, Op};
use serde::{Deserialize, Serialize};

use crate::CompressError;

/// How activations are quantized at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activations {
    /// `max|x| / 127` measured on every call.
    #[default]
    Dynamic,
    /// A fixed scale per layer input, calibrated on data.
    Static,
}

/// How a static range is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Calibration {
    /// The largest `|x|`.
    #[default]
    Minmax,
    /// A percentile of `|x|`.
    Percentile,
    /// The clip with the least squared quantization error.
    Mse,
}

/// Samples per forward pass of the calibration.
const BATCH: usize = 64;
/// Values kept per input for the range search (an even subsample beyond that).
const MAX_VALUES: usize = 1 << 20;
/// Candidates of the MSE search.
const MSE_STEPS: usize = 200;

/// The input tensor of each weight in `weights` that is the B operand of a Gemm with `trans_b`
/// (the layers the integer kernels run); weights read anywhere else are left out.
pub fn gemm_inputs(graph: &Graph, weights: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for w in weights {
        let mut readers = graph.nodes.iter().filter(|n| n.inputs.iter().any(|i| i == w));
        let first = readers.next();
        let only_gemm = |n: &deepshrink_graph::Node| {
            matches!(n.op, Op::Gemm { trans_b: true, .. }) && n.inputs.get(1) == Some(w)
        };
        if let Some(n) = first.filter(|n| only_gemm(n)) {
            if readers.all(|m| only_gemm(m) && m.inputs[0] == n.inputs[0]) {
                out.insert(w.clone(), n.inputs[0].clone());
            }
        }
    }
    out
}

/// The absolute values of each tensor in `tensors` over the first `samples` samples of `data`
/// (subsampled evenly to at most [`MAX_VALUES`] per tensor).
fn collect(
    model: &Model,
    data: Data,
    samples: usize,
    tensors: &[String],
) -> Result<Vec<Vec<f32>>, CompressError> {
    let n = samples.min(data.y.len());
    if n == 0 {
        return Err(calib("no calibration samples".into()));
    }
    let per = data.x.len() / data.y.len();
    let mut out = vec![Vec::new(); tensors.len()];
    let mut start = 0;
    while start < n {
        let b = BATCH.min(n - start);
        let (_, taps) = model.forward_taps(&data.x[start * per..(start + b) * per], b, tensors)?;
        for (o, (_, v)) in out.iter_mut().zip(taps) {
            o.extend(v.iter().map(|x| x.abs()));
        }
        start += b;
    }
    for o in &mut out {
        if o.len() > MAX_VALUES {
            let step = o.len().div_ceil(MAX_VALUES);
            *o = o.iter().step_by(step).copied().collect();
        }
    }
    Ok(out)
}

fn calib(detail: String) -> CompressError {
    CompressError::Config { pass: "quantize", detail }
}

/// The clipping range of one input from its absolute values (non-finite values ignored);
/// `None` if every value is 0 (nothing to scale).
pub fn clip_range(abs: &[f32], how: Calibration, percentile: f32) -> Option<f32> {
    let mut v: Vec<f32> = abs.iter().copied().filter(|x| x.is_finite()).collect();
    let amax = v.iter().fold(0.0f32, |m, &x| m.max(x));
    if amax <= 0.0 {
        return None;
    }
    let c = match how {
        Calibration::Minmax => amax,
        Calibration::Percentile => {
            // Nearest rank: the smallest value with at least p% of the values at or below it.
            let k = ((percentile as f64 / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            *v.select_nth_unstable_by(k, f32::total_cmp).1
        }
        Calibration::Mse => {
            let err = |c: f32| {
                let (s, inv) = (c / 127.0, 127.0 / c);
                v.iter().map(|&x| ((x - (x * inv).round().min(127.0) * s) as f64).powi(2)).sum::<f64>()
            };
            let mut best = (f64::INFINITY, amax);
            for i in 1..=MSE_STEPS {
                let c = amax * i as f32 / MSE_STEPS as f32;
                let e = err(c);
                if e < best.0 {
                    best = (e, c);
                }
            }
            best.1
        }
    };
    // A percentile can land on 0 when most values are (ReLU outputs): fall back to the max.
    Some(if c > 0.0 { c } else { amax })
}

/// Static activation scales (`clip / 127`) for the inputs of `weights`, calibrated on the first
/// `samples` samples of `data`; weights whose input is not a Gemm operand, or is all zeros on
/// the calibration set, get none (they stay dynamic).
pub fn activation_scales(
    model: &Model,
    graph: &Graph,
    weights: &[String],
    data: Data,
    samples: usize,
    how: Calibration,
    percentile: f32,
) -> Result<BTreeMap<String, f32>, CompressError> {
    let inputs = gemm_inputs(graph, weights);
    let mut tensors: Vec<String> = inputs.values().cloned().collect();
    tensors.sort();
    tensors.dedup();
    let values = collect(model, data, samples, &tensors)?;
    let clips: BTreeMap<&String, Option<f32>> =
        tensors.iter().zip(&values).map(|(t, v)| (t, clip_range(v, how, percentile))).collect();
    Ok(inputs.iter().filter_map(|(w, t)| clips[t].map(|c| (w.clone(), c / 127.0))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_their_definitions() {
        // 1000 values 0.001..=1.0 and one outlier at 10.
        let mut v: Vec<f32> = (1..=1000).map(|i| i as f32 / 1000.0).collect();
        v.push(10.0);
        assert_eq!(clip_range(&v, Calibration::Minmax, 0.0), Some(10.0));
        // Nearest rank 99% of 1001 values: rank 991 -> 0.991.
        assert_eq!(clip_range(&v, Calibration::Percentile, 99.0), Some(0.991));
        assert_eq!(clip_range(&v, Calibration::Percentile, 100.0), Some(10.0));
        // A lone outlier is kept by MSE: clipping it at c costs (10 - c)^2, far more than the
        // rounding error the coarser grid adds to 1000 values ((10/127)^2 / 12 each).
        let c = clip_range(&v, Calibration::Mse, 0.0).unwrap();
        assert!(c > 9.9, "{c}");
        assert_eq!(clip_range(&[0.0, 0.0], Calibration::Mse, 0.0), None);
        // Mostly zeros: the percentile falls back to the max.
        let mut z = vec![0.0f32; 100];
        z[0] = 2.0;
        assert_eq!(clip_range(&z, Calibration::Percentile, 50.0), Some(2.0));
    }

    /// The MSE search beats min-max on its own objective whenever it clips.
    #[test]
    fn mse_is_no_worse_than_minmax() {
        let v: Vec<f32> = (0..5000).map(|i| ((i * 7919 % 5000) as f32 / 5000.0).powi(6) * 8.0).collect();
        let err = |c: f32| -> f64 {
            v.iter().map(|&x| ((x - (x * 127.0 / c).round().min(127.0) * c / 127.0) as f64).powi(2)).sum()
        };
        let mse = clip_range(&v, Calibration::Mse, 0.0).unwrap();
        let mm = clip_range(&v, Calibration::Minmax, 0.0).unwrap();
        assert!(mse < mm && err(mse) < err(mm), "{mse} {mm}");
    }
}
