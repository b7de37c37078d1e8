//! Configurations of the factorization passes (one per method) and the rule they share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rank::{validate_rule, Scope};
use crate::CompressError;

/// How ranks are chosen, resolved from a configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// One rank for every layer.
    Rank(usize),
    /// Keep this fraction of the squared singular values (per unfolding for Tucker-2).
    Energy(f64),
    /// Parameters (SVD) or MACs (convolutions) shrink by this factor.
    Ratio(f64, Scope),
    /// Empirical VBMF on the mode unfoldings (Tucker-2).
    Vbmf,
}

/// Settings every factorization pass has.
#[derive(Debug, Clone, PartialEq)]
pub struct Common<'a> {
    /// The rank rule.
    pub rule: Rule,
    /// Per-layer ranks by weight name, overriding the rule.
    pub layers: &'a BTreeMap<String, usize>,
    /// Weights left alone.
    pub skip: &'a [String],
    /// Keep a factored layer only if it runs faster at batch 1 and batch 32.
    pub check_speed: bool,
    /// Required speed-up when `check_speed` is set.
    pub min_speedup: f64,
    /// Fine-tuning epochs after the rewrite.
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate.
    pub lr: f32,
}

fn check_common(pass: &'static str, min_speedup: f64, lr: f32) -> Result<(), CompressError> {
    if !(min_speedup.is_finite() && min_speedup > 0.0) {
        return Err(CompressError::Config {
            pass,
            detail: format!("min_speedup {min_speedup} must be positive"),
        });
    }
    if !(lr.is_finite() && lr > 0.0) {
        return Err(CompressError::Config { pass, detail: format!("lr {lr} must be positive") });
    }
    Ok(())
}

fn check_layer_ranks(pass: &'static str, layers: &BTreeMap<String, usize>) -> Result<(), CompressError> {
    match layers.iter().find(|(_, &r)| r == 0) {
        Some((n, _)) => {
            Err(CompressError::Config { pass, detail: format!("rank 0 for {n}: a rank must be at least 1") })
        }
        None => Ok(()),
    }
}

/// Truncated SVD of fully-connected layers (see `factorize::svd`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvdConfig {
    /// One rank for every layer.
    pub rank: Option<usize>,
    /// Keep this fraction of the squared singular values (default 0.9 when no rule is given).
    pub energy: Option<f64>,
    /// Parameters shrink by this factor.
    pub ratio: Option<f64>,
    /// Whether `ratio` holds per layer or for all factorized layers together.
    pub scope: Scope,
    /// Per-layer ranks by weight name.
    pub layers: BTreeMap<String, usize>,
    /// Weights left alone (e.g. a small output layer).
    pub skip: Vec<String>,
    /// Keep a factored layer only if it is measured faster (batch 1 and 32).
    pub check_speed: bool,
    /// Required speed-up.
    pub min_speedup: f64,
    /// Fine-tuning epochs.
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate (Adam, cosine-decayed).
    pub lr: f32,
}

impl Default for SvdConfig {
    fn default() -> Self {
        SvdConfig {
            rank: None,
            energy: None,
            ratio: None,
            scope: Scope::PerLayer,
            layers: BTreeMap::new(),
            skip: Vec::new(),
            check_speed: true,
            min_speedup: 1.0,
            finetune_epochs: 2,
            lr: 1e-4,
        }
    }
}

impl SvdConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        if self.rank.is_some() || self.energy.is_some() || self.ratio.is_some() {
            validate_rule("svd", self.rank, self.energy, self.ratio, 0)?;
        }
        if self.scope == Scope::Net && self.ratio.is_none() {
            return Err(CompressError::Config {
                pass: "svd",
                detail: "scope = \"net\" needs a ratio".into(),
            });
        }
        check_layer_ranks("svd", &self.layers)?;
        check_common("svd", self.min_speedup, self.lr)
    }

    /// The shared settings.
    pub fn common(&self) -> Common<'_> {
        let rule = match (self.rank, self.energy, self.ratio) {
            (Some(r), _, _) => Rule::Rank(r),
            (_, Some(e), _) => Rule::Energy(e),
            (_, _, Some(x)) => Rule::Ratio(x, self.scope),
            _ => Rule::Energy(0.9),
        };
        Common {
            rule,
            layers: &self.layers,
            skip: &self.skip,
            check_speed: self.check_speed,
            min_speedup: self.min_speedup,
            finetune_epochs: self.finetune_epochs,
            lr: self.lr,
        }
    }
}

/// Tucker-2 decomposition of convolutions (see `factorize::tucker`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuckerConfig {
    /// One rank for both modes of every layer.
    pub rank: Option<usize>,
    /// Keep this fraction of the squared singular values of each unfolding.
    pub energy: Option<f64>,
    /// MACs of each layer shrink by this factor (both ranks scaled with the channel counts).
    pub ratio: Option<f64>,
    /// Ranks by empirical VBMF on the two unfoldings (Kim et al. 2016; the default rule).
    pub vbmf: bool,
    /// Per-layer ranks (both modes) by weight name.
    pub layers: BTreeMap<String, usize>,
    /// Weights left alone.
    pub skip: Vec<String>,
    /// HOOI rounds after the HOSVD initialisation (0: HOSVD only).
    pub hooi_iters: usize,
    /// Keep a factored layer only if it is measured faster (batch 1 and 32).
    pub check_speed: bool,
    /// Required speed-up.
    pub min_speedup: f64,
    /// Fine-tuning epochs.
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate.
    pub lr: f32,
}

impl Default for TuckerConfig {
    fn default() -> Self {
        TuckerConfig {
            rank: None,
            energy: None,
            ratio: None,
            vbmf: false,
            layers: BTreeMap::new(),
            skip: Vec::new(),
            hooi_iters: 10,
            check_speed: true,
            min_speedup: 1.0,
            finetune_epochs: 2,
            lr: 1e-4,
        }
    }
}

impl TuckerConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        if self.rank.is_some() || self.energy.is_some() || self.ratio.is_some() || self.vbmf {
            validate_rule("tucker2", self.rank, self.energy, self.ratio, self.vbmf as usize)?;
        }
        check_layer_ranks("tucker2", &self.layers)?;
        check_common("tucker2", self.min_speedup, self.lr)
    }

    /// The shared settings.
    pub fn common(&self) -> Common<'_> {
        let rule = match (self.rank, self.energy, self.ratio) {
            (Some(r), _, _) => Rule::Rank(r),
            (_, Some(e), _) => Rule::Energy(e),
            (_, _, Some(x)) => Rule::Ratio(x, Scope::PerLayer),
            _ => Rule::Vbmf,
        };
        Common {
            rule,
            layers: &self.layers,
            skip: &self.skip,
            check_speed: self.check_speed,
            min_speedup: self.min_speedup,
            finetune_epochs: self.finetune_epochs,
            lr: self.lr,
        }
    }
}

/// CP decomposition of convolutions by ALS (see `factorize::cp`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpConfig {
    /// One rank for every layer.
    pub rank: Option<usize>,
    /// MACs of each layer shrink by this factor (default 2 when no rule is given).
    pub ratio: Option<f64>,
    /// Per-layer ranks by weight name.
    pub layers: BTreeMap<String, usize>,
    /// Weights left alone.
    pub skip: Vec<String>,
    /// Most ALS sweeps.
    pub max_iter: usize,
    /// ALS stops when the relative error changes by less than this (relative).
    pub tol: f64,
    /// A layer whose decomposition has a larger relative error is kept (ALS did not fit it).
    pub max_error: f64,
    /// Keep a factored layer only if it is measured faster (batch 1 and 32).
    pub check_speed: bool,
    /// Required speed-up.
    pub min_speedup: f64,
    /// Fine-tuning epochs.
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate.
    pub lr: f32,
}

impl Default for CpConfig {
    fn default() -> Self {
        CpConfig {
            rank: None,
            ratio: None,
            layers: BTreeMap::new(),
            skip: Vec::new(),
            max_iter: 100,
            tol: 1e-8,
            max_error: 0.9,
            check_speed: true,
            min_speedup: 1.0,
            finetune_epochs: 2,
            lr: 1e-4,
        }
    }
}

impl CpConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        if self.rank.is_some() || self.ratio.is_some() {
            validate_rule("cp", self.rank, None, self.ratio, 0)?;
        }
        check_layer_ranks("cp", &self.layers)?;
        let bad = |detail: String| Err(CompressError::Config { pass: "cp", detail });
        if self.max_iter == 0 {
            return bad("max_iter must be at least 1".into());
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad(format!("tol {} must be non-negative", self.tol));
        }
        if self.max_error.is_nan() || self.max_error <= 0.0 {
            return bad(format!("max_error {} must be positive", self.max_error));
        }
        check_common("cp", self.min_speedup, self.lr)
    }

    /// The shared settings.
    pub fn common(&self) -> Common<'_> {
        let rule = match (self.rank, self.ratio) {
            (Some(r), _) => Rule::Rank(r),
            (_, Some(x)) => Rule::Ratio(x, Scope::PerLayer),
            _ => Rule::Ratio(2.0, Scope::PerLayer),
        };
        Common {
            rule,
            layers: &self.layers,
            skip: &self.skip,
            check_speed: self.check_speed,
            min_speedup: self.min_speedup,
            finetune_epochs: self.finetune_epochs,
            lr: self.lr,
        }
    }
}

/// Spatially separable filters, Jaderberg et al.'s scheme 2 (see `factorize::separable`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeparableConfig {
    /// One rank for every layer.
    pub rank: Option<usize>,
    /// Keep this fraction of the squared singular values of the `(C·kh) × (N·kw)` matrix.
    pub energy: Option<f64>,
    /// MACs of each layer shrink by this factor (default 2 when no rule is given).
    pub ratio: Option<f64>,
    /// Ranks by empirical VBMF on the `(C·kh) × (N·kw)` matrix.
    pub vbmf: bool,
    /// Per-layer ranks by weight name.
    pub layers: BTreeMap<String, usize>,
    /// Weights left alone.
    pub skip: Vec<String>,
    /// Keep a factored layer only if it is measured faster (batch 1 and 32).
    pub check_speed: bool,
    /// Required speed-up.
    pub min_speedup: f64,
    /// Fine-tuning epochs.
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate.
    pub lr: f32,
}

impl Default for SeparableConfig {
    fn default() -> Self {
        SeparableConfig {
            rank: None,
            energy: None,
            ratio: None,
            vbmf: false,
            layers: BTreeMap::new(),
            skip: Vec::new(),
            check_speed: true,
            min_speedup: 1.0,
            finetune_epochs: 2,
            lr: 1e-4,
        }
    }
}

impl SeparableConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CompressError> {
        if self.rank.is_some() || self.energy.is_some() || self.ratio.is_some() || self.vbmf {
            validate_rule("separable", self.rank, self.energy, self.ratio, self.vbmf as usize)?;
        }
        check_layer_ranks("separable", &self.layers)?;
        check_common("separable", self.min_speedup, self.lr)
    }

    /// The shared settings.
    pub fn common(&self) -> Common<'_> {
        let rule = match (self.rank, self.energy, self.ratio, self.vbmf) {
            (Some(r), _, _, _) => Rule::Rank(r),
            (_, Some(e), _, _) => Rule::Energy(e),
            (_, _, Some(x), _) => Rule::Ratio(x, Scope::PerLayer),
            (_, _, _, true) => Rule::Vbmf,
            _ => Rule::Ratio(2.0, Scope::PerLayer),
        };
        Common {
            rule,
            layers: &self.layers,
            skip: &self.skip,
            check_speed: self.check_speed,
            min_speedup: self.min_speedup,
            finetune_epochs: self.finetune_epochs,
            lr: self.lr,
        }
    }
}
