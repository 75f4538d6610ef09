//! Jute codec micro-benchmarks: encoding and decoding the frames of the
//! hottest requests (getData, setData, create), their replies, and watch
//! events. Run: `cargo bench --bench codec` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrokeeper::proto::{
    decode_frame, decode_response, decode_watch_event, encode_reply, encode_request_frame,
    encode_watch_event, op, Acl, CreateRequest, EventType, ReplyHeader, Request, Response, Stat,
};

const PATH: &str = "/ferrokeeper-loadgen/k12345";

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0001,
        mzxid: 0x1_0000_2000,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_100_000,
        version: 17,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 100,
        num_children: 0,
        pzxid: 0x1_0000_0001,
    }
}

fn requests<'a>(value: &'a [u8], acl: &[Acl]) -> Vec<(&'static str, Request<'a>)> {
    vec![
        (
            "getData",
            Request::GetData {
                path: PATH,
                watch: false,
            },
        ),
        (
            "setData",
            Request::SetData {
                path: PATH,
                data: Some(value),
                version: -1,
            },
        ),
        (
            "create",
            Request::Create {
                op: op::CREATE,
                req: CreateRequest {
                    path: PATH,
                    data: Some(value),
                    acl: acl.to_vec(),
                    flags: 0,
                    ttl_ms: None,
                },
            },
        ),
    ]
}

fn bench_requests(c: &mut Criterion) {
    let value = vec![b'v'; 100];
    let acl = Acl::open_unsafe();
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    for (name, req) in requests(&value, &acl) {
        let mut out = Vec::with_capacity(1024);
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode_request_frame(&mut out, black_box(7), black_box(&req));
                black_box(out.len())
            })
        });
        let mut frame = Vec::new();
        encode_request_frame(&mut frame, 7, &req);
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let (hdr, req) = decode_frame(black_box(&frame[4..])).unwrap();
                black_box((hdr.xid, req.path()))
            })
        });
    }
    g.finish();
}

fn bench_replies(c: &mut Criterion) {
    let value = vec![b'v'; 100];
    let st = stat();
    let replies: Vec<(&str, i32, Response<'_>)> = vec![
        ("getData", op::GET_DATA, Response::Data(Some(&value), st)),
        ("setData", op::SET_DATA, Response::Stat(st)),
        ("create", op::CREATE, Response::Path(PATH)),
    ];
    let hdr = ReplyHeader {
        xid: 7,
        zxid: 0x1_0000_2000,
        err: 0,
    };
    let mut g = c.benchmark_group("reply");
    g.throughput(Throughput::Elements(1));
    for (name, op_code, resp) in &replies {
        let mut out = Vec::with_capacity(1024);
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode_reply(&mut out, black_box(&hdr), black_box(resp));
                black_box(out.len())
            })
        });
        let mut frame = Vec::new();
        encode_reply(&mut frame, &hdr, resp);
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let (h, body) = ReplyHeader::split(black_box(&frame[4..])).unwrap();
                let r = decode_response(*op_code, body).unwrap();
                black_box((h.xid, matches!(r, Response::Empty)))
            })
        });
    }
    g.finish();
}

fn bench_watch_events(c: &mut Criterion) {
    let mut g = c.benchmark_group("watch_event");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(256);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encode_watch_event(
                &mut out,
                black_box(0x1_0000_2000),
                EventType::NodeDataChanged,
                3,
                black_box(PATH),
            );
            black_box(out.len())
        })
    });
    let mut frame = Vec::new();
    encode_watch_event(
        &mut frame,
        0x1_0000_2000,
        EventType::NodeDataChanged,
        3,
        PATH,
    );
    g.bench_function("decode", |b| {
        b.iter(|| {
            let (h, body) = ReplyHeader::split(black_box(&frame[4..])).unwrap();
            let ev = decode_watch_event(body).unwrap();
            black_box((h.xid, ev.path.len()))
        })
    });
    g.finish();
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
    targets = bench_requests, bench_replies, bench_watch_events
}
criterion_main!(benches);
