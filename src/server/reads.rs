//! Requests a shard answers on its own, from the tree version it last adopted:
//! reads, watch registration, auth, ping. No lock and no cross-core hop: the
//! version is an immutable snapshot owned by this thread.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{info, warn};

use super::conn::Conn;
use super::shard::Shard;
use super::stats;
use crate::limits;
use crate::proto::response::{
    encode_children, encode_error, encode_reply, encode_reply_with_body, encode_watch_event,
    MultiResult, ReplyHeader, Response,
};
use crate::proto::{
    add_watch_mode, keeper_state, perms, watcher_type, xid, Acl, ErrorCode, EventType, Id, Request,
};
use crate::tree::acl::{check_acl, java_host_address, SCHEME_DIGEST, SCHEME_IP};
use crate::tree::{DataTree, Node};
use crate::watch::WatchKind;

pub enum LocalOutcome {
    Continue,
    CloseAfterFlush,
}

/// Runs one local request and encodes its reply into the connection's send buffer.
pub fn execute_local(
    shard: &Shard,
    conn: &Rc<Conn>,
    xid: i32,
    op_code: i32,
    body: &Bytes,
) -> LocalOutcome {
    let version = shard.version.borrow();
    let zxid = version.last_zxid();
    let mut queue = conn.send_buf.borrow_mut();
    // Large replies reserve their exact size as they are encoded.
    let out = queue.buf_for(limits::SMALL_REPLY_BYTES_HINT);
    if conn.read_only.get() && crate::proto::op::is_write(op_code) {
        // `ReadOnlyRequestProcessor`: a write on a read-only server gets the
        // header alone, with the last zxid.
        encode_error(out, xid, zxid, ErrorCode::NotReadOnly);
        return LocalOutcome::Continue;
    }
    let request = match Request::decode(op_code, body) {
        Ok(r) => r,
        Err(crate::proto::jute::DecodeError::UnknownOpcode(_)) => {
            // ZooKeeper's UnimplementedRequestProcessor answers with the
            // request's zxid, which is unset (-1), and drops the client.
            warn!(
                "connection {}: unknown request op {op_code}; closing",
                conn.peer
            );
            encode_error(out, xid, -1, ErrorCode::Unimplemented);
            return LocalOutcome::CloseAfterFlush;
        }
        Err(e) => {
            // FinalRequestProcessor answers MARSHALLINGERROR and keeps the
            // connection (the frame itself was well formed).
            info!(
                "connection {}: undecodable request op {op_code}: {e}",
                conn.peer
            );
            encode_error(out, xid, zxid, ErrorCode::MarshallingError);
            return LocalOutcome::Continue;
        }
    };
    let ctx = Ctx {
        shard,
        conn,
        version: &version,
        xid,
        zxid,
    };
    let result = match request {
        Request::Auth { scheme, auth, .. } => return ctx.auth(out, scheme, auth),
        Request::Sasl { .. } => {
            // Without SASL configured ZooKeeper's processSasl fails to find a
            // SASL server and still answers OK with a null token, zxid 0.
            info!("connection {}: SASL is not configured", conn.peer);
            let header = ReplyHeader {
                xid,
                zxid: 0,
                err: 0,
            };
            encode_reply(out, &header, &Response::SaslToken(None));
            return LocalOutcome::Continue;
        }
        other => ctx.read(out, other),
    };
    if let Err(code) = result {
        encode_error(out, xid, zxid, code);
    }
    LocalOutcome::Continue
}

struct Ctx<'a> {
    shard: &'a Shard,
    conn: &'a Rc<Conn>,
    version: &'a DataTree,
    xid: i32,
    zxid: i64,
}

type Reply = Result<(), ErrorCode>;

impl Ctx<'_> {
    fn header(&self) -> ReplyHeader {
        ReplyHeader {
            xid: self.xid,
            zxid: self.zxid,
            err: 0,
        }
    }

    fn reply(&self, out: &mut Vec<u8>, body: &Response<'_>) -> Reply {
        encode_reply(out, &self.header(), body);
        Ok(())
    }

    /// Reads look the path up as given: ZooKeeper validates paths of writes
    /// only, so a malformed path on a read is simply NoNode.
    fn node(&self, path: &str) -> Result<&Node, ErrorCode> {
        self.version.get(path).ok_or(ErrorCode::NoNode)
    }

    fn require(&self, node: &Node, perm: i32) -> Reply {
        if check_acl(&node.acl, perm, &self.conn.auth.borrow()) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// Registers a watch, within the per-connection bound: a connection that
    /// would exceed it gets this reply and is then closed (watches are memory
    /// a client could otherwise grow without limit).
    fn watch(&self, kind: WatchKind, path: &str) {
        let max = self.shard.cfg.watches_per_connection_max;
        let mut watches = self.shard.watches.borrow_mut();
        if watches.count_of(self.conn.id) >= max {
            drop(watches);
            warn!(
                "connection {} exceeds {max} watches (ferrokeeper.maxWatchesPerConnection); closing",
                self.conn.peer
            );
            self.conn.close_after_flush();
            return;
        }
        watches.add(kind, path, self.conn.id);
        drop(watches);
        self.shard.publish_watch_count();
    }

    fn read(&self, out: &mut Vec<u8>, request: Request<'_>) -> Reply {
        match request {
            Request::Ping => {
                let header = ReplyHeader {
                    xid: xid::PING,
                    zxid: self.zxid,
                    err: 0,
                };
                encode_reply(out, &header, &Response::Empty);
                Ok(())
            }
            Request::Exists { path, watch } => self.exists(out, path, watch),
            Request::GetData { path, watch } => {
                let node = self.node(path)?;
                self.require(node, perms::READ)?;
                if watch {
                    self.watch(WatchKind::Data, path);
                }
                self.reply(
                    out,
                    &Response::Data(node.data.as_deref(), node.client_stat()),
                )
            }
            Request::GetChildren { path, watch } => self.children(out, path, watch, false),
            Request::GetChildren2 { path, watch } => self.children(out, path, watch, true),
            Request::GetAcl { path } => self.get_acl(out, path),
            Request::GetEphemerals { prefix } => {
                let paths = self
                    .version
                    .ephemerals_of(self.conn.session_id.get(), prefix);
                self.reply(
                    out,
                    &Response::Strings(paths.iter().map(String::as_str).collect()),
                )
            }
            Request::GetAllChildrenNumber { path } => {
                let node = self.node(path)?;
                self.require(node, perms::READ)?;
                let count = self.version.all_children_number(path).unwrap_or(0);
                self.reply(out, &Response::Count(count as i32))
            }
            Request::MultiRead(ops) => self.multi_read(out, &ops),
            Request::WhoAmI => {
                let auth = self.conn.auth.borrow();
                let ids = auth
                    .ids
                    .iter()
                    .map(|id| (id.scheme.as_str(), user_name(id)))
                    .collect();
                self.reply(out, &Response::WhoAmI(ids))
            }
            Request::SetWatches {
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                persistent_recursive,
            } => self.set_watches(
                out,
                relative_zxid,
                [&data, &exist, &child, &persistent, &persistent_recursive],
            ),
            // ZooKeeper validates none of the watch requests' paths; an unknown
            // mode or watcher type is an exception in the record's decoding
            // (WatcherMode.fromZooDef, WatcherType.fromInt): MARSHALLINGERROR.
            Request::AddWatch { path, mode } => {
                let kind = match mode {
                    add_watch_mode::PERSISTENT => WatchKind::Persistent,
                    add_watch_mode::PERSISTENT_RECURSIVE => WatchKind::Recursive,
                    _ => return Err(ErrorCode::MarshallingError),
                };
                self.watch(kind, path);
                // ZooKeeper answers addWatch with an ErrorResponse(0) body
                // (FinalRequestProcessor); the Java client reads it and drops
                // the connection at end of stream without it.
                self.reply(out, &Response::ErrorResponse(0))
            }
            Request::RemoveWatches { path, watcher_type } => {
                known_watcher_type(watcher_type)?;
                let removed =
                    self.shard
                        .watches
                        .borrow_mut()
                        .remove(path, watcher_type, self.conn.id);
                self.shard.publish_watch_count();
                if removed {
                    self.reply(out, &Response::Empty)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            Request::CheckWatches { path, watcher_type } => {
                known_watcher_type(watcher_type)?;
                if self
                    .shard
                    .watches
                    .borrow()
                    .check(path, watcher_type, self.conn.id)
                {
                    self.reply(out, &Response::Empty)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            // Writes never reach here (the connection routes them to the pipeline).
            other => {
                warn!("op {} routed to the shard by mistake", other.op());
                Err(ErrorCode::Unimplemented)
            }
        }
    }

    /// getACL needs READ or ADMIN; without ADMIN, digest ids are shown as
    /// `user:x` so password hashes do not leak (as ZooKeeper does).
    fn get_acl(&self, out: &mut Vec<u8>, path: &str) -> Reply {
        let node = self.node(path)?;
        self.require(node, perms::READ | perms::ADMIN)?;
        let stat = node.client_stat();
        if check_acl(&node.acl, perms::ADMIN, &self.conn.auth.borrow()) {
            return self.reply(out, &Response::Acl(&node.acl, stat));
        }
        let redacted: Vec<Acl> = node.acl.iter().map(redact_digest).collect();
        self.reply(out, &Response::Acl(&redacted, stat))
    }

    fn exists(&self, out: &mut Vec<u8>, path: &str, watch: bool) -> Reply {
        // The one read whose path ZooKeeper checks (FinalRequestProcessor).
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        match self.version.get(path) {
            Some(node) => {
                // ZooKeeper 3.9.2+ checks READ on exists.
                self.require(node, perms::READ)?;
                if watch {
                    self.watch(WatchKind::Data, path);
                }
                self.reply(out, &Response::Stat(node.client_stat()))
            }
            None => {
                // exists on a missing node still leaves a watch for its creation.
                if watch {
                    self.watch(WatchKind::Data, path);
                }
                Err(ErrorCode::NoNode)
            }
        }
    }

    fn children(&self, out: &mut Vec<u8>, path: &str, watch: bool, with_stat: bool) -> Reply {
        let node = self.node(path)?;
        self.require(node, perms::READ)?;
        if watch {
            self.watch(WatchKind::Child, path);
        }
        let names = node.children.names();
        let stat = node.client_stat();
        let stat = with_stat.then_some(&stat);
        encode_children(out, &self.header(), names, stat);
        Ok(())
    }

    /// A multiRead repeats reads in one request, so a small request could ask
    /// for a reply of gigabytes: past `MULTI_READ_REPLY_BYTES_MAX` the
    /// connection is closed instead of the reply being built.
    fn multi_read(&self, out: &mut Vec<u8>, ops: &[Request<'_>]) -> Reply {
        // ZooKeeper answers the reads up to the first op that is not one, then
        // fails the request with MARSHALLINGERROR, keeping those results in
        // the reply's body (FinalRequestProcessor builds the response first).
        let reads = ops
            .iter()
            .take_while(|req| matches!(req, Request::GetData { .. } | Request::GetChildren { .. }))
            .count();
        let results: Vec<MultiResult<'_>> = ops[..reads]
            .iter()
            .map(|req| self.multi_read_one(req))
            .collect();
        let reply_bytes: usize = results.iter().map(multi_result_bytes).sum();
        if reply_bytes > limits::MULTI_READ_REPLY_BYTES_MAX {
            warn!(
                "connection {}: multiRead reply of ~{reply_bytes} bytes exceeds {}; closing",
                self.conn.peer,
                limits::MULTI_READ_REPLY_BYTES_MAX
            );
            self.conn.close_now();
            return Ok(());
        }
        if reads < ops.len() {
            let header = ReplyHeader {
                err: ErrorCode::MarshallingError.code(),
                ..self.header()
            };
            encode_reply_with_body(out, &header, &Response::Multi(results));
            return Ok(());
        }
        self.reply(out, &Response::Multi(results))
    }

    fn multi_read_one<'v>(&'v self, req: &Request<'_>) -> MultiResult<'v> {
        let result = match req {
            Request::GetData { path, .. } => self.node(path).and_then(|node| {
                self.require(node, perms::READ)?;
                Ok(MultiResult::GetData {
                    data: node.data.as_deref(),
                    stat: node.client_stat(),
                })
            }),
            Request::GetChildren { path, .. } => self.node(path).and_then(|node| {
                self.require(node, perms::READ)?;
                Ok(MultiResult::GetChildren {
                    children: node.children.names().collect(),
                })
            }),
            _ => Err(ErrorCode::Unimplemented),
        };
        result.unwrap_or_else(|err| MultiResult::Error { err })
    }

    /// setWatches(2) on reconnect: fire what the client missed since
    /// `relative_zxid`, re-register the rest (ZooKeeper's DataTree.setWatches).
    fn set_watches(&self, out: &mut Vec<u8>, relative_zxid: i64, lists: [&Vec<&str>; 5]) -> Reply {
        let [data, exist, child, persistent, recursive] = lists;
        // The send buffer is `out` (already borrowed): events go straight into it,
        // ahead of the reply. As in ZooKeeper's DataTree.setWatches, they carry
        // no zxid (-1) and no READ check (the client watched the path before).
        let mut fire = |event: EventType, path: &str| {
            encode_watch_event(out, NO_ZXID, event, keeper_state::SYNC_CONNECTED, path);
            stats::add(&self.conn.info.sent, 1);
        };
        for &path in data {
            match self.version.get(path) {
                None => fire(EventType::NodeDeleted, path),
                Some(n) if n.stat.mzxid > relative_zxid => fire(EventType::NodeDataChanged, path),
                Some(_) => self.watch(WatchKind::Data, path),
            }
        }
        for &path in exist {
            match self.version.get(path) {
                Some(_) => fire(EventType::NodeCreated, path),
                None => self.watch(WatchKind::Data, path),
            }
        }
        for &path in child {
            match self.version.get(path) {
                None => fire(EventType::NodeDeleted, path),
                Some(n) if n.stat.pzxid > relative_zxid => {
                    fire(EventType::NodeChildrenChanged, path)
                }
                Some(_) => self.watch(WatchKind::Child, path),
            }
        }
        for &path in persistent {
            self.watch(WatchKind::Persistent, path);
        }
        for &path in recursive {
            self.watch(WatchKind::Recursive, path);
        }
        // Replies echo the request's xid (the Java client uses -8 here).
        self.reply(out, &Response::Empty)
    }

    /// addauth: digest is the only scheme a client can authenticate with here;
    /// anything else is AUTHFAILED and the connection closes (as in ZooKeeper).
    fn auth(&self, out: &mut Vec<u8>, scheme: &str, auth: &[u8]) -> LocalOutcome {
        // ZooKeeper answers auth with the request's own xid (the Java client uses -4).
        let header = |err: ErrorCode| ReplyHeader {
            xid: self.xid,
            zxid: 0,
            err: err.code(),
        };
        match scheme {
            // ZooKeeper always registers its ip provider: it authenticates
            // the peer's address, which the connection has as an id already.
            SCHEME_IP => {
                let mut info = (**self.conn.auth.borrow()).clone();
                info.add_id(Id::new(SCHEME_IP, &java_host_address(self.conn.peer.ip())));
                *self.conn.auth.borrow_mut() = Arc::new(info);
                encode_reply(out, &header(ErrorCode::Ok), &Response::Empty);
                LocalOutcome::Continue
            }
            // ZooKeeper's digest provider accepts any credentials: they only
            // decide which digest id the session gets.
            SCHEME_DIGEST => {
                // Each distinct credential adds an id that every ACL check
                // scans: bounded, like everything a client can grow.
                if self.conn.auth.borrow().ids.len() >= limits::AUTH_IDS_PER_CONNECTION_MAX {
                    warn!(
                        "connection {}: more than {} auth ids; refusing addauth and closing",
                        self.conn.peer,
                        limits::AUTH_IDS_PER_CONNECTION_MAX
                    );
                    encode_reply(out, &header(ErrorCode::AuthFailed), &Response::Empty);
                    return LocalOutcome::CloseAfterFlush;
                }
                let credentials = String::from_utf8_lossy(auth);
                let mut info = (**self.conn.auth.borrow()).clone();
                info.add_digest(&credentials, self.shard.cfg.super_digest.as_deref());
                *self.conn.auth.borrow_mut() = Arc::new(info);
                encode_reply(out, &header(ErrorCode::Ok), &Response::Empty);
                LocalOutcome::Continue
            }
            _ => {
                warn!(
                    "connection {}: authentication failed for scheme '{scheme}'",
                    self.conn.peer
                );
                encode_reply(out, &header(ErrorCode::AuthFailed), &Response::Empty);
                LocalOutcome::CloseAfterFlush
            }
        }
    }
}

/// A watch event that no txn caused (setWatches) carries this zxid.
const NO_ZXID: i64 = -1;

fn known_watcher_type(watcher_type: i32) -> Result<(), ErrorCode> {
    if (watcher_type::CHILDREN..=watcher_type::PERSISTENT_RECURSIVE).contains(&watcher_type) {
        Ok(())
    } else {
        Err(ErrorCode::MarshallingError)
    }
}

/// The user part of an id, as whoAmI reports it (digest `user:hash` -> `user`).
fn user_name(id: &Id) -> &str {
    if id.scheme == SCHEME_DIGEST {
        id.id.split(':').next().unwrap_or(&id.id)
    } else {
        &id.id
    }
}

fn redact_digest(acl: &Acl) -> Acl {
    if acl.id.scheme != SCHEME_DIGEST {
        return acl.clone();
    }
    let user = acl.id.id.split(':').next().unwrap_or_default();
    Acl {
        perms: acl.perms,
        id: Id::new(SCHEME_DIGEST, &format!("{user}:x")),
    }
}

/// An upper estimate of one multiRead result's encoded size (op header,
/// error code, stat and length prefixes rounded up to 128 bytes).
fn multi_result_bytes(result: &MultiResult<'_>) -> usize {
    const FIXED_BYTES: usize = 128;
    FIXED_BYTES
        + match result {
            MultiResult::GetData { data, .. } => data.map_or(0, <[u8]>::len),
            MultiResult::GetChildren { children } => children.iter().map(|c| c.len() + 4).sum(),
            _ => 0,
        }
}
