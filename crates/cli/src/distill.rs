//! `deepshrink distill`: train a student against a teacher (soft targets, hints or attention
//! transfer) and, under the same budget and seeds, the same student without the teacher.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use deepshrink_compress::distill::{self, DistillConfig, Method, Plan};
use deepshrink_engine::{Data, Model, NoHook, Optimizer, Schedule, TrainConfig, Trainer};
use deepshrink_eval::Accuracy;
use deepshrink_graph::Graph;
use deepshrink_io::idx::{self, Split};
use serde::Serialize;

use crate::{data, exit, progress};

/// Distillation methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Soft targets (Hinton et al. 2015).
    Kd,
    /// FitNets hints, stage-wise, then soft targets (Romero et al. 2015).
    Hint,
    /// Attention transfer (Zagoruyko and Komodakis 2017).
    At,
}

/// Arguments of `deepshrink distill`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The teacher: a trained .onnx model (or a zoo name, initialised from --seed).
    #[arg(long)]
    pub teacher: String,
    /// The student: a zoo network (e.g. cnn-small, cnn-tiny) or an .onnx model.
    #[arg(long)]
    pub student: String,
    /// Directory of IDX files laid out like MNIST.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Distillation method.
    #[arg(long, value_enum, default_value_t = MethodArg::Kd)]
    pub method: MethodArg,
    /// Softmax temperature of the soft targets (> 0).
    #[arg(long, default_value_t = 4.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Weight of the soft-target term, in [0, 1].
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub alpha: f32,
    /// Weight of the attention-transfer term.
    #[arg(long, default_value_t = 1000.0, allow_negative_numbers = true)]
    pub beta: f32,
    /// Hint layers as STUDENT_TENSOR:TEACHER_TENSOR (default: the middle pair of feature maps
    /// of equal spatial size).
    #[arg(long)]
    pub hint: Option<String>,
    /// Train the hint without a regressor (the two layers must then have the same shape).
    #[arg(long)]
    pub no_regressor: bool,
    /// Epochs of the hint stage (counted in --epochs).
    #[arg(long, default_value_t = 1)]
    pub hint_epochs: usize,
    /// Attention pairs as S:T,S:T,... (default: for each spatial size, the last feature maps).
    #[arg(long, value_delimiter = ',')]
    pub at_pairs: Vec<String>,
    /// Passes over the training set (for every run, distilled and baseline).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam learning rate (cosine schedule).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// First seed (student initialisation, shuffling, dropout).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of seeds: runs seed, seed+1, ...; the report gives mean and spread.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Train on the first N training samples only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip the baseline (the student trained without the teacher).
    #[arg(long)]
    pub no_baseline: bool,
    /// Write the distilled student of the first seed here (.onnx).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the report here (JSON).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Serialize)]
struct NetReport {
    name: String,
    params: usize,
    macs: u64,
    test: Option<Accuracy>,
}

#[derive(Serialize)]
struct Run {
    seed: u64,
    distilled: Accuracy,
    baseline: Option<Accuracy>,
    distill_seconds: f64,
}

#[derive(Serialize, Clone, Copy)]
struct Spread {
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
}

fn spread(v: &[f64]) -> Spread {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    Spread {
        mean,
        std: var.sqrt(),
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

#[derive(Serialize)]
struct Report {
    teacher: NetReport,
    student: NetReport,
    method: Method,
    config: DistillConfig,
    plan: Plan,
    epochs: usize,
    batch_size: usize,
    lr: f32,
    train_samples: usize,
    /// Wall time of the teacher's pass over the training set (once, shared by every seed).
    teacher_seconds: f64,
    runs: Vec<Run>,
    /// Test top-1 over the seeds (sample standard deviation).
    distilled_top1: Spread,
    baseline_top1: Option<Spread>,
}

fn pair(s: &str, what: &str) -> anyhow::Result<[String; 2]> {
    match s.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok([a.to_string(), b.to_string()]),
        _ => anyhow::bail!("{what} '{s}' must be STUDENT_TENSOR:TEACHER_TENSOR"),
    }
}

impl Args {
    fn distill_config(&self) -> anyhow::Result<DistillConfig> {
        let [hint_student, hint_teacher] = match &self.hint {
            Some(h) => pair(h, "--hint")?,
            None => [String::new(), String::new()],
        };
        let cfg = DistillConfig {
            method: match self.method {
                MethodArg::Kd => Method::Kd,
                MethodArg::Hint => Method::Hint,
                MethodArg::At => Method::At,
            },
            temperature: self.temperature,
            alpha: self.alpha,
            hint_student,
            hint_teacher,
            regressor: !self.no_regressor,
            hint_epochs: self.hint_epochs,
            at_pairs: self.at_pairs.iter().map(|p| pair(p, "--at-pairs entry")).collect::<Result<_, _>>()?,
            beta: self.beta,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn train_config(&self, seed: u64) -> anyhow::Result<TrainConfig> {
        anyhow::ensure!(self.epochs >= 1, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "--batch-size must be at least 1");
        anyhow::ensure!(self.seeds >= 1, "--seeds must be at least 1");
        let optimizer = Optimizer::adam(self.lr);
        optimizer.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer,
            schedule: Schedule::Cosine { min_factor: 0.0 },
            seed,
        })
    }
}

fn net_report(g: &Graph, test: Option<Accuracy>) -> anyhow::Result<NetReport> {
    let macs = g.node_costs(1)?.iter().map(|c| c.macs).sum();
    Ok(NetReport { name: g.name.clone(), params: g.param_count(), macs, test })
}

/// Runs `distill`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.distill_config()?;
    args.train_config(args.seed)?;
    let teacher = data::model_graph(&args.teacher, args.seed).context("teacher")?;
    let student0 = data::model_graph(&args.student, args.seed).context("student")?;
    let plan = distill::plan(&cfg, &teacher, &student0)?;
    let teacher_model = Model::new(teacher.clone()).with_context(|| format!("teacher '{}'", args.teacher))?;
    let student_model =
        Model::new(student0.clone()).with_context(|| format!("student '{}'", args.student))?;
    let mut train_set = idx::load_dir(&args.data, Split::Train, Default::default())?;
    if let Some(n) = args.limit {
        train_set = train_set.limit(n);
    }
    let test_set = idx::load_dir(&args.data, Split::Test, Default::default())?;
    data::check_fits(&teacher_model, &train_set, &args.data)?;
    data::check_fits(&student_model, &train_set, &args.data)?;
    let train_data = Data { x: &train_set.images, y: &train_set.labels };
    let test_data = Data { x: &test_set.images, y: &test_set.labels };
    let teacher_test = data::evaluate(&teacher_model, test_data, "teacher")?;
    drop((teacher_model, student_model));
    exit::print(&format!("teacher {}: test {teacher_test}\n", teacher.name))?;

    // The teacher's outputs on the training set, once for every seed and epoch.
    let start = std::time::Instant::now();
    let cache = distill::TeacherOutputs::new(&teacher, train_data.x, &cfg, &plan)?;
    let teacher_seconds = start.elapsed().as_secs_f64();
    let steps = train_set.len().div_ceil(args.batch_size) as u64;
    let mut runs = Vec::new();
    for seed in args.seed..args.seed + args.seeds {
        let tcfg = args.train_config(seed)?;
        let student = data::model_graph(&args.student, seed)?;
        let bar = progress::bar(steps * args.epochs as u64, &format!("distil seed {seed}"));
        let start = std::time::Instant::now();
        let (graph, _) = {
            let mut done = 0u64;
            let mut on_step = |_: &deepshrink_engine::Progress| {
                done += 1;
                bar.set_position(done);
            };
            let student = student.clone();
            distill::distill_with(
                &cache,
                &teacher,
                student,
                train_data,
                &cfg,
                &tcfg,
                &mut NoHook,
                &mut on_step,
            )?
        };
        bar.finish_and_clear();
        let distill_seconds = start.elapsed().as_secs_f64();
        let distilled = data::evaluate(&Model::new(graph.clone())?, test_data, "test")?;
        if seed == args.seed {
            if let Some(out) = &args.out {
                deepshrink_io::onnx::save(&graph, out)?;
            }
        }
        let baseline = if args.no_baseline {
            None
        } else {
            let mut model = Model::new(student)?;
            let mut trainer = Trainer::new(&model, &tcfg)?;
            let bar = progress::bar(steps * args.epochs as u64, &format!("baseline seed {seed}"));
            for e in 0..args.epochs {
                let mut on_step = |p: &deepshrink_engine::Progress| {
                    bar.set_position(e as u64 * steps + p.step as u64);
                };
                trainer.epoch(&mut model, train_data, &mut NoHook, &mut on_step)?;
            }
            bar.finish_and_clear();
            Some(data::evaluate(&model, test_data, "test")?)
        };
        exit::print(&format!(
            "seed {seed}: {} {distilled}{}\n",
            args.method.to_possible_value().expect("named").get_name(),
            baseline.map(|b| format!("; alone {b}")).unwrap_or_default()
        ))?;
        runs.push(Run { seed, distilled, baseline, distill_seconds });
    }
    let top1 = |f: &dyn Fn(&Run) -> Option<f64>| -> Option<Spread> {
        let v: Vec<f64> = runs.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| spread(&v))
    };
    let distilled_top1 = top1(&|r| Some(r.distilled.top1)).expect("at least one seed");
    let baseline_top1 = top1(&|r| r.baseline.map(|b| b.top1));
    let report = Report {
        teacher: net_report(&teacher, Some(teacher_test))?,
        student: net_report(&student0, None)?,
        method: cfg.method,
        config: cfg,
        plan,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        train_samples: train_set.len(),
        teacher_seconds,
        runs,
        distilled_top1,
        baseline_top1,
    };
    let pct = |s: Spread| format!("{:.2}% ± {:.2}", s.mean * 100.0, s.std * 100.0);
    exit::print(&format!(
        "{} ({} params, {} MACs) from {} ({} params, {} MACs): distilled {}{}\n",
        report.student.name,
        report.student.params,
        report.student.macs,
        report.teacher.name,
        report.teacher.params,
        report.teacher.macs,
        pct(distilled_top1),
        baseline_top1.map(|b| format!(", alone {}", pct(b))).unwrap_or_default()
    ))?;
    if let Some(path) = &args.report {
        deepshrink_io::write_atomic(
            path,
            format!("{}\n", serde_json::to_string_pretty(&report)?).as_bytes(),
        )?;
    }
    Ok(())
}
