//! Optimizers and learning-rate schedules, with PyTorch's update rules.

use rayon::prelude::*;

/// An optimizer and its hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent with momentum, as `torch.optim.SGD`:
    /// `v = mu v + (g + wd w)`, step `g + mu v` (Nesterov) or `v`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum `mu` (0 disables).
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay added to the gradient.
        weight_decay: f32,
    },
    /// Adam (Kingma and Ba 2015) as `torch.optim.Adam`; with `decoupled` it is AdamW
    /// (Loshchilov and Hutter 2019), applying weight decay to the weights directly.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator guard.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// AdamW: decay the weights instead of adding to the gradient.
        decoupled: bool,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and the given learning rate.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }

    /// SGD with momentum 0.9.
    pub fn sgd(lr: f32) -> Self {
        Optimizer::Sgd { lr, momentum: 0.9, nesterov: false, weight_decay: 0.0 }
    }

    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => *lr,
        }
    }

    /// Checks hyper-parameters.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |name: &str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && v >= lo && v < hi {
                Ok(())
            } else {
                Err(format!("{name} = {v} is outside [{lo}, {hi})"))
            }
        };
        match *self {
            Optimizer::Sgd { lr, momentum, weight_decay, .. } => {
                ok("lr", lr, 0.0, f32::MAX)?;
                ok("momentum", momentum, 0.0, 1.0)?;
                ok("weight_decay", weight_decay, 0.0, f32::MAX)
            }
            Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, .. } => {
                ok("lr", lr, 0.0, f32::MAX)?;
                ok("beta1", beta1, 0.0, 1.0)?;
                ok("beta2", beta2, 0.0, 1.0)?;
                ok("eps", eps, 0.0, f32::MAX)?;
                ok("weight_decay", weight_decay, 0.0, f32::MAX)
            }
        }
    }
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` epochs (`torch.optim.lr_scheduler.StepLR`).
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f32,
    },
    /// Cosine annealing from the base rate to `min_factor` times it over the whole run, updated
    /// every step (Loshchilov and Hutter 2017, without restarts).
    Cosine {
        /// Final rate as a fraction of the base rate.
        min_factor: f32,
    },
}

impl Schedule {
    /// The multiplier of the base rate at `progress` epochs (fractional) out of `total`.
    pub fn factor(&self, progress: f32, total: usize) -> f32 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => gamma.powi((progress as usize / every.max(1)) as i32),
            Schedule::Cosine { min_factor } => {
                let t = (progress / total.max(1) as f32).clamp(0.0, 1.0);
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }
}

/// Per-parameter optimizer state.
#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    m: Vec<f32>,
    v: Vec<f32>,
}

const CHUNK: usize = 1 << 13;

/// One update of `w` from gradient `g` at step `t` (1-based) with learning rate `lr`.
pub(crate) fn update(opt: &Optimizer, lr: f32, t: u64, w: &mut [f32], g: &[f32], s: &mut State) {
    if s.m.len() != w.len() {
        s.m = vec![0.0; w.len()];
        if matches!(opt, Optimizer::Adam { .. }) {
            s.v = vec![0.0; w.len()];
        }
    }
    match *opt {
        Optimizer::Sgd { momentum, nesterov, weight_decay, .. } => {
            let first = t == 1;
            w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(s.m.par_chunks_mut(CHUNK)).for_each(
                |((w, g), m)| {
                    // Zipped iterators (no indexing) so the loop vectorises.
                    for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                        let d = g + weight_decay * *w;
                        let step = if momentum > 0.0 {
                            *m = if first { d } else { momentum * *m + d };
                            if nesterov {
                                d + momentum * *m
                            } else {
                                *m
                            }
                        } else {
                            d
                        };
                        *w -= lr * step;
                    }
                },
            );
        }
        Optimizer::Adam { beta1, beta2, eps, weight_decay, decoupled, .. } => {
            let bc1 = 1.0 - beta1.powi(t as i32);
            let bc2 = 1.0 - beta2.powi(t as i32);
            let step = lr / bc1;
            let bc2s = bc2.sqrt();
            // Decoupled decay scales the weight; coupled decay adds to the gradient.
            let (shrink, l2) = if decoupled { (1.0 - lr * weight_decay, 0.0) } else { (1.0, weight_decay) };
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(s.m.par_chunks_mut(CHUNK).zip(s.v.par_chunks_mut(CHUNK)))
                .for_each(|((w, g), (m, v))| {
                    // Zipped iterators (no indexing) so the loop vectorises.
                    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                        let gi = g + l2 * *w;
                        *w *= shrink;
                        *m = beta1 * *m + (1.0 - beta1) * gi;
                        *v = beta2 * *v + (1.0 - beta2) * gi * gi;
                        *w -= step * *m / ((*v).sqrt() / bc2s + eps);
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values printed by PyTorch 2.15.0 (3 steps on loss `sum(w^2)` from `[1, -2]`):
    /// ```python
    /// for mk in [lambda p: torch.optim.Adam(p, lr=0.1),
    ///            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    ///            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    ///            lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1)]:
    ///     w = torch.tensor([1.0, -2.0], requires_grad=True); opt = mk([w])
    ///     for _ in range(3):
    ///         opt.zero_grad(); (w**2).sum().backward(); opt.step()
    ///     print(w)
    /// ```
    #[test]
    fn optimizers_follow_pytorch() {
        let cases = [
            (Optimizer::adam(0.1), [0.701586, -1.700623]),
            (Optimizer::sgd(0.1), [0.062, -0.124]),
            (
                Optimizer::Sgd { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01 },
                [-0.111651, 0.223302],
            ),
            (
                Optimizer::Adam {
                    lr: 0.1,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.1,
                    decoupled: true,
                },
                [0.675101, -1.644369],
            ),
        ];
        for (opt, want) in cases {
            let mut w = vec![1.0f32, -2.0];
            let mut s = State::default();
            for t in 1..=3 {
                let g: Vec<f32> = w.iter().map(|x| 2.0 * x).collect();
                update(&opt, 0.1, t, &mut w, &g, &mut s);
            }
            for (a, b) in w.iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "{opt:?}: {w:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn cosine_and_step_schedules() {
        let c = Schedule::Cosine { min_factor: 0.0 };
        assert!((c.factor(0.0, 10) - 1.0).abs() < 1e-6);
        assert!((c.factor(5.0, 10) - 0.5).abs() < 1e-6);
        assert!(c.factor(10.0, 10).abs() < 1e-6);
        let s = Schedule::Step { every: 2, gamma: 0.1 };
        assert_eq!(s.factor(1.9, 10), 1.0);
        assert!((s.factor(2.0, 10) - 0.1).abs() < 1e-7);
    }
}
