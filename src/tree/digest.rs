//! ZooKeeper's tree digest (`DigestCalculator`, digest version 2, and
//! `NodeHashMapImpl`'s running sum): each node's digest is the CRC-32 of its
//! path, its data and nine of its stat fields; the tree's is the wrapping
//! sum over every node outside `/zookeeper/`. Every txn whose zxid is a
//! multiple of 128 logs (zxid, tree digest), the last 1024 kept
//! (`DataTree.logZxidDigest`): what the `hash` command lists, so two
//! servers' trees can be compared at the same zxid.

use super::node::Node;

/// `DigestCalculator.DIGEST_VERSION`.
pub const DIGEST_VERSION: i32 = 2;
/// `DataTree.DIGEST_LOG_INTERVAL`: zxids whose tree digest is logged.
pub const DIGEST_LOG_INTERVAL: i64 = 128;

/// `ZooDefs.ZOOKEEPER_NODE_SUBTREE`: ZooKeeper leaves its quota and config
/// nodes out (they are updated locally), but not `/zookeeper` itself.
const EXCLUDED_SUBTREE: &str = "/zookeeper/";

/// One logged digest (`DataTree.ZxidDigest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    /// A Java long: the sum wraps, and prints signed.
    pub digest: i64,
}

/// `DigestCalculator.calculateDigest(path, node)`; 0 for excluded paths.
pub fn node_digest(node_path: &str, node: &Node) -> i64 {
    if node_path.starts_with(EXCLUDED_SUBTREE) {
        return 0;
    }
    // ZooKeeper keys the root as "" in its digest ("/" is an alias).
    let node_path = if node_path == "/" { "" } else { node_path };
    let s = &node.stat;
    let mut fields = [0u8; 60];
    let longs = [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime];
    for (i, v) in longs.iter().enumerate() {
        fields[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
    }
    for (i, v) in [s.version, s.cversion, s.aversion].iter().enumerate() {
        fields[40 + i * 4..44 + i * 4].copy_from_slice(&v.to_be_bytes());
    }
    fields[52..60].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(node_path.as_bytes());
    if let Some(data) = &node.data {
        crc.update(data);
    }
    crc.update(&fields);
    i64::from(crc.finalize())
}
