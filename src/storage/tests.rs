//! Storage tests: encoding round trips, recovery from damaged files,
//! retention, and the helpers the crash tests share.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::format::{decode_txn, encode_txn, log_name, snapshot_name, SEGMENT_HEADER_BYTES};
use super::sim::SimStore;
use super::*;
use crate::proto::{Acl, ErrorCode, Id};
use crate::tree::acl::AuthInfo;
use crate::tree::{CreateKind, CreateReq, DataTree, Node, PrepOptions, TxnHeader, TxnOp, WriteReq};

// ----- shared helpers -----

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "ferrokeeper-storage-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Everything observable about a tree, comparable with `==`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TreeState {
    nodes: BTreeMap<String, Node>,
    last_zxid: i64,
    data_bytes: i64,
    ephemeral_sessions: Vec<i64>,
}

pub(super) fn tree_state(tree: &DataTree) -> TreeState {
    tree.assert_invariants();
    TreeState {
        nodes: tree
            .iter()
            .map(|(p, n)| (p.to_string(), n.clone()))
            .collect(),
        last_zxid: tree.last_zxid(),
        data_bytes: tree.approximate_data_bytes(),
        ephemeral_sessions: tree.ephemeral_sessions(),
    }
}

/// Runs `f` with warnings captured; returns its result and the log text.
pub(super) fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(Arc::new(Mutex::new(Vec::new())));
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&sink.0.lock().expect("sink")).into_owned();
    (result, text)
}

/// A writer of random but valid txns, standing in for the pipeline: it
/// preps requests against its own working tree like the pipeline does.
pub(super) struct Model {
    pub tree: DataTree,
    pub sessions: OpenSessions,
    pub next_zxid: i64,
    next_session: i64,
    time_ms: i64,
    acl: Vec<Acl>,
}

const PATHS: [&str; 7] = ["/a", "/a/b", "/a/b/c", "/d", "/d/e", "/s", "/s/t"];

impl Model {
    pub(super) fn new() -> Model {
        Model::resume(DataTree::new(), OpenSessions::new(), 0)
    }

    pub(super) fn resume(tree: DataTree, sessions: OpenSessions, last_zxid: i64) -> Model {
        Model {
            tree,
            sessions,
            next_zxid: last_zxid + 1,
            next_session: 0x0100_0000_0000_0000 + last_zxid * 1000,
            time_ms: 1_700_000_000_000,
            acl: Acl::open_unsafe(),
        }
    }

    /// `txns` txns, applied to the model's tree as they are made.
    pub(super) fn batch(&mut self, rng: &mut StdRng, txns: usize) -> Vec<(TxnHeader, TxnOp)> {
        let mut batch = Vec::new();
        while batch.len() < txns {
            if let Some(txn) = self.txn(rng) {
                let mut events = Vec::new();
                self.tree.apply(&txn.0, &txn.1, &mut events);
                self.sessions.apply(&txn.0, &txn.1);
                self.next_zxid += 1;
                batch.push(txn);
            }
        }
        batch
    }

    fn header(&mut self, session_id: i64) -> TxnHeader {
        self.time_ms += 7;
        TxnHeader {
            session_id,
            cxid: (self.next_zxid % 1000) as i32,
            zxid: self.next_zxid,
            time_ms: self.time_ms,
        }
    }

    fn random_session(&self, rng: &mut StdRng) -> Option<i64> {
        let ids: Vec<i64> = self.sessions.iter().map(|(id, _)| id).collect();
        (!ids.is_empty()).then(|| ids[rng.gen_range(0..ids.len())])
    }

    fn txn(&mut self, rng: &mut StdRng) -> Option<(TxnHeader, TxnOp)> {
        match rng.gen_range(0..12) {
            0 => {
                self.next_session += 1;
                let hdr = self.header(self.next_session);
                Some((
                    hdr,
                    TxnOp::CreateSession {
                        timeout_ms: rng.gen_range(4000..40000),
                    },
                ))
            }
            1 => {
                let session = self.random_session(rng)?;
                Some((self.header(session), TxnOp::CloseSession))
            }
            _ => self.client_write(rng),
        }
    }

    fn client_write(&mut self, rng: &mut StdRng) -> Option<(TxnHeader, TxnOp)> {
        let session = self.random_session(rng).unwrap_or(0x77);
        let hdr = self.header(session);
        let acl = self.acl.clone();
        let req = if rng.gen_bool(0.15) {
            WriteReq::Multi(
                (0..rng.gen_range(1..4))
                    .map(|_| simple_req(rng, &acl))
                    .collect(),
            )
        } else {
            simple_req(rng, &acl)
        };
        let opts = PrepOptions {
            extended_types_enabled: true,
            x509_acls: false,
            ..PrepOptions::default()
        };
        match self.tree.prep(&hdr, req, &AuthInfo::superuser(), &opts) {
            Ok(op) => Some((hdr, op)),
            // Some failed writes are logged (as ZooKeeper does) to cover the variant.
            Err(code) if rng.gen_bool(0.3) => Some((hdr, TxnOp::Error(code))),
            Err(_) => None,
        }
    }
}

fn simple_req<'a>(rng: &mut StdRng, acl: &'a [Acl]) -> WriteReq<'a> {
    let path = PATHS[rng.gen_range(0..PATHS.len())];
    let data = Bytes::from(
        (0..rng.gen_range(0..48))
            .map(|_| rng.gen())
            .collect::<Vec<u8>>(),
    );
    match rng.gen_range(0..8) {
        0..=2 => {
            let (flags, kind, ttl_ms) = match rng.gen_range(0..6) {
                4 => (4, CreateKind::Container, None),
                5 => (5, CreateKind::Ttl, Some(60_000)),
                f => (
                    f,
                    if rng.gen() {
                        CreateKind::Create
                    } else {
                        CreateKind::Create2
                    },
                    None,
                ),
            };
            WriteReq::Create(CreateReq {
                path,
                data: Some(data),
                acl,
                flags,
                ttl_ms,
                kind,
            })
        }
        3..=4 => WriteReq::SetData {
            path,
            data: Some(data),
            version: -1,
        },
        5 => WriteReq::SetAcl {
            path,
            acl,
            version: -1,
        },
        6 => WriteReq::Check { path, version: -1 },
        _ => WriteReq::Delete { path, version: -1 },
    }
}

fn wal_options(db_id: DbId) -> WalOptions {
    WalOptions {
        db_id,
        prealloc_bytes: 1024,
        segment_bytes_max: 4096,
        force_sync: true,
    }
}

pub(super) fn small_options(dir: &Path) -> StorageOptions {
    StorageOptions {
        prealloc_bytes: 1024,
        segment_bytes_max: 4096,
        ..StorageOptions::for_dir(dir)
    }
}

/// Opens `dir`, appends `batches` random batches, returns the final state.
fn fill(dir: &Path, rng: &mut StdRng, model: &mut Model, batches: usize) -> Opened {
    let mut opened = open(&small_options(dir)).expect("open");
    for _ in 0..batches {
        let txns = rng.gen_range(1..6);
        let batch = model.batch(rng, txns);
        opened.wal.append_batch(&batch).expect("append");
    }
    opened
}

pub(super) fn segments_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .filter(|n| n.starts_with("log."))
        .collect();
    names.sort();
    names
}

// ----- encoding -----

fn every_variant() -> Vec<TxnOp> {
    let acl = vec![
        Acl {
            perms: 31,
            id: Id::new("world", "anyone"),
        },
        Acl {
            perms: 1,
            id: Id::new("digest", "u:abc"),
        },
    ];
    let creates = [
        CreateKind::Create,
        CreateKind::Create2,
        CreateKind::Container,
        CreateKind::Ttl,
    ]
    .into_iter()
    .map(|kind| TxnOp::Create {
        path: "/x/y".into(),
        data: Some(Bytes::from_static(b"\x00data\xff")),
        acl: acl.clone(),
        ephemeral_owner: -5,
        parent_cversion: 7,
        kind,
    });
    let simple = [
        TxnOp::Delete { path: "/x".into() },
        TxnOp::SetData {
            path: "/x".into(),
            data: Some(Bytes::new()),
            version: 3,
        },
        TxnOp::SetAcl {
            path: "/x".into(),
            acl: Vec::new(),
            version: 2,
        },
        TxnOp::Check {
            path: "/x".into(),
            version: -1,
        },
        TxnOp::CreateSession { timeout_ms: 30000 },
        TxnOp::CloseSession,
        TxnOp::Error(ErrorCode::NoNode),
        TxnOp::MultiError(vec![
            ErrorCode::Ok,
            ErrorCode::BadVersion,
            ErrorCode::RuntimeInconsistency,
        ]),
    ];
    let mut all: Vec<TxnOp> = creates.chain(simple).collect();
    let multi: Vec<TxnOp> = all.iter().take(8).cloned().collect();
    all.push(TxnOp::Multi(multi));
    all.push(TxnOp::Multi(Vec::new()));
    all
}

/// Exhaustive on purpose: a new `TxnOp` variant fails to compile here
/// until the encoding (and `every_variant`) covers it.
fn variant_index(op: &TxnOp) -> usize {
    match op {
        TxnOp::Create { .. } => 0,
        TxnOp::Delete { .. } => 1,
        TxnOp::SetData { .. } => 2,
        TxnOp::SetAcl { .. } => 3,
        TxnOp::Check { .. } => 4,
        TxnOp::Multi(_) => 5,
        TxnOp::CreateSession { .. } => 6,
        TxnOp::CloseSession => 7,
        TxnOp::Error(_) => 8,
        TxnOp::MultiError(_) => 9,
    }
}

#[test]
fn every_variant_is_covered() {
    let covered: std::collections::BTreeSet<usize> =
        every_variant().iter().map(variant_index).collect();
    assert_eq!(covered.len(), 10);
}

#[test]
fn every_txn_variant_round_trips() {
    for (i, op) in every_variant().into_iter().enumerate() {
        let hdr = TxnHeader {
            session_id: 0x0102_0304_0506_0708,
            cxid: i as i32,
            zxid: (3 << 32) | 9,
            time_ms: 1_700_000_000_123,
        };
        let mut payload = Vec::new();
        encode_txn(&mut payload, &hdr, &op);
        assert_eq!(
            decode_txn(hdr.zxid, &payload).expect("decodes"),
            (hdr, op.clone())
        );
        for cut in 0..payload.len() {
            assert!(
                decode_txn(hdr.zxid, &payload[..cut]).is_err(),
                "{op:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn nested_multi_is_refused() {
    let hdr = TxnHeader {
        session_id: 1,
        cxid: 1,
        zxid: 1,
        time_ms: 1,
    };
    let mut payload = Vec::new();
    encode_txn(
        &mut payload,
        &hdr,
        &TxnOp::Multi(vec![TxnOp::Multi(Vec::new())]),
    );
    assert!(decode_txn(1, &payload).is_err());
}

#[test]
fn names_sort_by_zxid_and_parse_back() {
    assert_eq!(log_name(0x1_0000_0002), "log.0000000100000002");
    assert_eq!(snapshot_name(255), "snapshot.00000000000000ff");
    assert_eq!(
        format::parse_zxid_name("log.0000000100000002", "log."),
        Some(0x1_0000_0002)
    );
    assert_eq!(format::parse_zxid_name("log.12", "log."), None);
    assert_eq!(
        format::parse_zxid_name("snapshot.00000000000000ff.tmp", "snapshot."),
        None
    );
}

#[test]
fn zxid_successors() {
    assert!(format::zxid_follows(0, 1));
    assert!(format::zxid_follows(5, 6));
    assert!(!format::zxid_follows(5, 7));
    assert!(!format::zxid_follows(5, 5));
    assert!(format::zxid_follows(5, (1 << 32) | 1));
    assert!(!format::zxid_follows(5, (1 << 32) | 2));
}

// ----- group commit -----

#[test]
fn a_batch_is_one_write_and_one_sync() {
    let mut rng = StdRng::seed_from_u64(1);
    let store = SimStore::new();
    let tail = recover(
        Path::new("/nonexistent-ferrokeeper"),
        &mut store.clone(),
        [1; 16],
    )
    .expect("recover")
    .tail;
    let mut wal = Wal::resume(store.clone(), wal_options([1; 16]), &tail).expect("wal");
    let mut model = Model::new();
    wal.append_batch(&model.batch(&mut rng, 3)).expect("append"); // creates the segment
    let (writes, syncs) = (store.writes(), store.syncs());
    wal.append_batch(&model.batch(&mut rng, 5)).expect("append");
    assert_eq!((store.writes() - writes, store.syncs() - syncs), (1, 1));
}

#[test]
fn force_sync_off_skips_the_sync() {
    let mut rng = StdRng::seed_from_u64(2);
    let store = SimStore::new();
    let tail = recover(
        Path::new("/nonexistent-ferrokeeper"),
        &mut store.clone(),
        [1; 16],
    )
    .expect("recover")
    .tail;
    let opts = WalOptions {
        force_sync: false,
        ..wal_options([1; 16])
    };
    let mut wal = Wal::resume(store.clone(), opts, &tail).expect("wal");
    let mut model = Model::new();
    wal.append_batch(&model.batch(&mut rng, 3)).expect("append");
    let syncs = store.syncs();
    wal.append_batch(&model.batch(&mut rng, 3)).expect("append");
    assert_eq!(store.syncs(), syncs);
    wal.close().expect("close syncs");
    assert_eq!(store.syncs(), syncs + 1);
}

#[test]
fn out_of_order_zxids_are_refused() {
    let store = SimStore::new();
    let tail = recover(
        Path::new("/nonexistent-ferrokeeper"),
        &mut store.clone(),
        [1; 16],
    )
    .expect("recover")
    .tail;
    let mut wal = Wal::resume(store, wal_options([1; 16]), &tail).expect("wal");
    let hdr = TxnHeader {
        session_id: 1,
        cxid: 1,
        zxid: 2,
        time_ms: 1,
    };
    assert!(wal.append_batch(&[(hdr, TxnOp::CloseSession)]).is_err());
}

// ----- recovery -----

#[test]
fn an_empty_data_dir_recovers_a_fresh_tree() {
    let dir = TempDir::new("empty");
    let opened = open(&StorageOptions::for_dir(dir.path())).expect("open");
    assert_eq!(
        tree_state(&opened.recovered.tree),
        tree_state(&DataTree::new())
    );
    assert_eq!(opened.recovered.last_zxid, 0);
    assert!(opened.recovered.sessions.is_empty());
    assert_eq!(opened.recovered.tail.segment, None);
    assert!(dir.path().join("ferrokeeper.dbid").exists());
}

#[test]
fn state_and_sessions_survive_a_restart() {
    let dir = TempDir::new("restart");
    let mut rng = StdRng::seed_from_u64(3);
    let mut model = Model::new();
    let opened = fill(dir.path(), &mut rng, &mut model, 40);
    let secret = opened.secret;
    opened.wal.close().expect("close");
    let reopened = open(&small_options(dir.path())).expect("reopen");
    assert_eq!(
        tree_state(&reopened.recovered.tree),
        tree_state(&model.tree)
    );
    assert_eq!(reopened.recovered.sessions, model.sessions);
    assert_eq!(reopened.secret, secret);
    assert!(segments_in(dir.path()).len() > 1, "small segments rolled");
}

#[test]
fn a_torn_tail_is_truncated_and_logged() {
    let dir = TempDir::new("torn");
    let mut rng = StdRng::seed_from_u64(4);
    let mut model = Model::new();
    let opened = fill(dir.path(), &mut rng, &mut model, 5);
    let segment = opened.wal.active_segment().expect("segment").to_string();
    drop(opened);
    let path = dir.path().join(&segment);
    let valid_len = committed_len(&path);
    // Half of a further batch reaches the disk.
    let mut extra = Vec::new();
    format::encode_batch(&mut extra, &model.clone_batch(&mut rng));
    let half = &extra[..extra.len() / 2];
    let mut bytes = fs::read(&path).expect("read");
    bytes.resize(bytes.len().max(valid_len + half.len()), 0);
    bytes[valid_len..valid_len + half.len()].copy_from_slice(half);
    fs::write(&path, &bytes).expect("write");

    let (reopened, logs) = capture_logs(|| open(&small_options(dir.path())).expect("recovers"));
    assert_eq!(
        tree_state(&reopened.recovered.tree),
        tree_state(&model.tree)
    );
    assert!(logs.contains("torn tail"), "{logs}");
    assert!(logs.contains(&segment), "{logs}");
    assert_eq!(fs::metadata(&path).expect("stat").len() as usize, valid_len);
}

impl Model {
    /// A batch made on a copy: the model itself does not advance.
    fn clone_batch(&self, rng: &mut StdRng) -> Vec<(TxnHeader, TxnOp)> {
        let mut copy = Model {
            tree: self.tree.clone(),
            sessions: self.sessions.clone(),
            next_zxid: self.next_zxid,
            next_session: self.next_session,
            time_ms: self.time_ms,
            acl: self.acl.clone(),
        };
        copy.batch(rng, 4)
    }
}

/// Bytes of a segment up to its zero-filled (preallocated) end.
fn committed_len(path: &Path) -> usize {
    let bytes = fs::read(path).expect("read");
    let mut offset = SEGMENT_HEADER_BYTES;
    while let format::RecordAt::Valid { next_offset, .. } = format::record_at(&bytes, offset) {
        offset = next_offset;
    }
    offset
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_an_older_one() {
    let dir = TempDir::new("badsnap");
    let mut rng = StdRng::seed_from_u64(5);
    let mut model = Model::new();
    let mut opened = fill(dir.path(), &mut rng, &mut model, 10);
    write_snapshot(dir.path(), opened.db_id, &model.tree, &model.sessions).expect("snapshot 1");
    opened.wal.roll();
    for _ in 0..10 {
        let batch = model.batch(&mut rng, 3);
        opened.wal.append_batch(&batch).expect("append");
    }
    let newest =
        write_snapshot(dir.path(), opened.db_id, &model.tree, &model.sessions).expect("snapshot 2");
    opened.wal.close().expect("close");
    let mut bytes = fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&newest, bytes).expect("write");

    let (reopened, logs) = capture_logs(|| open(&small_options(dir.path())).expect("recovers"));
    assert_eq!(
        tree_state(&reopened.recovered.tree),
        tree_state(&model.tree)
    );
    assert_eq!(reopened.recovered.sessions, model.sessions);
    assert!(
        reopened
            .recovered
            .snapshot_zxid
            .expect("older snapshot used")
            < model.tree.last_zxid()
    );
    let newest_name = newest
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        logs.contains(&newest_name) && logs.contains("checksum"),
        "{logs}"
    );
}

#[test]
fn a_missing_log_segment_is_an_error_naming_the_file() {
    let dir = TempDir::new("gap");
    let mut rng = StdRng::seed_from_u64(6);
    let mut model = Model::new();
    fill(dir.path(), &mut rng, &mut model, 60)
        .wal
        .close()
        .expect("close");
    let segments = segments_in(dir.path());
    assert!(segments.len() >= 3, "{segments:?}");
    fs::remove_file(dir.path().join(&segments[1])).expect("remove");
    let err = open(&small_options(dir.path())).err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, StorageError::LogGap { .. }), "{text}");
    assert!(text.contains(&segments[2]), "{text}");
}

#[test]
fn corruption_inside_the_log_is_an_error_with_file_and_offset() {
    let dir = TempDir::new("midlog");
    let mut rng = StdRng::seed_from_u64(7);
    let mut model = Model::new();
    fill(dir.path(), &mut rng, &mut model, 5)
        .wal
        .close()
        .expect("close");
    let segment = &segments_in(dir.path())[0];
    let path = dir.path().join(segment);
    let mut bytes = fs::read(&path).expect("read");
    bytes[SEGMENT_HEADER_BYTES + 20] ^= 0x01; // inside the first record's payload
    fs::write(&path, bytes).expect("write");
    match open(&small_options(dir.path())) {
        Err(StorageError::CorruptLog { file, offset, .. }) => {
            assert!(file.ends_with(segment.as_str()), "{file}");
            assert_eq!(offset, SEGMENT_HEADER_BYTES as u64);
        }
        other => panic!("expected a corrupt-log error, got {:?}", other.err()),
    }
}

#[test]
fn files_of_another_database_are_refused() {
    let dir = TempDir::new("dbid");
    let mut rng = StdRng::seed_from_u64(8);
    let mut model = Model::new();
    fill(dir.path(), &mut rng, &mut model, 3)
        .wal
        .close()
        .expect("close");
    fs::write(dir.path().join("ferrokeeper.dbid"), [9u8; 16]).expect("write");
    assert!(matches!(
        open(&small_options(dir.path())),
        Err(StorageError::CorruptLog { .. })
    ));
    fs::remove_file(dir.path().join("ferrokeeper.dbid")).expect("remove");
    assert!(matches!(
        open(&small_options(dir.path())),
        Err(StorageError::Invalid(_))
    ));
}

#[test]
fn leftover_temp_files_are_removed() {
    let dir = TempDir::new("tmp");
    fs::create_dir_all(dir.path()).expect("dir");
    let tmp = dir.path().join("snapshot.0000000000000005.tmp");
    fs::write(&tmp, b"half").expect("write");
    open(&StorageOptions::for_dir(dir.path())).expect("open");
    assert!(!tmp.exists());
}

// ----- snapshots -----

#[test]
fn a_snapshot_round_trips_and_can_be_written_from_another_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<DataTree>();
    assert_send::<OpenSessions>();
    let dir = TempDir::new("snap");
    let mut rng = StdRng::seed_from_u64(9);
    let mut model = Model::new();
    model.batch(&mut rng, 200);
    let (tree, sessions, path) = (
        model.tree.clone(),
        model.sessions.clone(),
        dir.path().to_path_buf(),
    );
    let written = std::thread::spawn(move || write_snapshot(&path, [3; 16], &tree, &sessions))
        .join()
        .expect("thread")
        .expect("written");
    let zxid = model.tree.last_zxid();
    let loaded = snapshot::read_snapshot(&written, [3; 16], zxid).expect("verifies");
    assert_eq!(tree_state(&loaded.tree), tree_state(&model.tree));
    assert_eq!(loaded.sessions, model.sessions);
    assert!(
        snapshot::read_snapshot(&written, [4; 16], zxid).is_err(),
        "other database"
    );
}

#[test]
fn a_loaded_snapshot_recounts_quota_stats_and_rebuilds_the_quota_index() {
    let mut tree = DataTree::new();
    let mut zxid = 0;
    let mut apply = |tree: &mut DataTree, op: TxnOp| {
        zxid += 1;
        let hdr = TxnHeader {
            session_id: 1,
            cxid: 1,
            zxid,
            time_ms: 1,
        };
        assert!(!tree.apply(&hdr, &op, &mut Vec::new()).is_error(), "{op:?}");
    };
    let create = |path: &str, data: &'static [u8]| TxnOp::Create {
        path: path.to_string(),
        data: Some(Bytes::from_static(data)),
        acl: Acl::open_unsafe(),
        ephemeral_owner: 0,
        parent_cversion: -1,
        kind: CreateKind::Create,
    };
    apply(&mut tree, create("/q", b"q"));
    apply(&mut tree, create("/zookeeper/quota/q", b""));
    apply(
        &mut tree,
        create("/zookeeper/quota/q/zookeeper_limits", b"count=5,bytes=-1"),
    );
    apply(
        &mut tree,
        create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0"),
    );
    // Stats a client wrote by hand are not what a load trusts.
    let stats_path = "/zookeeper/quota/q/zookeeper_stats";
    apply(
        &mut tree,
        TxnOp::SetData {
            path: stats_path.to_string(),
            data: Some(Bytes::from_static(b"count=99,bytes=99")),
            version: 1,
        },
    );
    let dir = TempDir::new("snap-quota");
    let written =
        write_snapshot(dir.path(), [3; 16], &tree, &OpenSessions::new()).expect("written");
    let loaded = snapshot::read_snapshot(&written, [3; 16], tree.last_zxid()).expect("loads");
    let stats = loaded.tree.get(stats_path).expect("stats node");
    assert_eq!(stats.data.as_deref(), Some(&b"count=1,bytes=1"[..]));
    assert_eq!(stats.stat.version, 1, "recounted in place");
    assert_eq!(loaded.tree.quota_prefix("/q/a").as_deref(), Some("/q"));
    loaded.tree.assert_invariants();
}

#[test]
fn a_snapshot_keeps_each_nodes_acl_when_lists_alternate() {
    // Decoding reuses the previous node's ACL while its encoding repeats;
    // runs, alternations and prefixes of another list must all come back.
    let digest = |id: &str| Acl {
        perms: 31,
        id: Id::new("digest", id),
    };
    let lists = [
        Acl::open_unsafe(),
        Acl::read_unsafe(),
        vec![digest("a:x")],
        vec![digest("a:x"), digest("b:y")],
    ];
    let mut tree = DataTree::new();
    for i in 0..40 {
        let acl = &lists[(i / 3 + i % 2) % lists.len()];
        let stat = crate::proto::Stat {
            czxid: i as i64 + 1,
            mzxid: i as i64 + 1,
            ..Default::default()
        };
        tree.restore_node(&format!("/n{i}"), Some(&[i as u8]), acl, stat)
            .expect("restore");
    }
    tree.set_last_zxid(40);
    let dir = TempDir::new("snap-acls");
    let written = write_snapshot(dir.path(), [5; 16], &tree, &OpenSessions::new()).expect("write");
    let loaded = snapshot::read_snapshot(&written, [5; 16], 40).expect("verifies");
    assert_eq!(tree_state(&loaded.tree), tree_state(&tree));
}

#[test]
fn snap_policy_triggers_between_half_and_full_snap_count() {
    let mut rng = StdRng::seed_from_u64(10);
    for _ in 0..100 {
        let mut policy = SnapPolicy::new(1000, &mut rng);
        assert!((500..=1000).contains(&policy.threshold_txns()));
        let mut txns = 0;
        while !policy.record_txns(1, &mut rng) {
            txns += 1;
        }
        assert!((499..1000).contains(&txns), "{txns}");
    }
}

// ----- secret -----

#[test]
fn the_secret_is_created_once_and_kept() {
    let dir = TempDir::new("secret");
    let first = load_or_create_secret(dir.path()).expect("create");
    assert_eq!(load_or_create_secret(dir.path()).expect("load"), first);
    fs::write(dir.path().join("ferrokeeper.secret"), b"short").expect("write");
    assert!(load_or_create_secret(dir.path()).is_err());
}

// ----- retention -----

/// Five snapshots, each followed by a roll and more batches.
fn with_snapshots(dir: &Path, rng: &mut StdRng, model: &mut Model) -> Vec<PathBuf> {
    let mut opened = fill(dir, rng, model, 5);
    let mut snapshots = Vec::new();
    for _ in 0..5 {
        snapshots.push(
            write_snapshot(dir, opened.db_id, &model.tree, &model.sessions).expect("snapshot"),
        );
        opened.wal.roll();
        for _ in 0..4 {
            let batch = model.batch(rng, 3);
            opened.wal.append_batch(&batch).expect("append");
        }
    }
    opened.wal.close().expect("close");
    snapshots
}

#[test]
fn purge_keeps_at_least_three_snapshots_and_the_logs_they_need() {
    let dir = TempDir::new("purge");
    let mut rng = StdRng::seed_from_u64(11);
    let mut model = Model::new();
    let snapshots = with_snapshots(dir.path(), &mut rng, &mut model);
    let report = purge(dir.path(), dir.path(), 1).expect("purge");
    assert_eq!(report.removed_snapshots, snapshots[..2].to_vec());
    assert!(!report.removed_logs.is_empty());
    for path in snapshots[2..].iter() {
        assert!(path.exists());
    }
    // Every kept snapshot can still be recovered from: corrupt the two newest.
    for path in &snapshots[3..] {
        fs::write(path, b"garbage").expect("write");
    }
    let reopened =
        open(&small_options(dir.path())).expect("recovers from the oldest kept snapshot");
    assert_eq!(
        tree_state(&reopened.recovered.tree),
        tree_state(&model.tree)
    );
    assert_eq!(reopened.recovered.sessions, model.sessions);
}

#[test]
fn purge_with_few_snapshots_removes_nothing() {
    let dir = TempDir::new("purgefew");
    let mut rng = StdRng::seed_from_u64(12);
    let mut model = Model::new();
    let opened = fill(dir.path(), &mut rng, &mut model, 20);
    write_snapshot(dir.path(), opened.db_id, &model.tree, &model.sessions).expect("snapshot");
    opened.wal.close().expect("close");
    let logs = segments_in(dir.path());
    assert_eq!(
        purge(dir.path(), dir.path(), 5).expect("purge"),
        PurgeReport::default()
    );
    assert_eq!(segments_in(dir.path()), logs);
}
