//! Progress bars on stderr, shown only when stderr is a terminal, so logs and pipes stay clean.
//!
//! Print other output while a bar is visible with `ProgressBar::println` or `suspend`, so the
//! bar is redrawn below it instead of being torn.

// Used by the `train` and `eval` subcommands.
#![allow(dead_code)]

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where bars draw: stderr if it is a terminal, nowhere otherwise.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar of `len` steps labelled `msg`, e.g. `bar(batches, "epoch 3")`.
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(len), target()).with_style(style).with_message(msg.to_string())
}

/// A spinner for work of unknown length, labelled `msg`.
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, target()).with_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}
