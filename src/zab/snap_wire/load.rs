//! A ZooKeeper snapshot stream into our tree, one record at a time: nodes
//! go through the restore [`Assembler`] (child sets built as the pre-order
//! list goes by) straight into the [`DataTree`], so the decoded snapshot is
//! never held besides the tree itself.

use std::collections::HashMap;
use std::sync::Arc;

use super::{SnapFraming, SnapItem, SnapNode, SnapStream, SnapTrailer, ACL_REF_OPEN_UNSAFE};
use crate::proto::Acl;
use crate::tree::{path, Assembler, DataTree, RestoredNode};
use crate::zab::WireError;

/// A loaded snapshot. The caller sets the tree's last zxid: the SNAP
/// packet's zxid, or a file's name (`FileSnap.deserialize`).
pub struct LoadedSnap {
    pub tree: DataTree,
    /// (session id, timeout ms), in stream order.
    pub sessions: Vec<(i64, i32)>,
    pub trailer: SnapTrailer,
}

/// Builds a tree from [`SnapItem`]s.
pub struct SnapLoader {
    assembler: Assembler,
    /// aclRef -> the interned list.
    acl_lists: HashMap<i64, Arc<[Acl]>>,
    tree: DataTree,
    sessions: Vec<(i64, i32)>,
    /// Nodes the assembler completed, moved into the tree at once.
    done: Vec<RestoredNode>,
    trailer: Option<SnapTrailer>,
}

impl Default for SnapLoader {
    fn default() -> Self {
        SnapLoader::new()
    }
}

impl SnapLoader {
    pub fn new() -> SnapLoader {
        let mut assembler = Assembler::new();
        let open = assembler.intern_acl(&Acl::open_unsafe());
        SnapLoader {
            assembler,
            acl_lists: HashMap::from([(ACL_REF_OPEN_UNSAFE, open)]),
            tree: DataTree::new(),
            sessions: Vec::new(),
            done: Vec::new(),
            trailer: None,
        }
    }

    pub fn accept(&mut self, item: SnapItem<'_>) -> Result<(), WireError> {
        match item {
            SnapItem::Session {
                session_id,
                timeout_ms,
            } => self.sessions.push((session_id, timeout_ms)),
            SnapItem::AclList { acl_ref, acl } => {
                let shared = self.assembler.intern_acl(&acl);
                self.acl_lists.insert(acl_ref, shared);
            }
            SnapItem::Node(node) => self.accept_node(&node)?,
            SnapItem::End(trailer) => self.trailer = Some(trailer),
        }
        Ok(())
    }

    fn accept_node(&mut self, node: &SnapNode<'_>) -> Result<(), WireError> {
        let acl = self
            .acl_lists
            .get(&node.acl_ref)
            .cloned()
            .ok_or(WireError::Invalid("snapshot node with an unknown aclRef"))?;
        // ZooKeeper lists the root as "" (its map holds both).
        let node_path = if node.path.is_empty() {
            path::ROOT
        } else {
            node.path
        };
        self.assembler
            .push(
                node_path,
                node.data,
                acl,
                node.stat.to_stat(),
                &mut self.done,
            )
            .map_err(|_| WireError::Invalid("snapshot node with a bad path, or listed twice"))?;
        self.insert_done()
    }

    fn insert_done(&mut self) -> Result<(), WireError> {
        for restored in self.done.drain(..) {
            self.tree
                .insert_restored(restored)
                .map_err(|_| WireError::Invalid("snapshot node without its parent"))?;
        }
        Ok(())
    }

    /// The tree, once the stream's end was accepted. Quota stats are
    /// recounted, as ZooKeeper's load does (`DataTree.setupQuota`).
    pub fn finish(mut self) -> Result<LoadedSnap, WireError> {
        let trailer = self
            .trailer
            .ok_or(WireError::Invalid("snapshot ends early"))?;
        let assembler = std::mem::take(&mut self.assembler);
        let acls = assembler.finish(&mut self.done);
        self.insert_done()?;
        self.tree.adopt_acls(acls);
        self.tree.setup_quotas();
        Ok(LoadedSnap {
            tree: self.tree,
            sessions: self.sessions,
            trailer,
        })
    }
}

/// Chunks of a snapshot in, our tree out.
pub struct SnapLoad {
    stream: SnapStream,
    loader: SnapLoader,
}

impl SnapLoad {
    pub fn new(framing: SnapFraming) -> SnapLoad {
        SnapLoad {
            stream: SnapStream::new(framing),
            loader: SnapLoader::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), WireError> {
        let loader = &mut self.loader;
        self.stream.push(chunk, &mut |item| loader.accept(item))
    }

    /// Whether the stream's last record was read (a SNAP is followed by
    /// more quorum packets, so its end is known only from its content).
    pub fn is_done(&self) -> bool {
        self.stream.is_done()
    }

    /// Once done: the input that followed the stream.
    pub fn rest(&self) -> &[u8] {
        self.stream.rest()
    }

    /// At the end of the input (or once [`SnapLoad::is_done`]).
    pub fn finish(mut self) -> Result<LoadedSnap, WireError> {
        let loader = &mut self.loader;
        self.stream.finish(&mut |item| loader.accept(item))?;
        self.loader.finish()
    }
}
