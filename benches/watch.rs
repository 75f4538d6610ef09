//! Watch registry micro-benchmarks: registering watches and the fan-out of
//! one change to 1, 100 and 10k watchers (one-shot data watches, which the
//! trigger removes, and persistent watches, which stay).
//! Run: `cargo bench --bench watch`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ferrokeeper::proto::EventType;
use ferrokeeper::watch::{WatchKind, WatchRegistry};

const NODE: &str = "/app/config/node";

fn bench_register(c: &mut Criterion) {
    let paths: Vec<String> = (0..1000).map(|i| format!("/app/n{i}")).collect();
    let mut g = c.benchmark_group("watch_register");
    g.throughput(Throughput::Elements(paths.len() as u64));
    g.bench_function("1000_paths_fresh_registry", |b| {
        b.iter_batched_ref(
            WatchRegistry::new,
            |reg| {
                for (i, p) in paths.iter().enumerate() {
                    reg.add(WatchKind::Data, p, i as u64);
                }
                black_box(reg.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("1000_watchers_one_path", |b| {
        b.iter_batched_ref(
            WatchRegistry::new,
            |reg| {
                for i in 0..1000u64 {
                    reg.add(WatchKind::Data, NODE, i);
                }
                black_box(reg.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn registry_with(n: u64, kind: WatchKind) -> WatchRegistry {
    let mut reg = WatchRegistry::new();
    for w in 0..n {
        reg.add(kind, NODE, w);
    }
    // Unrelated watches, so the maps are not trivially small.
    for w in 0..1000u64 {
        reg.add(WatchKind::Data, &format!("/other/n{w}"), n + w);
    }
    reg
}

fn bench_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("watch_fanout");
    for n in [1u64, 100, 10_000] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("one_shot", n), &n, |b, &n| {
            b.iter_batched_ref(
                || registry_with(n, WatchKind::Data),
                |reg| {
                    let fired = reg.trigger(EventType::NodeDataChanged, NODE);
                    black_box(fired.len())
                },
                if n >= 10_000 {
                    BatchSize::LargeInput
                } else {
                    BatchSize::SmallInput
                },
            )
        });
        let mut reg = registry_with(n, WatchKind::Persistent);
        g.bench_with_input(BenchmarkId::new("persistent", n), &n, |b, _| {
            b.iter(|| {
                let fired = reg.trigger(EventType::NodeDataChanged, black_box(NODE));
                black_box(fired.len())
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
    targets = bench_register, bench_fanout
}
criterion_main!(benches);
