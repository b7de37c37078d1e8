//! Distillation as the recovery step of a recipe: every fine-tuning of the pipeline (prune
//! retraining, centroid fine-tuning, QAT, hashing, factorization fine-tuning) trains against a
//! teacher's soft targets instead of the labels alone, while the pass's constraints still hold.
//!
//! **What**: a recipe's top-level `[teacher]` table names the teacher: `model = "self"` (the
//! default) is the input model before compression, anything else a path to an `.onnx` model
//! that the caller loads. The teacher runs once, in inference mode, over the training set before
//! the first pass; its logits are kept per sample and every fine-tuning batch looks them up. The
//! loss is `α·T²·KL(p_t^T ‖ p_s^T) + (1−α)·CE`, [`crate::distill`]'s `kd`; the
//! [`crate::ConstraintHook`] of the passes still projects the weights after every step.
//! **When**: a pass's fine-tuning has accuracy to recover (aggressive pruning, few bits, a short
//! fine-tuning budget): the uncompressed model's soft targets carry more per sample than labels.
//! **Cost**: one teacher pass over the training set and `4·classes` bytes per sample; the
//! comparison (`compare = true`) runs the whole recipe twice.
//! **Paper**: Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network"; the
//! use as the recovery step of compression follows Mishra and Marr 2018 (Apprentice).
//! **Recipe**:
//! ```toml
//! [teacher]
//! model = "self"     # or a path to an .onnx model
//! temperature = 4.0
//! alpha = 0.9
//! compare = true     # the CLI also runs the recipe without the teacher and reports both
//! ```

use deepshrink_engine::distill_loss::kd;
use deepshrink_engine::{Batch, Data, EngineError, LossGrad, Model, Objective};
use deepshrink_graph::Graph;
use serde::{Deserialize, Serialize};

use crate::distill::Method;
use crate::CompressError;

/// The value of `model` that names the input model before compression.
pub const SELF: &str = "self";

fn default_model() -> String {
    SELF.into()
}

/// The `[teacher]` table of a recipe.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// `"self"` (the input model before compression) or a path to an `.onnx` model.
    #[serde(default = "default_model")]
    pub model: String,
    /// Softmax temperature T of the soft targets (> 0).
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Weight α of the soft-target term, in [0, 1]; 1 − α weighs the labels' cross-entropy.
    #[serde(default = "default_alpha")]
    pub alpha: f32,
    /// Distillation method; fine-tuning takes soft targets (`kd`) only.
    #[serde(default = "default_method")]
    pub method: Method,
    /// Also run the recipe without the teacher (same seed) and report both (done by the caller,
    /// e.g. `deepshrink compress`).
    #[serde(default)]
    pub compare: bool,
}

fn default_temperature() -> f32 {
    4.0
}

fn default_alpha() -> f32 {
    0.9
}

fn default_method() -> Method {
    Method::Kd
}

impl Default for TeacherConfig {
    fn default() -> Self {
        TeacherConfig {
            model: default_model(),
            temperature: default_temperature(),
            alpha: default_alpha(),
            method: default_method(),
            compare: false,
        }
    }
}

fn err(detail: String) -> CompressError {
    CompressError::Config { pass: "teacher", detail }
}

impl TeacherConfig {
    /// Checks ranges: T > 0, α in [0, 1], method `kd`, a model named.
    pub fn validate(&self) -> Result<(), CompressError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(err(format!("temperature must be > 0, got {}", self.temperature)));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(err(format!("alpha must be in [0, 1], got {}", self.alpha)));
        }
        if self.method != Method::Kd {
            return Err(err(format!(
                "method {:?} is not available for fine-tuning; use \"kd\" (soft targets)",
                self.method
            )
            .to_lowercase()));
        }
        if self.model.trim().is_empty() {
            return Err(err("model must be \"self\" or a path to an .onnx model".into()));
        }
        Ok(())
    }

    /// Whether the teacher is the input model.
    pub fn is_self(&self) -> bool {
        self.model == SELF
    }
}

fn classes(g: &Graph, which: &str) -> Result<usize, CompressError> {
    let shapes = g.infer_shapes(1).map_err(|e| err(format!("{which} '{}': {e}", g.name)))?;
    Ok(shapes[&g.outputs[0].name][1..].iter().product())
}

/// The teacher's logits for every training sample and the soft-target loss built on them: the
/// objective of every fine-tuning step of a recipe with a teacher.
#[derive(Debug, Clone)]
pub struct SoftTargets {
    classes: usize,
    logits: Vec<f32>,
    temperature: f32,
    alpha: f32,
}

impl SoftTargets {
    /// Runs `teacher` over `train` in inference mode (batches of 256) and keeps its logits;
    /// checks that teacher and `student` have the same number of classes.
    pub fn new(
        cfg: &TeacherConfig,
        teacher: &Graph,
        student: &Graph,
        train: Data,
    ) -> Result<SoftTargets, CompressError> {
        cfg.validate()?;
        let (kt, ks) = (classes(teacher, "teacher")?, classes(student, "model")?);
        if kt != ks {
            return Err(err(format!(
                "the teacher '{}' has {kt} output classes and the model {ks}; they must be the same",
                teacher.name
            )));
        }
        let model = Model::new(teacher.clone())?;
        let per: usize = model.sample_shape().iter().product();
        let n = train.y.len();
        if train.x.len() != n * per {
            return Err(err(format!(
                "the teacher '{}' takes {per} values per sample; the training data has {}",
                teacher.name,
                train.x.len() / n.max(1)
            )));
        }
        let mut logits = Vec::with_capacity(n * kt);
        for start in (0..n).step_by(256) {
            let end = (start + 256).min(n);
            let (l, _) = model.forward_taps(&train.x[start * per..end * per], end - start, &[])?;
            logits.extend_from_slice(&l);
        }
        Ok(SoftTargets { classes: kt, logits, temperature: cfg.temperature, alpha: cfg.alpha })
    }

    /// Number of samples covered.
    pub fn len(&self) -> usize {
        self.logits.len() / self.classes.max(1)
    }

    /// Whether no sample is covered.
    pub fn is_empty(&self) -> bool {
        self.logits.is_empty()
    }
}

impl Objective for SoftTargets {
    fn loss(&mut self, b: &Batch<'_>) -> Result<LossGrad, EngineError> {
        let k = self.classes;
        if b.classes != k || b.indices.iter().any(|&i| (i + 1) * k > self.logits.len()) {
            return Err(EngineError::Config(
                "the teacher's soft targets were computed for other training data".into(),
            ));
        }
        let t: Vec<f32> =
            b.indices.iter().flat_map(|&i| self.logits[i * k..(i + 1) * k].iter().copied()).collect();
        let (loss, dlogits) = kd(b.logits, &t, b.labels, self.temperature, self.alpha);
        Ok(LossGrad { loss, dlogits, dtaps: Vec::new() })
    }
}

/// The soft targets of a recipe's teacher on `train`, if the recipe has one: `external` is the
/// teacher's graph when the recipe names a file, else the teacher is `model` itself.
pub(crate) fn soft_targets(
    cfg: Option<&TeacherConfig>,
    model: &Graph,
    external: Option<&Graph>,
    train: Data,
) -> Result<Option<SoftTargets>, CompressError> {
    let Some(cfg) = cfg else { return Ok(None) };
    let teacher = match external {
        Some(t) => t,
        None if cfg.is_self() => model,
        None => return Err(err(format!("the teacher '{}' names a file the caller did not load", cfg.model))),
    };
    SoftTargets::new(cfg, teacher, model, train).map(Some)
}
