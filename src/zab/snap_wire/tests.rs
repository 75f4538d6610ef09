use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::encode::SnapEncoder;
use super::load::{LoadedSnap, SnapLoad};
use super::*;
use crate::proto::jute::{put_acl_vec, put_buffer, put_str};
use crate::proto::{perms, CONTAINER_EPHEMERAL_OWNER};
use crate::tree::node::ttl_owner;
use crate::tree::{CreateKind, DataTree, TxnHeader, TxnOp};

const SESSION: i64 = 0x0100_0000_0000_0007;

fn hdr(zxid: i64) -> TxnHeader {
    TxnHeader {
        session_id: SESSION,
        cxid: 1,
        zxid,
        time_ms: 1_000 + zxid,
    }
}

fn create(tree: &mut DataTree, zxid: i64, node_path: &str, owner: i64, kind: CreateKind) {
    let parent = crate::tree::parent(node_path);
    let parent_cversion = tree.get(parent).unwrap().stat.cversion + 1;
    let acl = if zxid % 3 == 0 {
        Acl::read_unsafe()
    } else {
        Acl::open_unsafe()
    };
    let op = TxnOp::Create {
        path: node_path.into(),
        data: (zxid % 4 != 0).then(|| format!("data{zxid}").into_bytes().into()),
        acl,
        ephemeral_owner: owner,
        parent_cversion,
        kind,
    };
    let result = tree.apply(&hdr(zxid), &op, &mut Vec::new());
    assert!(!result.is_error(), "{node_path}: {result:?}");
}

/// Persistent, ephemeral, container and TTL nodes, a delete (so a
/// persisted cversion differs from the client's), and several ACL lists.
fn sample_tree() -> DataTree {
    let mut tree = DataTree::new();
    let mut zxid = 0;
    let mut next = || {
        zxid += 1;
        zxid
    };
    create(&mut tree, next(), "/a", 0, CreateKind::Create);
    create(&mut tree, next(), "/a/b", 0, CreateKind::Create2);
    create(&mut tree, next(), "/a/c", 0, CreateKind::Create);
    create(&mut tree, next(), "/a/e", SESSION, CreateKind::Create);
    create(
        &mut tree,
        next(),
        "/k",
        CONTAINER_EPHEMERAL_OWNER,
        CreateKind::Container,
    );
    create(&mut tree, next(), "/k/x", 0, CreateKind::Create);
    create(&mut tree, next(), "/t", ttl_owner(60_000), CreateKind::Ttl);
    create(&mut tree, next(), "/a/b/deep", 0, CreateKind::Create);
    let del = TxnOp::Delete {
        path: "/a/c".into(),
    };
    assert!(!tree.apply(&hdr(next()), &del, &mut Vec::new()).is_error());
    let custom = TxnOp::SetAcl {
        path: "/a/b".into(),
        acl: vec![Acl {
            perms: perms::READ | perms::WRITE,
            id: Id::new("digest", "u:pw="),
        }],
        version: 1,
    };
    assert!(!tree
        .apply(&hdr(next()), &custom, &mut Vec::new())
        .is_error());
    tree
}

fn encode_all(tree: &DataTree, sessions: &[(i64, i32)], chunk_bytes: usize) -> Vec<u8> {
    drain(
        SnapEncoder::new(tree.clone(), sessions.to_vec()),
        chunk_bytes,
    )
}

fn drain(mut encoder: SnapEncoder, chunk_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        let more = encoder.fill(&mut chunk, chunk_bytes);
        out.extend_from_slice(&chunk);
        if !more {
            return out;
        }
    }
}

fn load_in_chunks(bytes: &[u8], framing: SnapFraming, rng: &mut StdRng) -> LoadedSnap {
    let mut load = SnapLoad::new(framing);
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + rng.gen_range(1..200)).min(bytes.len());
        load.push(&bytes[at..end]).expect("valid stream");
        at = end;
    }
    load.finish().expect("complete stream")
}

fn assert_same_tree(got: &DataTree, want: &DataTree) {
    got.assert_invariants();
    assert_eq!(got.node_count(), want.node_count());
    for (node_path, node) in want.iter() {
        let other = got
            .get(node_path)
            .unwrap_or_else(|| panic!("{node_path} missing"));
        assert_eq!(other.data, node.data, "{node_path}");
        assert_eq!(other.stat, node.stat, "{node_path}");
        assert_eq!(other.acl, node.acl, "{node_path}");
        assert_eq!(other.client_stat(), node.client_stat(), "{node_path}");
    }
    assert_eq!(got.ephemeral_sessions(), want.ephemeral_sessions());
}

#[test]
fn sync_stream_round_trips_in_any_chunking() {
    let tree = sample_tree();
    let sessions = vec![(SESSION, 30_000), (SESSION + 1, 4_000)];
    let mut rng = StdRng::seed_from_u64(1);
    for chunk_bytes in [1, 7, 64, 1 << 16] {
        let bytes = encode_all(&tree, &sessions, chunk_bytes);
        let announced = SnapEncoder::new(tree.clone(), sessions.clone()).stream_len();
        assert_eq!(announced, bytes.len() as u64);
        let loaded = load_in_chunks(&bytes, SnapFraming::Sync, &mut rng);
        assert_same_tree(&loaded.tree, &tree);
        assert_eq!(loaded.sessions, sessions);
        assert_eq!(loaded.trailer, SnapTrailer::default());
    }
}

/// The bytes of the smallest stream, written field by field.
#[test]
fn layout_is_zookeepers() {
    let stat = StatPersisted {
        czxid: 1,
        mzxid: 2,
        ctime: 3,
        mtime: 4,
        version: 5,
        cversion: 6,
        aversion: 7,
        ephemeral_owner: 8,
        pzxid: 9,
    };
    let mut want = Vec::new();
    put_i32(&mut want, 1); // sessions
    put_i64(&mut want, 77);
    put_i32(&mut want, 5000);
    put_i32(&mut want, 1); // ACL cache
    put_i64(&mut want, 1);
    put_acl_vec(&mut want, &Acl::open_unsafe());
    put_str(&mut want, ""); // root
    put_buffer(&mut want, Some(b""));
    put_i64(&mut want, 1);
    let stat_at = want.len();
    stat.write(&mut want);
    assert_eq!(want.len() - stat_at, STAT_PERSISTED_BYTES);
    assert_eq!(&want[stat_at..stat_at + 8], &1i64.to_be_bytes());
    assert_eq!(&want[stat_at + 32..stat_at + 36], &5i32.to_be_bytes());
    assert_eq!(&want[stat_at + 52..stat_at + 60], &9i64.to_be_bytes());
    put_str(&mut want, "/");
    put_str(&mut want, "BenWasHere");

    let mut items = Vec::new();
    let mut stream = SnapStream::new(SnapFraming::Sync);
    stream
        .push(&want, &mut |item| {
            items.push(format!("{item:?}"));
            Ok(())
        })
        .unwrap();
    assert!(stream.is_done());
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items[2].contains("path: \"\"") && items[2].contains("cversion: 6"));
}

#[test]
fn encoder_writes_the_root_as_empty_and_children_sorted() {
    let tree = sample_tree();
    let bytes = encode_all(&tree, &[], 1 << 20);
    let mut paths = Vec::new();
    let mut decoder = SnapDecoder::new(SnapFraming::Sync);
    let mut at = 0;
    while !decoder.is_done() {
        let step = decoder.step(&bytes[at..], true).unwrap();
        at += step.used;
        if let Some(SnapItem::Node(node)) = step.item {
            paths.push(node.path.to_owned());
        }
    }
    assert_eq!(at, bytes.len());
    let want = [
        "",
        "/a",
        "/a/b",
        "/a/b/deep",
        "/a/e",
        "/k",
        "/k/x",
        "/t",
        "/zookeeper",
        "/zookeeper/config",
        "/zookeeper/quota",
    ];
    assert_eq!(paths, want);
}

/// A snapshot file as `FileSnap.serialize` writes it.
fn file_bytes(tree: &DataTree, digest: bool, last_zxid: bool) -> Vec<u8> {
    let mut out = Vec::new();
    put_i32(&mut out, SNAP_FILE_MAGIC);
    put_i32(&mut out, SNAP_FILE_VERSION);
    put_i64(&mut out, -1);
    let body = encode_all(tree, &[(SESSION, 9000)], 1 << 20);
    // Drop the SNAP signature: files end their node list with the seal.
    let mut sig = Vec::new();
    put_str(&mut sig, SNAP_SIGNATURE);
    out.extend_from_slice(&body[..body.len() - sig.len()]);
    seal(&mut out);
    if digest {
        put_i64(&mut out, 42);
        put_i32(&mut out, 2);
        put_i64(&mut out, -123);
        seal(&mut out);
    }
    if last_zxid {
        put_i64(&mut out, 43);
        seal(&mut out);
    }
    out
}

fn seal(out: &mut Vec<u8>) {
    let sum = adler2::adler32_slice(out);
    put_i64(out, i64::from(sum));
    put_str(out, "/");
}

#[test]
fn snapshot_files_with_each_trailer_layout_load() {
    let tree = sample_tree();
    let mut rng = StdRng::seed_from_u64(2);
    for (digest, last_zxid) in [(false, false), (true, false), (true, true), (false, true)] {
        let bytes = file_bytes(&tree, digest, last_zxid);
        let loaded = load_in_chunks(&bytes, SnapFraming::File, &mut rng);
        assert_same_tree(&loaded.tree, &tree);
        assert_eq!(loaded.sessions, vec![(SESSION, 9000)]);
        let want_digest = digest.then_some(ZxidDigest {
            zxid: 42,
            version: 2,
            digest: -123,
        });
        assert_eq!(loaded.trailer.digest, want_digest);
        assert_eq!(loaded.trailer.last_processed_zxid, last_zxid.then_some(43));
    }
}

/// The file encoder writes what the hand-built layout above holds, with the
/// tree's own digest and zxid in the tail.
#[test]
fn file_encoder_writes_zookeepers_file_layout() {
    let tree = sample_tree();
    let sessions = vec![(SESSION, 9000)];
    let mut rng = StdRng::seed_from_u64(3);
    for chunk_bytes in [1, 33, 1 << 20] {
        let bytes = drain(
            SnapEncoder::file(tree.clone(), sessions.clone()),
            chunk_bytes,
        );
        // The hand-built file, with the tail's values this tree has.
        let mut want = file_bytes(&tree, false, false);
        put_i64(&mut want, tree.last_zxid());
        put_i32(&mut want, 2);
        put_i64(&mut want, tree.digest());
        seal(&mut want);
        put_i64(&mut want, tree.last_zxid());
        seal(&mut want);
        assert_eq!(bytes, want, "chunks of {chunk_bytes}");
        let loaded = load_in_chunks(&bytes, SnapFraming::File, &mut rng);
        assert_same_tree(&loaded.tree, &tree);
        assert_eq!(loaded.sessions, sessions);
        let trailer = loaded.trailer;
        assert_eq!(trailer.last_processed_zxid, Some(tree.last_zxid()));
        assert_eq!(trailer.digest.map(|d| d.digest), Some(tree.digest()));
    }
}

#[test]
fn corrupt_files_are_refused() {
    let tree = sample_tree();
    let bytes = file_bytes(&tree, true, true);
    let mut rng = StdRng::seed_from_u64(3);
    // A flipped byte in a node's data: the seal catches it.
    let data_at = bytes
        .windows(5)
        .position(|w| w == b"data1")
        .expect("node data in the file");
    let mut flipped = bytes.clone();
    flipped[data_at] ^= 0x20;
    let mut load = SnapLoad::new(SnapFraming::File);
    let result = load.push(&flipped).and_then(|()| load.finish().map(|_| ()));
    assert_eq!(
        result.err(),
        Some(WireError::Invalid("snapshot checksum mismatch"))
    );
    // Any cut or mutation fails cleanly (or, for a mutation in a field
    // that nothing checks, such as a time, may load).
    // Cut after a seal, the file is a valid one with fewer trailers.
    let valid_cuts = [
        file_bytes(&tree, false, false).len(),
        file_bytes(&tree, true, false).len(),
    ];
    for cut in 0..bytes.len() {
        let mut load = SnapLoad::new(SnapFraming::File);
        let result = load
            .push(&bytes[..cut])
            .and_then(|()| load.finish().map(|_| ()));
        assert_eq!(result.is_ok(), valid_cuts.contains(&cut), "cut at {cut}");
    }
    for _ in 0..500 {
        let mut mutated = bytes.clone();
        let at = rng.gen_range(0..mutated.len());
        mutated[at] = rng.gen();
        let mut load = SnapLoad::new(SnapFraming::File);
        let _ = load.push(&mutated).and_then(|()| load.finish().map(|_| ()));
    }
}

#[test]
fn hostile_lengths_fail_at_once() {
    let mut bytes = Vec::new();
    put_i32(&mut bytes, 0);
    put_i32(&mut bytes, 0);
    put_str(&mut bytes, "/x");
    put_i32(&mut bytes, i32::MAX); // data length
    let mut stream = SnapStream::new(SnapFraming::Sync);
    let result = stream.push(&bytes, &mut |_| Ok(()));
    assert!(
        matches!(result, Err(WireError::BadLength { .. })),
        "{result:?}"
    );
    let mut acl = Vec::new();
    put_i32(&mut acl, 0);
    put_i32(&mut acl, 1);
    put_i64(&mut acl, 1);
    put_i32(&mut acl, i32::MAX); // ACL count
    let mut stream = SnapStream::new(SnapFraming::Sync);
    assert!(stream.push(&acl, &mut |_| Ok(())).is_err());
    let mut negative = Vec::new();
    put_i32(&mut negative, -5);
    let mut stream = SnapStream::new(SnapFraming::Sync);
    assert!(stream.push(&negative, &mut |_| Ok(())).is_err());
}

#[test]
fn unknown_acl_ref_and_orphans_are_refused() {
    let mut bytes = Vec::new();
    put_i32(&mut bytes, 0);
    put_i32(&mut bytes, 0);
    put_str(&mut bytes, "");
    put_buffer(&mut bytes, None);
    put_i64(&mut bytes, 5);
    StatPersisted::default().write(&mut bytes);
    let mut load = SnapLoad::new(SnapFraming::Sync);
    assert!(load.push(&bytes).is_err());

    let mut orphan = Vec::new();
    put_i32(&mut orphan, 0);
    put_i32(&mut orphan, 0);
    for node_path in ["", "/no/parent"] {
        put_str(&mut orphan, node_path);
        put_buffer(&mut orphan, None);
        put_i64(&mut orphan, ACL_REF_OPEN_UNSAFE);
        StatPersisted::default().write(&mut orphan);
    }
    put_str(&mut orphan, "/");
    put_str(&mut orphan, "BenWasHere");
    let mut load = SnapLoad::new(SnapFraming::Sync);
    let result = load.push(&orphan).and_then(|()| load.finish().map(|_| ()));
    assert!(result.is_err());
}

/// The bytes after a SNAP (the next quorum packets) are handed back.
#[test]
fn bytes_after_a_snap_are_kept() {
    let tree = DataTree::new();
    let mut bytes = encode_all(&tree, &[], 1 << 20);
    bytes.extend_from_slice(b"next packet");
    let mut load = SnapLoad::new(SnapFraming::Sync);
    load.push(&bytes).unwrap();
    assert!(load.is_done());
    assert_eq!(load.rest(), b"next packet");
    load.finish().unwrap();
}

/// A wide and a deep tree: the decoder's carried-over buffer never holds
/// more than one record, and the encoder's walk finds every node.
#[test]
fn large_trees_stream_with_bounded_buffers() {
    let mut tree = DataTree::new();
    let mut zxid = 0;
    create(&mut tree, 1, "/wide", 0, CreateKind::Create);
    for i in 0..5_000 {
        zxid = i + 2;
        create(
            &mut tree,
            zxid,
            &format!("/wide/n{i:05}"),
            0,
            CreateKind::Create,
        );
    }
    let mut deep = String::new();
    for d in 0..200 {
        deep.push_str(&format!("/d{d}"));
        zxid += 1;
        create(&mut tree, zxid, &deep, 0, CreateKind::Create);
    }
    let bytes = encode_all(&tree, &[], 4096);
    let mut stream = SnapStream::new(SnapFraming::Sync);
    let mut loader = super::load::SnapLoader::new();
    let mut max_pending = 0;
    for chunk in bytes.chunks(1000) {
        stream.push(chunk, &mut |item| loader.accept(item)).unwrap();
        max_pending = max_pending.max(stream.pending.len());
    }
    stream.finish(&mut |item| loader.accept(item)).unwrap();
    assert!(max_pending < 2000, "carried {max_pending} bytes");
    assert_same_tree(&loader.finish().unwrap().tree, &tree);
}
