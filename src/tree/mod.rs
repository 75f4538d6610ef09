//! The versioned data tree (pure): paths, nodes, stats, ACL evaluation, txns.
//!
//! One pipeline thread owns the *working* [`DataTree`]: for each write it
//! calls [`DataTree::prep`] (validate against the newest state, resolve
//! sequential names, check ACLs and versions -> a [`TxnOp`]) and later
//! [`DataTree::apply`] (mutate, return the result and watch events).
//! Cloning a tree is O(1) (persistent maps of `Arc`ed nodes), so the
//! pipeline publishes clones to reader threads, which only ever read them.
//! `apply` does no ACL checks and depends only on (tree, header, op), so
//! WAL recovery can replay logged txns with it.

pub mod acl;
mod acl_cache;
mod apply;
pub mod digest;
pub mod node;
pub mod path;
mod prep;
pub mod quota;
mod restore;
pub mod txn;

#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod tests;

use path::PathRef;
use std::sync::Arc;

use crate::proto::{Acl, Stat};

pub use acl::{check_acl, digest, fix_acl, AuthInfo};
pub use acl_cache::AclCache;
pub use node::{data_len, node_data, Data, Node, NodeData, NodeKind};
pub use path::{basename, parent, validate_path, validate_path_sequential};
pub use prep::{CreateReq, PrepOptions, WriteReq};
pub use quota::{QuotaExceeded, StatsTrack};
pub use restore::{Assembler, RestoredNode};
pub use txn::{CreateKind, TreeEvent, TxnHeader, TxnOp, TxnResult};

/// Paths ZooKeeper creates itself and never lets a client delete.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
pub const QUOTA_PATH: &str = "/zookeeper/quota";
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// Lists the node at `child_path` as a child of `parent`; false if it
/// was listed already (the node exists).
fn link(parent: &mut Node, child_path: PathRef) -> bool {
    let added = parent.children.insert(child_path);
    parent.stat.num_children = parent.children.len() as i32;
    added
}

/// The nodes every tree starts with ([`DataTree::new`]).
fn is_built_in(node_path: &str) -> bool {
    matches!(
        node_path,
        path::ROOT | ZOOKEEPER_PATH | QUOTA_PATH | CONFIG_PATH
    )
}

/// foldhash (hashbrown's default, seeded per process) instead of SipHash:
/// every read hashes its path, and recovery hashes each path several times.
type NodeMap = imbl::GenericHashMap<
    PathRef,
    Arc<Node>,
    hashbrown::DefaultHashBuilder,
    imbl::shared_ptr::DefaultSharedPtr,
>;
type PathSet = imbl::OrdSet<PathRef>;

#[derive(Clone, Debug)]
pub struct DataTree {
    nodes: NodeMap,
    /// Session id -> paths of its ephemerals (no entry once empty).
    ephemerals: imbl::HashMap<i64, PathSet>,
    containers: PathSet,
    ttls: PathSet,
    ephemeral_count: usize,
    /// ZooKeeper's approximate data size: sum of path length + data length.
    data_bytes: i64,
    last_zxid: i64,
    acls: acl_cache::AclCache,
    /// Paths with a quota (see `quota.rs`); empty unless quotas are set.
    quotas: quota::QuotaIndex,
    /// ZooKeeper's tree digest (`digest.rs`), kept with every change.
    digest: i64,
    /// The digests logged at every 128th zxid, oldest first, at most
    /// `limits::DIGEST_LOG_MAX`. Shared by clones; a push copies it if a
    /// published version holds it (16 KiB once per 128 txns).
    digest_log: Arc<std::collections::VecDeque<digest::ZxidDigest>>,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    /// The tree of a fresh ZooKeeper: "/", "/zookeeper", "/zookeeper/quota"
    /// (all world:anyone ALL, zero stats) and "/zookeeper/config"
    /// (world:anyone READ, aversion -1 as ZooKeeper's addConfigNode leaves it),
    /// all with empty (not null) data: ZooKeeper's DataTree creates them with
    /// `new byte[0]`, and clients such as Curator's EnsembleTracker fail on null.
    pub fn new() -> DataTree {
        let mut tree = DataTree {
            nodes: NodeMap::default(),
            ephemerals: imbl::HashMap::new(),
            containers: PathSet::new(),
            ttls: PathSet::new(),
            ephemeral_count: 0,
            data_bytes: 0,
            last_zxid: 0,
            acls: acl_cache::AclCache::default(),
            quotas: quota::QuotaIndex::new(),
            digest: 0,
            digest_log: Arc::default(),
        };
        let open = tree.acls.intern(&Acl::open_unsafe());
        tree.insert_system_node(path::ROOT, open.clone(), Stat::default());
        tree.insert_system_node(ZOOKEEPER_PATH, open.clone(), Stat::default());
        tree.insert_system_node(QUOTA_PATH, open, Stat::default());
        let config_stat = Stat {
            aversion: -1,
            ..Stat::default()
        };
        let read_only = tree.acls.intern(&Acl::read_unsafe());
        tree.insert_system_node(CONFIG_PATH, read_only, config_stat);
        tree.digest = tree.iter().fold(0i64, |sum, (p, node)| {
            sum.wrapping_add(digest::node_digest(p, node))
        });
        tree
    }

    /// ZooKeeper's tree digest of this version.
    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// The digests logged so far (`hash`), oldest first.
    pub fn digest_log(&self) -> impl Iterator<Item = &digest::ZxidDigest> {
        self.digest_log.iter()
    }

    /// The digest of the node at `node_path` (0 if absent or excluded).
    fn digest_at(&self, node_path: &str) -> i64 {
        self.nodes
            .get(node_path)
            .map_or(0, |node| digest::node_digest(node_path, node))
    }

    /// Runs a change to the nodes at `paths` (and no others), keeping the
    /// tree digest: their digests before come off, after go on
    /// (`NodeHashMap.preChange`/`postChange`).
    fn with_digest<R>(&mut self, paths: [&str; 2], change: impl FnOnce(&mut Self) -> R) -> R {
        let sum = |tree: &Self| {
            let second = if paths[1] == paths[0] {
                0
            } else {
                tree.digest_at(paths[1])
            };
            tree.digest_at(paths[0]).wrapping_add(second)
        };
        let before = sum(self);
        let result = change(self);
        let after = sum(self);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        result
    }

    /// `DataTree.logZxidDigest`: every 128th zxid's digest is kept.
    fn log_digest(&mut self, zxid: i64) {
        if zxid % digest::DIGEST_LOG_INTERVAL != 0 {
            return;
        }
        let log = Arc::make_mut(&mut self.digest_log);
        log.push_back(digest::ZxidDigest {
            zxid,
            digest: self.digest,
        });
        if log.len() > crate::limits::DIGEST_LOG_MAX {
            log.pop_front();
        }
    }

    fn insert_system_node(&mut self, node_path: &str, acl: Arc<[Acl]>, stat: Stat) {
        let node = Node {
            data: Some(Box::default()),
            stat,
            acl,
            children: node::Children::default(),
        };
        self.data_bytes += path::java_len(node_path);
        let node_path: PathRef = node_path.into();
        self.nodes.insert(node_path.clone(), Arc::new(node));
        if &*node_path != path::ROOT {
            self.link_child(path::parent(&node_path), node_path.clone());
        }
    }

    fn link_child(&mut self, parent_path: &str, child_path: PathRef) {
        let parent = self.node_mut(parent_path).expect("parent exists");
        assert!(link(parent, child_path), "a new child");
    }

    /// Copy-on-write access to a node (clones it only if a published
    /// version still shares it).
    fn node_mut(&mut self, node_path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(node_path).map(Arc::make_mut)
    }

    /// Sets `/zookeeper/config` as ZooKeeper's quorum start-up does
    /// (`initConfigInZKDatabase`): data, version -1, mzxid = config version.
    pub fn init_config_node(&mut self, data: Data, config_version: i64, time_ms: i64) {
        let node = self.node_mut(CONFIG_PATH).expect("config node exists");
        let old_len = data_len(&node.data) as i64;
        node.stat.data_length = data_len(&data) as i32;
        node.stat.version = -1;
        node.stat.mzxid = config_version;
        node.stat.mtime = time_ms;
        let new_len = data_len(&data) as i64;
        node.data = node_data(data.as_deref());
        self.data_bytes += new_len - old_len;
    }

    // ----- reads -----

    /// The node at `path`. Like ZooKeeper, "" is an alias of the root.
    pub fn get(&self, node_path: &str) -> Option<&Node> {
        let key = if node_path.is_empty() {
            path::ROOT
        } else {
            node_path
        };
        self.nodes.get(key).map(|node| &**node)
    }

    pub fn contains(&self, node_path: &str) -> bool {
        self.get(node_path).is_some()
    }

    /// Child names of `path`, sorted; None if the node does not exist.
    pub fn children(&self, node_path: &str) -> Option<impl Iterator<Item = &str> + '_> {
        self.get(node_path).map(|node| node.children.names())
    }

    /// getEphemerals: the session's ephemeral paths starting with `prefix`
    /// (a blank prefix or "/" means all), sorted.
    pub fn ephemerals_of(&self, session_id: i64, prefix: &str) -> Vec<String> {
        let Some(paths) = self.ephemerals.get(&session_id) else {
            return Vec::new();
        };
        let all = prefix.trim().is_empty() || prefix.trim() == path::ROOT;
        paths
            .iter()
            .filter(|p| all || p.starts_with(prefix))
            .map(|p| p.to_string())
            .collect()
    }

    /// getAllChildrenNumber: all descendants of `path` (not the node itself).
    pub fn all_children_number(&self, node_path: &str) -> Option<usize> {
        let start = self.get(node_path)?;
        if node_path == path::ROOT || node_path.is_empty() {
            return Some(self.nodes.len() - 1);
        }
        let mut count = 0;
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            count += node.children.len();
            for child in node.children.paths() {
                stack.push(self.node(child));
            }
        }
        Some(count)
    }

    /// Number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node count ZooKeeper reports (srvr "Node count", mntr
    /// zk_znode_count): its map also holds "" as an alias of the root.
    pub fn zk_node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemeral_count
    }

    /// Sum over nodes of path length (UTF-16 units) + data bytes, as
    /// ZooKeeper's `approximateDataSize`.
    pub fn approximate_data_bytes(&self) -> i64 {
        self.data_bytes
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Sessions that own at least one ephemeral, sorted.
    pub fn ephemeral_sessions(&self) -> Vec<i64> {
        let mut sessions: Vec<i64> = self.ephemerals.keys().copied().collect();
        sessions.sort_unstable();
        sessions
    }

    /// Every (path, node), in no particular order (snapshots, dumps).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> + '_ {
        self.nodes.iter().map(|(p, n)| (&**p, &**n))
    }

    /// Paths the container reaper should delete (ZooKeeper's
    /// ContainerManager): containers that once had a child (cversion > 0)
    /// and have none now; TTL nodes without children whose mtime is more
    /// than their TTL ago. Sorted, at most `limit`.
    pub fn expired_containers_and_ttls(&self, now_ms: i64, limit: usize) -> Vec<String> {
        let expired_container = |node: &Node| node.children.is_empty() && node.stat.cversion > 0;
        let expired_ttl = |node: &Node| match node.kind() {
            NodeKind::Ttl { ttl_ms } => {
                node.children.is_empty() && ttl_ms != 0 && now_ms - node.stat.mtime > ttl_ms
            }
            _ => false,
        };
        let containers = self
            .containers
            .iter()
            .filter(|p| expired_container(self.node(p)));
        let ttls = self.ttls.iter().filter(|p| expired_ttl(self.node(p)));
        containers
            .chain(ttls)
            .take(limit)
            .map(|p| p.to_string())
            .collect()
    }

    /// Walks the whole tree and asserts every invariant the counters and
    /// indexes rely on. O(nodes): for tests and consistency checks.
    pub fn assert_invariants(&self) {
        let mut data_bytes = 0;
        let mut ephemeral_count = 0;
        let mut tree_digest = 0i64;
        for (node_path, node) in self.iter() {
            node.assert_consistent();
            tree_digest = tree_digest.wrapping_add(digest::node_digest(node_path, node));
            data_bytes += path::java_len(node_path) + data_len(&node.data) as i64;
            for child in node.children.paths() {
                assert_eq!(
                    path::parent(child),
                    node_path,
                    "{child} is listed by its parent"
                );
                assert!(self.nodes.contains_key(child), "child {child} exists");
            }
            if node_path != path::ROOT {
                let parent = self.get(path::parent(node_path)).expect("parent exists");
                assert!(parent.children.contains(node_path));
            }
            match node.kind() {
                NodeKind::Persistent => {}
                NodeKind::Container => assert!(self.containers.contains(node_path)),
                NodeKind::Ttl { .. } => assert!(self.ttls.contains(node_path)),
                NodeKind::Ephemeral(session_id) => {
                    ephemeral_count += 1;
                    assert!(self.ephemerals[&session_id].contains(node_path));
                }
            }
        }
        assert_eq!(data_bytes, self.data_bytes);
        assert_eq!(
            tree_digest, self.digest,
            "the digest kept equals the tree's"
        );
        assert_eq!(ephemeral_count, self.ephemeral_count);
        let indexed: usize = self.ephemerals.values().map(|paths| paths.len()).sum();
        assert_eq!(indexed, self.ephemeral_count);
    }

    /// A node the indexes say exists.
    fn node(&self, node_path: &str) -> &Node {
        self.nodes.get(node_path).expect("indexed node exists")
    }

    // ----- recovery -----

    /// After a snapshot and replay: the zxid the tree reflects.
    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    /// Inserts and indexes a new node its parent already lists (callers
    /// link it while they hold the parent: one lookup fewer per create).
    fn insert_linked_node(&mut self, node_path: PathRef, node: Node) {
        assert!(node.children.is_empty());
        self.data_bytes += path::java_len(&node_path) + data_len(&node.data) as i64;
        self.index_owner(&node_path, node.kind());
        let previous = self.nodes.insert(node_path, Arc::new(node));
        assert!(previous.is_none(), "insert_linked_node on an existing path");
    }

    fn index_owner(&mut self, node_path: &PathRef, kind: NodeKind) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                self.containers.insert(node_path.clone());
            }
            NodeKind::Ttl { .. } => {
                self.ttls.insert(node_path.clone());
            }
            NodeKind::Ephemeral(session_id) => {
                let paths = self.ephemerals.entry(session_id).or_default();
                if paths.insert(node_path.clone()).is_none() {
                    self.ephemeral_count += 1;
                }
            }
        }
    }

    fn unindex_owner(&mut self, node_path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                self.containers.remove(node_path);
            }
            NodeKind::Ttl { .. } => {
                self.ttls.remove(node_path);
            }
            NodeKind::Ephemeral(session_id) => {
                let Some(paths) = self.ephemerals.get_mut(&session_id) else {
                    return;
                };
                if paths.remove(node_path).is_some() {
                    self.ephemeral_count -= 1;
                }
                if paths.is_empty() {
                    self.ephemerals.remove(&session_id);
                }
            }
        }
    }
}
