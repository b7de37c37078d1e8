//! `deepshrink bench`: per-layer and total latency of a model, dense f32 and compressed side by
//! side, as medians of many runs.

use std::path::PathBuf;

use anyhow::Context;
use std::time::{Duration, Instant};

use deepshrink_runtime::{NodeTiming, Runtime};
use serde::Serialize;

use crate::{dsk, exit};

/// Arguments of `deepshrink bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: .dsk (compressed and its decoded dense twin are both timed) or .onnx (dense).
    pub model: PathBuf,
    /// Samples per run.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Time on real inputs: the first `--samples` test samples of this IDX data set (normalised
    /// as for `eval`), one run after another. Without it the input is a fixed synthetic pattern,
    /// which hides what input-dependent kernels (zero- and background-skipping) gain.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Number of distinct real inputs cycled through with `--data`.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
}

#[derive(Serialize)]
struct Row {
    node: String,
    op: String,
    kind: String,
    dense_us: f64,
    compressed_us: Option<f64>,
    speedup: Option<f64>,
}

#[derive(Serialize)]
struct Out {
    model: String,
    batch: usize,
    runs: usize,
    dense_total_us: f64,
    compressed_total_us: Option<f64>,
    speedup: Option<f64>,
    nodes: Vec<Row>,
}

/// The batches timed in turn: consecutive test samples of `--data`, or one synthetic batch.
fn inputs(args: &Args, per: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let Some(dir) = &args.data else {
        // A fixed, non-trivial input: results do not depend on it, only the timing does.
        return Ok(vec![(0..per * args.batch).map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5).collect()]);
    };
    anyhow::ensure!(args.samples >= 1, "--samples must be at least 1");
    let set = deepshrink_io::idx::load_dir(dir, deepshrink_io::idx::Split::Test, Default::default())?;
    anyhow::ensure!(
        set.sample_len() == per,
        "{}: samples of shape {:?} do not fit the model input of {per} values",
        dir.display(),
        set.sample_shape
    );
    let n = set.labels.len();
    anyhow::ensure!(
        n >= args.batch,
        "{}: {n} test samples, fewer than --batch {}",
        dir.display(),
        args.batch
    );
    let batches = args.samples.min(n / args.batch).max(1);
    Ok((0..batches).map(|b| set.images[b * args.batch * per..(b + 1) * args.batch * per].to_vec()).collect())
}

fn us(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let name = args.model.display().to_string();
    let (dense, compressed) = if dsk::is_dsk(&name) {
        let m = dsk::load(&args.model)?;
        let dense = Runtime::dense(m.to_dense_graph()).with_context(|| name.clone())?;
        (dense, Some(Runtime::from_model(m).with_context(|| name.clone())?))
    } else {
        (Runtime::dense(deepshrink_io::load_model(&args.model)?).with_context(|| name.clone())?, None)
    };
    let per: usize = dense.sample_shape().iter().product();
    let inputs = inputs(&args, per)?;
    let (dt, dn, c) = interleaved(&dense, compressed.as_ref(), &inputs, args.batch, args.runs)?;
    let kinds: Vec<(String, String, &str)> = compressed.as_ref().unwrap_or(&dense).node_kinds();
    let find = |t: &[NodeTiming], node: &str| t.iter().find(|n| n.node == node).map(|n| us(n.time));
    let nodes = kinds
        .iter()
        .map(|(node, op, kind)| {
            let d = find(&dn, node).unwrap_or(0.0);
            let cu = c.as_ref().and_then(|(_, t)| find(t, node));
            Row {
                node: node.clone(),
                op: op.clone(),
                kind: kind.to_string(),
                dense_us: d,
                compressed_us: cu,
                speedup: cu.map(|cu| d / cu.max(1e-9)),
            }
        })
        .collect();
    let out = Out {
        model: name,
        batch: args.batch,
        runs: args.runs,
        dense_total_us: us(dt),
        compressed_total_us: c.as_ref().map(|(t, _)| us(*t)),
        speedup: c.as_ref().map(|(t, _)| us(dt) / us(*t).max(1e-9)),
        nodes,
    };
    let text = if args.json { format!("{}\n", serde_json::to_string(&out)?) } else { table(&out) };
    exit::print(&text)?;
    Ok(())
}

/// Median total and per-node times of the dense runtime and, if given, the compressed one, with
/// their runs alternating so that load from other processes hits both sides alike.
#[allow(clippy::type_complexity)]
fn interleaved(
    dense: &Runtime,
    compressed: Option<&Runtime>,
    inputs: &[Vec<f32>],
    batch: usize,
    runs: usize,
) -> anyhow::Result<(Duration, Vec<NodeTiming>, Option<(Duration, Vec<NodeTiming>)>)> {
    // One warm-up run each.
    dense.run(&inputs[0], batch)?;
    if let Some(c) = compressed {
        c.run(&inputs[0], batch)?;
    }
    let mut d = Samples::default();
    let mut c = Samples::default();
    for i in 0..runs {
        let x = &inputs[i % inputs.len()];
        d.add(dense, x, batch)?;
        if let Some(rt) = compressed {
            c.add(rt, x, batch)?;
        }
    }
    let (dt, dn) = d.medians();
    Ok((dt, dn, compressed.map(|_| c.medians())))
}

/// Timings of repeated runs of one runtime.
#[derive(Default)]
struct Samples {
    totals: Vec<Duration>,
    nodes: Vec<Vec<Duration>>,
    last: Vec<NodeTiming>,
}

impl Samples {
    fn add(&mut self, rt: &Runtime, x: &[f32], batch: usize) -> anyhow::Result<()> {
        let start = Instant::now();
        let (_, _, t) = rt.run_timed(x, batch)?;
        self.totals.push(start.elapsed());
        self.nodes.resize(t.len(), Vec::new());
        for (acc, nt) in self.nodes.iter_mut().zip(&t) {
            acc.push(nt.time);
        }
        self.last = t;
        Ok(())
    }

    fn medians(mut self) -> (Duration, Vec<NodeTiming>) {
        fn median(v: &mut [Duration]) -> Duration {
            v.sort_unstable();
            v[v.len() / 2]
        }
        for (nt, ts) in self.last.iter_mut().zip(self.nodes.iter_mut()) {
            nt.time = median(ts);
        }
        (median(&mut self.totals), self.last)
    }
}

fn table(o: &Out) -> String {
    let mut s = format!(
        "{} at batch {}, median of {} runs (microseconds)\n\n| node | op | runs as | dense f32 | compressed | speed-up |\n|---|---|---|---:|---:|---:|\n",
        o.model, o.batch, o.runs
    );
    let opt = |v: Option<f64>, suffix: &str| v.map_or("-".to_string(), |v| format!("{v:.1}{suffix}"));
    for r in &o.nodes {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {} |\n",
            r.node,
            r.op,
            r.kind,
            r.dense_us,
            opt(r.compressed_us, ""),
            opt(r.speedup, "x")
        ));
    }
    s.push_str(&format!(
        "| total | | | {:.1} | {} | {} |\n",
        o.dense_total_us,
        opt(o.compressed_total_us, ""),
        opt(o.speedup, "x")
    ));
    s
}
