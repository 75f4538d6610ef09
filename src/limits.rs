//! Every static bound of the server in one place. Values that a deployment may
//! tune live in `config` (zoo.cfg keys); these are the defaults and hard caps.

/// Default `jute.maxbuffer`: the largest frame a client may send (ZooKeeper's 0xfffff).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 0xfffff;
/// Hard cap for a configured `jute.maxbuffer`, so a config typo cannot let clients
/// make the server allocate gigabytes per connection.
pub const FRAME_BYTES_MAX_CAP: usize = 64 << 20;
/// Length prefix of every frame.
pub const FRAME_LEN_BYTES: usize = 4;
/// ZooKeeper session password length.
pub const SESSION_PASSWD_BYTES: usize = 16;
/// Nesting of multi is not allowed; ops per multi are bounded by the frame size,
/// but we cap the count to keep per-request work bounded.
pub const MULTI_OPS_MAX: usize = 10_000;
/// A multiRead whose reply would exceed this closes its connection: its ops
/// repeat reads, so a request of a few KB could ask for gigabytes.
pub const MULTI_READ_REPLY_BYTES_MAX: usize = 64 << 20;
/// Repeats of one quota warning are logged at most once per this many ms
/// (ZooKeeper's RateLogger interval for checkQuota).
pub const QUOTA_LOG_INTERVAL_MS: u64 = 100;
/// Entries in one vector field (ACL list, setWatches path lists, ...).
pub const VECTOR_LEN_MAX: usize = 1 << 20;

/// Default requests one connection may have in flight before the server stops
/// reading its socket (backpressure).
pub const OUTSTANDING_PER_CONNECTION_DEFAULT: u32 = 1000;
/// Largest configurable per-connection outstanding count.
pub const OUTSTANDING_PER_CONNECTION_CAP: u32 = 100_000;
/// Default most watches one connection may hold
/// (`ferrokeeper.maxWatchesPerConnection`); beyond it the connection closes.
pub const WATCHES_PER_CONNECTION_DEFAULT: usize = 1_000_000;
/// Ids one connection may collect with addauth (the ip id included); the
/// addauth that would exceed it gets AUTHFAILED and the connection closes.
pub const AUTH_IDS_PER_CONNECTION_MAX: usize = 128;
/// Largest configurable watches per connection.
pub const WATCHES_PER_CONNECTION_CAP: usize = 100_000_000;
/// Largest configurable `globalOutstandingLimit`.
pub const GLOBAL_OUTSTANDING_CAP: u32 = 1_000_000;
/// How long startup retries binding a client port that is still in use
/// (the listener of a process that just crashed can linger briefly).
pub const BIND_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);
/// A new connection must deliver its first frame (ConnectRequest or a
/// four-letter word) within this time (ZooKeeper's sessionless timeout).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Pending connections the kernel queues per shard's listening socket.
pub const LISTEN_BACKLOG: u32 = 1024;
/// Machines with at most this many cores default to one shard.
pub const SMALL_MACHINE_CORES: usize = 2;
/// Most shard executors a server runs.
pub const SHARDS_MAX: usize = 256;

/// Bytes read from a socket per read call (the receive buffer grows to a
/// frame). Small, because each read zero-fills this much of the buffer first.
pub const RECV_CHUNK_BYTES: usize = 16 << 10;
/// A receive buffer that grew past this for a large request is released
/// once that request has been taken from it.
pub const RECV_BUFFER_KEEP_BYTES: usize = 64 << 10;
/// Bytes a connection holds (receive buffer, requests not yet answered,
/// replies and events not yet sent, the buffer being written): above this
/// the server stops reading that connection's requests and stops running
/// its queued reads until the client drains its replies.
pub const CONN_HELD_BYTES_HIGH_WATER: usize = 4 << 20;
/// A connection holding more than this (only write replies and watch events
/// can push it past the high-water mark) for longer than
/// [`CONN_OVER_HARD_CAP_TIMEOUT`] is closed: its client is not reading.
pub const CONN_HELD_BYTES_HARD_CAP: usize = 16 << 20;
/// How long a connection may stay over [`CONN_HELD_BYTES_HARD_CAP`].
pub const CONN_OVER_HARD_CAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A connection holding more than this is closed at once (a watch-event
/// flood into a client that does not read cannot wait for the timeout).
pub const CONN_HELD_BYTES_CEILING: usize = 128 << 20;
/// How often a stuck write re-checks the hard-cap timeout.
pub const CONN_STUCK_WRITE_CHECK: std::time::Duration = std::time::Duration::from_millis(500);
/// Small replies and events share send chunks of up to this many bytes; a
/// larger reply gets a chunk of its own size (`server/send_queue.rs`).
pub const SEND_CHUNK_BYTES: usize = 64 << 10;
/// A sent chunk up to this size is kept for the connection's next replies;
/// larger ones are freed.
pub const SEND_BUFFER_KEEP_BYTES: usize = 16 << 10;
/// A shard whose client buffers fell this far below their peak asks the
/// allocator to return the freed memory to the system.
pub const RELEASE_FREED_CLIENT_BYTES: usize = 8 << 20;
/// Initial capacity of a send chunk.
pub const SEND_BUFFER_INITIAL_BYTES: usize = 4 << 10;
/// Room asked of the send queue before encoding a reply whose size is not
/// known in advance (it grows the chunk if it needs more).
pub const SMALL_REPLY_BYTES_HINT: usize = 256;
/// A request frame smaller than this that cannot run at once is copied out
/// of the receive buffer, so it does not pin a whole receive chunk while it
/// waits (larger frames are shared: they fill most of their chunk anyway).
pub const FRAME_SHARE_MIN_BYTES: usize = 4 << 10;
/// Default server-wide bound on bytes held for clients
/// (`ferrokeeper.maxClientBufferBytes`): this fraction of the machine's
/// memory (or of the cgroup's limit), clamped to the two bounds below.
pub const CLIENT_BUFFER_MEMORY_DIVISOR: u64 = 256;
pub const CLIENT_BUFFER_BYTES_DEFAULT_MIN: usize = 32 << 20;
pub const CLIENT_BUFFER_BYTES_DEFAULT_MAX: usize = 1 << 30;
/// Range of a configured `ferrokeeper.maxClientBufferBytes`.
pub const CLIENT_BUFFER_BYTES_MIN: usize = 1 << 20;
pub const CLIENT_BUFFER_BYTES_CAP: usize = 1 << 40;
/// While the server-wide bound is reached, a connection holding less than
/// its fair share (the bound over the connection count, at least this)
/// is never throttled: well-behaved clients keep their latency.
pub const CLIENT_FAIR_SHARE_MIN_BYTES: usize = 256 << 10;

/// glommio's registered-buffer pool per executor (its default is 10 MiB,
/// touched and pinned at start). Only its DMA file API draws on it, which
/// Ferrokeeper does not use (sockets read into our own buffers), so the
/// minimum keeps ~10 MiB of resident memory per executor free.
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 64 << 10;
/// Capacity of each shard -> pipeline channel (messages).
pub const TO_PIPELINE_CHANNEL_CAP: usize = 4096;
/// Capacity of the pipeline -> shard channel (commit notices and control).
pub const TO_SHARD_CHANNEL_CAP: usize = 1024;
/// Batches handed to the log executor and not yet synced: one syncing while
/// the next is prepared; beyond it the pipeline waits for the log.
pub const LOG_BATCHES_IN_FLIGHT_MAX: usize = 2;
/// Capacity of the channels between the pipeline and the log executor.
pub const LOG_CHANNEL_CAP: usize = LOG_BATCHES_IN_FLIGHT_MAX + 2;
/// Messages the pipeline holds taken from the shard channels but not yet handled.
pub const PIPELINE_INBOX_MAX: usize = 8192;
/// Shard messages a read-only member holds for the next leader (new
/// sessions, writes of ensemble sessions); at it the inbox is not read, so
/// the shards stop reading their clients.
pub const READ_ONLY_HELD_MAX: usize = PIPELINE_INBOX_MAX;
/// The least time without a quorum before read-only mode starts
/// (`QuorumPeer`'s `roZkMgr` grace period is `max(2000, tickTime)`).
pub const READ_ONLY_GRACE_MIN_MS: u64 = 2000;
/// Default most write requests the pipeline takes into one batch (one log
/// append, one publish); zoo.cfg `zookeeper.maxBatchSize`.
pub const BATCH_REQUESTS_MAX: usize = 1000;
/// Largest configurable `maxBatchSize`.
pub const BATCH_REQUESTS_CAP: usize = 100_000;
/// Default most txn bytes in one batch (`ferrokeeper.maxBatchBytes`).
pub const BATCH_BYTES_MAX: usize = 4 << 20;
/// Largest configurable batch byte bound.
pub const BATCH_BYTES_CAP: usize = 256 << 20;
/// Largest configurable `flushDelay` (ms).
pub const FLUSH_DELAY_MS_MAX: u64 = 1000;
/// Session ids a shard reports as active in one touch message.
pub const TOUCH_BATCH_MAX: usize = 65536;
/// Nodes the container/TTL reaper deletes per pass.
pub const REAP_PER_PASS_MAX: usize = 1000;
/// The ACL cache sweeps lists no node uses once it holds this many (and
/// again whenever it has doubled since the last sweep).
pub const ACL_CACHE_SWEEP_MIN: usize = 1024;
/// Live sessions the server holds; new sessions beyond it are refused.
pub const SESSIONS_MAX: usize = 1 << 20;

/// Tree digests kept for `hash` (ZooKeeper's `DataTree.DIGEST_LOG_LIMIT`).
pub const DIGEST_LOG_MAX: usize = 1024;

const _: () = assert!(FRAME_BYTES_MAX_DEFAULT <= FRAME_BYTES_MAX_CAP);
const _: () = assert!(CONN_HELD_BYTES_HIGH_WATER < CONN_HELD_BYTES_HARD_CAP);
const _: () = assert!(CONN_HELD_BYTES_HARD_CAP < CONN_HELD_BYTES_CEILING);
// A single largest reply fits below the ceiling: it is sent, not a reason to close.
const _: () = assert!(FRAME_BYTES_MAX_CAP < CONN_HELD_BYTES_CEILING);
const _: () = assert!(MULTI_READ_REPLY_BYTES_MAX < CONN_HELD_BYTES_CEILING);
const _: () = assert!(CLIENT_BUFFER_BYTES_DEFAULT_MIN <= CLIENT_BUFFER_BYTES_DEFAULT_MAX);
const _: () = assert!(OUTSTANDING_PER_CONNECTION_DEFAULT <= OUTSTANDING_PER_CONNECTION_CAP);
// Any frame a client may send must fit in one log record.
const _: () = assert!(FRAME_BYTES_MAX_CAP < storage::RECORD_PAYLOAD_BYTES_MAX);

/// Bounds of the write-ahead log and snapshots (`src/storage`).
pub mod storage {
    /// Largest encoded txn; above the biggest frame a client can send
    /// (`jute.maxbuffer` cap) plus room for the path and ACL.
    pub const RECORD_PAYLOAD_BYTES_MAX: usize = (64 << 20) + (1 << 20);
    /// A segment that has grown past this is closed at the next batch.
    pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;
    /// ZooKeeper's default `preAllocSize` (64 MiB).
    pub const PREALLOC_BYTES_DEFAULT: u64 = 64 << 20;
    /// Snapshots (and other background files) are fdatasynced after every
    /// this many bytes, so a log sync never waits behind more dirty data.
    pub const BACKGROUND_SYNC_EVERY_BYTES: usize = 4 << 20;
    /// Retention never keeps fewer snapshots (ZooKeeper's minimum).
    pub const SNAPSHOTS_RETAINED_MIN: usize = 3;
    /// Sessions in a snapshot; beyond what a server can hold the file is
    /// treated as corrupt.
    pub const SNAPSHOT_SESSIONS_MAX: u64 = super::SESSIONS_MAX as u64;
    /// Nodes in a snapshot; beyond it the file is treated as corrupt.
    pub const SNAPSHOT_NODES_MAX: u64 = 1 << 32;
    /// Snapshot loading hands nodes from the parser to the tree builder in
    /// batches of this many (one channel operation per batch, not per node)...
    pub const RESTORE_BATCH_NODES: usize = 1024;
    /// ...with at most this many batches parsed ahead of the builder, so the
    /// parser holds a bounded number of nodes the tree does not yet own.
    pub const RESTORE_BATCHES_IN_FLIGHT: usize = 8;
}

/// Bounds of ZooKeeper's server-to-server protocols (`src/zab`): the same
/// limits the Java peers apply, so a frame one side accepts the other does.
pub mod quorum {
    /// Largest election handshake address string; a length outside 1..=this
    /// makes the acceptor close the socket (`QuorumCnxManager.maxBuffer`,
    /// checked in `InitialMessage.parse`).
    pub const HANDSHAKE_ADDR_BYTES_MAX: usize = 2048;
    /// Largest election message payload; a frame length outside 1..=this
    /// drops the connection (`QuorumCnxManager.PACKETMAXSIZE`, `RecvWorker.run`).
    pub const ELECTION_FRAME_BYTES_MAX: usize = 512 * 1024;
    /// Largest config text in a notification: whatever fits one election
    /// frame after the 44-byte header (Java only checks `configLength <=
    /// capacity`, `WorkerReceiver.run`).
    pub const NOTIFICATION_CONFIG_BYTES_MAX: usize = ELECTION_FRAME_BYTES_MAX - 44;
    /// Largest buffer or string in a `QuorumPacket`: `jute.maxbuffer`
    /// (0xfffff) plus `zookeeper.jute.maxbuffer.extrasize`, which defaults to
    /// maxbuffer (`BinaryInputArchive` static init and `checkLength`).
    pub const QUORUM_BUFFER_BYTES_MAX: usize = 2 * 0xfffff;
    /// Most authinfo ids in one packet. Java has no bound besides memory; a
    /// REQUEST carries its client's auth ids plus `ip:<addr>`, and sessions
    /// hold at most `AUTH_IDS_PER_CONNECTION_MAX` (128) of those.
    pub const QUORUM_AUTHINFO_IDS_MAX: usize = 1024;
    /// Proposals a leader has in flight (proposed, not committed); at it,
    /// `Leader::propose` refuses and the pipeline stops taking writes until
    /// commits free room. Ten times ZooKeeper's `globalOutstandingLimit`
    /// default, so group commit batches are never the limit.
    pub const OUTSTANDING_PROPOSALS_MAX: usize = 10_000;
    /// Committed zxids a leader keeps (8 bytes each) to sync a lagging
    /// learner by DIFF; one further behind gets a SNAP. ZooKeeper keeps 500
    /// proposals in memory plus its on-disk log up to a third of the
    /// snapshot's size; this is `snapCount`'s default, the most txns a log
    /// holds between two snapshots.
    pub const COMMITTED_HISTORY_TXNS_MAX: usize = 100_000;
    /// Proposals a learner has logged but not seen committed; a leader that
    /// sends more is out of ZAB's bounds and is left (back to election).
    pub const LEARNER_PENDING_PROPOSALS_MAX: usize = 2 * OUTSTANDING_PROPOSALS_MAX;

    // The quorum-port runtime (`src/replica`): links between the leader and
    // its learners, on the pipeline executor.

    /// Bytes queued to one link's socket. A learner whose queue reaches it
    /// is too slow to keep up and is dropped (it syncs again when it
    /// reconnects); a DIFF of the whole retained history fits.
    pub const LINK_SEND_QUEUE_BYTES_MAX: usize = 2 * HISTORY_BYTES_MAX;
    /// Packets queued to one link's socket: a DIFF of the whole retained
    /// history (a PROPOSAL and a COMMIT each) plus the outstanding proposals.
    pub const LINK_SEND_QUEUE_PACKETS_MAX: usize =
        2 * COMMITTED_HISTORY_TXNS_MAX + 2 * OUTSTANDING_PROPOSALS_MAX + 64;
    /// Bytes a link reads or writes per socket call (and a SNAP's chunk).
    pub const LINK_IO_CHUNK_BYTES: usize = 64 * 1024;
    /// Quorum-port events (packets, link ends) waiting for the pipeline; a
    /// link's reader stops reading while the queue is full (TCP pushes
    /// back on the peer).
    pub const QUORUM_EVENTS_MAX: usize = 4096;
    /// Quorum-port connections a leader holds at once (learners, and
    /// connections that have not said who they are); one beyond it is closed.
    pub const LINKS_MAX: usize = 64;
    /// Bytes of logged txns a server keeps in memory to sync a learner by
    /// DIFF (with `COMMITTED_HISTORY_TXNS_MAX`); older ones are forgotten
    /// and a learner behind them gets a SNAP.
    pub const HISTORY_BYTES_MAX: usize = 64 * 1024 * 1024;
    /// Pause between a learner's tries to connect to its leader's quorum
    /// port (the leader may not be listening yet); it tries for initLimit.
    pub const LEARNER_CONNECT_RETRY_MS: u64 = 100;
    /// Requests a learner has forwarded and not seen answered (writes,
    /// syncs, new sessions); at it, it stops taking requests from its shards.
    pub const LEARNER_FORWARDED_MAX: usize = OUTSTANDING_PROPOSALS_MAX;
    /// How often the pipeline ticks its ZAB core (pings go out every
    /// tickTime/2; liveness limits are whole ticks).
    pub const ZAB_TICK_INTERVAL_MS: u64 = 50;
    /// How often a LOOKING pipeline checks for the election's decision.
    pub const DECISION_POLL_INTERVAL_MS: u64 = 5;

    // The election runtime (`src/quorum`): threads, queues and timeouts of
    // ZooKeeper's `QuorumCnxManager`.

    /// Notifications queued per peer: ZooKeeper's `SEND_CAPACITY` (a
    /// `CircularBlockingQueue` of 1). Only the newest vote matters, so a
    /// full queue drops its oldest message.
    pub const ELECTION_SEND_QUEUE_MSGS: usize = 1;
    /// Received notifications and peer up/down events waiting for the
    /// elector (ZooKeeper's `RECV_CAPACITY`); a full channel makes the
    /// receive workers wait (TCP pushes back on the peer).
    pub const ELECTION_EVENTS_CHANNEL_CAP: usize = 100;
    /// Decisions waiting for the ZAB layer; one per round is made, so a full
    /// channel means nobody reads it and the newest decision is dropped.
    pub const ELECTION_DECISIONS_CHANNEL_CAP: usize = 16;
    /// Requests (new round, epoch update) waiting for the elector thread.
    pub const ELECTION_COMMANDS_CHANNEL_CAP: usize = 16;
    /// Handshakes read at once on accepted election connections (one thread
    /// each); a connection beyond it is closed at once.
    pub const ELECTION_HANDSHAKES_IN_FLIGHT_MAX: usize = 16;
    /// Ciphertext read from a TLS election connection at a time; rustls
    /// takes it whole before the next read, so this also bounds the
    /// plaintext buffered per connection.
    pub const ELECTION_TLS_READ_CHUNK_BYTES: usize = 16 * 1024;
    /// Quorum-port TLS handshakes run at once; an accept beyond it is
    /// closed (each handshake is bounded in time by
    /// `ssl.quorum.handshakeDetectionTimeoutMillis`).
    pub const QUORUM_TLS_HANDSHAKES_IN_FLIGHT_MAX: usize = 16;
    /// Default `zookeeper.cnxTimeout` (ms): connecting to a peer's election port.
    pub const ELECTION_CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5000;
    /// Largest configurable connect or handshake timeout (ms): a shutdown
    /// waits at most this long for a connect in progress.
    pub const ELECTION_SOCKET_TIMEOUT_MS_MAX: u64 = 60_000;
    /// Default `zookeeper.electionPortBindRetry`: binding the election port
    /// is tried this many times, 0 = forever (`QuorumCnxManager.Listener`).
    pub const ELECTION_PORT_BIND_RETRY_DEFAULT: u32 = 3;
    /// Pause between two tries to bind the election port (ZooKeeper's 1 s).
    pub const ELECTION_PORT_BIND_RETRY_INTERVAL_MS: u64 = 1000;
    /// How often the idle election listener looks at the shutdown flag.
    pub const ELECTION_ACCEPT_POLL_INTERVAL_MS: u64 = 50;
    /// How often a send worker with nothing to send looks at its connection.
    pub const ELECTION_SEND_POLL_INTERVAL_MS: u64 = 1000;
    /// A lost election connection is dialled again at once at most this
    /// often; a peer (or a proxy) that accepts and closes at once would
    /// otherwise be dialled in a tight loop. Later losses wait for the
    /// next send, as ZooKeeper's do.
    pub const ELECTION_REDIAL_MIN_INTERVAL_MS: u64 = 1000;
    /// A write to a peer that blocks longer than this drops the connection
    /// (the peer stopped reading; its next connection gets the newest vote).
    pub const ELECTION_WRITE_TIMEOUT_MS: u64 = 10_000;
    /// How often the elector ticks its election core (finalize wait and
    /// resends are measured in 200 ms steps, so 20 ms is precise enough).
    pub const ELECTION_TICK_INTERVAL_MS: u64 = 20;

    /// Largest single record of a ZooKeeper snapshot stream (a node: path,
    /// data, aclRef and stat; or one ACL list of the ACL cache). Java checks
    /// each buffer against the quorum bound, so a node is at most two of
    /// those plus its 72 fixed bytes; an ACL list, written by a client
    /// within `jute.maxbuffer`, is smaller. A stream decoder never buffers
    /// more than this plus one input chunk.
    pub const SNAP_RECORD_BYTES_MAX: usize = 2 * QUORUM_BUFFER_BYTES_MAX + 128;
    /// Bytes after the end-of-nodes seal of a snapshot file: the digest
    /// (zxid, version, digest, seal) and 3.9's lastProcessedZxid (+ seal),
    /// with room for the pre-2 digest written as a hex string.
    pub const SNAP_FILE_TAIL_BYTES_MAX: usize = 128;
}

/// Bounds of the Prometheus `/metrics` endpoint (`src/metrics`): a scraper,
/// or anyone who can reach the port, gets a bounded share of one thread's
/// time and memory and never touches a shard or the pipeline.
pub mod metrics {
    use std::time::Duration;

    /// Scrapes served at once; a connection beyond it is answered 503 and
    /// closed at once (Prometheus scrapes one at a time per target).
    pub const CONNECTIONS_MAX: usize = 4;
    /// Largest request head (request line and headers) read; beyond it the
    /// request is answered 431 and closed. Prometheus sends a few hundred bytes.
    pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
    /// Whole time one connection may take to send its request and take the
    /// reply; a client slower than this is dropped (slow-loris bound).
    pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
    /// How often the idle accept loop looks at the shutdown flag.
    pub const ACCEPT_POLL_INTERVAL: Duration = Duration::from_millis(50);
}

/// Client TLS on `secureClientPort` (`src/tls`).
pub mod tls {
    use std::time::Duration;

    /// ZooKeeper's default `ssl.handshakeDetectionTimeoutMillis`: a TLS
    /// handshake not done by then closes its connection.
    pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 5000;
    /// Largest configurable handshake timeout (ms), so a typo cannot let
    /// half-open handshakes hold connections (and per-IP slots) for days.
    pub const HANDSHAKE_TIMEOUT_MS_MAX: u64 = 10 * 60 * 1000;
    /// How often, at most, a TLS accept looks at the store files' metadata
    /// for a replaced certificate (one stat per file per check).
    pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);
}

/// The HTTP AdminServer (`src/admin`): bounds of its small HTTP server.
pub mod admin {
    use std::time::Duration;

    /// Requests served at once; one beyond it is answered 503 and closed.
    pub const CONNECTIONS_MAX: usize = 8;
    /// Largest request head read; beyond it the request is answered 431.
    pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
    /// Largest `admin.idleTimeout` accepted (ms): one connection's deadline
    /// is this timeout, so a bound keeps a slow client from holding a thread.
    pub const IDLE_TIMEOUT_MS_MAX: u64 = 10 * 60 * 1000;
    /// How often the idle accept loop looks at the shutdown flag.
    pub const ACCEPT_POLL_INTERVAL: Duration = Duration::from_millis(50);
    /// Most (path, session) watch pairs one `wchc`/`wchp`/`watches` answer
    /// carries, over all shards together (each shard sends at most its
    /// share): the answer is built in memory and sent whole.
    pub const WATCH_GATHER_PAIRS_MAX: usize = 100_000;
    /// Most (session, ephemeral path) pairs one `dump` answer carries.
    pub const EPHEMERAL_GATHER_PAIRS_MAX: usize = 100_000;
    /// Most sessions one `dump` answer lists (the session table's own bound
    /// is larger; past this the answer is cut, and a warning logged).
    pub const SESSION_GATHER_MAX: usize = 100_000;
    /// How often a shard looks whether a gather is asked of it: a relaxed
    /// load off the request path, so client traffic does not see it.
    pub const GATHER_POLL_INTERVAL: Duration = Duration::from_millis(20);
    /// How long a gather waits for every shard before it answers with the
    /// shards it heard from (a shard stuck in a long task must not hold an
    /// HTTP thread or a four-letter-word connection).
    pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
    /// Jobs (`snapshot`, `restore`, their auth checks) waiting for the
    /// pipeline at once; one more is answered 503. One per HTTP thread.
    pub const JOBS_QUEUED_MAX: usize = CONNECTIONS_MAX;
    /// How long an HTTP thread waits for the pipeline's answer to a job (a
    /// restore writes a whole snapshot durably before it answers).
    pub const JOB_ANSWER_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    /// Largest snapshot `restore` reads (its Content-Length); the restored
    /// tree is held in memory whole, as every tree is.
    pub const RESTORE_BODY_BYTES_MAX: u64 = 8 << 30;
    /// Bytes `snapshot` encodes per write to the socket.
    pub const SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024;
}
