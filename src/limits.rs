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
/// Entries in one vector field (ACL list, setWatches path lists, ...).
pub const VECTOR_LEN_MAX: usize = 1 << 20;
