//! One tree version as a SNAP stream or a `snapshot.*` file, written chunk
//! by chunk: the encoder owns an O(1) clone of the tree and walks it in
//! pre-order (children sorted; Java iterates a HashSet, and its reader
//! takes any order), remembering per open level only the last child
//! written, so its memory is the ACL cache plus O(depth) paths, whatever
//! the tree's size. A file is framed as ZooKeeper 3.9's `FileSnap.serialize`
//! writes it: header, the tree, then three seals (after the tree, after the
//! digest, after the last processed zxid), each the Adler-32 of every byte
//! before it.

use std::collections::HashMap;
use std::sync::Arc;

use adler2::Adler32;

use super::{
    SnapFraming, StatPersisted, END_OF_NODES, SNAP_FILE_MAGIC, SNAP_FILE_VERSION, SNAP_SIGNATURE,
};
use crate::proto::jute::{put_acl, put_buffer, put_i32, put_i64, put_str};
use crate::proto::Acl;
use crate::tree::digest::DIGEST_VERSION;
use crate::tree::{path, DataTree};

/// The database id `FileSnap` writes in every header (a constant -1).
pub const SNAP_FILE_DB_ID: i64 = -1;

/// The ACL cache ZooKeeper writes before the nodes: every distinct list in
/// the tree, numbered from 1 (`ReferenceCountedACLCache.incrementIndex`).
struct AclRefs {
    /// In aclRef order (ref = index + 1).
    lists: Vec<Arc<[Acl]>>,
    /// Address of a node's shared list -> its ref: nodes share interned
    /// lists, so most lookups skip hashing the list.
    by_address: HashMap<usize, i64>,
}

impl AclRefs {
    fn of(tree: &DataTree) -> AclRefs {
        let mut by_value: HashMap<Arc<[Acl]>, i64> = HashMap::new();
        let mut refs = AclRefs {
            lists: Vec::new(),
            by_address: HashMap::new(),
        };
        for (_, node) in tree.iter() {
            let address = address_of(&node.acl);
            if refs.by_address.contains_key(&address) {
                continue;
            }
            let next_ref = refs.lists.len() as i64 + 1;
            let acl_ref = *by_value.entry(node.acl.clone()).or_insert(next_ref);
            if acl_ref == next_ref {
                refs.lists.push(node.acl.clone());
            }
            refs.by_address.insert(address, acl_ref);
        }
        refs
    }

    fn of_node(&self, acl: &Arc<[Acl]>) -> i64 {
        // Every node's list was numbered in `of`, over this same tree.
        self.by_address[&address_of(acl)]
    }
}

fn address_of(acl: &Arc<[Acl]>) -> usize {
    Arc::as_ptr(acl) as *const Acl as usize
}

enum Stage {
    FileHeader,
    SessionCount,
    Sessions(usize),
    AclCount,
    AclLists(usize),
    Root,
    Nodes,
    End,
    /// A file's sealed sections after the tree.
    Seals,
    Done,
}

/// A level of the walk: a node whose children are being written.
struct Level {
    path: String,
    /// The last child written (None before the first).
    last_child: Option<String>,
}

/// Writes sessions + `DataTree.serialize` + "BenWasHere", as a leader's
/// `LearnerHandler` sends after a SNAP packet, or the same framed as a
/// snapshot file.
pub struct SnapEncoder {
    tree: DataTree,
    sessions: Vec<(i64, i32)>,
    acls: AclRefs,
    framing: SnapFraming,
    stage: Stage,
    levels: Vec<Level>,
    /// Over every byte written so far (a file's seals).
    adler: Adler32,
}

impl SnapEncoder {
    /// A SNAP stream. `tree` should be an immutable version (a clone is
    /// O(1)); `sessions` are (session id, timeout ms).
    pub fn new(tree: DataTree, sessions: Vec<(i64, i32)>) -> SnapEncoder {
        SnapEncoder::framed(SnapFraming::Sync, tree, sessions)
    }

    /// A snapshot file of `tree` at its last zxid, as ZooKeeper 3.9 writes
    /// one with digests and `serializeLastProcessedZxid` on (its defaults).
    pub fn file(tree: DataTree, sessions: Vec<(i64, i32)>) -> SnapEncoder {
        SnapEncoder::framed(SnapFraming::File, tree, sessions)
    }

    fn framed(framing: SnapFraming, tree: DataTree, sessions: Vec<(i64, i32)>) -> SnapEncoder {
        let acls = AclRefs::of(&tree);
        SnapEncoder {
            tree,
            sessions,
            acls,
            framing,
            stage: match framing {
                SnapFraming::Sync => Stage::SessionCount,
                SnapFraming::File => Stage::FileHeader,
            },
            levels: Vec::new(),
            adler: Adler32::new(),
        }
    }

    /// The number of bytes the whole stream takes, computed from the
    /// tree's lengths without encoding it (the AdminServer's `snapshot`
    /// sends it ahead of the stream).
    pub fn stream_len(&self) -> u64 {
        const INT: u64 = 4;
        const LONG: u64 = 8;
        let str_len = |s: &str| INT + s.len() as u64;
        let framing = match self.framing {
            // The signature after the node list.
            SnapFraming::Sync => str_len(SNAP_SIGNATURE),
            // The header; three seals; the digest and the last zxid.
            SnapFraming::File => {
                let seal = LONG + str_len(END_OF_NODES);
                (INT + INT + LONG) + 3 * seal + (LONG + INT + LONG) + LONG
            }
        };
        let sessions = INT + self.sessions.len() as u64 * (LONG + INT);
        let acls: u64 = INT
            + self
                .acls
                .lists
                .iter()
                .map(|list| {
                    let entries: u64 = list
                        .iter()
                        .map(|acl| INT + str_len(&acl.id.scheme) + str_len(&acl.id.id))
                        .sum();
                    LONG + INT + entries
                })
                .sum::<u64>();
        let nodes: u64 = self
            .tree
            .iter()
            .map(|(node_path, node)| {
                let written_path = if node_path == path::ROOT {
                    ""
                } else {
                    node_path
                };
                let data = node.data.as_deref().map_or(0, |d| d.len() as u64);
                str_len(written_path) + INT + data + LONG + super::STAT_PERSISTED_BYTES as u64
            })
            .sum();
        framing + sessions + acls + nodes + str_len(END_OF_NODES)
    }

    /// Appends records until `out` holds at least `chunk_bytes` (or the
    /// stream ends); false once everything was written. One record (a node
    /// of at most `jute.maxbuffer` data) may overshoot the target.
    pub fn fill(&mut self, out: &mut Vec<u8>, chunk_bytes: usize) -> bool {
        while out.len() < chunk_bytes {
            if matches!(self.stage, Stage::Done) {
                return false;
            }
            self.write_next(out);
        }
        !matches!(self.stage, Stage::Done)
    }

    fn write_next(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        self.stage = self.write_record(out);
        self.adler.write_slice(&out[start..]);
    }

    fn write_record(&mut self, out: &mut Vec<u8>) -> Stage {
        match self.stage {
            Stage::FileHeader => {
                put_i32(out, SNAP_FILE_MAGIC);
                put_i32(out, SNAP_FILE_VERSION);
                put_i64(out, SNAP_FILE_DB_ID);
                Stage::SessionCount
            }
            Stage::SessionCount => {
                put_i32(out, count(self.sessions.len()));
                Stage::Sessions(0)
            }
            Stage::Sessions(i) => match self.sessions.get(i) {
                Some(&(session_id, timeout_ms)) => {
                    put_i64(out, session_id);
                    put_i32(out, timeout_ms);
                    Stage::Sessions(i + 1)
                }
                None => Stage::AclCount,
            },
            Stage::AclCount => {
                put_i32(out, count(self.acls.lists.len()));
                Stage::AclLists(0)
            }
            Stage::AclLists(i) => match self.acls.lists.get(i) {
                Some(list) => {
                    put_i64(out, i as i64 + 1);
                    put_i32(out, count(list.len()));
                    list.iter().for_each(|acl| put_acl(out, acl));
                    Stage::AclLists(i + 1)
                }
                None => Stage::Root,
            },
            Stage::Root => {
                self.write_node(path::ROOT, out);
                Stage::Nodes
            }
            Stage::Nodes => match self.next_path() {
                Some(child) => {
                    self.write_node(&child, out);
                    Stage::Nodes
                }
                None => Stage::End,
            },
            Stage::End => {
                put_str(out, END_OF_NODES);
                match self.framing {
                    SnapFraming::Sync => {
                        put_str(out, SNAP_SIGNATURE);
                        Stage::Done
                    }
                    SnapFraming::File => Stage::Seals,
                }
            }
            Stage::Seals => {
                self.write_seals(out);
                Stage::Done
            }
            Stage::Done => Stage::Done,
        }
    }

    /// `sealStream`, the tree's `ZxidDigest` and seal, the last processed
    /// zxid and seal; each seal covers every byte before it.
    fn write_seals(&mut self, out: &mut Vec<u8>) {
        let mut adler = self.adler;
        let mut section = |out: &mut Vec<u8>, write: &dyn Fn(&mut Vec<u8>)| {
            let start = out.len();
            write(out);
            adler.write_slice(&out[start..]);
            let seal_start = out.len();
            put_i64(out, i64::from(adler.checksum()));
            put_str(out, END_OF_NODES);
            adler.write_slice(&out[seal_start..]);
        };
        let (zxid, digest) = (self.tree.last_zxid(), self.tree.digest());
        section(out, &|_| {});
        section(out, &|out| {
            put_i64(out, zxid);
            put_i32(out, DIGEST_VERSION);
            put_i64(out, digest);
        });
        section(out, &|out| put_i64(out, zxid));
    }

    /// Writes one node and opens it as a level of the walk.
    fn write_node(&mut self, node_path: &str, out: &mut Vec<u8>) {
        let node = self.tree.get(node_path).expect("walked paths exist");
        // ZooKeeper's root path is "".
        put_str(
            out,
            if node_path == path::ROOT {
                ""
            } else {
                node_path
            },
        );
        put_buffer(out, node.data.as_deref());
        put_i64(out, self.acls.of_node(&node.acl));
        StatPersisted::from_stat(&node.stat).write(out);
        self.levels.push(Level {
            path: node_path.to_owned(),
            last_child: None,
        });
    }

    /// The next node in pre-order, closing finished levels.
    fn next_path(&mut self) -> Option<String> {
        while let Some(level) = self.levels.last_mut() {
            let node = self.tree.get(&level.path).expect("walked paths exist");
            match node.children.next_after(level.last_child.as_deref()) {
                Some(child) => {
                    let child = child.to_owned();
                    level.last_child = Some(child.clone());
                    return Some(child);
                }
                None => {
                    self.levels.pop();
                }
            }
        }
        None
    }
}

/// Counts are Java ints; a tree or session table past i32::MAX entries
/// cannot exist within the server's limits.
fn count(n: usize) -> i32 {
    i32::try_from(n).expect("snapshot counts fit an int")
}
