//! What the train and eval subcommands share: loading a model by name or file, checking that the
//! data fits it, and evaluating with a progress bar.

use std::path::Path;

use deepshrink_engine::{zoo, Data, Model};
use deepshrink_eval::Accuracy;
use deepshrink_graph::Graph;
use deepshrink_io::idx::Dataset;

use crate::progress;

/// A zoo network by name (initialised from `seed`), or a model file by path.
pub fn model_graph(spec: &str, seed: u64) -> anyhow::Result<Graph> {
    if zoo::NAMES.contains(&spec) {
        return Ok(zoo::build(spec, seed)?);
    }
    let path = Path::new(spec);
    if path.extension().is_none() && !path.exists() {
        anyhow::bail!("unknown zoo model '{spec}'; known: {} (or give a .onnx file)", zoo::NAMES.join(", "));
    }
    Ok(deepshrink_io::load_model(path)?)
}

/// Fails unless the samples of `data` have the model's input shape and its labels fit the
/// model's outputs.
pub fn check_fits(model: &Model, data: &Dataset, dir: &Path) -> anyhow::Result<()> {
    let want = model.sample_shape();
    if want.iter().product::<usize>() != data.sample_len() {
        anyhow::bail!(
            "{}: samples of shape {:?} do not fit the model input of shape {:?}",
            dir.display(),
            data.sample_shape,
            want
        );
    }
    Ok(())
}

/// Loss and accuracy of `model` on `data`, with a progress bar labelled `what`.
pub fn evaluate(model: &Model, data: Data, what: &str) -> anyhow::Result<Accuracy> {
    const BATCH: usize = 500;
    let bar = progress::bar(data.y.len().div_ceil(BATCH) as u64, what);
    let m = deepshrink_engine::evaluate(model, data, BATCH, &mut |p| bar.set_position(p.step as u64))?;
    bar.finish_and_clear();
    Ok(Accuracy { top1: m.top1, top5: m.top5, loss: m.loss, samples: m.samples })
}
