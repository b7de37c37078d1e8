//! Error reporting and exit codes, ripgrep style.
//!
//! - success: exit 0;
//! - any error: one line `deepshrink: error: {err:#}` on stderr, exit 2;
//! - stdout closed by the reader (`BrokenPipe`): exit 0 silently, since the reader got what it
//!   wanted.
//!
//! Output goes through [`print`] instead of `println!`, which would panic on a closed pipe.

use std::io::Write;
use std::process::ExitCode;

/// Exit code for every error, as ripgrep and clap's usage errors.
pub const ERROR: u8 = 2;

/// Writes `text` to stdout and flushes, returning any I/O error (including `BrokenPipe`).
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Turns the result of a subcommand into the process exit code, reporting an error on stderr.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // If stderr is gone too there is nobody left to tell.
            let _ = writeln!(std::io::stderr(), "deepshrink: error: {}", one_line(&e));
            ExitCode::from(ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The error and its causes joined by `": "`, as `{:#}` does, on one line.
///
/// Library errors often print their source in their own message *and* return it from
/// `Error::source` (`"{path}: {source}"`); plain `{:#}` would then repeat it. A cause whose text
/// already ends the message so far is skipped.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.is_empty() {
            msg = text;
        } else if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Embeds(std::io::Error);
    impl std::fmt::Display for Embeds {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "model.onnx: {}", self.0)
        }
    }
    impl std::error::Error for Embeds {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_embedded_in_the_message_are_not_repeated() {
        let e = anyhow::Error::new(Embeds(std::io::Error::other("no such file")));
        assert_eq!(one_line(&e), "model.onnx: no such file");
        let e = e.context("inspect");
        assert_eq!(one_line(&e), "inspect: model.onnx: no such file");
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        let e = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(one_line(&e), "outer: first second");
    }

    #[test]
    fn broken_pipe_is_found_under_context() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
