//! Rebuilding a tree from a snapshot's node list, split in two halves that
//! can run on two threads (`storage::snapshot` does).
//!
//! [`Assembler`] needs no tree: it checks each path, allocates the node and
//! — since a snapshot lists nodes depth first — fills in each node's child
//! set itself, handing a node on only once its subtree is complete (post
//! order). [`DataTree::insert_restored`] then has little left to do per node:
//! one insert into the path index. Loading 1M znodes, the child sets and the
//! allocations (page faults on fresh memory) cost about as much as the index
//! inserts, so the two halves keep two cores busy.
//!
//! A list that is not depth first still loads: a node whose parent is no
//! longer open is handed on unlinked, and the tree links it under its parent
//! (which must have come earlier, as in any snapshot).

use std::sync::Arc;

use super::acl_cache::AclCache;
use super::node::{self, Node};
use super::path::{self, PathRef};
use super::{data_len, is_built_in, link, node_data, validate_path, DataTree};
use crate::proto::{Acl, ErrorCode, Stat};

/// A snapshot's node ready for [`DataTree::insert_restored`].
pub struct RestoredNode {
    path: PathRef,
    /// Not shared yet; holds its complete child set when `linked`.
    node: Arc<Node>,
    /// Listed in its parent's child set by the assembler already.
    linked: bool,
}

/// A node whose subtree is still being listed.
struct Open {
    path: PathRef,
    node: Node,
    linked: bool,
}

/// The tree-independent half of restoring: see the module comment.
#[derive(Default)]
pub struct Assembler {
    /// The path from the root to the last node listed.
    open: Vec<Open>,
    acls: AclCache,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// The shared handle of an ACL list, for [`Assembler::push`]; the tree
    /// takes the assembler's lists over in [`DataTree::adopt_acls`].
    pub fn intern_acl(&mut self, acl: &[Acl]) -> Arc<[Acl]> {
        self.acls.intern(acl)
    }

    /// Adds the next node of the list. Nodes whose subtrees are complete are
    /// appended to `done`. BadArguments for an invalid path, NodeExists for a
    /// path listed twice under the same parent.
    pub fn push(
        &mut self,
        node_path: &str,
        data: Option<&[u8]>,
        acl: Arc<[Acl]>,
        stat: Stat,
        done: &mut Vec<RestoredNode>,
    ) -> Result<(), ErrorCode> {
        validate_path(node_path)?;
        let parent_path = path::parent(node_path);
        while let Some(top) = self.open.last() {
            if &*top.path == parent_path && node_path != path::ROOT {
                break;
            }
            self.close_top(done);
        }
        let node_path = PathRef::from(node_path);
        let linked = match self.open.last_mut() {
            Some(parent) => {
                if !link(&mut parent.node, node_path.clone()) {
                    return Err(ErrorCode::NodeExists);
                }
                true
            }
            None => false,
        };
        let data = node_data(data);
        let node = Node {
            stat: Stat {
                num_children: 0,
                data_length: data_len(&data) as i32,
                ..stat
            },
            data,
            acl,
            children: node::Children::default(),
        };
        self.open.push(Open {
            path: node_path,
            node,
            linked,
        });
        Ok(())
    }

    /// Hands on the nodes still open; returns the ACL lists in use.
    pub fn finish(mut self, done: &mut Vec<RestoredNode>) -> AclCache {
        while !self.open.is_empty() {
            self.close_top(done);
        }
        self.acls
    }

    fn close_top(&mut self, done: &mut Vec<RestoredNode>) {
        let Open { path, node, linked } = self.open.pop().expect("an open node");
        done.push(RestoredNode {
            path,
            node: Arc::new(node),
            linked,
        });
    }
}

impl DataTree {
    /// Snapshot loading one node at a time (parents first): inserts a node
    /// with its persisted stat. The built-in nodes exist already and keep
    /// their children.
    pub fn restore_node(
        &mut self,
        node_path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        stat: Stat,
    ) -> Result<(), ErrorCode> {
        let acl = self.acls.intern(acl);
        let mut assembler = Assembler::new();
        let mut done = Vec::with_capacity(1);
        assembler.push(node_path, data, acl, stat, &mut done)?;
        assembler.finish(&mut done);
        self.insert_restored(done.pop().expect("one node"))
    }

    /// The second half of restoring: indexes an assembled node, linking it
    /// under its parent unless the assembler did (or fills in a built-in
    /// node). NoNode when the parent is missing, NodeExists for a path
    /// listed twice.
    pub fn insert_restored(&mut self, restored: RestoredNode) -> Result<(), ErrorCode> {
        let RestoredNode { path, node, linked } = restored;
        if is_built_in(&path) {
            let built_in = path.clone();
            self.with_digest([&built_in, &built_in], |tree| {
                tree.fill_built_in(&path, Arc::unwrap_or_clone(node))
            });
            return Ok(());
        }
        let node_digest = super::digest::node_digest(&path, &node);
        if !linked {
            let parent = self
                .node_mut(path::parent(&path))
                .ok_or(ErrorCode::NoNode)?;
            if !link(parent, path.clone()) {
                return Err(ErrorCode::NodeExists);
            }
        }
        self.data_bytes += path::java_len(&path) + data_len(&node.data) as i64;
        self.index_owner(&path, node.kind());
        match self.nodes.insert(path, node) {
            None => {
                self.digest = self.digest.wrapping_add(node_digest);
                Ok(())
            }
            Some(_) => Err(ErrorCode::NodeExists),
        }
    }

    /// After an assembled load: the assembler's ACL lists become the
    /// tree's, so nodes created later share them.
    pub fn adopt_acls(&mut self, acls: AclCache) {
        self.acls = acls;
    }

    /// A built-in node as the snapshot has it, keeping the children the
    /// tree gave it (a snapshot lists them too, unless it predates them).
    fn fill_built_in(&mut self, node_path: &str, mut restored: Node) {
        // Snapshots of earlier Ferrokeeper versions held null here;
        // ZooKeeper's /zookeeper nodes always have data (empty).
        if restored.data.is_none() && node_path != path::ROOT {
            restored.data = Some(Box::default());
        }
        restored.stat.data_length = data_len(&restored.data) as i32;
        let built_in = self.node_mut(node_path).expect("built-in nodes exist");
        for child in built_in.children.shared_paths() {
            restored.children.insert(child.clone());
        }
        restored.stat.num_children = restored.children.len() as i32;
        let grown_bytes = data_len(&restored.data) as i64 - data_len(&built_in.data) as i64;
        *built_in = restored;
        self.data_bytes += grown_bytes;
    }
}
