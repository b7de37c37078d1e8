//! The training loop and evaluation.

use std::time::Instant;

use crate::loss::{cross_entropy, BatchStats};
use crate::model::Param;
use crate::objective::{Batch, CrossEntropy, Objective, Tap};
use crate::optim::{update, Optimizer, Schedule, State};
use crate::rng::Rng;
use crate::{EngineError, Model};

/// Labelled samples, row-major: `y.len()` samples of the model's sample shape in `x`.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    /// Sample values, concatenated.
    pub x: &'a [f32],
    /// Class labels.
    pub y: &'a [u32],
}

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Update rule.
    pub optimizer: Optimizer,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed for shuffling and dropout; the same seed repeats a run exactly.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 128,
            optimizer: Optimizer::adam(1e-3),
            schedule: Schedule::Constant,
            seed: 0,
        }
    }
}

/// Mutable access to a model's weights (and, inside training, their gradients) by name: what
/// compression methods use to keep weights on a mask, a codebook or a grid.
pub struct Params<'a> {
    params: &'a mut [Param],
    grads: Option<&'a mut [Option<Vec<f32>>]>,
}

impl Params<'_> {
    fn index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// Names of all weights, trainable or not.
    pub fn names(&self) -> Vec<String> {
        self.params.iter().map(|p| p.name.clone()).collect()
    }

    /// Shape of a weight.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.index(name).map(|i| &self.params[i].value.shape[..])
    }

    /// A weight's values.
    pub fn value(&self, name: &str) -> Option<&[f32]> {
        self.index(name).map(|i| &self.params[i].value.data[..])
    }

    /// A weight's values, mutably.
    pub fn value_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        self.index(name).map(|i| &mut self.params[i].value.data[..])
    }

    /// A weight's gradient for the current step (only inside [`TrainHook::before_step`]).
    pub fn grad_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let i = self.index(name)?;
        self.grads.as_mut()?.get_mut(i)?.as_deref_mut()
    }
}

impl Model {
    /// Mutable access to the weights by name.
    pub fn params_mut(&mut self) -> Params<'_> {
        Params { params: &mut self.params, grads: None }
    }
}

/// Called by the training loop around every optimizer step.
pub trait TrainHook {
    /// After backward, before the update: may rewrite gradients (e.g. tie shared weights).
    fn before_step(&mut self, _params: &mut Params<'_>) {}
    /// After every update: may rewrite weights (e.g. re-apply a pruning mask).
    fn after_step(&mut self, _params: &mut Params<'_>) {}
}

/// A hook that does nothing.
pub struct NoHook;
impl TrainHook for NoHook {}

/// Progress of training or evaluation, reported after every batch.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Current epoch (1-based; 0 for evaluation).
    pub epoch: usize,
    /// Batches done in this epoch.
    pub step: usize,
    /// Batches per epoch.
    pub steps: usize,
    /// Mean loss so far in this epoch.
    pub loss: f64,
}

/// Statistics of one epoch.
#[derive(Debug, Clone)]
pub struct EpochStats {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training top-1 accuracy (on the fly, with training-mode batch norm and dropout).
    pub accuracy: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// Loss and accuracy on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub top1: f64,
    /// Top-5 accuracy in [0, 1].
    pub top5: f64,
    /// Samples evaluated.
    pub samples: usize,
}

fn check_data(model: &Model, data: &Data, classes: usize) -> Result<usize, EngineError> {
    let per: usize = model.sample_shape().iter().product();
    if per == 0 || data.x.len() != per * data.y.len() {
        return Err(EngineError::Data(format!(
            "model input takes samples of shape {:?} ({per} values); data has {} values for {} labels",
            model.sample_shape(),
            data.x.len(),
            data.y.len()
        )));
    }
    if let Some(&bad) = data.y.iter().find(|&&l| l as usize >= classes) {
        return Err(EngineError::Data(format!(
            "label {bad} is out of range for a model with {classes} outputs"
        )));
    }
    Ok(per)
}

fn classes(model: &Model) -> Result<usize, EngineError> {
    let probe = vec![0.0; model.sample_shape().iter().product()];
    let logits = model.logits(&probe, 1)?;
    Ok(logits.data.len())
}

/// Trains `model` on `data` for `cfg.epochs` epochs, calling `hook` around every step and
/// `progress` after every batch.
pub fn train(
    model: &mut Model,
    data: Data,
    cfg: &TrainConfig,
    hook: &mut dyn TrainHook,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<EpochStats>, EngineError> {
    let mut trainer = Trainer::new(model, cfg)?;
    (0..cfg.epochs).map(|_| trainer.epoch(model, data, hook, progress)).collect()
}

/// Training state that lasts across epochs (optimizer moments, step count, random stream), so a
/// caller can do work between epochs, such as measuring the test set or pruning further.
pub struct Trainer {
    cfg: TrainConfig,
    states: Vec<State>,
    t: u64,
    epoch: usize,
    rng: Rng,
}

impl Trainer {
    /// A trainer for `model` with `cfg`; checks the configuration.
    pub fn new(model: &Model, cfg: &TrainConfig) -> Result<Trainer, EngineError> {
        cfg.optimizer.validate().map_err(EngineError::Config)?;
        if cfg.batch_size == 0 {
            return Err(EngineError::Config("batch size must be at least 1".into()));
        }
        let states = vec![State::default(); model.params.len()];
        Ok(Trainer { cfg: cfg.clone(), states, t: 0, epoch: 0, rng: Rng::new(cfg.seed) })
    }

    /// Runs the next epoch (the schedule counts epochs from the first call) minimising
    /// cross-entropy.
    pub fn epoch(
        &mut self,
        model: &mut Model,
        data: Data,
        hook: &mut dyn TrainHook,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<EpochStats, EngineError> {
        self.epoch_with(model, data, &mut CrossEntropy, hook, progress)
    }

    /// Runs the next epoch minimising `objective`.
    pub fn epoch_with(
        &mut self,
        model: &mut Model,
        data: Data,
        objective: &mut dyn Objective,
        hook: &mut dyn TrainHook,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<EpochStats, EngineError> {
        let cfg = &self.cfg;
        let classes = classes(model)?;
        let per = check_data(model, &data, classes)?;
        if self.states.len() != model.params.len() {
            return Err(EngineError::Config("the trainer was made for a different model".into()));
        }
        let tap_slots = model.tap_slots(&objective.taps())?;
        self.epoch += 1;
        let epoch = self.epoch;
        let n = data.y.len();
        let steps = n.div_ceil(cfg.batch_size);
        let start = Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut order);
        let mut stats = BatchStats::default();
        let mut lr = cfg.optimizer.lr();
        for (step, idx) in order.chunks(cfg.batch_size).enumerate() {
            let b = idx.len();
            let mut x = Vec::with_capacity(b * per);
            idx.iter().for_each(|&i| x.extend_from_slice(&data.x[i * per..(i + 1) * per]));
            let y: Vec<u32> = idx.iter().map(|&i| data.y[i]).collect();
            let tape = model.forward_train(x, b, &mut self.rng)?;
            let logits = &model.tape_logits(&tape).data;
            let taps: Vec<Tap> = tap_slots
                .iter()
                .map(|&s| {
                    let v = model.tape_value(&tape, s);
                    Tap { shape: &v.shape, data: &v.data }
                })
                .collect();
            let batch = Batch { indices: idx, labels: &y, logits, classes, taps: &taps };
            let out = objective.loss(&batch)?;
            let mean = out.loss as f32;
            if !mean.is_finite() {
                return Err(EngineError::Diverged { loss: mean, epoch, step: step + 1 });
            }
            stats.loss_sum += out.loss * b as f64;
            stats.top1 += top1_hits(logits, classes, &y);
            let extra: Vec<(usize, Vec<f32>)> =
                tap_slots.iter().zip(out.dtaps).filter_map(|(&s, g)| g.map(|g| (s, g))).collect();
            let mut grads = model.backward_with(tape, out.dlogits, extra);
            hook.before_step(&mut Params { params: &mut model.params, grads: Some(&mut grads) });
            self.t += 1;
            let progress_epochs = (epoch - 1) as f32 + step as f32 / steps as f32;
            lr = cfg.optimizer.lr() * cfg.schedule.factor(progress_epochs, cfg.epochs);
            for ((p, g), st) in model.params.iter_mut().zip(&grads).zip(&mut self.states) {
                if let (true, Some(g)) = (p.trainable, g) {
                    update(&cfg.optimizer, lr, self.t, &mut p.value.data, g, st);
                }
            }
            hook.after_step(&mut Params { params: &mut model.params, grads: None });
            let seen = (step * cfg.batch_size + b) as f64;
            progress(&Progress { epoch, step: step + 1, steps, loss: stats.loss_sum / seen });
        }
        Ok(EpochStats {
            epoch,
            loss: stats.loss_sum / n.max(1) as f64,
            accuracy: stats.top1 as f64 / n.max(1) as f64,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// Rows whose label has the largest logit (ties count against, as in cross-entropy's metrics).
fn top1_hits(logits: &[f32], classes: usize, labels: &[u32]) -> usize {
    logits.chunks(classes).zip(labels).filter(|(row, &y)| !row.iter().any(|&v| v > row[y as usize])).count()
}

/// Loss, top-1 and top-5 accuracy of `model` on `data`, in batches of `batch_size`.
pub fn evaluate(
    model: &Model,
    data: Data,
    batch_size: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Metrics, EngineError> {
    let per = check_data(model, &data, classes(model)?)?;
    let n = data.y.len();
    let bs = batch_size.max(1);
    let steps = n.div_ceil(bs);
    let mut s = BatchStats::default();
    for (step, start) in (0..n).step_by(bs).enumerate() {
        let end = (start + bs).min(n);
        let logits = model.logits(&data.x[start * per..end * per], end - start)?;
        let (b, _) = cross_entropy(&logits.data, end - start, &data.y[start..end], false);
        s.loss_sum += b.loss_sum;
        s.top1 += b.top1;
        s.top5 += b.top5;
        progress(&Progress { epoch: 0, step: step + 1, steps, loss: s.loss_sum / end as f64 });
    }
    let n = n.max(1) as f64;
    Ok(Metrics {
        loss: s.loss_sum / n,
        top1: s.top1 as f64 / n,
        top5: s.top5 as f64 / n,
        samples: data.y.len(),
    })
}
