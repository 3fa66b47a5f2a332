//! Helpers for unit tests: the workspace's test kit.

pub use testkit::TempDir;
