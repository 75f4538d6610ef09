//! Recovery time of a 1M-znode database: the newest snapshot (900k znodes of
//! 100 bytes) plus a log tail of 100k creates, as `storage::open` does at
//! server start. The target is to serve again within 1 s of start.
//!
//! `cargo bench --bench recovery` (setup writes ~250 MB under the temp dir and
//! takes a while; it is removed at the end).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ferrokeeper::proto::Acl;
use ferrokeeper::storage::{open, write_snapshot, OpenSessions, StorageOptions};
use ferrokeeper::tree::{
    AuthInfo, CreateKind, CreateReq, DataTree, PrepOptions, TxnHeader, TxnOp, WriteReq,
};

/// The server's allocator: recovery time depends on it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ZNODES: usize = 1_000_000;
const TAIL_TXNS: usize = 100_000;
const PARENTS: usize = 1_000;
const BATCH_TXNS: usize = 1_000;

/// Writes the database through the real log and snapshot code.
fn build(dir: &Path) {
    let started = Instant::now();
    let opts = StorageOptions::for_dir(dir);
    let mut opened = open(&opts).expect("open empty dir");
    let mut tree = DataTree::new();
    let acl = Acl::open_unsafe();
    let auth = AuthInfo::superuser();
    let prep = PrepOptions::default();
    let mut batch: Vec<(TxnHeader, TxnOp)> = Vec::with_capacity(BATCH_TXNS);
    let data = Bytes::from_static(&[b'x'; 100]);
    let paths = (0..PARENTS)
        .map(|p| format!("/p{p}"))
        .chain((0..ZNODES - PARENTS).map(|i| format!("/p{}/n{i}", i % PARENTS)));
    for (i, path) in paths.enumerate() {
        let header = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid: i as i64 + 1,
            time_ms: 1_700_000_000_000,
        };
        let req = WriteReq::Create(CreateReq {
            path: &path,
            data: Some(data.clone()),
            acl: &acl,
            flags: 0,
            ttl_ms: None,
            kind: CreateKind::Create,
        });
        let op = tree.prep(&header, req, &auth, &prep).expect("prep");
        tree.apply(&header, &op, &mut Vec::new());
        batch.push((header, op));
        if batch.len() == BATCH_TXNS {
            opened.wal.append_batch(&batch).expect("append");
            batch.clear();
        }
        if i + 1 == ZNODES - TAIL_TXNS {
            write_snapshot(dir, opened.db_id, &tree, &OpenSessions::new()).expect("snapshot");
        }
    }
    opened.wal.append_batch(&batch).expect("append");
    opened.wal.close().expect("close");
    eprintln!("built {ZNODES} znodes in {:?}", started.elapsed());
}

fn recovery(c: &mut Criterion) {
    // Recovery logs how long the snapshot and the log replay each took.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let dir =
        std::env::temp_dir().join(format!("ferrokeeper-recovery-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    build(&dir);
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("1M znodes: snapshot 900k + log tail 100k", |b| {
        // The server keeps what it recovered: freeing it is not part of start-up.
        b.iter_with_large_drop(|| {
            let opened = open(&StorageOptions::for_dir(&dir)).expect("recover");
            assert_eq!(opened.recovered.tree.node_count(), ZNODES + 4);
            opened
        })
    });
    group.finish();
    std::fs::remove_dir_all(&dir).unwrap();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
