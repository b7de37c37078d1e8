//! `deepshrink demo`: the Deep Compression pipeline end to end on the embedded MNIST — train
//! LeNet-300-100, prune, share weights, Huffman-code, write and measure the `.dsk`.

use std::path::PathBuf;

use crate::{compress, train};

/// The recipe the demo runs (the same file as recipes/deep-compression.toml).
const RECIPE: &str = include_str!("../../../recipes/deep-compression.toml");

/// Arguments of `deepshrink demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of IDX files laid out like MNIST.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Where the baseline, the .dsk and the report go.
    #[arg(long, default_value = "out/demo")]
    pub out_dir: PathBuf,
    /// Training epochs of the baseline.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Seed of training and retraining.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs `demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir).map_err(|e| {
        anyhow::anyhow!("{}: cannot create the output directory: {e}", args.out_dir.display())
    })?;
    let baseline = args.out_dir.join("lenet-300-100.onnx");
    crate::exit::print(&format!("== 1/2 training LeNet-300-100 for {} epochs ==\n", args.epochs))?;
    train::run(train::Args::for_demo("lenet-300-100", &args.data, args.epochs, args.seed, &baseline))?;
    crate::exit::print("\n== 2/2 Deep Compression: prune -> share -> Huffman ==\n")?;
    let c = compress::Args {
        model: baseline,
        recipe: PathBuf::from("recipes/deep-compression.toml"),
        data: args.data.clone(),
        out: args.out_dir.join("lenet-300-100.dsk"),
        report: Some(args.out_dir.join("report.json")),
        batch_size: 128,
        seed: args.seed,
        compare_teacher: false,
        limit: None,
    };
    compress::run_recipe(&c, RECIPE)
}
