//! deepshrink-compress (in progress)
