//! deepshrink-runtime (in progress)
