//! Recipes: a TOML list of passes, parsed into typed configurations with unknown keys rejected.

use serde::{Deserialize, Serialize};

use crate::circulant::CirculantConfig;
use crate::factorize::config::{CpConfig, SeparableConfig, SvdConfig, TuckerConfig};
use crate::hashed::HashConfig;
use crate::prune::PruneConfig;
use crate::qat::QatConfig;
use crate::quantize::QuantizeConfig;
use crate::share::ShareConfig;
use crate::teacher::TeacherConfig;
use crate::CompressError;

/// Entropy coding of the stored streams (Deep Compression's third stage).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HuffmanConfig {
    /// Bits of a relative index (gap) for fully-connected weights (paper: 5).
    pub index_bits_fc: u8,
    /// Bits of a relative index for convolution weights (paper: 8).
    pub index_bits_conv: u8,
}

impl Default for HuffmanConfig {
    fn default() -> Self {
        HuffmanConfig { index_bits_fc: 5, index_bits_conv: 8 }
    }
}

/// One pass of a recipe. The set is closed: a recipe naming another pass is rejected.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PassConfig {
    /// Magnitude pruning with retraining.
    Prune(PruneConfig),
    /// Weight sharing with centroid fine-tuning.
    Share(ShareConfig),
    /// Huffman coding of indices and codes in the container.
    Huffman(HuffmanConfig),
    /// HashedNets: weights drawn from a few shared values by a hash of their position.
    Hash(HashConfig),
    /// Block-circulant fully-connected layers, multiplied with FFTs.
    Circulant(CirculantConfig),
    /// Quantization-aware training: binary, ternary or k-bit weights.
    Qat(QatConfig),
    /// Post-training uniform quantization of weights (8, 4 or 2 bits).
    Quantize(QuantizeConfig),
    /// Truncated SVD of fully-connected layers (two Gemms), then fine-tuning.
    Svd(SvdConfig),
    /// Tucker-2 decomposition of convolutions (1x1 → core → 1x1), then fine-tuning.
    Tucker2(TuckerConfig),
    /// CP decomposition of convolutions by ALS (1x1 → k×1 → 1×k → 1x1), then fine-tuning.
    Cp(CpConfig),
    /// Spatially separable filters (k×1 → 1×k, Jaderberg et al. scheme 2), then fine-tuning.
    Separable(SeparableConfig),
}

impl PassConfig {
    /// The pass name as written in recipes.
    pub fn name(&self) -> &'static str {
        match self {
            PassConfig::Prune(_) => "prune",
            PassConfig::Share(_) => "share",
            PassConfig::Huffman(_) => "huffman",
            PassConfig::Hash(_) => "hash",
            PassConfig::Circulant(_) => "circulant",
            PassConfig::Qat(_) => "qat",
            PassConfig::Quantize(_) => "quantize",
            PassConfig::Svd(_) => "svd",
            PassConfig::Tucker2(_) => "tucker2",
            PassConfig::Cp(_) => "cp",
            PassConfig::Separable(_) => "separable",
        }
    }
}

/// A compression pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Passes, in order.
    #[serde(rename = "pass")]
    pub passes: Vec<PassConfig>,
    /// A teacher for every fine-tuning step (distillation as recovery; see [`crate::teacher`]).
    #[serde(default)]
    pub teacher: Option<TeacherConfig>,
}

impl Recipe {
    /// Parses and validates a recipe.
    pub fn parse(text: &str) -> Result<Recipe, CompressError> {
        let r: Recipe = toml::from_str(text).map_err(|e| CompressError::Recipe(e.message().to_string()))?;
        if r.passes.is_empty() {
            return Err(CompressError::Recipe("no [[pass]] entries".into()));
        }
        if let Some(t) = &r.teacher {
            t.validate()?;
        }
        for p in &r.passes {
            match p {
                PassConfig::Prune(c) => c.validate()?,
                PassConfig::Share(c) => c.validate()?,
                PassConfig::Hash(c) => c.validate()?,
                PassConfig::Circulant(c) => c.validate()?,
                PassConfig::Qat(c) => c.validate()?,
                PassConfig::Quantize(c) => c.validate()?,
                PassConfig::Svd(c) => c.validate()?,
                PassConfig::Tucker2(c) => c.validate()?,
                PassConfig::Cp(c) => c.validate()?,
                PassConfig::Separable(c) => c.validate()?,
                PassConfig::Huffman(c) => {
                    for b in [c.index_bits_fc, c.index_bits_conv] {
                        if !(1..=16).contains(&b) {
                            return Err(CompressError::Config {
                                pass: "huffman",
                                detail: format!("index bits {b} must be in 1..=16"),
                            });
                        }
                    }
                }
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shipped_recipes() {
        for text in [
            include_str!("../../../recipes/deep-compression.toml"),
            include_str!("../../../recipes/deep-compression-lenet5.toml"),
        ] {
            let r = Recipe::parse(text).unwrap();
            let names: Vec<&str> = r.passes.iter().map(|p| p.name()).collect();
            assert_eq!(names, ["prune", "share", "huffman"]);
        }
        for (text, bits) in
            [(include_str!("../../../recipes/int8.toml"), 8), (include_str!("../../../recipes/int4.toml"), 4)]
        {
            let r = Recipe::parse(text).unwrap();
            assert!(matches!(&r.passes[..], [PassConfig::Quantize(c)] if c.bits == bits));
        }
    }

    #[test]
    fn rejects_unknown_passes_keys_and_ranges() {
        let cases = [
            ("[[pass]]\nkind = \"magic\"\n", "magic"),
            ("[[pass]]\nkind = \"prune\"\nsparsty = 0.5\n", "sparsty"),
            ("[[pass]]\nkind = \"prune\"\nsparsity = 1.0\n", "[0, 1)"),
            ("[[pass]]\nkind = \"share\"\nbits_fc = 0\n", "1..=16"),
            ("[[pass]]\nkind = \"prune\"\nblock = 0\n", "1..=64"),
            ("[[pass]]\nkind = \"hash\"\nfraction = 0.0\n", "(0, 1]"),
            ("[[pass]]\nkind = \"hash\"\nbuckets = 3\n", "buckets"),
            ("[[pass]]\nkind = \"qat\"\nmethod = \"uniform\"\nbits = 9\n", "2..=8"),
            ("[[pass]]\nkind = \"qat\"\nmethod = \"octal\"\n", "octal"),
            ("[[pass]]\nkind = \"prune\"\nblock_layers = { \"fc1.weight\" = 65 }\n", "fc1.weight"),
            ("[[pass]]\nkind = \"prune\"\nscope = \"global\"\nblock = 4\n", "per-layer"),
            ("[[pass]]\nkind = \"share\"\nbits_conv = 17\n", "1..=16"),
            ("description = \"x\"\n", "pass"),
            ("[[pass]]\nkind = \"quantize\"\nbits = 3\n", "8, 4 or 2"),
            ("[[pass]]\nkind = \"quantize\"\ngranularity = \"per-row\"\n", "per-row"),
            ("[[pass]]\nkind = \"quantize\"\nbitz = 8\n", "bitz"),
        ];
        for (text, needle) in cases {
            let err = Recipe::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
