//! `deepshrink`: compress and accelerate trained deep neural networks.
//!
//! Layout: this file parses the command line and dispatches; every subcommand lives in its own
//! file with an `Args` struct (clap derive) and a `run(Args) -> anyhow::Result<()>`. Errors from
//! every subcommand flow back here and are reported by [`exit::finish`]: one line on stderr and
//! exit code 2, or a quiet exit 0 when stdout was closed early (`deepshrink ... | head`).
//!
//! This is the only crate that uses `anyhow`; the libraries return typed errors that already name
//! the file, node and shapes involved.

mod bench;
mod compress;
mod data;
mod demo;
mod distill;
mod dsk;
mod eval_cmd;
mod exit;
mod export;
mod inspect;
mod progress;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "deepshrink", version, about = "Compress and accelerate trained deep neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands, one file each.
#[derive(Debug, Subcommand)]
enum Command {
    /// Show per-layer shapes, parameters, MACs and bytes of a model (.onnx or .safetensors).
    Inspect(inspect::Args),
    /// Train a zoo network or an ONNX model on an IDX data set (MNIST by default).
    Train(train::Args),
    /// Loss, top-1 and top-5 accuracy of a model (.onnx or .dsk) on an IDX data set.
    Eval(eval_cmd::Args),
    /// Run a compression recipe on a trained model and write a .dsk container with a report.
    Compress(compress::Args),
    /// Train a student against a teacher (soft targets, hints, attention transfer) and without it.
    Distill(distill::Args),
    /// Decode a .dsk container to a dense ONNX model.
    Export(export::Args),
    /// Per-layer and total latency, dense f32 and compressed side by side (medians).
    Bench(bench::Args),
    /// Deep Compression end to end on the embedded MNIST: train, prune, share, Huffman, measure.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    // On a usage error clap prints the problem and exits with code 2; `--help` and `--version`
    // exit 0.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Compress(args) => compress::run(args),
        Command::Distill(args) => distill::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
    };
    exit::finish(result)
}
