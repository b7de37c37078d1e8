//! A diagonal Hessian estimate for Hessian-weighted weight sharing.
//!
//! Choi, El-Khamy and Lee ("Towards the Limit of Network Quantization", ICLR 2017) weight each
//! weight's quantization error by the diagonal of the loss Hessian, and note that the square of
//! the gradient (the empirical Fisher information, what Adam's second moment tracks) is a cheap
//! stand-in. This module computes that stand-in: the mean over mini-batches of the calibration
//! samples of each weight's squared gradient, with the model's weights left exactly as they
//! were.

use std::collections::BTreeMap;

use deepshrink_engine::{Data, Model, Optimizer, Params, Schedule, TrainConfig, TrainHook, Trainer};

use crate::CompressError;

/// Mini-batch size of the estimate: 1, so that the mean of squared gradients is the empirical
/// Fisher diagonal (per-sample squares; batch-32 squares were noisier and lost at 2 bits).
pub const CALIBRATION_BATCH: usize = 1;

/// Accumulates squared gradients of the named weights and zeroes every gradient, so the
/// optimizer step that follows changes nothing.
struct FisherHook {
    names: Vec<String>,
    sums: BTreeMap<String, Vec<f64>>,
    batches: usize,
}

impl TrainHook for FisherHook {
    fn before_step(&mut self, params: &mut Params<'_>) {
        for name in &self.names {
            if let Some(g) = params.grad_mut(name) {
                let acc = self.sums.entry(name.clone()).or_insert_with(|| vec![0.0; g.len()]);
                acc.iter_mut().zip(g.iter()).for_each(|(a, &v)| *a += (v as f64) * (v as f64));
            }
        }
        for name in params.names() {
            if let Some(g) = params.grad_mut(&name) {
                g.fill(0.0);
            }
        }
        self.batches += 1;
    }
}

/// The mean squared gradient of each weight in `names` over the first `samples` samples of
/// `data` (mini-batches of [`CALIBRATION_BATCH`], in order). Every weight of `model` — running
/// statistics included — is restored afterwards.
pub fn squared_gradients(
    model: &mut Model,
    data: Data,
    samples: usize,
    names: &[String],
) -> Result<BTreeMap<String, Vec<f32>>, CompressError> {
    let n = samples.min(data.y.len());
    if n == 0 {
        return Err(CompressError::Config { pass: "share", detail: "no calibration samples".into() });
    }
    let per = data.x.len() / data.y.len();
    let calib = Data { x: &data.x[..n * per], y: &data.y[..n] };
    let saved: Vec<(String, Vec<f32>)> = {
        let p = model.params_mut();
        p.names().into_iter().filter_map(|k| p.value(&k).map(|v| (k.clone(), v.to_vec()))).collect()
    };
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: CALIBRATION_BATCH,
        optimizer: Optimizer::sgd(1e-3),
        schedule: Schedule::Constant,
        seed: 0,
    };
    let mut hook = FisherHook { names: names.to_vec(), sums: BTreeMap::new(), batches: 0 };
    let mut trainer = Trainer::new(model, &cfg)?;
    trainer.epoch(model, calib, &mut hook, &mut |_| {})?;
    let mut p = model.params_mut();
    for (k, v) in saved {
        if let Some(dst) = p.value_mut(&k) {
            dst.copy_from_slice(&v);
        }
    }
    let batches = hook.batches.max(1) as f64;
    Ok(hook
        .sums
        .into_iter()
        .map(|(k, s)| (k, s.into_iter().map(|v| (v / batches) as f32).collect()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepshrink_graph::{Graph, Op, Tensor};

    /// One linear layer `y = x Wᵀ` with cross-entropy: the gradient of W for one sample is
    /// `(softmax(y) − onehot) ⊗ x`, so with W = 0 (uniform softmax over 2 classes) and label 0
    /// it is `[[-0.5 x], [0.5 x]]`; squared and averaged over identical batches: `0.25 x²`.
    #[test]
    fn squared_gradient_of_a_linear_layer_and_weights_restored() {
        let mut g = Graph::new("lin", "input", &[3]);
        g.add_weight("w", Tensor::f32(vec![2, 3], vec![0.0; 6]));
        g.push("fc", Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }, &["input", "w"]);
        g.outputs = vec![deepshrink_graph::ValueInfo { name: "fc".into(), shape: Vec::new() }];
        let mut model = Model::new(g).unwrap();
        let x: Vec<f32> = [1.0, 2.0, -1.0].repeat(64);
        let y = vec![0u32; 64];
        let f = squared_gradients(&mut model, Data { x: &x, y: &y }, 64, &["w".into()]).unwrap();
        let want = [0.25, 1.0, 0.25, 0.25, 1.0, 0.25];
        for (a, b) in f["w"].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", f["w"]);
        }
        assert_eq!(model.params_mut().value("w").unwrap(), &[0.0; 6]);
    }
}
