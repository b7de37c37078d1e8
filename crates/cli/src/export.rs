//! `deepshrink export`: decode a `.dsk` container to a dense ONNX model.

use std::path::PathBuf;

use crate::{dsk, exit};

/// Arguments of `deepshrink export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The compressed model (.dsk).
    pub model: PathBuf,
    /// The ONNX file to write; its weights equal the decoded weights bit for bit.
    #[arg(long)]
    pub to: PathBuf,
}

/// Runs `export`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.to.extension().and_then(|e| e.to_str()) == Some("onnx"),
        "{}: export writes ONNX; give a .onnx path",
        args.to.display()
    );
    let model = dsk::load(&args.model)?;
    let graph = model.to_dense_graph();
    deepshrink_io::onnx::save(&graph, &args.to)?;
    exit::print(&format!(
        "{} -> {} ({} weights)\n",
        args.model.display(),
        args.to.display(),
        graph.weights.len()
    ))?;
    Ok(())
}
