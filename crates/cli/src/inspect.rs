//! `deepshrink inspect`: per-layer size and compute of a model file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::exit;

/// Arguments of `deepshrink inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model file: .onnx (graph and weights) or .safetensors (weights only, one row per tensor).
    pub model: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The file formats `inspect` reads, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Onnx,
    Safetensors,
}

impl Format {
    fn of(path: &Path) -> anyhow::Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("onnx") => Ok(Format::Onnx),
            Some("safetensors") => Ok(Format::Safetensors),
            _ => bail!("{}: unknown model format (expected .onnx or .safetensors)", path.display()),
        }
    }
}

/// Runs `inspect`: reads the model, summarises it and prints the table or JSON to stdout.
pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args.model.display().to_string();
    let text = match Format::of(&args.model)? {
        Format::Onnx => {
            let graph = deepshrink_io::onnx::load(&args.model)?;
            let summary = deepshrink_eval::summarize(&graph, &name)
                .with_context(|| format!("{name}: cannot infer the model's shapes"))?;
            render(&summary, args.json, |s| s.to_markdown())?
        }
        Format::Safetensors => {
            let tensors = deepshrink_io::safetensors::read(&args.model)?;
            let summary = deepshrink_eval::summarize_tensors(&tensors, &name);
            render(&summary, args.json, |s| s.to_markdown())?
        }
    };
    exit::print(&text)?;
    Ok(())
}

/// One pretty-printed JSON object, or the Markdown table.
fn render<T: serde::Serialize>(
    value: &T,
    json: bool,
    markdown: impl Fn(&T) -> String,
) -> anyhow::Result<String> {
    if json {
        let mut s = serde_json::to_string_pretty(value)?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(markdown(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension() {
        assert_eq!(Format::of(Path::new("a/b.onnx")).unwrap(), Format::Onnx);
        assert_eq!(Format::of(Path::new("B.ONNX")).unwrap(), Format::Onnx);
        assert_eq!(Format::of(Path::new("w.safetensors")).unwrap(), Format::Safetensors);
        let e = Format::of(Path::new("model.pt")).unwrap_err().to_string();
        assert!(e.starts_with("model.pt: unknown model format"), "{e}");
        assert!(Format::of(Path::new("noext")).is_err());
    }
}
