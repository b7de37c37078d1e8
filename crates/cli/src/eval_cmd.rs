//! `deepshrink eval`: loss and accuracy of a model on an IDX data set.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use deepshrink_engine::{Data, Model};
use deepshrink_io::idx::{self, Split};
use serde::Serialize;

use crate::{data, dsk, exit};

/// Which part of the data set to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The test images (t10k-*).
    Test,
    /// The training images (train-*).
    Train,
}

/// Arguments of `deepshrink eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model file (.onnx, or .dsk run in its compressed form) or zoo name (untrained).
    pub model: String,
    /// Directory of IDX files laid out like MNIST.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Which split to evaluate.
    #[arg(long, value_enum, default_value_t = Part::Test)]
    pub split: Part,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    split: &'static str,
    #[serde(flatten)]
    accuracy: deepshrink_eval::Accuracy,
}

/// Runs `eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let split = match args.split {
        Part::Test => Split::Test,
        Part::Train => Split::Train,
    };
    let name = if args.split == Part::Test { "test" } else { "train" };
    let accuracy = if dsk::is_dsk(&args.model) {
        let m = dsk::load(std::path::Path::new(&args.model))?;
        let softmax = dsk::ends_in_softmax(&m.graph);
        let sample = m.graph.inputs.first().map(|i| i.sample_shape()).unwrap_or_default();
        let rt = deepshrink_runtime::Runtime::from_model(m).with_context(|| args.model.clone())?;
        let set = idx::load_dir(&args.data, split, Default::default())?;
        anyhow::ensure!(
            sample.iter().product::<usize>() == set.sample_len(),
            "{}: samples of shape {:?} do not fit the model input of shape {:?}",
            args.data.display(),
            set.sample_shape,
            sample
        );
        dsk::evaluate(&rt, softmax, &set, name)?
    } else {
        let graph = data::model_graph(&args.model, 0)?;
        let model = Model::new(graph).with_context(|| format!("model '{}'", args.model))?;
        let set = idx::load_dir(&args.data, split, Default::default())?;
        data::check_fits(&model, &set, &args.data)?;
        data::evaluate(&model, Data { x: &set.images, y: &set.labels }, name)?
    };
    let report = Report { model: args.model.clone(), split: name, accuracy };
    let text = if args.json {
        serde_json::to_string(&report)?
    } else {
        format!("{}: {name} {accuracy}", args.model)
    };
    exit::print(&format!("{text}\n"))?;
    Ok(())
}
