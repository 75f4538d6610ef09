//! Workloads: what each request lane of a session sends next, and what it
//! does with the reply. A lane is one outstanding-request slot; lanes whose
//! next request depends on the previous reply (create -> delete, the lock and
//! election recipes) are small state machines.

use std::sync::Arc;

use ferrokeeper::proto::{
    decode_response, encode_request_frame, op, Acl, CreateMode, CreateRequest, Request, Response,
};

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// getData/setData mix over a key space (`--reads`, `--keys`, `--value-size`).
    Getset,
    /// create then delete, with the create modes of `--create-modes`.
    Churn,
    /// multi transactions of `--multi-ops` setData ops on random keys.
    Multi,
    /// `--sessions` sessions watch one node; one writer sets it `--rate` times a second.
    Watch,
    /// session storm: connect, closeSession, reconnect.
    Sessions,
    /// lock and leader-election recipes: ephemeral-sequential create,
    /// getChildren, then exists(predecessor) or setData(leader), delete.
    Coord,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Getset => "getset",
            WorkloadKind::Churn => "churn",
            WorkloadKind::Multi => "multi",
            WorkloadKind::Watch => "watch",
            WorkloadKind::Sessions => "sessions",
            WorkloadKind::Coord => "coord",
        }
    }
}

/// What a latency sample is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    GetData,
    SetData,
    Create,
    Delete,
    Multi,
    GetChildren,
    Exists,
    AddWatch,
    Connect,
    CloseSession,
    /// From the write that caused it to the watch event's arrival.
    Notification,
}

impl OpKind {
    pub const ALL: [OpKind; 11] = [
        OpKind::GetData,
        OpKind::SetData,
        OpKind::Create,
        OpKind::Delete,
        OpKind::Multi,
        OpKind::GetChildren,
        OpKind::Exists,
        OpKind::AddWatch,
        OpKind::Connect,
        OpKind::CloseSession,
        OpKind::Notification,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            OpKind::GetData => "getData",
            OpKind::SetData => "setData",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Multi => "multi",
            OpKind::GetChildren => "getChildren",
            OpKind::Exists => "exists",
            OpKind::AddWatch => "addWatch",
            OpKind::Connect => "connect",
            OpKind::CloseSession => "closeSession",
            OpKind::Notification => "notification",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChurnMode {
    Persistent,
    Ephemeral,
    Sequential,
    EphemeralSequential,
}

impl ChurnMode {
    pub fn create_mode(self) -> CreateMode {
        match self {
            ChurnMode::Persistent => CreateMode::Persistent,
            ChurnMode::Ephemeral => CreateMode::Ephemeral,
            ChurnMode::Sequential => CreateMode::PersistentSequential,
            ChurnMode::EphemeralSequential => CreateMode::EphemeralSequential,
        }
    }
}

/// Everything a lane needs to build requests; shared by all threads.
pub struct Workload {
    pub kind: WorkloadKind,
    pub reads_pct: u32,
    pub value: Vec<u8>,
    pub multi_ops: usize,
    pub churn_modes: Vec<ChurnMode>,
    /// chroot + base, e.g. "/app/ferrokeeper-loadgen": all paths live below.
    pub root: String,
    /// getset/multi keys, full paths.
    pub keys: Arc<Vec<String>>,
    /// coord: parents of the lock/election nodes, full paths.
    pub coord_parents: Vec<String>,
    /// watch: the watched node.
    pub watch_path: String,
    pub open_acl: Vec<Acl>,
}

impl Workload {
    pub fn new(
        kind: WorkloadKind,
        root: String,
        key_count: usize,
        value_size: usize,
        reads_pct: u32,
        multi_ops: usize,
        churn_modes: Vec<ChurnMode>,
    ) -> Workload {
        let keys = match kind {
            WorkloadKind::Getset | WorkloadKind::Multi => {
                (0..key_count).map(|i| format!("{root}/k{i}")).collect()
            }
            _ => Vec::new(),
        };
        let coord_parents = match kind {
            WorkloadKind::Coord => (0..key_count)
                .map(|i| format!("{root}/coord/c{i}"))
                .collect(),
            _ => Vec::new(),
        };
        Workload {
            kind,
            reads_pct: reads_pct.min(100),
            value: (0..value_size).map(|i| b'a' + (i % 26) as u8).collect(),
            multi_ops: multi_ops.max(1),
            churn_modes: if churn_modes.is_empty() {
                vec![ChurnMode::Persistent]
            } else {
                churn_modes
            },
            watch_path: format!("{root}/watch"),
            root,
            keys: Arc::new(keys),
            coord_parents,
            open_acl: Acl::open_unsafe(),
        }
    }

    /// Persistent nodes the run needs, parents first (created before the run).
    pub fn setup_paths(&self) -> Vec<String> {
        let mut v = vec![self.root.clone()];
        match self.kind {
            WorkloadKind::Churn => v.push(format!("{}/churn", self.root)),
            WorkloadKind::Coord => {
                v.push(format!("{}/coord", self.root));
                v.extend(self.coord_parents.iter().cloned());
            }
            WorkloadKind::Watch => v.push(self.watch_path.clone()),
            _ => {}
        }
        v
    }

    fn key<'a>(&'a self, rng: &mut Rng) -> &'a str {
        &self.keys[rng.below(self.keys.len() as u64) as usize]
    }

    /// Appends the lane's next request frame to `out`; returns what it is.
    pub fn next(
        &self,
        lane: &mut Lane,
        rng: &mut Rng,
        session: usize,
        xid: i32,
        out: &mut Vec<u8>,
    ) -> OpKind {
        match self.kind {
            WorkloadKind::Getset => {
                let path = self.key(rng);
                if rng.chance(self.reads_pct) {
                    encode_request_frame(out, xid, &Request::GetData { path, watch: false });
                    OpKind::GetData
                } else {
                    self.set_data(out, xid, path)
                }
            }
            WorkloadKind::Multi => {
                let ops = (0..self.multi_ops)
                    .map(|_| Request::SetData {
                        path: self.key(rng),
                        data: Some(&self.value),
                        version: -1,
                    })
                    .collect();
                encode_request_frame(out, xid, &Request::Multi(ops));
                OpKind::Multi
            }
            WorkloadKind::Churn => match &lane.step {
                Step::Idle => {
                    let mode = self.churn_modes[rng.below(self.churn_modes.len() as u64) as usize]
                        .create_mode();
                    lane.counter += 1;
                    lane.path = if mode.is_sequential() {
                        format!("{}/churn/s{session}-l{}-", self.root, lane.id)
                    } else {
                        format!(
                            "{}/churn/s{session}-l{}-{}",
                            self.root, lane.id, lane.counter
                        )
                    };
                    self.create(out, xid, &lane.path, mode)
                }
                _ => self.delete(out, xid, &lane.path),
            },
            WorkloadKind::Coord => match lane.step {
                Step::Idle => {
                    lane.parent = rng.below(self.coord_parents.len() as u64) as usize;
                    lane.path = format!("{}/n-", self.coord_parents[lane.parent]);
                    lane.counter += 1;
                    self.create(out, xid, &lane.path, CreateMode::EphemeralSequential)
                }
                Step::Created => {
                    let path = &self.coord_parents[lane.parent];
                    encode_request_frame(out, xid, &Request::GetChildren { path, watch: false });
                    OpKind::GetChildren
                }
                Step::Listed => {
                    if lane.predecessor.is_empty() {
                        // Leader (or lock holder): announce on the parent.
                        self.set_data(out, xid, &self.coord_parents[lane.parent])
                    } else {
                        let path = &lane.predecessor;
                        encode_request_frame(out, xid, &Request::Exists { path, watch: false });
                        OpKind::Exists
                    }
                }
                Step::Checked | Step::ToDelete => self.delete(out, xid, &lane.path),
            },
            WorkloadKind::Watch | WorkloadKind::Sessions => {
                // Driven by the session roles, not lanes; a writer lane sets the node.
                self.set_data(out, xid, &self.watch_path)
            }
        }
    }

    /// Advances the lane after the reply to the request `next` produced.
    pub fn on_reply(&self, lane: &mut Lane, kind: OpKind, err: i32, body: &[u8]) {
        let ok = err == 0;
        match (self.kind, kind) {
            (WorkloadKind::Churn, OpKind::Create) => {
                if ok {
                    if let Some(p) = created_path(body) {
                        lane.path = p;
                    }
                    lane.step = Step::ToDelete;
                } else {
                    lane.step = Step::Idle;
                }
            }
            (WorkloadKind::Churn, OpKind::Delete) => lane.step = Step::Idle,
            (WorkloadKind::Coord, OpKind::Create) => {
                if ok {
                    if let Some(p) = created_path(body) {
                        lane.path = p;
                    }
                    lane.step = Step::Created;
                } else {
                    lane.step = Step::Idle;
                }
            }
            (WorkloadKind::Coord, OpKind::GetChildren) => {
                lane.predecessor.clear();
                if ok {
                    if let Ok(Response::Children(names)) = decode_response(op::GET_CHILDREN, body) {
                        let mine = lane.path.rsplit('/').next().unwrap_or("");
                        // The largest name smaller than mine (sequence suffixes sort).
                        if let Some(pred) = names.iter().filter(|n| **n < mine).max() {
                            lane.predecessor =
                                format!("{}/{}", self.coord_parents[lane.parent], pred);
                        }
                    }
                }
                lane.step = Step::Listed;
            }
            (WorkloadKind::Coord, OpKind::Exists | OpKind::SetData) => lane.step = Step::Checked,
            (WorkloadKind::Coord, OpKind::Delete) => lane.step = Step::Idle,
            _ => {}
        }
    }

    fn set_data(&self, out: &mut Vec<u8>, xid: i32, path: &str) -> OpKind {
        let req = Request::SetData {
            path,
            data: Some(&self.value),
            version: -1,
        };
        encode_request_frame(out, xid, &req);
        OpKind::SetData
    }

    fn create(&self, out: &mut Vec<u8>, xid: i32, path: &str, mode: CreateMode) -> OpKind {
        let req = Request::Create {
            op: op::CREATE,
            req: CreateRequest {
                path,
                data: Some(&self.value),
                acl: self.open_acl.clone(),
                flags: mode as i32,
                ttl_ms: None,
            },
        };
        encode_request_frame(out, xid, &req);
        OpKind::Create
    }

    fn delete(&self, out: &mut Vec<u8>, xid: i32, path: &str) -> OpKind {
        encode_request_frame(out, xid, &Request::Delete { path, version: -1 });
        OpKind::Delete
    }
}

/// The path a create reply names; None if the body is not a create reply
/// (a null target answers everything with an empty body).
fn created_path(body: &[u8]) -> Option<String> {
    match decode_response(op::CREATE, body) {
        Ok(Response::Path(p)) => Some(p.to_string()),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Step {
    #[default]
    Idle,
    /// churn: the node exists, delete it next.
    ToDelete,
    /// coord: own node created, list the parent next.
    Created,
    /// coord: listed; check the predecessor or announce leadership next.
    Listed,
    /// coord: done with the recipe, delete own node next.
    Checked,
}

/// One outstanding-request slot of a session.
#[derive(Clone, Debug, Default)]
pub struct Lane {
    pub id: usize,
    pub step: Step,
    pub path: String,
    pub predecessor: String,
    pub parent: usize,
    pub counter: u64,
}

impl Lane {
    pub fn new(id: usize) -> Lane {
        Lane {
            id,
            ..Lane::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokeeper::proto::decode_frame;

    fn wl(kind: WorkloadKind, reads: u32) -> Workload {
        Workload::new(kind, "/lg".into(), 100, 16, reads, 3, vec![])
    }

    fn decode_op(frame: &[u8]) -> i32 {
        decode_frame(&frame[4..]).unwrap().0.op
    }

    #[test]
    fn getset_mix_follows_reads_percentage() {
        for reads in [0u32, 10, 50, 90, 100] {
            let w = wl(WorkloadKind::Getset, reads);
            let mut rng = Rng::new(reads as u64 + 1);
            let mut lane = Lane::new(0);
            let n = 100_000;
            let mut gets = 0;
            for i in 0..n {
                let mut out = Vec::new();
                let kind = w.next(&mut lane, &mut rng, 0, i, &mut out);
                let wire = decode_op(&out);
                match kind {
                    OpKind::GetData => {
                        gets += 1;
                        assert_eq!(wire, op::GET_DATA);
                    }
                    OpKind::SetData => assert_eq!(wire, op::SET_DATA),
                    other => panic!("unexpected {other:?}"),
                }
            }
            let pct = gets as f64 * 100.0 / n as f64;
            assert!(
                (pct - reads as f64).abs() < 1.0,
                "reads {reads}: got {pct}%"
            );
        }
    }

    #[test]
    fn keys_are_spread_over_the_key_space() {
        let w = wl(WorkloadKind::Getset, 100);
        let mut rng = Rng::new(7);
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000 {
            let mut out = Vec::new();
            w.next(&mut Lane::new(0), &mut rng, 0, i, &mut out);
            let (_, req) = decode_frame(&out[4..]).unwrap();
            seen.insert(req.path().unwrap().to_string());
        }
        assert_eq!(seen.len(), 100);
    }

    #[test]
    fn churn_alternates_create_and_delete_of_the_same_node() {
        let w = Workload::new(
            WorkloadKind::Churn,
            "/lg".into(),
            1,
            4,
            0,
            1,
            vec![ChurnMode::Ephemeral, ChurnMode::Sequential],
        );
        let mut rng = Rng::new(3);
        let mut lane = Lane::new(2);
        let mut modes = std::collections::HashSet::new();
        for i in 0..200 {
            let mut out = Vec::new();
            assert_eq!(w.next(&mut lane, &mut rng, 5, i, &mut out), OpKind::Create);
            let (_, req) = decode_frame(&out[4..]).unwrap();
            let Request::Create { req, .. } = req else {
                panic!()
            };
            modes.insert(req.flags);
            let created = format!(
                "{}{}",
                req.path,
                if req.flags == 2 { "0000000007" } else { "" }
            );
            let mut reply = Vec::new();
            ferrokeeper::proto::jute::put_str(&mut reply, &created);
            w.on_reply(&mut lane, OpKind::Create, 0, &reply);
            let mut out = Vec::new();
            assert_eq!(w.next(&mut lane, &mut rng, 5, i, &mut out), OpKind::Delete);
            let (_, req) = decode_frame(&out[4..]).unwrap();
            assert_eq!(req.path(), Some(created.as_str()));
            w.on_reply(&mut lane, OpKind::Delete, 0, &[]);
        }
        assert_eq!(modes.len(), 2);
    }

    #[test]
    fn multi_has_the_requested_number_of_ops() {
        let w = wl(WorkloadKind::Multi, 0);
        let mut out = Vec::new();
        assert_eq!(
            w.next(&mut Lane::new(0), &mut Rng::new(1), 0, 1, &mut out),
            OpKind::Multi
        );
        let (_, req) = decode_frame(&out[4..]).unwrap();
        let Request::Multi(ops) = req else { panic!() };
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn coord_recipe_steps() {
        let w = wl(WorkloadKind::Coord, 0);
        let mut rng = Rng::new(1);
        let mut lane = Lane::new(0);
        let mut out = Vec::new();
        assert_eq!(w.next(&mut lane, &mut rng, 0, 1, &mut out), OpKind::Create);
        let parent = w.coord_parents[lane.parent].clone();
        let mut reply = Vec::new();
        ferrokeeper::proto::jute::put_str(&mut reply, &format!("{parent}/n-0000000005"));
        w.on_reply(&mut lane, OpKind::Create, 0, &reply);
        assert_eq!(
            w.next(&mut lane, &mut rng, 0, 2, &mut out),
            OpKind::GetChildren
        );
        let mut reply = Vec::new();
        ferrokeeper::proto::jute::put_str_vec(
            &mut reply,
            ["n-0000000003", "n-0000000005", "n-0000000001"],
        );
        w.on_reply(&mut lane, OpKind::GetChildren, 0, &reply);
        assert_eq!(lane.predecessor, format!("{parent}/n-0000000003"));
        assert_eq!(w.next(&mut lane, &mut rng, 0, 3, &mut out), OpKind::Exists);
        w.on_reply(&mut lane, OpKind::Exists, 0, &[]);
        assert_eq!(w.next(&mut lane, &mut rng, 0, 4, &mut out), OpKind::Delete);
        w.on_reply(&mut lane, OpKind::Delete, 0, &[]);
        assert_eq!(lane.step, Step::Idle);
    }
}
