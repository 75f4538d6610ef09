//! A fault-tolerant client for the ensemble tests: raw protocol on a std socket with
//! short timeouts, so a dead or silent server costs a bounded wait and the test moves to
//! the next one. It records which writes were acknowledged, which is what the fault
//! tests check afterwards: every acknowledged write is on every server.

#![allow(dead_code)]

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::ensemble::Ensemble;
use super::raw::{
    create_body, parse_connect_response, path_body, path_watch, read_frame, request_frame, Acl,
    ConnectRequest, Dec, Reply,
};

/// A write or read that waits longer than this is abandoned (the server is dead or cut off).
const IO_TIMEOUT: Duration = Duration::from_secs(3);
const SESSION_TIMEOUT_MS: i32 = 30_000;
const OP_CREATE: i32 = 1;
const OP_SYNC: i32 = 9;
const OP_GET_CHILDREN: i32 = 8;
const ERR_OK: i32 = 0;
const ERR_NODE_EXISTS: i32 = -110;

pub struct Client {
    stream: TcpStream,
    next_xid: i32,
    pub sid: usize,
}

impl Client {
    /// A new session on server `sid`; Err if it does not answer or refuses the session.
    pub fn connect(ens: &Ensemble, sid: usize) -> io::Result<Client> {
        let mut client = Client::connect_addr(ens.client_addr(sid))?;
        client.sid = sid;
        Ok(client)
    }

    /// A new session on the server at `addr`.
    pub fn connect_addr(addr: SocketAddr) -> io::Result<Client> {
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        stream.write_all(&ConnectRequest::new(SESSION_TIMEOUT_MS).encode())?;
        let resp = parse_connect_response(&read_frame(&mut stream)?);
        if resp.session_id == 0 {
            return Err(io::Error::other("session refused"));
        }
        Ok(Client {
            stream,
            next_xid: 1,
            sid: 0,
        })
    }

    /// One request; notifications are skipped.
    pub fn call(&mut self, op: i32, body: &[u8]) -> io::Result<Reply> {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.stream.write_all(&request_frame(xid, op, body))?;
        loop {
            let reply = Reply::parse(&read_frame(&mut self.stream)?);
            if reply.xid == xid {
                return Ok(reply);
            }
        }
    }

    /// Creates a persistent node; Ok(true) if it was created or exists (an earlier
    /// attempt whose reply was lost), Ok(false) for any other error code.
    pub fn create(&mut self, path: &str, data: &[u8]) -> io::Result<bool> {
        let reply = self.call(OP_CREATE, &create_body(path, data, &Acl::world_all(), 0))?;
        Ok(reply.err == ERR_OK || reply.err == ERR_NODE_EXISTS)
    }

    /// `sync` then `getChildren`: the children as of the leader's state at the sync.
    pub fn synced_children(&mut self, path: &str) -> io::Result<Vec<String>> {
        let reply = self.call(OP_SYNC, &path_body(path))?;
        if reply.err != ERR_OK {
            return Err(io::Error::other(format!("sync: error {}", reply.err)));
        }
        let reply = self.call(OP_GET_CHILDREN, &path_watch(path, false))?;
        if reply.err != ERR_OK {
            return Err(io::Error::other(format!(
                "getChildren: error {}",
                reply.err
            )));
        }
        let mut children = Dec::new(&reply.body).strings();
        children.sort();
        Ok(children)
    }
}

/// Writes `count` nodes `<parent>/<prefix>-<i>` in order through the servers `sids`
/// (round robin, moving on after any error), each until acknowledged or `within` is over;
/// returns the acknowledged paths' names. Panics if a write is never acknowledged.
pub fn write_acked(
    ens: &Ensemble,
    sids: &[usize],
    parent: &str,
    prefix: &str,
    count: usize,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut acked = Vec::with_capacity(count);
    let mut client: Option<Client> = None;
    let mut next = 0;
    for i in 0..count {
        let name = format!("{prefix}-{i:06}");
        let path = format!("{parent}/{name}");
        loop {
            assert!(
                Instant::now() < deadline,
                "write {path} not acknowledged within {within:?}\n{}",
                ens.report()
            );
            if client.is_none() {
                let sid = sids[next % sids.len()];
                next += 1;
                client = Client::connect(ens, sid).ok();
                continue;
            }
            match client.as_mut().expect("connected").create(&path, b"v") {
                Ok(true) => break,
                Ok(false) | Err(_) => client = None,
            }
        }
        acked.push(name);
    }
    acked
}

/// Writes `<parent>/<prefix>-<i>` through the servers at `addrs` (round robin, moving on
/// after any error) until `stop` is set, from a thread of its own while the test restarts
/// servers; returns the acknowledged names.
pub fn write_until(
    addrs: Vec<SocketAddr>,
    parent: String,
    prefix: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        use std::sync::atomic::Ordering;
        let mut acked = Vec::new();
        let mut client: Option<Client> = None;
        let (mut next, mut i) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            if client.is_none() {
                client = Client::connect_addr(addrs[next % addrs.len()]).ok();
                next += 1;
                if client.is_none() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                continue;
            }
            let name = format!("{prefix}-{i:06}");
            match client
                .as_mut()
                .expect("connected")
                .create(&format!("{parent}/{name}"), b"v")
            {
                Ok(true) => {
                    acked.push(name);
                    i += 1;
                }
                // Unknown outcome: retried under the same name (NODE_EXISTS counts).
                Ok(false) | Err(_) => client = None,
            }
        }
        acked
    })
}

/// Creates `path` through any of `sids` (the parent of the writes).
pub fn ensure_node(ens: &Ensemble, sids: &[usize], path: &str) {
    let written = write_acked_one(ens, sids, path, Duration::from_secs(30));
    assert!(written, "could not create {path}\n{}", ens.report());
}

fn write_acked_one(ens: &Ensemble, sids: &[usize], path: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for &sid in sids {
            if let Ok(mut c) = Client::connect(ens, sid) {
                if let Ok(true) = c.create(path, b"") {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits until every server in `sids` lists exactly the same children of `parent`,
/// holding every acknowledged name; returns that list.
pub fn assert_converged(
    ens: &Ensemble,
    sids: &[usize],
    parent: &str,
    acked: &[String],
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut last: Vec<(usize, Result<Vec<String>, String>)> = Vec::new();
    while Instant::now() < deadline {
        last = sids
            .iter()
            .map(|&sid| {
                let children = Client::connect(ens, sid)
                    .and_then(|mut c| c.synced_children(parent))
                    .map_err(|e| e.to_string());
                (sid, children)
            })
            .collect();
        let lists: Vec<&Vec<String>> = last.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
        if lists.len() == sids.len() && lists.windows(2).all(|w| w[0] == w[1]) {
            let all = lists[0];
            let missing: Vec<&String> = acked
                .iter()
                .filter(|a| all.binary_search(a).is_err())
                .collect();
            assert!(
                missing.is_empty(),
                "acknowledged writes lost: {missing:?}\n{}",
                ens.report()
            );
            return all.clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary: Vec<String> = last
        .iter()
        .map(|(sid, r)| match r {
            Ok(list) => format!("server {sid}: {} children", list.len()),
            Err(e) => format!("server {sid}: {e}"),
        })
        .collect();
    panic!(
        "servers did not converge within {within:?}: {summary:?}\n{}",
        ens.report()
    );
}
