//! Ferrokeeper: a ZooKeeper-compatible coordination server, thread-per-core.
//!
//! Module map (see `docs/architecture.md` for the threads and the life of a request):
//! - [`limits`]  every static bound in one place (frame size, queues, batches).
//! - [`config`]  zoo.cfg + myid parsing and validation.
//! - [`proto`]   jute codec, records, opcodes, error codes (pure).
//! - [`tree`]    the immutable, structurally shared data tree; txn prep and apply (pure).
//! - [`session`] session table, timeouts and expiry driven by ticks (pure).
//! - [`watch`]   per-shard watch registry and event fan-out (pure).
//! - [`server`]  the glommio runtime: shard executors, the pipeline executor, connections.
//! - [`ops`]     four-letter words and server statistics.

pub mod limits;
pub mod proto;
pub mod tree;
