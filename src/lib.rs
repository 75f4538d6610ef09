//! Ferrokeeper: a ZooKeeper-compatible coordination server, thread-per-core.
//!
//! Module map (see `docs/architecture.md` for the threads and the life of a request):
//! - [`limits`]  every static bound in one place (frame size, queues, batches).
//! - [`clock`]   Java's wall and elapsed clocks, as ZooKeeper reports times.
//! - [`config`]  zoo.cfg + myid parsing and validation.
//! - [`proto`]   jute codec, records, opcodes, error codes (pure).
//! - [`tree`]    the immutable, structurally shared data tree; txn prep and apply (pure).
//! - [`session`] session table, timeouts and expiry driven by the caller's clock (pure).
//! - [`watch`]   a shard's watch registry and who a change notifies (pure).
//! - [`storage`] durable state: write-ahead log, snapshots, recovery, retention.
//! - [`tls`]     client TLS on `secureClientPort`: stores, rustls config, rotation, x509 ids.
//! - [`server`]  the glommio runtime: shard executors, the pipeline executor, connections.
//! - [`ops`]     four-letter words.
//! - [`http`]    the minimal bounded HTTP/1.1 server `/metrics` and the AdminServer share.
//! - [`admin`]   ZooKeeper's HTTP AdminServer (`/commands/<name>`, JSON), on threads of its own.
//! - [`metrics`] ZooKeeper's Prometheus `/metrics` endpoint, on a thread of its own.
//! - [`zab`]     ZooKeeper's quorum wire formats (election and learner protocols).
//! - [`quorum`]  the replication runtime: election connections and the elector thread.
//! - [`replica`] the quorum port's runtime: leader-learner links, the DIFF history, the role status.
//! - [`operator`] zkServer.sh-style commands: start/stop/restart/status, pid file, probes.

pub mod admin;
pub mod clock;
pub mod config;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod operator;
pub mod ops;
pub mod proto;
pub mod quorum;
pub mod replica;
pub mod server;
pub mod session;
pub mod storage;
pub mod tls;
pub mod tree;
pub mod watch;
pub mod zab;
