//! One znode. Cloning is cheap (reference counts only), which is what lets
//! the pipeline copy-on-write a node and publish tree versions in O(1).

use super::path::PathRef;
use std::sync::Arc;

use bytes::Bytes;

use crate::proto::{Stat, CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS, TTL_OWNER_TOP_BYTE};

/// Data in requests and txns: None is null, which clients can tell from empty.
pub type Data = Option<Bytes>;

/// Data held by a node: its own allocation, sized to fit. Not a `Bytes`
/// clone of the txn's data: that would add a 24-byte shared header per
/// znode and pin whatever buffer the txn's bytes came from.
pub type NodeData = Option<Box<[u8]>>;

/// The node's copy of txn data.
pub fn node_data(data: Option<&[u8]>) -> NodeData {
    data.map(Box::from)
}

/// Bytes of data (0 for null), as `dataLength` reports it.
pub fn data_len<D: AsRef<[u8]>>(data: &Option<D>) -> usize {
    data.as_ref().map_or(0, |d| d.as_ref().len())
}

/// A node's children, sorted by name. Each entry is the child's full path:
/// the same allocation as its key in the tree's path index, so a child
/// costs no name allocation of its own. Children of one parent share the
/// "parent/" prefix, so their paths sort exactly as their names do.
///
/// Boxed, and absent while empty: most znodes are leaves, and an inline set
/// handle (40 bytes) would put every node in the next allocator size class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Children(Option<Box<imbl::OrdSet<PathRef>>>);

impl Children {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Child names (last path components), sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.paths().map(super::path::basename)
    }

    /// Child paths, sorted.
    pub fn paths(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0
            .iter()
            .flat_map(|set| set.iter().map(|child| &**child))
    }

    /// Child paths, sorted, as the handles the path index shares.
    pub(super) fn shared_paths(&self) -> impl Iterator<Item = &PathRef> + '_ {
        self.0.iter().flat_map(|set| set.iter())
    }

    /// The first child path sorting after `after` (the first child for
    /// None): lets a walk over a large tree resume from a path it kept,
    /// instead of holding an iterator into the tree.
    pub fn next_after(&self, after: Option<&str>) -> Option<&str> {
        use std::ops::Bound;
        let set = self.0.as_ref()?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        set.range::<_, str>((lower, Bound::Unbounded))
            .next()
            .map(|child| &**child)
    }

    pub fn contains(&self, child_path: &str) -> bool {
        self.0.as_ref().is_some_and(|set| set.contains(child_path))
    }

    /// False if the child was listed already.
    pub(super) fn insert(&mut self, child_path: PathRef) -> bool {
        self.0.get_or_insert_default().insert(child_path).is_none()
    }

    pub(super) fn remove(&mut self, child_path: &str) {
        if let Some(set) = self.0.as_mut() {
            set.remove(child_path);
            if set.is_empty() {
                self.0 = None;
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// None is ZooKeeper's null data (created or set with a null buffer).
    pub data: NodeData,
    /// `stat.num_children` always equals `children.len()`.
    pub stat: Stat,
    pub acl: Arc<[crate::proto::Acl]>,
    pub children: Children,
}

impl Node {
    pub fn kind(&self) -> NodeKind {
        NodeKind::of_owner(self.stat.ephemeral_owner)
    }

    /// `stat` agrees with the children and the data.
    pub fn assert_consistent(&self) {
        assert_eq!(self.stat.num_children as usize, self.children.len());
        assert_eq!(self.stat.data_length as usize, data_len(&self.data));
    }
}

/// What `ephemeralOwner` says about a node (ZooKeeper's `EphemeralType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    /// Owned by a session; deleted when it closes; cannot have children.
    Ephemeral(i64),
    Container,
    Ttl {
        ttl_ms: i64,
    },
}

/// Bits 40..56 of a TTL owner are reserved (must be zero: the TTL feature bit).
const TTL_RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;

impl NodeKind {
    pub fn of_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_EPHEMERAL_OWNER {
            NodeKind::Container
        } else if (owner >> 56) & 0xff == TTL_OWNER_TOP_BYTE && owner & TTL_RESERVED_BITS_MASK == 0
        {
            // Session ids carry the server id in the top byte; server id 255
            // is refused when extended types are on, so 0xFF means TTL.
            NodeKind::Ttl {
                ttl_ms: owner & TTL_MAX_MS,
            }
        } else {
            NodeKind::Ephemeral(owner)
        }
    }
}

/// `ephemeralOwner` of a TTL node: 0xFF top byte, TTL in the low 40 bits.
pub fn ttl_owner(ttl_ms: i64) -> i64 {
    assert!(
        (1..=TTL_MAX_MS).contains(&ttl_ms),
        "ttl_ms validated by prep"
    );
    (TTL_OWNER_TOP_BYTE << 56) | ttl_ms
}

/// The Stat as clients see it, translated like ZooKeeper's `DataNode.copyStat`:
/// - the stored cversion counts child creates (sequential names use it), while
///   clients see the count of child changes: every create has a delete except
///   for the children still present, so `cversion * 2 - numChildren`;
/// - ephemeralOwner is 0 for container and TTL nodes (their marker owners stay
///   inside the server).
pub fn client_stat(stat: &Stat) -> Stat {
    let ephemeral_owner = match NodeKind::of_owner(stat.ephemeral_owner) {
        NodeKind::Container | NodeKind::Ttl { .. } => 0,
        _ => stat.ephemeral_owner,
    };
    Stat {
        ephemeral_owner,
        cversion: stat.cversion * 2 - stat.num_children,
        ..*stat
    }
}

impl Node {
    pub fn client_stat(&self) -> Stat {
        client_stat(&self.stat)
    }
}

#[cfg(test)]
mod client_stat_tests {
    use super::*;

    #[test]
    fn cversion_counts_changes_and_markers_are_hidden() {
        let stored = Stat {
            cversion: 3,
            num_children: 1,
            ephemeral_owner: CONTAINER_EPHEMERAL_OWNER,
            ..Stat::default()
        };
        let seen = client_stat(&stored);
        assert_eq!(seen.cversion, 5, "3 creates and 2 deletes");
        assert_eq!(seen.ephemeral_owner, 0);
        assert_eq!(
            client_stat(&Stat {
                ephemeral_owner: ttl_owner(5000),
                ..stored
            })
            .ephemeral_owner,
            0
        );
        assert_eq!(
            client_stat(&Stat {
                ephemeral_owner: 42,
                ..stored
            })
            .ephemeral_owner,
            42
        );
    }
}
