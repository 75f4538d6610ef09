//! Heap used by the data tree per znode, counted by a tracking allocator:
//! `cargo run --release --example tree_memory [ZNODES]` (default 1,000,000).
//!
//! Builds the tree the loadgen's setup builds (ZNODES children of 100 bytes
//! under `/ferrokeeper-loadgen`) through prep + apply, as the pipeline does,
//! and prints the live bytes and allocations per znode with a histogram of
//! the live allocations by size. Sizes are the requested ones; the
//! allocator rounds each up to its size class on top of this.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use ferrokeeper::proto::Acl;
use ferrokeeper::tree::{
    AuthInfo, CreateKind, CreateReq, DataTree, PrepOptions, TxnHeader, WriteReq,
};

const SIZE_CLASS_BYTES: usize = 16;
const SIZE_CLASSES: usize = 512;

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BY_CLASS: [AtomicUsize; SIZE_CLASSES] = [const { AtomicUsize::new(0) }; SIZE_CLASSES];

fn class(size: usize) -> &'static AtomicUsize {
    &LIVE_BY_CLASS[(size / SIZE_CLASS_BYTES).min(SIZE_CLASSES - 1)]
}

fn track(size: usize, allocated: bool) {
    if allocated {
        LIVE_BYTES.fetch_add(size, Relaxed);
        LIVE_ALLOCS.fetch_add(1, Relaxed);
        class(size).fetch_add(1, Relaxed);
    } else {
        LIVE_BYTES.fetch_sub(size, Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Relaxed);
        class(size).fetch_sub(1, Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size(), true);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(layout.size(), false);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(layout.size(), false);
        track(new_size, true);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let znodes: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ZNODES must be a number"))
        .unwrap_or(1_000_000);
    let acl = Acl::open_unsafe();
    let (auth, opts) = (AuthInfo::superuser(), PrepOptions::default());
    let mut tree = DataTree::new();
    // Room for a create's events, reserved up front so the count below is the tree's alone.
    let mut events = Vec::with_capacity(4);
    let mut zxid = 0;
    let mut create = |tree: &mut DataTree, path: &str| {
        zxid += 1;
        let header = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: 1_700_000_000_000,
        };
        let req = WriteReq::Create(CreateReq {
            path,
            data: Some(Bytes::copy_from_slice(&[b'x'; 100])),
            acl: &acl,
            flags: 0,
            ttl_ms: None,
            kind: CreateKind::Create,
        });
        let op = tree.prep(&header, req, &auth, &opts).expect("prep");
        events.clear();
        tree.apply(&header, &op, &mut events);
    };
    create(&mut tree, "/ferrokeeper-loadgen");
    let (bytes_before, allocs_before) = (LIVE_BYTES.load(Relaxed), LIVE_ALLOCS.load(Relaxed));
    let classes_before: Vec<usize> = LIVE_BY_CLASS.iter().map(|c| c.load(Relaxed)).collect();
    for i in 0..znodes {
        create(&mut tree, &format!("/ferrokeeper-loadgen/k{i}"));
    }
    let bytes = LIVE_BYTES.load(Relaxed) - bytes_before;
    let allocs = LIVE_ALLOCS.load(Relaxed) - allocs_before;
    println!(
        "{znodes} znodes: {:.1} MB live, {:.0} bytes and {:.2} allocations per znode",
        bytes as f64 / 1e6,
        bytes as f64 / znodes as f64,
        allocs as f64 / znodes as f64
    );
    println!("live allocations added, by requested size (classes with > 0.1% of znodes):");
    for (i, before) in classes_before.iter().enumerate() {
        let added = LIVE_BY_CLASS[i].load(Relaxed).saturating_sub(*before);
        if added * 1000 > znodes {
            let low = i * SIZE_CLASS_BYTES;
            println!(
                "  {low:>5}..{:<5} bytes: {added:>9} ({:.1} MB)",
                low + SIZE_CLASS_BYTES,
                (added * (low + SIZE_CLASS_BYTES / 2)) as f64 / 1e6
            );
        }
    }
    drop(tree);
}
