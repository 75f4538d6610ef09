//! Data tree micro-benchmarks at 1k and 1M znodes: get; prep+apply of
//! setData and create; and the cost of publishing a version after a write
//! (clone the working tree, drop the previous version).
//! Run: `cargo bench --bench tree` (building the 1M-znode tree takes a few
//! seconds and is done once).

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrokeeper::proto::Acl;
use ferrokeeper::tree::{
    AuthInfo, CreateKind, CreateReq, DataTree, PrepOptions, TxnHeader, WriteReq,
};

const SESSION: i64 = 0x0100_0000_0000_0001;
const SIZES: [usize; 2] = [1_000, 1_000_000];

fn open_acl() -> &'static [Acl] {
    static ACL: OnceLock<Vec<Acl>> = OnceLock::new();
    ACL.get_or_init(Acl::open_unsafe)
}

/// A working tree driven like the pipeline: prep, then apply at the next zxid.
struct Writer {
    tree: DataTree,
    zxid: i64,
    auth: AuthInfo,
    opts: PrepOptions,
    events: Vec<ferrokeeper::tree::TreeEvent>,
}

impl Writer {
    fn new(tree: DataTree) -> Writer {
        let zxid = tree.last_zxid() + 1;
        Writer {
            tree,
            zxid,
            auth: AuthInfo::superuser(),
            opts: PrepOptions::default(),
            events: Vec::new(),
        }
    }

    fn write(&mut self, req: WriteReq<'_>) {
        let hdr = TxnHeader {
            session_id: SESSION,
            cxid: 1,
            zxid: self.zxid,
            time_ms: 1_700_000_000_000,
        };
        self.zxid += 1;
        let txn = self
            .tree
            .prep(&hdr, req, &self.auth, &self.opts)
            .expect("prep");
        self.events.clear();
        let res = self.tree.apply(&hdr, &txn, &mut self.events);
        debug_assert!(!res.is_error());
        black_box(res);
    }
}

fn create(path: &str) -> WriteReq<'_> {
    WriteReq::Create(CreateReq {
        path,
        data: Some(Bytes::from_static(&[b'x'; 100])),
        acl: open_acl(),
        flags: 0,
        ttl_ms: None,
        kind: CreateKind::Create,
    })
}

/// n znodes as sqrt(n) parents with n/sqrt(n) children each (100-byte data).
struct Built {
    tree: DataTree,
    parents: Vec<String>,
    leaves: Vec<String>,
}

fn build(n: usize) -> Built {
    let started = Instant::now();
    let parents_n = (n as f64).sqrt().round().max(1.0) as usize;
    let per = n / parents_n;
    let mut w = Writer::new(DataTree::new());
    let mut parents = Vec::with_capacity(parents_n);
    let mut leaves = Vec::with_capacity(parents_n * per);
    for p in 0..parents_n {
        let parent = format!("/bench/p{p}");
        if p == 0 {
            w.write(create("/bench"));
        }
        w.write(create(&parent));
        for c in 0..per {
            let leaf = format!("{parent}/n{c}");
            w.write(create(&leaf));
            leaves.push(leaf);
        }
        parents.push(parent);
    }
    eprintln!(
        "built a tree of {} znodes in {:.1} s",
        w.tree.node_count(),
        started.elapsed().as_secs_f64()
    );
    Built {
        tree: w.tree,
        parents,
        leaves,
    }
}

fn tree_of(n: usize) -> &'static Built {
    static SMALL: OnceLock<Built> = OnceLock::new();
    static LARGE: OnceLock<Built> = OnceLock::new();
    match n {
        1_000 => SMALL.get_or_init(|| build(n)),
        _ => LARGE.get_or_init(|| build(n)),
    }
}

/// A cheap deterministic index sequence over 0..len.
struct Cycle(u64);
impl Cycle {
    fn next(&mut self, len: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % len
    }
}

fn bench_get(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_get");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let built = tree_of(n);
        let mut i = Cycle(1);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let path = &built.leaves[i.next(built.leaves.len())];
                black_box(
                    built
                        .tree
                        .get(black_box(path))
                        .map(|node| node.stat.version),
                )
            })
        });
    }
    g.finish();
}

fn bench_set_data(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_prep_apply_setData");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let built = tree_of(n);
        let mut w = Writer::new(built.tree.clone());
        let mut i = Cycle(2);
        let data = Bytes::from_static(&[b'y'; 100]);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let path = &built.leaves[i.next(built.leaves.len())];
                w.write(WriteReq::SetData {
                    path,
                    data: Some(data.clone()),
                    version: -1,
                })
            })
        });
    }
    g.finish();
}

fn bench_create(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_prep_apply_create");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let built = tree_of(n);
        let mut w = Writer::new(built.tree.clone());
        let mut i = Cycle(3);
        let mut k = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                k += 1;
                let path = format!("{}/new{k}", built.parents[i.next(built.parents.len())]);
                w.write(create(&path))
            })
        });
    }
    g.finish();
}

/// A write followed by publishing a version, as the pipeline does: clone
/// the working tree for the shards and drop the version published before
/// (the next write then copies the path it touches on write).
fn bench_publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_publish");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let built = tree_of(n);
        let data = Bytes::from_static(&[b'z'; 100]);
        let mut w = Writer::new(built.tree.clone());
        let mut i = Cycle(4);
        let mut published = w.tree.clone();
        g.bench_with_input(BenchmarkId::new("setData+publish", n), &n, |b, _| {
            b.iter(|| {
                let path = &built.leaves[i.next(built.leaves.len())];
                w.write(WriteReq::SetData {
                    path,
                    data: Some(data.clone()),
                    version: -1,
                });
                let version = w.tree.clone();
                drop(std::mem::replace(&mut published, version));
            })
        });
        drop(published);
        let mut published = w.tree.clone();
        g.bench_with_input(BenchmarkId::new("clone+drop_only", n), &n, |b, _| {
            b.iter(|| {
                let version = w.tree.clone();
                drop(std::mem::replace(&mut published, black_box(version)));
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_get, bench_set_data, bench_create, bench_publish
}
criterion_main!(benches);
