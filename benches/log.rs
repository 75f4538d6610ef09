//! Write-ahead log micro-benchmarks: encoding a batch of setData txns
//! (`storage::format::encode_batch`, pure CPU) and appending it to a real log
//! on disk (`Wal::append_batch`: one write plus one fdatasync per batch, the
//! group-commit cost the pipeline pays before it acknowledges a batch).
//! Batches of 1, 16 and 256 txns of 100-byte values; the reported time is per
//! batch, the throughput line per txn. `append_nosync` is the same append with
//! `forceSync=no` (write only), so the difference is the fdatasync.
//!
//! Run: `cargo bench --bench log` (add `-- --quick` for a fast pass). The log
//! goes to a fresh directory under the system temp dir, removed afterwards;
//! set `FERROKEEPER_BENCH_DIR=/path/on/the/log/device` to measure the device
//! you intend to use as `dataLogDir` (see tuning/README.md).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrokeeper::storage::format::encode_batch;
use ferrokeeper::storage::{self, StorageOptions};
use ferrokeeper::tree::{TxnHeader, TxnOp};

const BATCH_SIZES: [usize; 3] = [1, 16, 256];
const VALUE_BYTES: usize = 100;
const SESSION: i64 = 0x0100_0000_0000_0001;

/// A batch of setData txns on distinct paths, zxids starting at `first_zxid`.
fn set_data_batch(n: usize, first_zxid: i64) -> Vec<(TxnHeader, TxnOp)> {
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    (0..n)
        .map(|i| {
            let hdr = TxnHeader {
                session_id: SESSION,
                cxid: i as i32,
                zxid: first_zxid + i as i64,
                time_ms: 1_700_000_000_000 + i as i64,
            };
            let op = TxnOp::SetData {
                path: format!("/ferrokeeper-loadgen/k{i:05}"),
                data: Some(value.clone()),
                version: 1,
            };
            (hdr, op)
        })
        .collect()
}

/// Gives the batch the next `batch.len()` zxids after `last` (the log refuses gaps).
fn renumber(batch: &mut [(TxnHeader, TxnOp)], last: i64) -> i64 {
    for (i, (hdr, _)) in batch.iter_mut().enumerate() {
        hdr.zxid = last + 1 + i as i64;
    }
    last + batch.len() as i64
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_encode");
    for n in BATCH_SIZES {
        let batch = set_data_batch(n, 1);
        let mut out = Vec::with_capacity(n * 256);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &batch, |b, batch| {
            b.iter(|| {
                out.clear();
                encode_batch(&mut out, black_box(batch));
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// A scratch directory for one log, removed (with its segments) on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> ScratchDir {
        let base = std::env::var_os("FERROKEEPER_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "ferrokeeper-bench-log-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        ScratchDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench_append(c: &mut Criterion, group: &str, force_sync: bool) {
    let mut g = c.benchmark_group(group);
    for n in BATCH_SIZES {
        let scratch = ScratchDir::new(&format!("{group}-{n}"));
        let opts = StorageOptions {
            force_sync,
            ..StorageOptions::for_dir(scratch.path())
        };
        let mut wal = storage::open(&opts).expect("open a fresh log").wal;
        let mut last = wal.last_zxid();
        let mut batch = set_data_batch(n, last + 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                last = renumber(&mut batch, last);
                wal.append_batch(black_box(&batch)).expect("append");
            })
        });
        wal.close().expect("close the log");
        drop(scratch);
    }
    g.finish();
}

fn bench_append_sync(c: &mut Criterion) {
    bench_append(c, "wal_append_fdatasync", true);
}

fn bench_append_nosync(c: &mut Criterion) {
    bench_append(c, "wal_append_nosync", false);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_encode, bench_append_sync, bench_append_nosync
}
criterion_main!(benches);
