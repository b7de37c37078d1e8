//! Loading `.dsk` files and measuring them with the runtime that runs the compressed form.

use std::path::Path;

use anyhow::Context;
use deepshrink_codec::DskModel;
use deepshrink_eval::{Accuracy, AccuracyMeter};
use deepshrink_graph::Op;
use deepshrink_io::idx::Dataset;
use deepshrink_runtime::Runtime;

use crate::progress;

/// True if `path` names a `.dsk` container.
pub fn is_dsk(path: &str) -> bool {
    Path::new(path).extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("dsk"))
}

/// Reads and decodes a `.dsk` file.
pub fn load(path: &Path) -> anyhow::Result<DskModel> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    deepshrink_codec::from_bytes(&bytes).with_context(|| path.display().to_string())
}

/// Mean cross-entropy of one batch: from logits, or from probabilities when the graph ends in a
/// Softmax.
fn batch_loss(out: &[f32], labels: &[u32], classes: usize, probabilities: bool) -> f64 {
    let mut sum = 0.0f64;
    for (row, &y) in out.chunks(classes).zip(labels) {
        let y = y as usize;
        sum += if probabilities {
            -(row[y].max(1e-30) as f64).ln()
        } else {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
            lse - row[y] as f64
        };
    }
    sum / labels.len().max(1) as f64
}

/// Loss and accuracy of a runtime on a data set, in batches, with a progress bar.
pub fn evaluate(rt: &Runtime, ends_in_softmax: bool, data: &Dataset, what: &str) -> anyhow::Result<Accuracy> {
    const BATCH: usize = 500;
    let n = data.len();
    let bar = progress::bar(n.div_ceil(BATCH) as u64, what);
    let mut meter = AccuracyMeter::new();
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let (shape, out) = rt.run(data.images_of(start..end), end - start)?;
        let classes = shape.iter().skip(1).product::<usize>();
        let labels = &data.labels[start..end];
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
            anyhow::bail!("label {bad} is out of range for a model with {classes} outputs");
        }
        meter.add_batch(&out, labels, classes, batch_loss(&out, labels, classes, ends_in_softmax));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(meter.finish())
}

/// True if the graph's output is produced by a Softmax.
pub fn ends_in_softmax(g: &deepshrink_graph::Graph) -> bool {
    g.outputs.first().and_then(|o| g.producer(&o.name)).is_some_and(|n| matches!(n.op, Op::Softmax { .. }))
}
