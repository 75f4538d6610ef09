//! The replication runtime: the threads and sockets that drive the pure
//! cores of [`crate::zab`]. `zab` decides what to send and when; this module
//! only moves bytes, keeps time and reports what happened, so every protocol
//! rule stays testable in the simulators and this code stays small.
//!
//! The election runs on plain std threads, not on the glommio executors:
//! it is not on a hot path (a few small messages per election), it blocks
//! on sockets with timeouts as ZooKeeper's `QuorumCnxManager` does, and the
//! shards and the pipeline must never wait for a peer.
//!
//! Submodules:
//! - [`ensemble`] the members, voters and election addresses from zoo.cfg,
//!   and the config text notifications carry (`QuorumMaj.toString()`).
//! - [`cnx`] ZooKeeper's `QuorumCnxManager`: the election listener, one
//!   connection per peer with the handshake and the larger-sid rule,
//!   newest-wins send queues, receive workers, events on a bounded channel.
//! - [`elector`] the thread that owns an `Election` core and a [`cnx::CnxManager`],
//!   and reports each decision.
//! - [`send_queue`] the per-peer queue that drops the oldest vote when full.
//! - [`wire_io`] the bounded blocking socket steps (bind with retries,
//!   accept, handshake read, frame read/write).
//! - [`tls_stream`] an election connection's bytes, plain or TLS
//!   (`sslQuorum`), shared by its receive and send threads.
//!
//! Bounds are in `crate::limits::quorum`.

pub mod cnx;
pub mod elector;
pub mod ensemble;
pub mod send_queue;
pub mod tls_stream;
pub mod wire_io;
