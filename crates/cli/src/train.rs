//! `deepshrink train`: train a zoo network or an ONNX model on an IDX data set.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use deepshrink_engine::{Data, EpochStats, Model, NoHook, Optimizer, Schedule, TrainConfig, Trainer};
use deepshrink_eval::Accuracy;
use deepshrink_io::idx::{self, Split};
use serde::Serialize;

use crate::{data, exit, progress};

/// Update rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Opt {
    /// Adam (Kingma and Ba 2015).
    Adam,
    /// AdamW: Adam with decoupled weight decay.
    Adamw,
    /// SGD with momentum.
    Sgd,
}

/// Learning-rate schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sched {
    /// The same rate throughout.
    Constant,
    /// Multiply by --gamma every --step-every epochs.
    Step,
    /// Cosine annealing to zero over the run.
    Cosine,
}

/// Arguments of `deepshrink train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A zoo network (lenet-300-100, lenet-5, vgg-small, resnet-20) or an .onnx model to
    /// continue training.
    #[arg(long)]
    pub model: String,
    /// Directory of IDX files laid out like MNIST.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = Opt::Adam)]
    pub optimizer: Opt,
    /// Learning rate (default: 1e-3 for Adam/AdamW, 0.05 for SGD).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Momentum for SGD.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Use Nesterov momentum with SGD.
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Sched::Cosine)]
    pub schedule: Sched,
    /// Epochs between decays for the step schedule.
    #[arg(long, default_value_t = 5)]
    pub step_every: usize,
    /// Decay factor for the step schedule.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f32,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training samples only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip the test-set evaluation after each epoch (only the final one runs).
    #[arg(long)]
    pub no_epoch_eval: bool,
    /// Write the trained model here (.onnx).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EpochReport {
    epoch: usize,
    train_loss: f64,
    train_top1: f64,
    lr: f32,
    seconds: f64,
    test: Option<Accuracy>,
}

#[derive(Serialize)]
struct Report {
    model: String,
    params: usize,
    seed: u64,
    epochs: Vec<EpochReport>,
    test: Accuracy,
    out: Option<String>,
}

impl Args {
    /// Defaults for a quick run (used by `demo`), quiet between epochs.
    pub fn for_demo(
        model: &str,
        data: &std::path::Path,
        epochs: usize,
        seed: u64,
        out: &std::path::Path,
    ) -> Args {
        Args {
            model: model.into(),
            data: data.to_path_buf(),
            epochs,
            batch_size: 128,
            optimizer: Opt::Adam,
            lr: None,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            schedule: Sched::Cosine,
            step_every: 5,
            gamma: 0.1,
            seed,
            limit: None,
            no_epoch_eval: true,
            out: Some(out.to_path_buf()),
            json: false,
        }
    }

    fn config(&self) -> anyhow::Result<TrainConfig> {
        anyhow::ensure!(self.epochs >= 1, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "--batch-size must be at least 1");
        let lr = self.lr.unwrap_or(if self.optimizer == Opt::Sgd { 0.05 } else { 1e-3 });
        let optimizer = match self.optimizer {
            Opt::Sgd => Optimizer::Sgd {
                lr,
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay,
            },
            Opt::Adam | Opt::Adamw => Optimizer::Adam {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: self.weight_decay,
                decoupled: self.optimizer == Opt::Adamw,
            },
        };
        optimizer.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let schedule = match self.schedule {
            Sched::Constant => Schedule::Constant,
            Sched::Step => {
                anyhow::ensure!(self.step_every >= 1, "--step-every must be at least 1");
                Schedule::Step { every: self.step_every, gamma: self.gamma }
            }
            Sched::Cosine => Schedule::Cosine { min_factor: 0.0 },
        };
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer,
            schedule,
            seed: self.seed,
        })
    }
}

/// Runs `train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let graph = data::model_graph(&args.model, args.seed)?;
    let name = graph.name.clone();
    let params = graph.param_count();
    let mut model = Model::new(graph).with_context(|| format!("model '{}'", args.model))?;
    let mut train_set = idx::load_dir(&args.data, Split::Train, Default::default())?;
    if let Some(n) = args.limit {
        train_set = train_set.limit(n);
    }
    let test_set = idx::load_dir(&args.data, Split::Test, Default::default())?;
    data::check_fits(&model, &train_set, &args.data)?;
    let train_data = Data { x: &train_set.images, y: &train_set.labels };
    let test_data = Data { x: &test_set.images, y: &test_set.labels };

    let mut trainer = Trainer::new(&model, &cfg)?;
    let mut epochs = Vec::new();
    for epoch in 1..=cfg.epochs {
        let bar = progress::bar(
            train_set.len().div_ceil(cfg.batch_size) as u64,
            &format!("epoch {epoch}/{}", cfg.epochs),
        );
        let stats: EpochStats = {
            let mut on_step = |p: &deepshrink_engine::Progress| {
                bar.set_position(p.step as u64);
                bar.set_message(format!("epoch {epoch} loss {:.4}", p.loss));
            };
            trainer.epoch(&mut model, train_data, &mut NoHook, &mut on_step)?
        };
        bar.finish_and_clear();
        let test = if !args.no_epoch_eval || epoch == cfg.epochs {
            Some(data::evaluate(&model, test_data, "test")?)
        } else {
            None
        };
        let line = format!(
            "epoch {epoch}/{}: train loss {:.4}, train top-1 {:.2}%, lr {:.2e}, {:.2} s{}",
            cfg.epochs,
            stats.loss,
            stats.accuracy * 100.0,
            stats.lr,
            stats.seconds,
            test.map(|t| format!(", test top-1 {:.2}%", t.top1 * 100.0)).unwrap_or_default()
        );
        if args.json {
            eprintln!("{line}");
        } else {
            exit::print(&format!("{line}\n"))?;
        }
        epochs.push(EpochReport {
            epoch,
            train_loss: stats.loss,
            train_top1: stats.accuracy,
            lr: stats.lr,
            seconds: stats.seconds,
            test,
        });
    }
    let test = epochs.last().and_then(|e| e.test).expect("the last epoch is always evaluated");
    if let Some(out) = &args.out {
        deepshrink_io::onnx::save(&model.to_graph(), out)?;
    }
    let report = Report {
        model: name,
        params,
        seed: args.seed,
        epochs,
        test,
        out: args.out.as_ref().map(|p| p.display().to_string()),
    };
    if args.json {
        exit::print(&format!("{}\n", serde_json::to_string(&report)?))?;
    } else {
        exit::print(&format!(
            "{}: {} parameters, test {}{}\n",
            report.model,
            report.params,
            report.test,
            report.out.as_ref().map(|o| format!(", written to {o}")).unwrap_or_default()
        ))?;
    }
    Ok(())
}
