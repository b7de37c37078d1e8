//! Knowledge distillation: train a small student to mimic a large teacher.
//!
//! **What it does.** Trains a student graph against a teacher graph run in inference mode (batch
//! norm on running statistics, no dropout). The teacher runs once over the training set before
//! training: its logits, hint activations and attention maps are kept per sample (there is no
//! data augmentation, so they do not change between epochs) and every batch looks them up.
//! Three methods:
//! - `kd`, soft targets (Hinton, Vinyals and Dean 2015): `α·T²·KL(p_t^T ‖ p_s^T) + (1−α)·CE`.
//! - `hint`, FitNets (Romero et al. 2015), stage-wise as in the paper: for `hint_epochs` the
//!   student's guided layer, through a learned regressor (1x1 convolution for feature maps, a
//!   linear layer for vectors), is trained to match the teacher's hint layer (mean squared error);
//!   then the whole student is trained with `kd` for the remaining epochs. The regressor is extra
//!   nodes of a training copy of the student and is removed from the result.
//! - `at`, activation-based attention transfer (Zagoruyko and Komodakis 2017):
//!   `CE + β/2·Σ_pairs mean((Q_s/‖Q_s‖ − Q_t/‖Q_t‖)²)` with `Q = mean_c A_c²`, β = 1000 as in the
//!   paper's code.
//!
//! Layers are named by tensor; left empty they are paired automatically: for each spatial size
//! the last feature map of that size in each network (the outputs of the "groups" the papers
//! pair), and the hint is the middle pair.
//!
//! **When to use it.** To train a compact architecture (or fine-tune a compressed model) when a
//! larger, more accurate model of the same task exists.
//!
//! **What it costs.** One teacher inference pass over the training set, and memory for the
//! cached teacher outputs (hints: the hint layer's size per sample, 4 bytes a value). Accuracy:
//! the student usually gains (bench/results/distillation/).
//!
//! **Example** (`deepshrink distill` takes the same settings as flags):
//! ```toml
//! method = "kd"
//! temperature = 4.0
//! alpha = 0.9
//! ```

use deepshrink_engine::distill_loss::{attention, attention_map, hint, kd};
use deepshrink_engine::rng::Rng;
use deepshrink_engine::{
    Batch, Data, EpochStats, LossGrad, Model, Objective, Progress, TrainConfig, TrainHook, Trainer,
};
use deepshrink_graph::{ConvAttrs, Graph, Node, Op, Tensor};
use serde::{Deserialize, Serialize};

use crate::CompressError;

/// Name of the hint regressor node (and prefix of its weights) in the training copy.
pub const REGRESSOR: &str = "distill.regressor";

/// Distillation methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Soft targets (Hinton et al. 2015).
    Kd,
    /// FitNets hints, then soft targets (Romero et al. 2015).
    Hint,
    /// Attention transfer (Zagoruyko and Komodakis 2017).
    At,
}

/// Distillation settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// The method.
    pub method: Method,
    /// Softmax temperature T of the soft targets (> 0).
    pub temperature: f32,
    /// Weight α of the soft-target term, in [0, 1]; 1 − α weighs the labels' cross-entropy.
    pub alpha: f32,
    /// Student tensor guided by the hint (empty: automatic).
    pub hint_student: String,
    /// Teacher tensor giving the hint (empty: automatic).
    pub hint_teacher: String,
    /// Learn a regressor from the guided layer to the hint layer; without one their shapes must
    /// be equal.
    pub regressor: bool,
    /// Epochs of the hint stage (the rest of the budget trains with soft targets).
    pub hint_epochs: usize,
    /// Attention-transfer pairs `[student tensor, teacher tensor]` (empty: automatic).
    pub at_pairs: Vec<[String; 2]>,
    /// Weight β of the attention-transfer term.
    pub beta: f32,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            method: Method::Kd,
            temperature: 4.0,
            alpha: 0.9,
            hint_student: String::new(),
            hint_teacher: String::new(),
            regressor: true,
            hint_epochs: 1,
            at_pairs: Vec::new(),
            beta: 1000.0,
        }
    }
}

fn config_err(detail: String) -> CompressError {
    CompressError::Config { pass: "distill", detail }
}

impl DistillConfig {
    /// Checks ranges: T > 0, α in [0, 1], β ≥ 0, at least one hint epoch.
    pub fn validate(&self) -> Result<(), CompressError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(config_err(format!("temperature must be > 0, got {}", self.temperature)));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(config_err(format!("alpha must be in [0, 1], got {}", self.alpha)));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(config_err(format!("beta must be >= 0, got {}", self.beta)));
        }
        if self.hint_epochs == 0 {
            return Err(config_err("hint_epochs must be at least 1".into()));
        }
        if self.hint_student.is_empty() != self.hint_teacher.is_empty() {
            return Err(config_err("name both hint layers (student and teacher) or neither".into()));
        }
        Ok(())
    }
}

/// The layers a run uses, resolved and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Output classes of both networks.
    pub classes: usize,
    /// Guided student tensor and hint teacher tensor (method `hint`).
    pub hint: Option<(String, String)>,
    /// Attention-transfer pairs, student then teacher (method `at`).
    pub at_pairs: Vec<(String, String)>,
}

/// Sample shapes (batch dimension dropped) of every node output, in node order.
fn activations(g: &Graph) -> Result<Vec<(String, Vec<usize>)>, CompressError> {
    let shapes = g.infer_shapes(1).map_err(|e| config_err(format!("model '{}': {e}", g.name)))?;
    Ok(g.nodes.iter().map(|n| (n.outputs[0].clone(), shapes[&n.outputs[0]][1..].to_vec())).collect())
}

fn sample_shape(acts: &[(String, Vec<usize>)], name: &str, which: &str) -> Result<Vec<usize>, CompressError> {
    acts.iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| config_err(format!("the {which} has no tensor named '{name}'")))
}

/// The last feature map (`[c, h, w]`) of each spatial size, in order of first appearance.
fn groups(acts: &[(String, Vec<usize>)], output: &str) -> Vec<(String, [usize; 2])> {
    let mut out: Vec<(String, [usize; 2])> = Vec::new();
    for (name, s) in acts {
        if s.len() != 3 || name == output {
            continue;
        }
        let hw = [s[1], s[2]];
        match out.iter_mut().find(|(_, k)| *k == hw) {
            Some(slot) => slot.0 = name.clone(),
            None => out.push((name.clone(), hw)),
        }
    }
    out
}

fn classes(g: &Graph, which: &str) -> Result<usize, CompressError> {
    let out = &g.outputs[0].name;
    let shapes = g.infer_shapes(1).map_err(|e| config_err(format!("{which}: {e}")))?;
    Ok(shapes[out][1..].iter().product())
}

/// Resolves the layers of `cfg` for this teacher and student and checks they fit: the same
/// number of classes, hint shapes a regressor can map (or equal ones without it), attention
/// pairs of equal spatial size.
pub fn plan(cfg: &DistillConfig, teacher: &Graph, student: &Graph) -> Result<Plan, CompressError> {
    cfg.validate()?;
    let (kt, ks) = (classes(teacher, "teacher")?, classes(student, "student")?);
    if kt != ks {
        return Err(config_err(format!(
            "the teacher has {kt} output classes and the student {ks}; they must be the same"
        )));
    }
    let (ta, sa) = (activations(teacher)?, activations(student)?);
    let auto: Vec<(String, String)> = {
        let tg = groups(&ta, &teacher.outputs[0].name);
        groups(&sa, &student.outputs[0].name)
            .into_iter()
            .filter_map(|(s, hw)| tg.iter().find(|(_, k)| *k == hw).map(|(t, _)| (s, t.clone())))
            .collect()
    };
    let mut plan = Plan { classes: ks, hint: None, at_pairs: Vec::new() };
    match cfg.method {
        Method::Kd => {}
        Method::Hint => {
            let (s, t) = if cfg.hint_student.is_empty() {
                auto.get(auto.len().saturating_sub(1) / 2).cloned().ok_or_else(|| {
                    config_err(
                        "no feature maps of equal spatial size to pair for a hint; name the layers".into(),
                    )
                })?
            } else {
                (cfg.hint_student.clone(), cfg.hint_teacher.clone())
            };
            let (ss, ts) = (sample_shape(&sa, &s, "student")?, sample_shape(&ta, &t, "teacher")?);
            check_hint_shapes(&s, &ss, &t, &ts, cfg.regressor)?;
            plan.hint = Some((s, t));
        }
        Method::At => {
            let pairs: Vec<(String, String)> = if cfg.at_pairs.is_empty() {
                auto
            } else {
                cfg.at_pairs.iter().map(|[s, t]| (s.clone(), t.clone())).collect()
            };
            if pairs.is_empty() {
                return Err(config_err("no feature maps of equal spatial size to pair for attention".into()));
            }
            for (s, t) in &pairs {
                let (ss, ts) = (sample_shape(&sa, s, "student")?, sample_shape(&ta, t, "teacher")?);
                if ss.len() != 3 || ts.len() != 3 || ss[1..] != ts[1..] {
                    return Err(config_err(format!(
                        "attention pair '{s}' {ss:?} and '{t}' {ts:?}: both must be feature maps of \
                         the same spatial size"
                    )));
                }
            }
            plan.at_pairs = pairs;
        }
    }
    Ok(plan)
}

fn check_hint_shapes(
    s: &str,
    ss: &[usize],
    t: &str,
    ts: &[usize],
    regressor: bool,
) -> Result<(), CompressError> {
    if !regressor {
        if ss != ts {
            return Err(config_err(format!(
                "hint layers '{s}' {ss:?} and '{t}' {ts:?} have different shapes; they need a regressor"
            )));
        }
        return Ok(());
    }
    let ok = match (ss.len(), ts.len()) {
        (3, 3) => ss[1..] == ts[1..],
        (1, 1) => true,
        _ => false,
    };
    if !ok {
        return Err(config_err(format!(
            "hint layers '{s}' {ss:?} and '{t}' {ts:?}: a regressor maps feature maps of the same \
             spatial size (1x1 convolution) or vectors (linear)"
        )));
    }
    Ok(())
}

/// Adds the hint regressor after the guided tensor `tap` (sample shape `ss`, to `ts`); returns
/// the name of its output. Weights start as PyTorch's default (uniform in ±1/sqrt(fan_in)).
fn add_regressor(g: &mut Graph, tap: &str, ss: &[usize], ts: &[usize], seed: u64) -> String {
    let mut rng = Rng::new(seed ^ 0x5eed_4e6e);
    let (cin, cout) = (ss[0], ts[0]);
    let bound = 1.0 / (cin as f32).sqrt();
    let mut uni = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.range(-bound, bound)).collect() };
    let (wshape, op) = if ss.len() == 3 {
        (vec![cout, cin, 1, 1], Op::Conv(ConvAttrs::default()))
    } else {
        (vec![cout, cin], Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true })
    };
    let w = Tensor::f32(wshape, uni(cout * cin));
    let b = Tensor::f32(vec![cout], uni(cout));
    let (wn, bn) = (format!("{REGRESSOR}.weight"), format!("{REGRESSOR}.bias"));
    g.add_weight(&wn, w);
    g.add_weight(&bn, b);
    let at = g.nodes.iter().position(|n| n.outputs[0] == tap).map_or(0, |i| i + 1);
    let node = Node {
        name: REGRESSOR.into(),
        op,
        inputs: vec![tap.into(), wn, bn],
        outputs: vec![REGRESSOR.into()],
    };
    g.nodes.insert(at, node);
    REGRESSOR.into()
}

/// Removes the hint regressor from a training copy.
pub fn strip_regressor(mut g: Graph) -> Graph {
    g.nodes.retain(|n| n.name != REGRESSOR);
    g.weights.retain(|k, _| !k.starts_with(&format!("{REGRESSOR}.")));
    g
}

/// What the teacher said about every training sample: its logits and, for `hint` and `at`, the
/// hint activation or the attention maps. Built once per teacher, method and training set, and
/// reusable for every seed (there is no augmentation, so the teacher's outputs never change).
pub struct TeacherOutputs {
    method: Method,
    classes: usize,
    logits: Vec<f32>,
    /// Per tap: values per sample and the values (a hint activation or an attention map).
    taps: Vec<(usize, Vec<f32>)>,
}

impl TeacherOutputs {
    /// Runs `teacher` over the training samples `x` as `plan` requires for `cfg.method` (logits;
    /// plus the hint layer for `hint`, the attention maps for `at`).
    pub fn new(
        teacher: &Graph,
        x: &[f32],
        cfg: &DistillConfig,
        plan: &Plan,
    ) -> Result<TeacherOutputs, CompressError> {
        let (names, maps): (Vec<String>, Vec<bool>) = match cfg.method {
            Method::Kd => (Vec::new(), Vec::new()),
            Method::Hint => plan.hint.iter().map(|(_, t)| (t.clone(), false)).unzip(),
            Method::At => plan.at_pairs.iter().map(|(_, t)| (t.clone(), true)).unzip(),
        };
        let model = Model::new(teacher.clone())?;
        let per: usize = model.sample_shape().iter().product();
        let cache = TeacherOutputs::build(&model, x, x.len() / per.max(1), &names, &maps)?;
        Ok(TeacherOutputs { method: cfg.method, ..cache })
    }

    /// Number of samples covered.
    pub fn len(&self) -> usize {
        self.logits.len() / self.classes.max(1)
    }

    /// Whether no sample is covered.
    pub fn is_empty(&self) -> bool {
        self.logits.is_empty()
    }

    /// Runs the teacher over `x` in batches; `maps[i]` turns tap `i` into an attention map.
    fn build(
        teacher: &Model,
        x: &[f32],
        n: usize,
        names: &[String],
        maps: &[bool],
    ) -> Result<TeacherOutputs, CompressError> {
        let per: usize = teacher.sample_shape().iter().product();
        let bs = 256;
        let mut c = TeacherOutputs {
            method: Method::Kd,
            classes: 0,
            logits: Vec::new(),
            taps: vec![(0, Vec::new()); names.len()],
        };
        for start in (0..n).step_by(bs) {
            let end = (start + bs).min(n);
            let (logits, taps) = teacher.forward_taps(&x[start * per..end * per], end - start, names)?;
            c.classes = logits.len() / (end - start);
            c.logits.extend_from_slice(&logits);
            for ((shape, data), (slot, map)) in taps.into_iter().zip(c.taps.iter_mut().zip(maps)) {
                let v = if *map { attention_map(&data, &shape) } else { data };
                slot.0 = v.len() / (end - start);
                slot.1.extend_from_slice(&v);
            }
        }
        Ok(c)
    }

    fn gather(&self, tap: Option<usize>, idx: &[usize]) -> Vec<f32> {
        let (per, v) = match tap {
            Some(t) => (self.taps[t].0, &self.taps[t].1),
            None => (self.classes, &self.logits),
        };
        idx.iter().flat_map(|&i| v[i * per..(i + 1) * per].iter().copied()).collect()
    }
}

enum Stage {
    Soft,
    Hint,
    Attention,
}

struct DistillObjective<'a> {
    cache: &'a TeacherOutputs,
    cfg: &'a DistillConfig,
    stage: Stage,
    taps: Vec<String>,
}

impl Objective for DistillObjective<'_> {
    fn taps(&self) -> Vec<String> {
        self.taps.clone()
    }

    fn loss(&mut self, b: &Batch<'_>) -> Result<LossGrad, deepshrink_engine::EngineError> {
        let cfg = self.cfg;
        Ok(match self.stage {
            Stage::Soft => {
                let t = self.cache.gather(None, b.indices);
                let (loss, dlogits) = kd(b.logits, &t, b.labels, cfg.temperature, cfg.alpha);
                LossGrad { loss, dlogits, dtaps: Vec::new() }
            }
            Stage::Hint => {
                let t = self.cache.gather(Some(0), b.indices);
                let (loss, g) = hint(b.taps[0].data, &t);
                LossGrad { loss, dlogits: vec![0.0; b.logits.len()], dtaps: vec![Some(g)] }
            }
            Stage::Attention => {
                // Cross-entropy is the KD loss with α = 0 (the teacher argument is unused).
                let (mut loss, dlogits) = kd(b.logits, b.logits, b.labels, 1.0, 0.0);
                let mut dtaps = Vec::new();
                for (i, tap) in b.taps.iter().enumerate() {
                    let t = self.cache.gather(Some(i), b.indices);
                    let (l, g) = attention(tap.data, tap.shape, &t, cfg.beta);
                    loss += l;
                    dtaps.push(Some(g));
                }
                LossGrad { loss, dlogits, dtaps }
            }
        })
    }
}

/// Trains `student` against `teacher` on `data` for `train.epochs` epochs in all (for `hint`,
/// `hint_epochs` of them in the hint stage), calling `hook` around every step. Returns the
/// trained student (without any regressor) and the statistics of every epoch.
pub fn distill(
    teacher_graph: &Graph,
    student: Graph,
    data: Data,
    cfg: &DistillConfig,
    train: &TrainConfig,
    hook: &mut dyn TrainHook,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Graph, Vec<EpochStats>), CompressError> {
    let plan = plan(cfg, teacher_graph, &student)?;
    let cache = TeacherOutputs::new(teacher_graph, data.x, cfg, &plan)?;
    distill_with(&cache, teacher_graph, student, data, cfg, train, hook, progress)
}

/// [`distill`] with the teacher's outputs computed beforehand ([`TeacherOutputs::new`] for the
/// same teacher, training samples and settings), e.g. once for several seeds.
#[allow(clippy::too_many_arguments)]
pub fn distill_with(
    cache: &TeacherOutputs,
    teacher_graph: &Graph,
    student: Graph,
    data: Data,
    cfg: &DistillConfig,
    train: &TrainConfig,
    hook: &mut dyn TrainHook,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Graph, Vec<EpochStats>), CompressError> {
    let plan = plan(cfg, teacher_graph, &student)?;
    let n = data.y.len();
    let want_taps = match cfg.method {
        Method::Kd => 0,
        Method::Hint => 1,
        Method::At => plan.at_pairs.len(),
    };
    if cache.len() != n || cache.method != cfg.method || cache.taps.len() != want_taps {
        return Err(config_err(format!(
            "the teacher outputs cover {} samples for method {:?}; this run has {n} samples and method {:?}",
            cache.len(),
            cache.method,
            cfg.method
        )));
    }
    let mut stats = Vec::new();
    let mut student = student;
    if let Some((s, t)) = &plan.hint {
        if train.epochs <= cfg.hint_epochs {
            return Err(config_err(format!(
                "{} epochs leave none after {} hint epoch(s); give more epochs",
                train.epochs, cfg.hint_epochs
            )));
        }
        let (sa, ta) = (activations(&student)?, activations(teacher_graph)?);
        let (ss, ts) = (sample_shape(&sa, s, "student")?, sample_shape(&ta, t, "teacher")?);
        let mut g = student.clone();
        let tap = if cfg.regressor { add_regressor(&mut g, s, &ss, &ts, train.seed) } else { s.clone() };
        let mut model = Model::new(g)?;
        let stage_cfg = TrainConfig { epochs: cfg.hint_epochs, ..train.clone() };
        let mut trainer = Trainer::new(&model, &stage_cfg)?;
        let mut obj = DistillObjective { cache, cfg, stage: Stage::Hint, taps: vec![tap] };
        for _ in 0..cfg.hint_epochs {
            stats.push(trainer.epoch_with(&mut model, data, &mut obj, hook, progress)?);
        }
        student = strip_regressor(model.to_graph());
    }
    let (stage, student_taps) = match cfg.method {
        Method::Kd | Method::Hint => (Stage::Soft, Vec::new()),
        Method::At => (Stage::Attention, plan.at_pairs.iter().map(|(s, _)| s.clone()).collect()),
    };
    let mut model = Model::new(student)?;
    let stage_cfg = TrainConfig { epochs: train.epochs - stats.len(), ..train.clone() };
    let mut trainer = Trainer::new(&model, &stage_cfg)?;
    let mut obj = DistillObjective { cache, cfg, stage, taps: student_taps };
    for _ in 0..stage_cfg.epochs {
        stats.push(trainer.epoch_with(&mut model, data, &mut obj, hook, progress)?);
    }
    Ok((model.to_graph(), stats))
}
