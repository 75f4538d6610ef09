use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::proto::jute::put_str;
use crate::proto::Id;

const SESSION: i64 = 0x0100_0000_0000_0042;

fn header() -> TxnHeader {
    TxnHeader {
        session_id: SESSION,
        cxid: 7,
        zxid: 0x0000_0002_0000_0010,
        time_ms: 1_700_000_000_123,
    }
}

fn acl() -> Vec<Acl> {
    vec![
        Acl {
            perms: 31,
            id: Id::new("world", "anyone"),
        },
        Acl {
            perms: 1,
            id: Id::new("digest", "u:h="),
        },
    ]
}

fn data(b: &[u8]) -> Data {
    Some(Bytes::copy_from_slice(b))
}

/// One record of every kind the leader writes, plus the read-only forms.
fn every_record() -> Vec<ZkRecord> {
    let create = |create2, data, ephemeral, parent_cversion| ZkRecord::Create {
        create2,
        path: "/a/b0000000003".into(),
        data,
        acl: acl(),
        ephemeral,
        parent_cversion,
    };
    vec![
        create(false, data(b"xy"), true, Some(4)),
        create(true, None, false, Some(4)),
        create(false, data(b"xy"), true, None),
        ZkRecord::CreateContainer {
            path: "/c".into(),
            data: data(b""),
            acl: acl(),
            parent_cversion: 9,
        },
        ZkRecord::CreateTtl {
            path: "/t".into(),
            data: data(b"t"),
            acl: acl(),
            parent_cversion: 1,
            ttl_ms: 5000,
        },
        ZkRecord::Delete {
            container: false,
            path: "/a".into(),
        },
        ZkRecord::Delete {
            container: true,
            path: "/c".into(),
        },
        ZkRecord::SetData {
            reconfig: false,
            path: "/a".into(),
            data: data(b"new"),
            version: 3,
        },
        ZkRecord::SetData {
            reconfig: true,
            path: "/zookeeper/config".into(),
            data: data(b"server.1=x:1:2"),
            version: -1,
        },
        ZkRecord::SetAcl {
            path: "/a".into(),
            acl: acl(),
            version: 2,
        },
        ZkRecord::Multi(vec![
            ZkRecord::Check {
                path: "/a".into(),
                version: 1,
            },
            ZkRecord::Delete {
                container: false,
                path: "/a/x".into(),
            },
            ZkRecord::SetData {
                reconfig: false,
                path: "/a".into(),
                data: None,
                version: 2,
            },
        ]),
        ZkRecord::Multi(vec![]),
        ZkRecord::CreateSession { timeout_ms: 30_000 },
        ZkRecord::CloseSession {
            paths: Some(vec!["/e1".into(), "/e2".into()]),
        },
        ZkRecord::CloseSession {
            paths: Some(vec![]),
        },
        ZkRecord::CloseSession { paths: None },
        ZkRecord::Error(ErrorCode::NodeExists.code()),
    ]
}

fn encoded(txn: &ZkTxn) -> Vec<u8> {
    let mut out = Vec::new();
    encode_txn(txn, &mut out).expect("encodable");
    out
}

#[test]
fn every_record_round_trips_with_and_without_digest() {
    for record in every_record() {
        let v0 = matches!(
            record,
            ZkRecord::Create {
                parent_cversion: None,
                ..
            }
        );
        // A V0 create followed by a digest reads as a V1 create (Java too):
        // V0 logs predate digests.
        let digests = if v0 { 1 } else { 2 };
        for digest in [
            None,
            Some(TxnDigest {
                version: TXN_DIGEST_VERSION,
                tree_digest: -5,
            }),
        ]
        .into_iter()
        .take(digests)
        {
            let txn = ZkTxn {
                header: header(),
                record: record.clone(),
                digest,
            };
            let bytes = encoded(&txn);
            assert_eq!(decode_txn(&bytes), Ok(txn.clone()), "{record:?}");
            assert_eq!(encoded(&decode_txn(&bytes).unwrap()), bytes);
        }
    }
}

/// The byte layout, written field by field as the generated Java classes
/// do, so that a field order mistake cannot cancel out in a round trip.
#[test]
fn create_txn_bytes_are_zookeepers() {
    let mut want = Vec::new();
    put_i64(&mut want, SESSION);
    put_i32(&mut want, 7);
    put_i64(&mut want, 0x0000_0002_0000_0010);
    put_i64(&mut want, 1_700_000_000_123);
    put_i32(&mut want, op::CREATE2);
    assert_eq!(want.len(), TXN_HEADER_BYTES);
    put_str(&mut want, "/n");
    put_buffer(&mut want, Some(b"d"));
    put_i32(&mut want, 1);
    put_i32(&mut want, 31);
    put_str(&mut want, "world");
    put_str(&mut want, "anyone");
    want.push(1);
    put_i32(&mut want, 6);
    put_i32(&mut want, TXN_DIGEST_VERSION);
    put_i64(&mut want, 0x1234);
    let txn = ZkTxn {
        header: header(),
        record: ZkRecord::Create {
            create2: true,
            path: "/n".into(),
            data: data(b"d"),
            acl: Acl::open_unsafe(),
            ephemeral: true,
            parent_cversion: Some(6),
        },
        digest: Some(TxnDigest {
            version: TXN_DIGEST_VERSION,
            tree_digest: 0x1234,
        }),
    };
    assert_eq!(encoded(&txn), want);
    let (hdr, op, _) = decode_txn_op(&want).unwrap();
    assert_eq!(hdr, header());
    assert_eq!(
        op,
        TxnOp::Create {
            path: "/n".into(),
            data: data(b"d"),
            acl: Acl::open_unsafe(),
            ephemeral_owner: SESSION,
            parent_cversion: 6,
            kind: CreateKind::Create2,
        }
    );
}

#[test]
fn ttl_and_container_owners_are_zookeepers() {
    let ttl = ZkRecord::CreateTtl {
        path: "/t".into(),
        data: None,
        acl: acl(),
        parent_cversion: 1,
        ttl_ms: 5000,
    };
    let TxnOp::Create {
        ephemeral_owner, ..
    } = ttl.to_op(&header()).unwrap()
    else {
        panic!("a create");
    };
    assert_eq!(ephemeral_owner as u64, 0xff00_0000_0000_1388);
    let container = ZkRecord::CreateContainer {
        path: "/c".into(),
        data: None,
        acl: acl(),
        parent_cversion: 1,
    };
    let TxnOp::Create {
        ephemeral_owner, ..
    } = container.to_op(&header()).unwrap()
    else {
        panic!("a create");
    };
    assert_eq!(ephemeral_owner as u64, 0x8000_0000_0000_0000);
    for bad_ttl in [0, -1, TTL_MAX_MS + 1] {
        let bad = ZkRecord::CreateTtl {
            path: "/t".into(),
            data: None,
            acl: acl(),
            parent_cversion: 1,
            ttl_ms: bad_ttl,
        };
        assert!(bad.to_op(&header()).is_err());
    }
}

/// A failed multi as PrepRequestProcessor writes it: real records before
/// the failing op, its ErrorTxn, then ErrorTxn(-2) for the rest.
#[test]
fn failed_multi_maps_to_processtxn_codes() {
    let record = ZkRecord::Multi(vec![
        ZkRecord::Create {
            create2: false,
            path: "/m/a".into(),
            data: None,
            acl: acl(),
            ephemeral: false,
            parent_cversion: Some(1),
        },
        ZkRecord::Error(ErrorCode::NoNode.code()),
        ZkRecord::Error(ErrorCode::RuntimeInconsistency.code()),
    ]);
    let op = record.to_op(&header()).unwrap();
    assert_eq!(
        op,
        TxnOp::MultiError(vec![
            ErrorCode::Ok,
            ErrorCode::NoNode,
            ErrorCode::RuntimeInconsistency
        ])
    );
    // Written back as ErrorTxn per op, which applies identically.
    let back = ZkRecord::from_op(&header(), &op, &DataTree::new()).unwrap();
    assert_eq!(
        back,
        ZkRecord::Multi(vec![
            ZkRecord::Error(0),
            ZkRecord::Error(ErrorCode::NoNode.code()),
            ZkRecord::Error(ErrorCode::RuntimeInconsistency.code()),
        ])
    );
    assert_eq!(back.to_op(&header()).unwrap(), op);
}

#[test]
fn v0_create_and_recordless_close_session_are_read() {
    let v0 = ZkTxn {
        header: header(),
        record: ZkRecord::Create {
            create2: false,
            path: "/old".into(),
            data: data(b"o"),
            acl: acl(),
            ephemeral: false,
            parent_cversion: None,
        },
        digest: None,
    };
    let (_, op, _) = decode_txn_op(&encoded(&v0)).unwrap();
    assert!(matches!(
        op,
        TxnOp::Create {
            parent_cversion: -1,
            ..
        }
    ));
    // closeSessionTxn disabled, digest on: the digest must not be taken
    // for a path list.
    let close = ZkTxn {
        header: header(),
        record: ZkRecord::CloseSession { paths: None },
        digest: Some(TxnDigest {
            version: TXN_DIGEST_VERSION,
            tree_digest: 0x7fff_0000_0000_0001,
        }),
    };
    assert_eq!(decode_txn(&encoded(&close)), Ok(close));
}

#[test]
fn close_session_lists_the_sessions_ephemerals() {
    let mut tree = DataTree::new();
    let mut events = Vec::new();
    for name in ["/e2", "/e1"] {
        let create = TxnOp::Create {
            path: name.into(),
            data: None,
            acl: Acl::open_unsafe(),
            ephemeral_owner: SESSION,
            parent_cversion: 1,
            kind: CreateKind::Create,
        };
        tree.apply(&header(), &create, &mut events);
    }
    let record = ZkRecord::from_op(&header(), &TxnOp::CloseSession, &tree).unwrap();
    assert_eq!(
        record,
        ZkRecord::CloseSession {
            paths: Some(vec!["/e1".into(), "/e2".into()])
        }
    );
}

#[test]
fn inexpressible_ops_are_refused() {
    let tree = DataTree::new();
    let foreign_ephemeral = TxnOp::Create {
        path: "/x".into(),
        data: None,
        acl: acl(),
        ephemeral_owner: SESSION + 1,
        parent_cversion: 1,
        kind: CreateKind::Create,
    };
    assert!(ZkRecord::from_op(&header(), &foreign_ephemeral, &tree).is_err());
    let top_check = ZkTxn {
        header: header(),
        record: ZkRecord::Check {
            path: "/a".into(),
            version: 1,
        },
        digest: None,
    };
    assert!(encode_txn(&top_check, &mut Vec::new()).is_err());
    let nested = ZkTxn {
        header: header(),
        record: ZkRecord::Multi(vec![ZkRecord::Multi(vec![])]),
        digest: None,
    };
    let mut out = vec![9];
    assert!(encode_txn(&nested, &mut out).is_err());
    assert_eq!(out, vec![9], "nothing written on failure");
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let mut rng = StdRng::seed_from_u64(9);
    for record in every_record() {
        let bytes = encoded(&ZkTxn {
            header: header(),
            record,
            digest: None,
        });
        for cut in 0..bytes.len() {
            // Some prefixes are valid shorter txns (a V0 create, a
            // record-less closeSession): only no panic is required.
            let _ = decode_txn(&bytes[..cut]);
        }
        assert!(decode_txn(&bytes[..TXN_HEADER_BYTES - 1]).is_err());
        for _ in 0..200 {
            let mut mutated = bytes.clone();
            let at = rng.gen_range(0..mutated.len());
            mutated[at] = rng.gen();
            let _ = decode_txn(&mutated);
        }
    }
}

#[test]
fn hostile_lengths_and_types_are_rejected() {
    let mut bytes = Vec::new();
    put_i64(&mut bytes, 1);
    put_i32(&mut bytes, 1);
    put_i64(&mut bytes, 1);
    put_i64(&mut bytes, 1);
    let header_only = bytes.clone();
    put_i32(&mut bytes, op::SET_DATA);
    put_i32(&mut bytes, i32::MAX);
    assert!(matches!(
        decode_txn(&bytes),
        Err(WireError::BadLength { .. })
    ));
    let mut unknown = header_only.clone();
    put_i32(&mut unknown, op::GET_DATA);
    assert!(matches!(decode_txn(&unknown), Err(WireError::Invalid(_))));
    let mut check = header_only.clone();
    put_i32(&mut check, op::CHECK);
    put_str(&mut check, "/a");
    put_i32(&mut check, 1);
    assert!(matches!(decode_txn(&check), Err(WireError::Invalid(_))));
    let mut multi = header_only.clone();
    put_i32(&mut multi, op::MULTI);
    put_i32(&mut multi, 1);
    put_i32(&mut multi, op::SET_ACL);
    put_buffer(&mut multi, Some(&[]));
    assert!(matches!(decode_txn(&multi), Err(WireError::Invalid(_))));
    let mut many = header_only;
    put_i32(&mut many, op::MULTI);
    put_i32(&mut many, i32::MAX);
    assert!(decode_txn(&many).is_err());
}

// ----- random TxnOps through ZooKeeper's records and back -----

fn random_path(rng: &mut StdRng) -> String {
    let depth = rng.gen_range(1..4);
    (0..depth)
        .map(|_| format!("/n{}", rng.gen_range(0..1000)))
        .collect()
}

fn random_data(rng: &mut StdRng) -> Data {
    match rng.gen_range(0..4) {
        0 => None,
        n => {
            let len = rng.gen_range(0..64 * n);
            Some(
                (0..len)
                    .map(|_| rng.gen::<u8>())
                    .collect::<Vec<u8>>()
                    .into(),
            )
        }
    }
}

fn random_acl(rng: &mut StdRng) -> Vec<Acl> {
    (0..rng.gen_range(0..3))
        .map(|i| Acl {
            perms: rng.gen_range(0..32),
            id: Id::new("digest", &format!("user{i}:{}", rng.gen::<u32>())),
        })
        .collect()
}

fn random_create(rng: &mut StdRng, in_multi: bool) -> TxnOp {
    let kinds = [
        CreateKind::Create,
        CreateKind::Create2,
        CreateKind::Container,
        CreateKind::Ttl,
    ];
    let kind = kinds[rng.gen_range(0..kinds.len())];
    let ephemeral_owner = match kind {
        CreateKind::Container => CONTAINER_EPHEMERAL_OWNER,
        CreateKind::Ttl => ttl_owner(rng.gen_range(1..=TTL_MAX_MS)),
        _ if !in_multi && rng.gen() => SESSION,
        _ => 0,
    };
    TxnOp::Create {
        path: random_path(rng),
        data: random_data(rng),
        acl: random_acl(rng),
        ephemeral_owner,
        parent_cversion: rng.gen_range(0..100),
        kind,
    }
}

fn random_op(rng: &mut StdRng, in_multi: bool) -> TxnOp {
    let path = random_path(rng);
    let pick = if in_multi {
        [0, 1, 2, 4][rng.gen_range(0..4)]
    } else {
        // A check is valid only inside a multi.
        [0, 1, 2, 3, 5, 6, 7, 8, 9][rng.gen_range(0..9)]
    };
    match pick {
        0 => random_create(rng, in_multi),
        1 => TxnOp::Delete { path },
        2 => TxnOp::SetData {
            path,
            data: random_data(rng),
            version: rng.gen(),
        },
        3 => TxnOp::SetAcl {
            path,
            acl: random_acl(rng),
            version: rng.gen(),
        },
        4 => TxnOp::Check {
            path,
            version: rng.gen(),
        },
        5 => TxnOp::Multi(
            (0..rng.gen_range(0..5))
                .map(|_| random_op(rng, true))
                .collect(),
        ),
        6 => TxnOp::CreateSession {
            timeout_ms: rng.gen(),
        },
        7 => TxnOp::CloseSession,
        8 => TxnOp::Error(ErrorCode::BadVersion),
        _ => {
            let count = rng.gen_range(1..5);
            let failed = rng.gen_range(0..count);
            TxnOp::MultiError(crate::tree::txn::multi_error_codes(
                count,
                failed,
                ErrorCode::NoNode,
            ))
        }
    }
}

#[test]
fn random_txn_ops_round_trip() {
    let mut rng = StdRng::seed_from_u64(2024);
    let tree = DataTree::new();
    for _ in 0..2000 {
        let op = random_op(&mut rng, false);
        let hdr = TxnHeader {
            session_id: rng.gen(),
            cxid: rng.gen(),
            zxid: rng.gen(),
            time_ms: rng.gen(),
        };
        // Ephemerals belong to the header's session.
        let hdr = TxnHeader {
            session_id: SESSION,
            ..hdr
        };
        let digest = rng.gen::<bool>().then(|| TxnDigest {
            version: TXN_DIGEST_VERSION,
            tree_digest: rng.gen(),
        });
        let mut bytes = Vec::new();
        encode_txn_op(&hdr, &op, &tree, digest, &mut bytes).unwrap();
        assert_eq!(
            decode_txn_op(&bytes),
            Ok((hdr, op.clone(), digest)),
            "{op:?}"
        );
        assert_eq!(encoded(&decode_txn(&bytes).unwrap()), bytes);
    }
}
