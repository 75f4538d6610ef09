//! Our ZooKeeper txn and snapshot codecs (`ferrokeeper::zab::{txn_wire, snap_wire}`)
//! against the files a real Apache ZooKeeper 3.8 (Debian's `zookeeper` package) writes.
//!
//! 1. A standalone Apache server (extended types on, for TTL nodes) in a temp dir on a free
//!    port takes writes of every kind from a `zookeeper-client` session: creates (plain,
//!    sequential, ephemeral, container, TTL), setData, setACL, delete, a failed single
//!    write, a multi, a failed multi, and a session close that deletes ephemerals.
//! 2. Before it stops we read every node's data, Stat and ACL through the client.
//! 3. We decode every record of Apache's `version-2/log.*` files (FileTxnLog framing, checked
//!    CRC) with `txn_wire`, check that each re-encodes to the very same bytes, and that the
//!    decoded ops are the client's writes.
//! 4. Apache is started again on the same data dir: it takes a snapshot of the loaded tree at
//!    start-up (`ZooKeeperServer.loadData`). We load that `snapshot.*` file with `snap_wire`
//!    and compare every node's data, client Stat (cversion translated from the persisted
//!    value) and ACL with what the client saw.
//!
//! Every wait is bounded; the Java process is killed and the temp dir removed on drop. If Java
//! or the ZooKeeper jars are missing the test fails (tests/run-all.sh installs them).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::apache::{self, ScratchDir};
use ferrokeeper::proto::{op, ErrorCode, Stat};
use ferrokeeper::tree::{CreateKind, TxnOp};
use ferrokeeper::zab::snap_wire::load::SnapLoad;
use ferrokeeper::zab::snap_wire::SnapFraming;
use ferrokeeper::zab::txn_wire::{self, ZkRecord, ZkTxn};
use zookeeper_client as zk;

const STEP_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// FileTxnLog's "ZKLG" and the byte that ends each record.
const TXN_LOG_MAGIC: i32 = 0x5A4B_4C47;
const TXN_LOG_RECORD_END: u8 = b'B';
/// A TTL long enough that Apache's reaper never deletes the node during the test.
const TTL: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// The Apache server

/// The Java process: SIGTERM, then SIGKILL after a bounded wait; always reaped.
struct JavaServer {
    child: Child,
    log: PathBuf,
}

impl JavaServer {
    fn start(dir: &Path, port: u16, run: usize) -> JavaServer {
        apache::require_install();
        let cfg = dir.join("zoo.cfg");
        let text = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\n",
            dir.join("data").display()
        );
        fs::write(&cfg, text).expect("write zoo.cfg");
        let log = dir.join(format!("zookeeper-{run}.log"));
        let child = apache::spawn_quorum_peer(dir, &cfg, &log, &["-Xms128m", "-Xmx256m"]);
        let mut server = JavaServer { child, log };
        server.wait_ready(port);
        server
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Until `srvr` reports a mode (ZooKeeper answers `ruok` before it serves).
    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if four_letter(addr, "srvr").contains("Mode:") {
                return;
            }
            let exited = !matches!(self.child.try_wait(), Ok(None));
            assert!(
                !exited && Instant::now() < deadline,
                "Apache did not start within {STEP_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for JavaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn four_letter(addr: SocketAddr, word: &str) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let mut out = Vec::new();
    if s.write_all(word.as_bytes()).is_ok() {
        let _ = s.read_to_end(&mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------------------------
// The client's writes, and what it saw

/// A node as the client saw it before the server stopped.
#[derive(Debug, PartialEq)]
struct Seen {
    data: Vec<u8>,
    stat: zk::Stat,
    acl: Vec<zk::Acl>,
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn mode(m: zk::CreateMode) -> zk::CreateOptions<'static> {
    m.with_acls(zk::Acls::anyone_all())
}

async fn connect(port: u16) -> zk::Client {
    let addr = format!("127.0.0.1:{port}");
    let connector = zk::Client::connector();
    tokio::time::timeout(STEP_TIMEOUT, connector.connect(&addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Session ids of the two clients.
struct Sessions {
    main: i64,
    doomed: i64,
}

/// Every kind of write; returns the sessions. The doomed session owns two ephemerals and is
/// closed at the end.
async fn write_everything(port: u16) -> Sessions {
    let c = connect(port).await;
    let doomed = connect(port).await;
    c.create("/t", b"top", &open()).await.unwrap();
    c.create("/t/seq-", b"s", &mode(zk::CreateMode::PersistentSequential))
        .await
        .unwrap();
    c.create("/t/c", b"", &mode(zk::CreateMode::Container))
        .await
        .unwrap();
    c.create("/t/c/x", b"in container", &open()).await.unwrap();
    let ttl = mode(zk::CreateMode::Persistent).with_ttl(TTL);
    c.create("/t/ttl", b"ttl", &ttl).await.unwrap();
    doomed
        .create("/t/e", b"eph", &mode(zk::CreateMode::Ephemeral))
        .await
        .unwrap();
    doomed
        .create("/t/es-", b"", &mode(zk::CreateMode::EphemeralSequential))
        .await
        .unwrap();
    c.set_data("/t", b"top2", Some(0)).await.unwrap();
    let acl = [zk::Acl::new(
        zk::Permission::READ | zk::Permission::WRITE,
        zk::AuthId::new("ip", "127.0.0.1"),
    )];
    c.create("/t/acl", b"", &open()).await.unwrap();
    c.set_acl("/t/acl", &acl, Some(0)).await.unwrap();
    c.create("/t/gone", b"", &open()).await.unwrap();
    c.delete("/t/gone", None).await.unwrap();
    assert_eq!(
        c.create("/t", b"", &open()).await.unwrap_err(),
        zk::Error::NodeExists
    );
    let mut multi = c.new_multi_writer();
    multi.add_create("/t/m", b"m", &open()).unwrap();
    multi.add_set_data("/t/m", b"mm", Some(0)).unwrap();
    multi.add_check_version("/t", 1).unwrap();
    multi.add_delete("/t/seq-0000000000", None).unwrap();
    multi.commit().await.unwrap();
    let mut failing = c.new_multi_writer();
    failing.add_create("/t/never", b"", &open()).unwrap();
    failing.add_check_version("/t", 0).unwrap();
    failing.add_set_data("/t", b"no", None).unwrap();
    assert!(failing.commit().await.is_err());
    let sessions = Sessions {
        main: c.session_id().0,
        doomed: doomed.session_id().0,
    };
    drop(doomed); // sends closeSession
    wait_gone(&c, "/t/e").await;
    sessions
}

async fn wait_gone(c: &zk::Client, node_path: &str) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while c.check_stat(node_path).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "{node_path} outlived its session"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Every node (path -> data, Stat, ACL), walking from "/".
async fn read_tree(port: u16) -> BTreeMap<String, Seen> {
    let c = connect(port).await;
    let mut seen = BTreeMap::new();
    let mut todo = vec!["/".to_string()];
    while let Some(node_path) = todo.pop() {
        let (data, stat) = c.get_data(&node_path).await.unwrap();
        let (acl, _) = c.get_acl(&node_path).await.unwrap();
        for child in c.list_children(&node_path).await.unwrap() {
            let base = if node_path == "/" { "" } else { &node_path };
            todo.push(format!("{base}/{child}"));
        }
        seen.insert(node_path, Seen { data, stat, acl });
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// Apache's files

/// The records of one `log.*` file (`FileTxnLog.FileTxnIterator`): after the FileHeader,
/// `{long adler32; int len; bytes; 'B'}` until EOF, `len == 0` (preallocated zeros) or a
/// record cut short.
fn txn_log_records(file: &Path) -> Vec<Vec<u8>> {
    let bytes = fs::read(file).expect("read txn log");
    let be_i32 = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(be_i32(0), TXN_LOG_MAGIC, "{} is a txn log", file.display());
    let mut at = 16;
    let mut records = Vec::new();
    while at + 12 <= bytes.len() {
        let crc = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = be_i32(at + 8);
        if len <= 0 {
            break;
        }
        let body = at + 12;
        let end = body + len as usize;
        if end >= bytes.len() || bytes[end] != TXN_LOG_RECORD_END {
            break;
        }
        let record = &bytes[body..end];
        assert_eq!(crc, i64::from(adler2::adler32_slice(record)), "record CRC");
        records.push(record.to_vec());
        at = end + 1;
    }
    records
}

/// Files of `version-2` named `<prefix>.<hex zxid>`, by zxid.
fn data_files(data_dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let dir = data_dir.join("version-2");
    let mut files: Vec<(i64, PathBuf)> = fs::read_dir(&dir)
        .expect("version-2 dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
            Some((i64::from_str_radix(hex, 16).ok()?, e.path()))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Decodes and re-encodes every record; each must give back its exact bytes.
fn decode_log(data_dir: &Path) -> Vec<ZkTxn> {
    let mut txns = Vec::new();
    for file in data_files(data_dir, "log") {
        for record in txn_log_records(&file) {
            let txn = txn_wire::decode_txn(&record)
                .unwrap_or_else(|e| panic!("{}: {e}: {record:02x?}", file.display()));
            let mut again = Vec::new();
            txn_wire::encode_txn(&txn, &mut again).expect("re-encodable");
            assert_eq!(again, record, "re-encoding {txn:?}");
            txns.push(txn);
        }
    }
    txns
}

fn client_stat(stat: &Stat) -> zk::Stat {
    zk::Stat {
        czxid: stat.czxid,
        mzxid: stat.mzxid,
        ctime: stat.ctime,
        mtime: stat.mtime,
        version: stat.version,
        cversion: stat.cversion,
        aversion: stat.aversion,
        ephemeral_owner: stat.ephemeral_owner,
        data_length: stat.data_length,
        num_children: stat.num_children,
        pzxid: stat.pzxid,
    }
}

// ---------------------------------------------------------------------------------------------
// What the log must hold

fn path_of(op: &TxnOp) -> &str {
    match op {
        TxnOp::Create { path, .. }
        | TxnOp::Delete { path }
        | TxnOp::SetData { path, .. }
        | TxnOp::SetAcl { path, .. }
        | TxnOp::Check { path, .. } => path,
        _ => "",
    }
}

/// The client's writes, in order, as (header session, ZooKeeper type, op) checks.
fn check_log(txns: &[ZkTxn], sessions: &Sessions) {
    let ops: Vec<(i64, i32, TxnOp)> = txns
        .iter()
        .map(|t| {
            (
                t.header.session_id,
                t.record.txn_type(),
                t.record.to_op(&t.header).unwrap(),
            )
        })
        .collect();
    let summary: Vec<String> = ops
        .iter()
        .map(|(s, ty, op)| format!("{s:x} {ty} {}", path_of(op)))
        .collect();
    let (main, doomed) = (sessions.main, sessions.doomed);
    let want: Vec<(i64, i32, &str)> = vec![
        (main, op::CREATE_SESSION, ""),
        (doomed, op::CREATE_SESSION, ""),
        (main, op::CREATE2, "/t"),
        (main, op::CREATE2, "/t/seq-0000000000"),
        (main, op::CREATE_CONTAINER, "/t/c"),
        (main, op::CREATE2, "/t/c/x"),
        (main, op::CREATE_TTL, "/t/ttl"),
        (doomed, op::CREATE2, "/t/e"),
        (doomed, op::CREATE2, "/t/es-0000000004"),
        (main, op::SET_DATA, "/t"),
        (main, op::CREATE2, "/t/acl"),
        (main, op::SET_ACL, "/t/acl"),
        (main, op::CREATE2, "/t/gone"),
        (main, op::DELETE, "/t/gone"),
        (main, op::ERROR, ""),
        (main, op::MULTI, ""),
        (main, op::MULTI, ""),
        (doomed, op::CLOSE_SESSION, ""),
    ];
    // The client may use create (1) where we expect create2; compare kinds loosely there.
    let got: Vec<(i64, i32, &str)> = ops
        .iter()
        .map(|(s, ty, op)| {
            (
                *s,
                if *ty == op::CREATE { op::CREATE2 } else { *ty },
                path_of(op),
            )
        })
        .collect();
    let shown = summary.join("\n");
    assert_eq!(
        &got[..want.len().min(got.len())],
        &want[..],
        "decoded log:\n{shown}"
    );
    // Then only session txns, whose order depends on when the clients' closes arrive: the
    // main client's close and the reading client's createSession (and maybe its close).
    let rest = &got[want.len()..];
    let is_session_txn = |ty: i32| ty == op::CREATE_SESSION || ty == op::CLOSE_SESSION;
    assert!(
        rest.iter().all(|t| is_session_txn(t.1)),
        "decoded log:\n{shown}"
    );
    let creates = rest.iter().filter(|t| t.1 == op::CREATE_SESSION).count();
    assert_eq!(creates, 1, "decoded log:\n{shown}");
    check_log_details(&ops, doomed);
}

fn check_log_details(ops: &[(i64, i32, TxnOp)], doomed: i64) {
    let op_at = |i: usize| &ops[i].2;
    assert!(matches!(op_at(0), TxnOp::CreateSession { timeout_ms } if *timeout_ms > 0));
    // /t/seq-0000000000: the parent's persisted cversion after its first child's create is 1.
    assert!(matches!(
        op_at(3),
        TxnOp::Create {
            parent_cversion: 1,
            ephemeral_owner: 0,
            ..
        }
    ));
    assert!(matches!(
        op_at(4),
        TxnOp::Create { kind: CreateKind::Container, ephemeral_owner, .. } if *ephemeral_owner == i64::MIN
    ));
    let ttl_owner = (0xffi64 << 56) | TTL.as_millis() as i64;
    assert!(matches!(
        op_at(6),
        TxnOp::Create { kind: CreateKind::Ttl, ephemeral_owner, data: Some(d), .. }
            if *ephemeral_owner == ttl_owner && &d[..] == b"ttl"
    ));
    assert!(
        matches!(op_at(7), TxnOp::Create { ephemeral_owner, .. } if *ephemeral_owner == doomed)
    );
    assert!(
        matches!(op_at(9), TxnOp::SetData { version: 1, data: Some(d), .. } if &d[..] == b"top2")
    );
    assert!(
        matches!(op_at(11), TxnOp::SetAcl { version: 1, acl, .. } if acl.len() == 1 && acl[0].id.scheme == "ip")
    );
    assert_eq!(op_at(14), &TxnOp::Error(ErrorCode::NodeExists));
    let TxnOp::Multi(sub) = op_at(15) else {
        panic!("a successful multi: {:?}", op_at(15));
    };
    let kinds: Vec<&str> = sub
        .iter()
        .map(|o| match o {
            TxnOp::Create { .. } => "create",
            TxnOp::SetData { version: 1, .. } => "setData",
            TxnOp::Check { version: 1, .. } => "check",
            TxnOp::Delete { .. } => "delete",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["create", "setData", "check", "delete"]);
    assert_eq!(
        op_at(16),
        &TxnOp::MultiError(vec![
            ErrorCode::Ok,
            ErrorCode::BadVersion,
            ErrorCode::RuntimeInconsistency
        ])
    );
}

/// The closeSession record lists the session's ephemerals (any order).
fn check_close_session(txns: &[ZkTxn], doomed: i64) {
    let close = txns
        .iter()
        .find(|t| t.header.session_id == doomed && t.record.txn_type() == op::CLOSE_SESSION)
        .expect("closeSession of the doomed session");
    let ZkRecord::CloseSession { paths: Some(paths) } = &close.record else {
        panic!("closeSession without its paths: {close:?}");
    };
    let mut paths = paths.clone();
    paths.sort();
    assert_eq!(paths, ["/t/e", "/t/es-0000000004"]);
    // The failed multi keeps the real record of its first op, as Java's leader writes it.
    let failed = txns
        .iter()
        .filter(|t| t.record.txn_type() == op::MULTI)
        .nth(1)
        .expect("the failed multi");
    let ZkRecord::Multi(sub) = &failed.record else {
        unreachable!()
    };
    assert!(matches!(sub[0], ZkRecord::Create { .. }), "{sub:?}");
    assert_eq!(sub[1], ZkRecord::Error(ErrorCode::BadVersion.code()));
    assert!(
        txns.iter().any(|t| t.digest.is_some()),
        "digests are on by default"
    );
}

fn raw_perms(p: zk::Permission) -> i32 {
    let bits = [
        (zk::Permission::READ, 1),
        (zk::Permission::WRITE, 2),
        (zk::Permission::CREATE, 4),
        (zk::Permission::DELETE, 8),
        (zk::Permission::ADMIN, 16),
    ];
    bits.iter().filter(|(b, _)| p.has(*b)).map(|(_, v)| v).sum()
}

/// Loads the newest snapshot in small chunks and compares it with the client's view.
fn check_snapshot(data_dir: &Path, seen: &BTreeMap<String, Seen>) {
    let newest = data_files(data_dir, "snapshot")
        .pop()
        .expect("a snapshot file");
    let bytes = fs::read(&newest).expect("read snapshot");
    let mut load = SnapLoad::new(SnapFraming::File);
    for chunk in bytes.chunks(997) {
        load.push(chunk).expect("snapshot decodes");
    }
    let loaded = load.finish().expect("complete snapshot");
    assert!(loaded.trailer.digest.is_some(), "3.8 seals its digest");
    let tree = loaded.tree;
    tree.assert_invariants();
    let mut loaded_paths: Vec<&str> = tree.iter().map(|(p, _)| p).collect();
    loaded_paths.sort_unstable();
    let seen_paths: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(loaded_paths, seen_paths);
    for (node_path, want) in seen {
        let node = tree.get(node_path).expect("listed above");
        assert_eq!(
            client_stat(&node.client_stat()),
            want.stat,
            "stat of {node_path}"
        );
        assert_eq!(
            node.data.as_deref().unwrap_or_default(),
            &want.data[..],
            "{node_path}"
        );
        let acl: Vec<(i32, &str, &str)> = node
            .acl
            .iter()
            .map(|a| (a.perms, a.id.scheme.as_str(), a.id.id.as_str()))
            .collect();
        let want_acl: Vec<(i32, &str, &str)> = want
            .acl
            .iter()
            .map(|a| (raw_perms(a.permission()), a.scheme(), a.id()))
            .collect();
        assert_eq!(acl, want_acl, "acl of {node_path}");
    }
}

#[test]
fn apache_txn_logs_and_snapshots_decode_with_our_codecs() {
    let dir = ScratchDir::new("zabtxn");
    let data_dir = dir.0.join("data");
    let port = free_port();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut apache = JavaServer::start(&dir.0, port, 1);
    let (sessions, seen) = runtime.block_on(async {
        tokio::time::timeout(STEP_TIMEOUT * 2, async {
            let sessions = write_everything(port).await;
            (sessions, read_tree(port).await)
        })
        .await
        .expect("writes within the time bound")
    });
    apache.stop();
    drop(apache);

    let txns = decode_log(&data_dir);
    check_log(&txns, &sessions);
    check_close_session(&txns, sessions.doomed);

    // The restarted server snapshots what it loaded; the sessions left over are expired later.
    let mut apache = JavaServer::start(&dir.0, port, 2);
    apache.stop();
    check_snapshot(&data_dir, &seen);
}
