//! Running a recipe: passes in order, fine-tuning under constraints, accuracy after every stage.

use std::collections::BTreeMap;
use std::time::Instant;

use deepshrink_codec::{CirculantTensor, HashedTensor, QuantMatrix, SparseMatrix, SparseValues};
use deepshrink_engine::{evaluate, Data, Model, Optimizer, Progress, Schedule, TrainConfig, Trainer};
use deepshrink_graph::{Graph, Op};
use serde::Serialize;

use crate::circulant::CirculantConfig;
use crate::constraint::{Codebook, Constraint};
use crate::factorize::{self, FactorRow, Method};
use crate::hashed::{hashed_codebook, HashConfig};
use crate::prune::{
    block_magnitude_mask, global_threshold, magnitude_mask, quality_mask, PruneConfig, Scope,
};
use crate::qat::QatConfig;
use crate::quantize::{quantize_tensor, QuantizeConfig};
use crate::share::{cluster, ShareConfig};
use crate::teacher::{self, SoftTargets};
use crate::{
    compressible_weights, CompressError, ConstraintHook, HuffmanConfig, LayerKind, PassConfig, Recipe,
};

/// The model under compression and the constraints on its weights.
pub struct State {
    /// The model, with constrained weights already applied.
    pub model: Model,
    /// Masks and codebooks by weight name.
    pub hook: ConstraintHook,
    /// Set by the huffman pass.
    pub huffman: Option<HuffmanConfig>,
    /// Index bits per shared weight.
    pub bits: BTreeMap<String, u8>,
    /// The compressible weights and their kinds, in node order.
    pub layers: Vec<(String, LayerKind)>,
    /// HashedNets layers: shared values and seed by weight name.
    pub hashed: BTreeMap<String, (usize, u64)>,
    /// Block-circulant layers: block size and sign seed by weight name.
    pub circulant: BTreeMap<String, (usize, Option<u64>)>,
    /// Weights quantized by the quantize pass (stored as integer codes, not sparse).
    pub quantized: BTreeMap<String, QuantMatrix>,
    /// The recipe's teacher: when set, every fine-tuning step trains against its soft targets.
    teacher: Option<SoftTargets>,
}

/// Data and settings shared by all passes.
pub struct Context<'a> {
    /// Training samples for retraining and fine-tuning.
    pub train: Data<'a>,
    /// Test samples, measured after every stage.
    pub test: Data<'a>,
    /// Batch size of retraining.
    pub batch_size: usize,
    /// Seed of retraining.
    pub seed: u64,
    /// Called after every training batch with the stage name.
    pub progress: &'a mut dyn FnMut(&str, &Progress),
}

/// Accuracy and cost after one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Stage name, e.g. `prune 2/3`.
    pub stage: String,
    /// Test top-1 accuracy in [0, 1].
    pub test_top1: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Kept (non-zero) compressible weights.
    pub kept: usize,
    /// Wall time of the stage in seconds.
    pub seconds: f64,
}

/// One compressible layer after the whole recipe.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Weight name.
    pub name: String,
    /// Layer kind.
    pub kind: LayerKind,
    /// Weights in the layer.
    pub weights: usize,
    /// Weights kept after pruning.
    pub kept: usize,
    /// Index bits of weight sharing, if shared.
    pub bits: Option<u8>,
}

/// What a recipe did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Stages in order, the first being the uncompressed baseline.
    pub stages: Vec<StageReport>,
    /// Per-layer result.
    pub layers: Vec<LayerRow>,
    /// Recipe entries that matched nothing in this model.
    pub warnings: Vec<String>,
    /// Every layer a factorization pass considered: rank, costs, error, latency or why it was kept.
    pub factorized: Vec<FactorRow>,
}

impl State {
    /// A state for `graph` with no constraints yet.
    pub fn new(graph: Graph) -> Result<State, CompressError> {
        let layers = compressible_weights(&graph);
        if layers.is_empty() {
            return Err(CompressError::NothingToCompress(format!(
                "model '{}' has no Gemm, MatMul or Conv weights to compress",
                graph.name
            )));
        }
        Ok(State {
            model: Model::new(graph)?,
            hook: ConstraintHook::default(),
            huffman: None,
            bits: BTreeMap::new(),
            layers,
            hashed: BTreeMap::new(),
            circulant: BTreeMap::new(),
            quantized: BTreeMap::new(),
            teacher: None,
        })
    }

    fn kept(&self) -> usize {
        self.layers
            .iter()
            .map(|(n, _)| {
                let size = self.size_of(n);
                self.hook.constraints.get(n).map_or(size, |c| c.kept_count(size))
            })
            .sum()
    }

    fn size_of(&self, name: &str) -> usize {
        self.model.weight_shape(name).map_or(0, |s| s.iter().product())
    }

    /// The HashedNets layers as stored: their shared values and seed (what the hash pass
    /// trained); [`State::to_sparse`] leaves them out.
    pub fn hashed_tensors(&self) -> BTreeMap<String, HashedTensor> {
        self.codebook_tensors(&self.hashed, |shape, &(_, seed), values| HashedTensor { shape, seed, values })
    }

    /// The block-circulant layers as stored: their defining values, block size and sign seed
    /// (what the circulant pass trained); [`State::to_sparse`] leaves them out.
    pub fn circulant_tensors(&self) -> BTreeMap<String, CirculantTensor> {
        self.codebook_tensors(&self.circulant, |shape, &(block, sign_seed), values| CirculantTensor {
            shape,
            block,
            sign_seed,
            values,
        })
    }

    /// The layers in `layers` stored as their codebook values (`make(shape, entry, values)`):
    /// what a hashed or circulant layer's constraint trained.
    fn codebook_tensors<E, T>(
        &self,
        layers: &BTreeMap<String, E>,
        make: impl Fn(Vec<usize>, &E, Vec<f32>) -> T,
    ) -> BTreeMap<String, T> {
        layers
            .iter()
            .filter_map(|(name, e)| {
                let cb = self.hook.constraints.get(name)?.codebook.as_ref()?;
                let shape = self.model.weight_shape(name)?.to_vec();
                Some((name.clone(), make(shape, e, cb.centroids.clone())))
            })
            .collect()
    }

    /// The compressed weights as sparse matrices (codebook values where shared) and the graph
    /// holding every other weight dense (quantized weights are in neither: see
    /// [`State::quantized`]); with the quantized weights, the three parts of a `.dsk` model.
    pub fn to_sparse(&self) -> (Graph, BTreeMap<String, SparseMatrix>) {
        let mut graph = self.model.to_graph();
        let mut sparse = BTreeMap::new();
        for (name, _) in &self.layers {
            // Quantized and hashed tensors have their own encodings.
            if self.quantized.contains_key(name)
                || self.hashed.contains_key(name)
                || self.circulant.contains_key(name)
            {
                graph.weights.remove(name);
                continue;
            }
            // Unconstrained weights (e.g. low-rank factors) stay dense in the graph, and so do
            // grouped convolution kernels, which the runtime's sparse kernels do not take.
            let Some(c) = self.hook.constraints.get(name).cloned() else { continue };
            let grouped = graph.consumers(name).any(|n| matches!(&n.op, Op::Conv(a) if a.group != 1));
            if grouped {
                continue;
            }
            let Some(t) = graph.weights.remove(name) else { continue };
            let data = t.as_f32().expect("compressible weights are f32");
            if c.quant.is_some() && c.mask.is_none() {
                // Every position stored (zero is one of the grid values), coded by the grid.
                sparse.insert(name.clone(), grid_codebook(&t.shape, data));
                continue;
            }
            let mut m = SparseMatrix::from_dense(&t.shape, data);
            if let Some(mask) = &c.mask {
                // Keep exactly the masked-in entries (a kept weight may be exactly zero).
                let cols = m.cols();
                let (mut row_ptr, mut col_idx, mut vals) = (vec![0u32], Vec::new(), Vec::new());
                for r in 0..m.rows() {
                    for col in 0..cols {
                        if mask[r * cols + col] {
                            col_idx.push(col as u32);
                            vals.push(data[r * cols + col]);
                        }
                    }
                    row_ptr.push(col_idx.len() as u32);
                }
                m = SparseMatrix {
                    shape: t.shape.clone(),
                    row_ptr,
                    col_idx,
                    values: SparseValues::F32(vals),
                };
            }
            if let Some(cb) = &c.codebook {
                let cols = m.cols();
                let mut codes = Vec::with_capacity(m.nnz());
                for r in 0..m.rows() {
                    for j in m.row_ptr[r] as usize..m.row_ptr[r + 1] as usize {
                        codes.push(cb.assign[r * cols + m.col_idx[j] as usize]);
                    }
                }
                let centroids = cb.centroids.clone();
                m.values = SparseValues::Codebook { centroids, codes };
            }
            sparse.insert(name.clone(), m);
        }
        (graph, sparse)
    }
}

/// A fully stored matrix whose values are codes into its sorted distinct values.
fn grid_codebook(shape: &[usize], data: &[f32]) -> SparseMatrix {
    let mut centroids: Vec<f32> = data.to_vec();
    centroids.sort_by(f32::total_cmp);
    centroids.dedup();
    let codes = data.iter().map(|v| centroids.partition_point(|c| c < v) as u16).collect();
    let rows = shape.first().copied().unwrap_or(1);
    let cols = data.len() / rows.max(1);
    SparseMatrix {
        shape: shape.to_vec(),
        row_ptr: (0..=rows).map(|r| (r * cols) as u32).collect(),
        col_idx: (0..rows).flat_map(|_| 0..cols as u32).collect(),
        values: SparseValues::Codebook { centroids, codes },
    }
}

pub(crate) fn measure(
    state: &State,
    ctx: &Context,
    stage: String,
    start: Instant,
) -> Result<StageReport, CompressError> {
    let m = evaluate(&state.model, ctx.test, 500, &mut |_| {})?;
    Ok(StageReport {
        stage,
        test_top1: m.top1,
        test_loss: m.loss,
        kept: state.kept(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Fine-tunes under the current constraints for `epochs` epochs with Adam at `lr`, cosine-decayed.
pub(crate) fn finetune(
    state: &mut State,
    ctx: &mut Context,
    stage: &str,
    epochs: usize,
    lr: f32,
) -> Result<(), CompressError> {
    state.hook.enforce(&mut state.model.params_mut());
    if epochs == 0 {
        return Ok(());
    }
    let cfg = TrainConfig {
        epochs,
        batch_size: ctx.batch_size,
        optimizer: Optimizer::adam(lr),
        schedule: Schedule::Cosine { min_factor: 0.0 },
        seed: ctx.seed,
    };
    let mut trainer = Trainer::new(&state.model, &cfg)?;
    for _ in 0..epochs {
        let progress = &mut *ctx.progress;
        let on_step = &mut |p: &Progress| progress(stage, p);
        match &mut state.teacher {
            Some(t) => trainer.epoch_with(&mut state.model, ctx.train, t, &mut state.hook, on_step)?,
            None => trainer.epoch(&mut state.model, ctx.train, &mut state.hook, on_step)?,
        };
    }
    Ok(())
}

fn prune(
    state: &mut State,
    ctx: &mut Context,
    cfg: &PruneConfig,
    out: &mut Vec<StageReport>,
) -> Result<(), CompressError> {
    let cycles = cfg.cycles();
    for t in 1..=cycles {
        let start = Instant::now();
        let frac = cfg.progress(t);
        let params = state.model.params_mut();
        let global = match (cfg.scope, cfg.sparsity) {
            (Scope::Global, Some(s)) => {
                let ws: Vec<&[f32]> = state.layers.iter().filter_map(|(n, _)| params.value(n)).collect();
                Some(global_threshold(&ws, s * frac))
            }
            _ => None,
        };
        for (name, kind) in &state.layers {
            let w = params.value(name).expect("layer weight exists").to_vec();
            let row_len = params.shape(name).and_then(|s| s.last().copied()).unwrap_or(1);
            let c = state.hook.constraints.entry(name.clone()).or_default();
            let prev = c.mask.as_deref();
            let mask = if let Some(th) = global {
                w.iter().enumerate().map(|(i, v)| v.abs() > th && prev.is_none_or(|p| p[i])).collect()
            } else if let Some(q) = cfg.quality {
                quality_mask(&w, prev, q * frac)
            } else {
                let s = cfg.layers.get(name).copied().or(cfg.sparsity).unwrap_or(0.0);
                let block = cfg.block_of(name);
                if block > 1 && *kind == LayerKind::Fc {
                    let groups = w.len().div_ceil(row_len) * row_len.div_ceil(block);
                    block_magnitude_mask(
                        &w,
                        row_len,
                        block,
                        prev,
                        (s * frac * groups as f32).round() as usize,
                    )
                } else {
                    magnitude_mask(&w, prev, (s * frac * w.len() as f32).round() as usize)
                }
            };
            c.mask = Some(mask);
        }
        let stage = if cycles > 1 { format!("prune {t}/{cycles}") } else { "prune".to_string() };
        finetune(state, ctx, &stage, cfg.retrain_epochs, cfg.lr)?;
        out.push(measure(state, ctx, stage, start)?);
    }
    Ok(())
}

fn share(
    state: &mut State,
    ctx: &mut Context,
    cfg: &ShareConfig,
    out: &mut Vec<StageReport>,
) -> Result<(), CompressError> {
    let start = Instant::now();
    let hessian = if cfg.hessian {
        let names: Vec<String> = state.layers.iter().map(|(n, _)| n.clone()).collect();
        crate::hessian::squared_gradients(&mut state.model, ctx.train, cfg.calibration_samples, &names)?
    } else {
        BTreeMap::new()
    };
    // Damped (Tikhonov) importance h + λ·mean(h) per layer: a few weights with very large squared
    // gradients would otherwise pull every centroid towards themselves.
    let damped: BTreeMap<&String, Vec<f32>> = hessian
        .iter()
        .map(|(name, h)| {
            let mean = h.iter().map(|&v| v as f64).sum::<f64>() / h.len().max(1) as f64;
            (name, h.iter().map(|&v| v + (cfg.damping as f64 * mean) as f32).collect())
        })
        .collect();
    let mut params = state.model.params_mut();
    let ws: Vec<Vec<f32>> =
        state.layers.iter().map(|(n, _)| params.value(n).expect("layer weight exists").to_vec()).collect();
    let mask = |n: &String| state.hook.constraints.get(n).and_then(|c| c.mask.as_deref());
    let bits: Vec<u8> = state.layers.iter().map(|(n, k)| cfg.bits(n, *k)).collect();
    let codebooks: Vec<Codebook> = if cfg.scope == crate::prune::Scope::Global {
        if bits.iter().any(|&b| b != bits[0]) {
            return Err(CompressError::Config {
                pass: "share",
                detail: "scope = \"global\" shares one codebook, so every layer needs the same bits".into(),
            });
        }
        let tensors: Vec<_> = state
            .layers
            .iter()
            .zip(&ws)
            .map(|((n, _), w)| (&w[..], mask(n), damped.get(n).map(|h| &h[..])))
            .collect();
        crate::share::cluster_global(&tensors, bits[0], cfg.init, ctx.seed, cfg.max_iter)
    } else {
        state
            .layers
            .iter()
            .zip(&ws)
            .zip(&bits)
            .map(|(((n, _), w), &b)| {
                let h = damped.get(n).map(|h| &h[..]);
                cluster(w, mask(n), h, b, cfg.init, ctx.seed, cfg.max_iter)
            })
            .collect()
    };
    for (((name, _), cb), b) in state.layers.iter().zip(codebooks).zip(bits) {
        // Put every kept weight on its centroid now, so that the hook's snap to the mean of each
        // cluster keeps the centroids k-means found (Hessian-weighted means, or the network-wide
        // codebook) instead of re-averaging the original weights per layer.
        let c: &mut Constraint = state.hook.constraints.entry(name.clone()).or_default();
        let w = params.value_mut(name).expect("layer weight exists");
        for (i, v) in w.iter_mut().enumerate() {
            if c.kept(i) {
                *v = cb.centroids[cb.assign[i] as usize];
            }
        }
        c.codebook = Some(cb);
        state.bits.insert(name.clone(), b);
    }
    state.hook.enforce(&mut params);
    out.push(measure(state, ctx, "share (before fine-tuning)".into(), start)?);
    let start = Instant::now();
    finetune(state, ctx, "share fine-tuning", cfg.finetune_epochs, cfg.lr)?;
    out.push(measure(state, ctx, "share".into(), start)?);
    Ok(())
}

fn qat(
    state: &mut State,
    ctx: &mut Context,
    cfg: &QatConfig,
    out: &mut Vec<StageReport>,
) -> Result<(), CompressError> {
    let start = Instant::now();
    // XNOR-Net: the inner layers only, each with a Sign node on its input (qat/xnor.rs).
    let xnor = match cfg.method {
        crate::qat::Method::Xnor => {
            let (binarized, signed) = crate::qat::xnor::select(cfg, &state.layers)?;
            state.model = Model::new(crate::qat::xnor::binarize_inputs(&state.model.to_graph(), &signed)?)?;
            Some(binarized)
        }
        _ => None,
    };
    for (name, kind) in &state.layers {
        if !cfg.applies(*kind) || xnor.as_ref().is_some_and(|b| !b.contains(name)) {
            continue;
        }
        let c: &mut Constraint = state.hook.constraints.entry(name.clone()).or_default();
        if c.codebook.is_some() {
            return Err(CompressError::Config {
                pass: "qat",
                detail: format!("{name} is already shared; quantize a layer before sharing it"),
            });
        }
        let shape = state.model.weight_shape(name).unwrap_or(&[]);
        c.quant = Some(cfg.quantizer(name, shape, ctx.seed)?);
        state.bits.insert(name.clone(), cfg.stored_bits());
    }
    finetune(state, ctx, "qat", cfg.epochs, cfg.lr)?;
    out.push(measure(state, ctx, format!("qat {:?}", cfg.method).to_lowercase(), start)?);
    Ok(())
}

fn hash(
    state: &mut State,
    ctx: &mut Context,
    cfg: &HashConfig,
    out: &mut Vec<StageReport>,
) -> Result<(), CompressError> {
    let start = Instant::now();
    let params = state.model.params_mut();
    for (name, kind) in &state.layers {
        if !cfg.applies(name, *kind) {
            continue;
        }
        let w = params.value(name).expect("layer weight exists").to_vec();
        let c: &mut Constraint = state.hook.constraints.entry(name.clone()).or_default();
        if c.mask.is_some() || c.codebook.is_some() {
            return Err(CompressError::Config {
                pass: "hash",
                detail: format!("{name} is already pruned or shared; hash a layer before other passes"),
            });
        }
        let k = cfg.buckets(name, w.len())?;
        c.codebook = Some(hashed_codebook(&w, k, cfg.seed));
        state.hashed.insert(name.clone(), (k, cfg.seed));
    }
    finetune(state, ctx, "hash", cfg.epochs, cfg.lr)?;
    out.push(measure(state, ctx, "hash".into(), start)?);
    Ok(())
}

fn circulant(
    state: &mut State,
    ctx: &mut Context,
    cfg: &CirculantConfig,
    out: &mut Vec<StageReport>,
) -> Result<(), CompressError> {
    let start = Instant::now();
    let mut params = state.model.params_mut();
    for (name, kind) in &state.layers {
        if !cfg.applies(name, *kind)? {
            continue;
        }
        let shape = params.shape(name).expect("layer weight exists").to_vec();
        let (rows, cols) = (shape[0], shape[1..].iter().product());
        let block = cfg.block_of(name, rows, cols)?;
        let c: &mut Constraint = state.hook.constraints.entry(name.clone()).or_default();
        if c.mask.is_some() || c.codebook.is_some() || c.quant.is_some() {
            return Err(CompressError::Config {
                pass: "circulant",
                detail: format!(
                    "{name} is already pruned, shared or quantized; make a layer circulant first"
                ),
            });
        }
        // One seed per layer, so layers of equal shape get different signs and values.
        let seed = cfg.seed.wrapping_add(state.circulant.len() as u64);
        let sign_seed = cfg.signs.then_some(seed);
        let w = params.value_mut(name).expect("layer weight exists");
        c.codebook =
            Some(crate::circulant::circulant_codebook(w, (rows, cols), block, sign_seed, cfg.init, seed));
        state.circulant.insert(name.clone(), (block, sign_seed));
    }
    finetune(state, ctx, "circulant", cfg.epochs, cfg.lr)?;
    out.push(measure(state, ctx, "circulant".into(), start)?);
    Ok(())
}

fn quantize(
    state: &mut State,
    ctx: &mut Context,
    cfg: &QuantizeConfig,
    out: &mut Vec<StageReport>,
) -> Result<(), CompressError> {
    let start = Instant::now();
    let shapes: Vec<Vec<usize>> =
        state.layers.iter().map(|(n, _)| state.model.weight_shape(n).unwrap_or(&[]).to_vec()).collect();
    let mut params = state.model.params_mut();
    for ((name, _), shape) in state.layers.iter().zip(shapes) {
        let w = params.value_mut(name).expect("layer weight exists");
        let q = quantize_tensor(name, &shape, w, cfg.bits_for(name), cfg.granularity, cfg.scheme)?;
        // The model carries the decoded weights, so accuracy is measured on the grid.
        w.copy_from_slice(q.to_dense().as_f32().expect("f32"));
        state.hook.constraints.remove(name);
        state.bits.insert(name.clone(), q.bits);
        state.quantized.insert(name.clone(), q);
    }
    if cfg.activations == crate::calibrate::Activations::Static {
        // Calibrated on the model with its weights already on the grid.
        let names: Vec<String> = state.layers.iter().map(|(n, _)| n.clone()).collect();
        let graph = state.model.to_graph();
        let scales = crate::calibrate::activation_scales(
            &state.model,
            &graph,
            &names,
            ctx.train,
            cfg.calibration_samples,
            cfg.calibration,
            cfg.percentile,
        )?;
        for (name, s) in scales {
            if let Some(q) = state.quantized.get_mut(&name) {
                q.act_scale = Some(s);
            }
        }
    }
    out.push(measure(state, ctx, "quantize".into(), start)?);
    Ok(())
}

/// Runs `recipe` on `graph`: returns the final state (model and constraints) and the report.
/// A recipe teacher must be `"self"` here; see [`run_with_teacher`].
pub fn run(recipe: &Recipe, graph: Graph, ctx: &mut Context) -> Result<(State, Report), CompressError> {
    run_with_teacher(recipe, graph, None, ctx)
}

/// [`run`], with the graph of the recipe's teacher when it names a file (`teacher`, loaded by
/// the caller); ignored without a `[teacher]` table.
pub fn run_with_teacher(
    recipe: &Recipe,
    graph: Graph,
    teacher: Option<&Graph>,
    ctx: &mut Context,
) -> Result<(State, Report), CompressError> {
    let soft = teacher::soft_targets(recipe.teacher.as_ref(), &graph, teacher, ctx.train)?;
    let mut state = State::new(graph)?;
    state.teacher = soft;
    let mut warnings = Vec::new();
    for p in &recipe.passes {
        let names: Vec<&String> = match p {
            PassConfig::Prune(c) => c.layers.keys().collect(),
            PassConfig::Share(c) => c.layers.keys().collect(),
            PassConfig::Hash(c) => c.layers.keys().collect(),
            PassConfig::Circulant(c) => c.layers.keys().chain(&c.skip).collect(),
            PassConfig::Qat(_) => Vec::new(),
            PassConfig::Quantize(c) => c.layers.keys().collect(),
            PassConfig::Svd(c) => c.layers.keys().chain(&c.skip).collect(),
            PassConfig::Tucker2(c) => c.layers.keys().chain(&c.skip).collect(),
            PassConfig::Cp(c) => c.layers.keys().chain(&c.skip).collect(),
            PassConfig::Separable(c) => c.layers.keys().chain(&c.skip).collect(),
            PassConfig::Huffman(_) => Vec::new(),
        };
        for n in names {
            if !state.layers.iter().any(|(l, _)| l == n) {
                warnings.push(format!(
                    "{}: layer '{n}' is not a compressible weight of this model; ignored",
                    p.name()
                ));
            }
        }
    }
    let mut stages = vec![measure(&state, ctx, "baseline".into(), Instant::now())?];
    let mut factorized = Vec::new();
    for p in &recipe.passes {
        match p {
            PassConfig::Prune(c) => prune(&mut state, ctx, c, &mut stages)?,
            PassConfig::Share(c) => share(&mut state, ctx, c, &mut stages)?,
            PassConfig::Quantize(c) => quantize(&mut state, ctx, c, &mut stages)?,
            PassConfig::Svd(c) => {
                factorize::run(&mut state, ctx, Method::Svd(c), &mut stages, &mut factorized)?
            }
            PassConfig::Tucker2(c) => {
                factorize::run(&mut state, ctx, Method::Tucker2(c), &mut stages, &mut factorized)?
            }
            PassConfig::Cp(c) => {
                factorize::run(&mut state, ctx, Method::Cp(c), &mut stages, &mut factorized)?
            }
            PassConfig::Separable(c) => {
                factorize::run(&mut state, ctx, Method::Separable(c), &mut stages, &mut factorized)?
            }
            PassConfig::Huffman(c) => state.huffman = Some(c.clone()),
            PassConfig::Hash(c) => hash(&mut state, ctx, c, &mut stages)?,
            PassConfig::Circulant(c) => circulant(&mut state, ctx, c, &mut stages)?,
            PassConfig::Qat(c) => qat(&mut state, ctx, c, &mut stages)?,
        }
    }
    crate::qat::pack_state(&mut state)?;
    let layers = state
        .layers
        .iter()
        .map(|(name, kind)| {
            let weights = state.size_of(name);
            let kept = state.hook.constraints.get(name).map_or(weights, |c| c.kept_count(weights));
            LayerRow { name: name.clone(), kind: *kind, weights, kept, bits: state.bits.get(name).copied() }
        })
        .collect();
    Ok((state, Report { stages, layers, warnings, factorized }))
}
