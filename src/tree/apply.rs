//! Applying txns: deterministic given (tree, header, op), no ACL checks, so
//! WAL recovery replays exactly what the pipeline applied. Stats follow
//! ZooKeeper's `DataTree` (createNode, deleteNode, setData, setACL).

use super::node::{data_len, node_data, Data};
use super::path::PathRef;
use std::sync::Arc;

use super::node::{Children, Node};
use super::path;
use super::txn::{multi_error_codes, CreateKind, TreeEvent, TxnHeader, TxnOp, TxnResult};
use super::{link, DataTree};
use crate::proto::{Acl, ErrorCode, EventType, Stat};

/// The fields of a create txn, borrowed from the op.
struct NewNode<'a> {
    path: &'a str,
    data: &'a Data,
    acl: &'a [Acl],
    ephemeral_owner: i64,
    parent_cversion: i32,
    kind: CreateKind,
}

impl DataTree {
    /// Applies `op`, appending the watch events it fires to `events`.
    /// A txn that cannot apply (only possible with a corrupt log) changes
    /// nothing and returns an error result.
    pub fn apply(&mut self, hdr: &TxnHeader, op: &TxnOp, events: &mut Vec<TreeEvent>) -> TxnResult {
        let result = self.apply_op(hdr, op, events);
        self.last_zxid = self.last_zxid.max(hdr.zxid);
        self.log_digest(hdr.zxid);
        result
    }

    fn apply_op(&mut self, hdr: &TxnHeader, op: &TxnOp, events: &mut Vec<TreeEvent>) -> TxnResult {
        let outcome = match op {
            TxnOp::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
                kind,
            } => {
                let new_node = NewNode {
                    path,
                    data,
                    acl,
                    ephemeral_owner: *ephemeral_owner,
                    parent_cversion: *parent_cversion,
                    kind: *kind,
                };
                self.with_digest([digest_parent(path), path], |tree| {
                    tree.apply_create(hdr, &new_node, events)
                })
            }
            TxnOp::Delete { path } => self
                .digested_delete(hdr.zxid, path, events)
                .map(|()| TxnResult::Deleted),
            TxnOp::SetData {
                path,
                data,
                version,
            } => self.with_digest([path, path], |tree| {
                tree.apply_set_data(hdr, path, data, *version, events)
            }),
            TxnOp::SetAcl { path, acl, version } => {
                self.with_digest([path, path], |tree| tree.apply_set_acl(path, acl, *version))
            }
            TxnOp::Check { .. } => Ok(TxnResult::Checked),
            TxnOp::Multi(ops) => Ok(self.apply_multi(hdr, ops, events)),
            TxnOp::CreateSession { .. } => Ok(TxnResult::Session),
            TxnOp::CloseSession => {
                self.apply_close_session(hdr, events);
                Ok(TxnResult::Session)
            }
            TxnOp::Error(code) => Ok(TxnResult::Error(*code)),
            TxnOp::MultiError(codes) => Ok(TxnResult::MultiError(codes.clone())),
        };
        outcome.unwrap_or_else(TxnResult::Error)
    }

    fn apply_create(
        &mut self,
        hdr: &TxnHeader,
        new: &NewNode<'_>,
        events: &mut Vec<TreeEvent>,
    ) -> Result<TxnResult, ErrorCode> {
        let parent_path = path::zk_parent(new.path).ok_or(ErrorCode::BadArguments)?;
        let parent_key: PathRef = if parent_path.is_empty() {
            path::ROOT
        } else {
            parent_path
        }
        .into();
        if self.nodes.contains_key(new.path) {
            return Err(ErrorCode::NodeExists);
        }
        let parent = self.node_mut(&parent_key).ok_or(ErrorCode::NoNode)?;
        // -1 comes from old txn formats; the guard keeps replays over a
        // newer parent from moving cversion/pzxid backwards (ZooKeeper's rule).
        let parent_cversion = match new.parent_cversion {
            -1 => parent.stat.cversion.wrapping_add(1),
            cversion => cversion,
        };
        if parent_cversion > parent.stat.cversion {
            parent.stat.cversion = parent_cversion;
            parent.stat.pzxid = hdr.zxid;
        }
        let parent_acl = parent.acl.clone();
        let node_path: PathRef = new.path.into();
        let added = link(parent, node_path.clone());
        debug_assert!(added, "NodeExists was checked above");
        let stat = new_node_stat(hdr, new.ephemeral_owner, data_len(new.data));
        let node = Node {
            data: node_data(new.data.as_deref()),
            stat,
            acl: self.acls.intern(new.acl),
            children: Children::default(),
        };
        let node_acl = node.acl.clone();
        self.insert_linked_node(node_path.clone(), node);
        // After the reply's stat was taken: ZooKeeper's create2 reply shows
        // a new stats node's data length as the client sent it.
        self.note_quota_create(new.path, parent_path, data_len(new.data) as i64);
        events.push(event(EventType::NodeCreated, node_path, node_acl));
        events.push(event(
            EventType::NodeChildrenChanged,
            parent_key,
            parent_acl,
        ));
        Ok(TxnResult::Created {
            path: new.path.to_string(),
            stat,
            kind: new.kind,
        })
    }

    /// A delete that keeps the tree digest (the node and its parent change).
    fn digested_delete(
        &mut self,
        zxid: i64,
        node_path: &str,
        events: &mut Vec<TreeEvent>,
    ) -> Result<(), ErrorCode> {
        self.with_digest([digest_parent(node_path), node_path], |tree| {
            tree.apply_delete(zxid, node_path, events)
        })
    }

    /// Deleting a child moves the parent's pzxid (never backwards) but not
    /// its cversion, as in ZooKeeper.
    fn apply_delete(
        &mut self,
        zxid: i64,
        node_path: &str,
        events: &mut Vec<TreeEvent>,
    ) -> Result<(), ErrorCode> {
        let parent_path = path::zk_parent(node_path).ok_or(ErrorCode::BadArguments)?;
        let parent_key: PathRef = if parent_path.is_empty() {
            path::ROOT
        } else {
            parent_path
        }
        .into();
        let node = self.nodes.get(node_path).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        let parent = self.node_mut(&parent_key).ok_or(ErrorCode::NoNode)?;
        parent.children.remove(node_path);
        parent.stat.num_children = parent.children.len() as i32;
        if zxid > parent.stat.pzxid {
            parent.stat.pzxid = zxid;
        }
        let parent_acl = parent.acl.clone();
        let (node_key, node) = self
            .nodes
            .remove_with_key(node_path)
            .expect("checked above");
        self.unindex_owner(node_path, node.kind());
        self.data_bytes -= path::java_len(node_path) + data_len(&node.data) as i64;
        self.note_quota_delete(node_path, parent_path, data_len(&node.data) as i64);
        events.push(event(EventType::NodeDeleted, node_key, node.acl.clone()));
        events.push(event(
            EventType::NodeChildrenChanged,
            parent_key,
            parent_acl,
        ));
        Ok(())
    }

    fn apply_set_data(
        &mut self,
        hdr: &TxnHeader,
        node_path: &str,
        data: &Data,
        version: i32,
        events: &mut Vec<TreeEvent>,
    ) -> Result<TxnResult, ErrorCode> {
        let node = self.node_mut(node_path).ok_or(ErrorCode::NoNode)?;
        let data_bytes_delta = data_len(data) as i64 - data_len(&node.data) as i64;
        node.data = node_data(data.as_deref());
        node.stat.data_length = data_len(data) as i32;
        node.stat.mtime = hdr.time_ms;
        node.stat.mzxid = hdr.zxid;
        node.stat.version = version;
        let (stat, acl) = (node.stat, node.acl.clone());
        self.data_bytes += data_bytes_delta;
        self.note_quota_set_data(node_path, data_bytes_delta);
        events.push(event(EventType::NodeDataChanged, node_path.into(), acl));
        Ok(TxnResult::SetData(stat))
    }

    fn apply_set_acl(
        &mut self,
        node_path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<TxnResult, ErrorCode> {
        let acl = self.acls.intern(acl);
        let node = self.node_mut(node_path).ok_or(ErrorCode::NoNode)?;
        node.acl = acl;
        node.stat.aversion = version;
        Ok(TxnResult::SetAcl(node.stat))
    }

    /// All or nothing: if an op fails (corrupt log only), the tree and the
    /// events are restored from an O(1) snapshot taken before the first op.
    fn apply_multi(
        &mut self,
        hdr: &TxnHeader,
        ops: &[TxnOp],
        events: &mut Vec<TreeEvent>,
    ) -> TxnResult {
        let before = self.clone();
        let events_before = events.len();
        let mut results = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let result = self.apply_op(hdr, op, events);
            if let TxnResult::Error(code) = result {
                // A clone's ACL cache starts empty: keep this tree's.
                let acls = std::mem::take(&mut self.acls);
                *self = before;
                self.acls = acls;
                events.truncate(events_before);
                return TxnResult::MultiError(multi_error_codes(ops.len(), index, code));
            }
            results.push(result);
        }
        TxnResult::Multi(results)
    }

    /// Deletes the session's ephemerals in path order (deterministic).
    fn apply_close_session(&mut self, hdr: &TxnHeader, events: &mut Vec<TreeEvent>) {
        let Some(paths) = self.ephemerals.get(&hdr.session_id) else {
            return;
        };
        let paths: Vec<PathRef> = paths.iter().cloned().collect();
        for node_path in paths {
            // Ephemerals have no children, so this cannot fail.
            let deleted = self.digested_delete(hdr.zxid, &node_path, events);
            assert_eq!(deleted, Ok(()), "ephemeral {node_path} deletes cleanly");
        }
        assert!(!self.ephemerals.contains_key(&hdr.session_id));
    }
}

/// The parent whose stat a create or delete of `node_path` changes ("/" for
/// a top-level node; the path itself if it has none, which then fails).
fn digest_parent(node_path: &str) -> &str {
    match path::zk_parent(node_path) {
        Some("") => path::ROOT,
        Some(parent) => parent,
        None => node_path,
    }
}

/// ZooKeeper's `DataTree.createStat` plus the data length.
fn new_node_stat(hdr: &TxnHeader, ephemeral_owner: i64, data_len: usize) -> Stat {
    Stat {
        czxid: hdr.zxid,
        mzxid: hdr.zxid,
        ctime: hdr.time_ms,
        mtime: hdr.time_ms,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner,
        data_length: data_len as i32,
        num_children: 0,
        pzxid: hdr.zxid,
    }
}

fn event(kind: EventType, path: PathRef, acl: Arc<[Acl]>) -> TreeEvent {
    TreeEvent {
        event: kind,
        path,
        acl,
    }
}
