//! The ZooKeeper client wire protocol ("jute"): pure encoding and decoding, no I/O.

pub mod types;

pub use types::*;
