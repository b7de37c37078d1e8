//! `deepshrink compress`: run a recipe on a trained model and write a `.dsk` container, with a
//! report in the layout of Deep Compression's Tables 2–3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use deepshrink_codec::{DskModel, PackOptions, SizeReport, SparseMatrix, SparseValues};
use deepshrink_compress::teacher::TeacherConfig;
use deepshrink_compress::{Context, Recipe, Report};
use deepshrink_engine::Data;
use deepshrink_eval::Accuracy;
use deepshrink_io::idx::{self, Split};
use serde::Serialize;

use crate::{dsk, exit, progress};

/// Arguments of `deepshrink compress`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trained model (.onnx), or a zoo network name (initialised from `--seed`) for methods
    /// that train from scratch, such as HashedNets (`kind = "hash"`).
    pub model: PathBuf,
    /// The recipe (TOML), e.g. recipes/deep-compression.toml.
    #[arg(long)]
    pub recipe: PathBuf,
    /// Directory of IDX files laid out like MNIST (for retraining and measuring).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Where to write the compressed model.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Batch size of retraining.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Seed of retraining.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also run the recipe without its `[teacher]` (same seed) and report both fine-tunings
    /// side by side (as `compare = true` in the recipe's `[teacher]` table).
    #[arg(long)]
    pub compare_teacher: bool,
    /// Fine-tune on the first N training images only (the data-limited setting: a teacher, the
    /// recipe's comparison run and every pass see the same N; the test set stays complete).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The recipe's teacher and, when compared, the same recipe fine-tuned without it.
#[derive(Serialize)]
struct TeacherOut {
    config: TeacherConfig,
    /// Stages of the same recipe and seed without the teacher (when compared).
    without_teacher: Option<Vec<deepshrink_compress::StageReport>>,
}

/// Stream statistics of one tensor, for the Huffman columns.
#[derive(Serialize)]
struct StreamRow {
    symbols: usize,
    entropy_bits: f64,
    avg_code_bits: f64,
    huffman: bool,
}

#[derive(Serialize)]
struct LayerOut {
    name: String,
    kind: deepshrink_compress::LayerKind,
    weights: usize,
    kept: usize,
    kept_percent: f64,
    bits: Option<u8>,
    dense_bytes: usize,
    bytes_pruned: usize,
    bytes_pruned_quantized: usize,
    bytes_final: usize,
    /// Stored bits per weight of the final encoding (codes, scales, indices, header).
    bits_per_weight: f64,
    /// The final encoding (`sparse_codebook`, `quant`, ...).
    encoding: String,
    ratio: f64,
    index_stream: Option<StreamRow>,
    code_stream: Option<StreamRow>,
}

#[derive(Serialize)]
struct Out {
    model: String,
    recipe: String,
    baseline_file_bytes: u64,
    /// Training images used for retraining and fine-tuning (`--limit`, else the whole set).
    train_samples: usize,
    dsk_file_bytes: usize,
    file_ratio: f64,
    dsk_accuracy: Accuracy,
    stages: Vec<deepshrink_compress::StageReport>,
    /// Distillation as recovery: the recipe's teacher, and the comparison without it.
    teacher: Option<TeacherOut>,
    layers: Vec<LayerOut>,
    /// Every layer a factorization pass considered (empty without svd/tucker2/cp passes).
    factorized: Vec<deepshrink_compress::FactorRow>,
    warnings: Vec<String>,
    /// Bits of all Huffman-coded streams together.
    huffman_bits: f64,
    /// Their empirical entropy in bits (symbols x entropy per symbol, summed over streams).
    entropy_bits: f64,
    /// `huffman_bits / entropy_bits`: how close the coding gets to the entropy bound.
    huffman_over_entropy: f64,
    pack_seconds: f64,
}

/// The same model with every codebook expanded to float values: the "pruned only" storage.
fn as_pruned_only(sparse: &BTreeMap<String, SparseMatrix>) -> BTreeMap<String, SparseMatrix> {
    sparse
        .iter()
        .map(|(k, m)| {
            let vals = (0..m.nnz()).map(|j| m.value(j)).collect();
            (k.clone(), SparseMatrix { values: SparseValues::F32(vals), ..m.clone() })
        })
        .collect()
}

fn sizes(r: &SizeReport) -> BTreeMap<&str, &deepshrink_codec::TensorSize> {
    r.tensors.iter().map(|t| (t.name.as_str(), t)).collect()
}

fn stream(s: &Option<deepshrink_codec::StreamStats>) -> Option<StreamRow> {
    s.as_ref().map(|s| StreamRow {
        symbols: s.symbols,
        entropy_bits: s.entropy_bits,
        avg_code_bits: s.avg_code_bits,
        huffman: s.huffman,
    })
}

/// The recipe's teacher when it names a file (`"self"` is the input model, resolved by the
/// pipeline); a zoo network given as the model is untrained, so it cannot teach itself.
fn teacher_graph(recipe: &Recipe, model: &str) -> anyhow::Result<Option<deepshrink_graph::Graph>> {
    let Some(t) = &recipe.teacher else { return Ok(None) };
    if t.is_self() {
        anyhow::ensure!(
            !deepshrink_engine::zoo::NAMES.contains(&model),
            "the recipe's teacher is \"self\" but the model '{model}' is an untrained zoo network; \
             name a trained teacher (.onnx) in [teacher] model"
        );
        return Ok(None);
    }
    let g = deepshrink_io::load_model(Path::new(&t.model)).with_context(|| format!("teacher {}", t.model))?;
    Ok(Some(g))
}

/// Runs `compress`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.recipe).with_context(|| args.recipe.display().to_string())?;
    run_recipe(&args, &text)
}

/// Runs `compress` with the recipe given as text (`args.recipe` names it in messages).
pub fn run_recipe(args: &Args, text: &str) -> anyhow::Result<()> {
    let recipe = Recipe::parse(text).with_context(|| args.recipe.display().to_string())?;
    anyhow::ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    let spec = args.model.to_string_lossy();
    let (graph, baseline_file_bytes) = if deepshrink_engine::zoo::NAMES.contains(&spec.as_ref()) {
        // A fresh zoo network: its baseline size is that of its ONNX serialisation.
        let graph = deepshrink_engine::zoo::build(&spec, args.seed)?;
        let bytes = deepshrink_io::onnx::to_bytes(&graph).len() as u64;
        (graph, bytes)
    } else {
        let bytes = std::fs::metadata(&args.model).with_context(|| args.model.display().to_string())?.len();
        (deepshrink_io::load_model(&args.model)?, bytes)
    };
    anyhow::ensure!(args.limit.is_none_or(|n| n >= 1), "--limit must be at least 1");
    let mut train = idx::load_dir(&args.data, Split::Train, Default::default())?;
    if let Some(n) = args.limit {
        train = train.limit(n);
    }
    let test = idx::load_dir(&args.data, Split::Test, Default::default())?;
    let model_name = args.model.display().to_string();

    let bar = progress::bar(train.len().div_ceil(args.batch_size) as u64, "compress");
    let mut on_progress = |stage: &str, p: &deepshrink_engine::Progress| {
        bar.set_message(format!("{stage} (epoch {})", p.epoch));
        bar.set_position(p.step as u64);
    };
    let teacher_graph = teacher_graph(&recipe, &spec)?;
    anyhow::ensure!(
        recipe.teacher.is_some() || !args.compare_teacher,
        "--compare-teacher needs a [teacher] table in the recipe"
    );
    let compare = recipe.teacher.as_ref().is_some_and(|t| t.compare) || args.compare_teacher;
    let (train_data, test_data) =
        (Data { x: &train.images, y: &train.labels }, Data { x: &test.images, y: &test.labels });
    // The same recipe and seed without the teacher, for the comparison.
    let without = if compare {
        let plain = Recipe { teacher: None, ..recipe.clone() };
        let mut tagged =
            |stage: &str, p: &deepshrink_engine::Progress| on_progress(&format!("{stage}, no teacher"), p);
        let mut ctx = Context {
            train: train_data,
            test: test_data,
            batch_size: args.batch_size,
            seed: args.seed,
            progress: &mut tagged,
        };
        let (_, r) = deepshrink_compress::run(&plain, graph.clone(), &mut ctx)
            .with_context(|| format!("{model_name} (without the teacher)"))?;
        Some(r.stages)
    } else {
        None
    };
    let mut ctx = Context {
        train: train_data,
        test: test_data,
        batch_size: args.batch_size,
        seed: args.seed,
        progress: &mut on_progress,
    };
    let (state, report) =
        deepshrink_compress::run_with_teacher(&recipe, graph, teacher_graph.as_ref(), &mut ctx)
            .with_context(|| model_name.clone())?;
    bar.finish_and_clear();
    let teacher = recipe.teacher.clone().map(|config| TeacherOut { config, without_teacher: without });

    let start = Instant::now();
    let (graph, sparse) = state.to_sparse();
    let huffman = state.huffman.clone();
    // The container takes one index width for all tensors, or `None` for Han et al.'s 5 bits
    // (fully connected) and 8 bits (convolution).
    let index_bits = huffman
        .as_ref()
        .and_then(|h| (h.index_bits_fc, h.index_bits_conv).ne(&(5, 8)).then_some(h.index_bits_fc));
    let opts = |huff: bool| PackOptions { index_bits, huffman: huff };
    let model = DskModel {
        graph,
        sparse,
        quantized: state.quantized.clone(),
        hashed: state.hashed_tensors(),
        circulant: state.circulant_tensors(),
    };
    let pruned_only = DskModel { sparse: as_pruned_only(&model.sparse), ..model.clone() };
    let (_, size_p) = deepshrink_codec::to_bytes(&pruned_only, &opts(false))?;
    let (_, size_pq) = deepshrink_codec::to_bytes(&model, &opts(false))?;
    let (bytes, size_final) = deepshrink_codec::to_bytes(&model, &opts(huffman.is_some()))?;
    let pack_seconds = start.elapsed().as_secs_f64();

    // Measure the container exactly as written: decode the bytes and run the compressed form.
    let decoded = deepshrink_codec::from_bytes(&bytes)?;
    let softmax = dsk::ends_in_softmax(&decoded.graph);
    let rt = deepshrink_runtime::Runtime::from_model(decoded)?;
    let dsk_accuracy = dsk::evaluate(&rt, softmax, &test, "measure .dsk")?;

    deepshrink_io::write_atomic(&args.out, &bytes)?;
    let out = build_report(
        args,
        train.len(),
        &recipe,
        report,
        teacher,
        baseline_file_bytes,
        &bytes,
        dsk_accuracy,
        [&size_p, &size_pq, &size_final],
        pack_seconds,
    );
    if let Some(path) = &args.report {
        deepshrink_io::write_atomic(path, format!("{}\n", serde_json::to_string_pretty(&out)?).as_bytes())?;
    }
    exit::print(&markdown(&out, &args.out))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &Args,
    train_samples: usize,
    recipe: &Recipe,
    report: Report,
    teacher: Option<TeacherOut>,
    baseline_file_bytes: u64,
    bytes: &[u8],
    dsk_accuracy: Accuracy,
    [p, pq, fin]: [&SizeReport; 3],
    pack_seconds: f64,
) -> Out {
    let (p, pq, fin) = (sizes(p), sizes(pq), sizes(fin));
    let layers = report
        .layers
        .iter()
        .map(|l| {
            let f = fin.get(l.name.as_str());
            let total = |m: &BTreeMap<&str, &deepshrink_codec::TensorSize>| {
                m.get(l.name.as_str()).map_or(0, |t| t.total_bytes)
            };
            let bytes_final = total(&fin);
            LayerOut {
                name: l.name.clone(),
                kind: l.kind,
                weights: l.weights,
                kept: l.kept,
                kept_percent: 100.0 * l.kept as f64 / l.weights.max(1) as f64,
                bits: l.bits,
                dense_bytes: 4 * l.weights,
                bytes_pruned: total(&p),
                bytes_pruned_quantized: total(&pq),
                bytes_final,
                bits_per_weight: 8.0 * bytes_final as f64 / l.weights.max(1) as f64,
                encoding: f.map_or("dense_f32".into(), |t| t.encoding.clone()),
                ratio: (4 * l.weights) as f64 / bytes_final.max(1) as f64,
                index_stream: f.and_then(|t| stream(&t.index_stream)),
                code_stream: f.and_then(|t| stream(&t.code_stream)),
            }
        })
        .collect::<Vec<LayerOut>>();
    let streams =
        || layers.iter().flat_map(|l| [&l.index_stream, &l.code_stream]).flatten().filter(|s| s.huffman);
    let huffman_bits: f64 = streams().map(|s| s.avg_code_bits * s.symbols as f64).sum();
    let entropy_bits: f64 = streams().map(|s| s.entropy_bits * s.symbols as f64).sum();
    Out {
        huffman_bits,
        entropy_bits,
        huffman_over_entropy: huffman_bits / entropy_bits.max(1e-9),
        model: args.model.display().to_string(),
        recipe: recipe.description.clone(),
        baseline_file_bytes,
        train_samples,
        dsk_file_bytes: bytes.len(),
        file_ratio: baseline_file_bytes as f64 / bytes.len().max(1) as f64,
        dsk_accuracy,
        stages: report.stages,
        teacher,
        layers,
        factorized: report.factorized,
        warnings: report.warnings,
        pack_seconds,
    }
}

fn markdown(o: &Out, out_path: &Path) -> String {
    let mut s = String::new();
    s.push_str("| stage | test top-1 | kept weights | seconds |\n|---|---:|---:|---:|\n");
    for st in &o.stages {
        s.push_str(&format!(
            "| {} | {:.2}% | {} | {:.1} |\n",
            st.stage,
            st.test_top1 * 100.0,
            st.kept,
            st.seconds
        ));
    }
    s.push_str(&format!("| .dsk (runtime, compressed form) | {:.2}% | | |\n\n", o.dsk_accuracy.top1 * 100.0));
    if let Some(t) = &o.teacher {
        s.push_str(&teacher_table(t, &o.stages));
    }
    s.push_str("| layer | weights | kept | bits | dense | pruned | + quantized | + Huffman | ratio | bits/weight | encoding | index bits/sym (entropy) | code bits/sym (entropy) |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
    let st = |x: &Option<StreamRow>| {
        x.as_ref().map_or("-".to_string(), |x| format!("{:.3} ({:.3})", x.avg_code_bits, x.entropy_bits))
    };
    for l in &o.layers {
        s.push_str(&format!(
            "| {} | {} | {:.1}% | {} | {} | {} | {} | {} | {:.1}x | {:.2} | {} | {} | {} |\n",
            l.name,
            l.weights,
            l.kept_percent,
            l.bits.map_or("32".into(), |b| b.to_string()),
            l.dense_bytes,
            l.bytes_pruned,
            l.bytes_pruned_quantized,
            l.bytes_final,
            l.ratio,
            l.bits_per_weight,
            l.encoding,
            st(&l.index_stream),
            st(&l.code_stream)
        ));
    }
    if !o.factorized.is_empty() {
        s.push_str(&factor_table(&o.factorized));
    }
    s.push_str(&format!(
        "\n{}: {} bytes, {} -> {} bytes ({:.1}x smaller file), test top-1 {:.2}% -> {:.2}%\n",
        out_path.display(),
        o.dsk_file_bytes,
        o.baseline_file_bytes,
        o.dsk_file_bytes,
        o.file_ratio,
        o.stages[0].test_top1 * 100.0,
        o.dsk_accuracy.top1 * 100.0
    ));
    if o.entropy_bits > 0.0 {
        s.push_str(&format!(
            "Huffman-coded streams: {:.0} bits for an entropy bound of {:.0} bits ({:.4}x)\n",
            o.huffman_bits, o.entropy_bits, o.huffman_over_entropy
        ));
    }
    for w in &o.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}

/// Fine-tuning with the recipe's teacher against the same recipe and seed without it.
fn teacher_table(t: &TeacherOut, stages: &[deepshrink_compress::StageReport]) -> String {
    let c = &t.config;
    let mut s = format!(
        "Fine-tuning with the teacher '{}' (soft targets, T = {}, alpha = {})",
        c.model, c.temperature, c.alpha
    );
    let Some(without) = &t.without_teacher else { return s + "\n\n" };
    s.push_str(", against the same recipe and seed without it:\n\n");
    s.push_str("| stage | with teacher | without teacher | difference (points) |\n|---|---:|---:|---:|\n");
    for (a, b) in stages.iter().zip(without) {
        s.push_str(&format!(
            "| {} | {:.2}% | {:.2}% | {:+.2} |\n",
            a.stage,
            a.test_top1 * 100.0,
            b.test_top1 * 100.0,
            (a.test_top1 - b.test_top1) * 100.0
        ));
    }
    s + "\n"
}

/// The low-rank table: one row per layer a factorization pass considered.
fn factor_table(rows: &[deepshrink_compress::FactorRow]) -> String {
    let mut s = String::from(
        "\n| pass | layer | rank | params | MACs | rel. error | batch 1 us (before -> after) | batch 32 us (before -> after) | result |\n",
    );
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let arrow = |a: usize, b: usize| if b == 0 { a.to_string() } else { format!("{a} -> {b}") };
        let lat = |b: f64, a: f64, x: f64| format!("{b:.1} -> {a:.1} ({x:.2}x)");
        let (l1, l32) = r.latency.as_ref().map_or(("-".into(), "-".into()), |l| {
            (
                lat(l.b1_before_us, l.b1_after_us, l.speedup_b1),
                lat(l.b32_before_us, l.b32_after_us, l.speedup_b32),
            )
        });
        let result = match (r.factorized, r.note.is_empty()) {
            (true, true) => "factorized".to_string(),
            (true, false) => format!("factorized ({})", r.note),
            (false, _) => r.note.clone(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.pass,
            r.layer,
            if r.rank.is_empty() { "-" } else { &r.rank },
            arrow(r.params_before, r.params_after),
            arrow(r.macs_before as usize, r.macs_after as usize),
            r.rel_error.map_or("-".into(), |e| format!("{e:.4}")),
            l1,
            l32,
            result
        ));
    }
    s
}
