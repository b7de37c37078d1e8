//! idx (in progress)
