//! ZooKeeper 3.9's `snapshot`/`snap` (GET) and `restore`/`rest` (POST),
//! with its rules in its order (`Commands.runCommand`, `SnapshotCommand`,
//! `RestoreCommand`): not serving (200 with the error), no or a bad
//! `Authorization` (401), not ALL on "/" (403), the command turned off
//! (503), `serializeLastProcessedZxid.enabled` off (500), for `restore` a
//! body without a Content-Length (411) or over `RESTORE_BODY_BYTES_MAX`
//! (413), both ours: Jetty hands ZooKeeper any body), over the rate (429),
//! then the work (500 if it fails, the reason logged).
//!
//! `snapshot` writes a snapshot into the data dir now (our format) and
//! streams the same state as a ZooKeeper snapshot file, with the
//! `last_zxid` and `snapshot_size` headers (`?streaming=false`: the headers
//! and the JSON reply only). Its length is computed from the tree, then it
//! is encoded into the socket chunk by chunk, so it is never in memory
//! whole. `restore` reads a ZooKeeper snapshot file (any version-2
//! writer's: its seals are checked, its digest compared) as the request
//! body and makes it the database (see `server::pipeline::admin`).

use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::auth;
use super::rate::RateLimiter;
use super::{AdminSources, JSON_CONTENT_TYPE};
use crate::http::{self, Reply, Request};
use crate::limits::admin::{JOB_ANSWER_TIMEOUT, RESTORE_BODY_BYTES_MAX, SNAPSHOT_CHUNK_BYTES};
use crate::replica::status::Mode;
use crate::server::admin_jobs::{answer_channel, AdminJob};
use crate::tree::digest::DIGEST_VERSION;
use crate::zab::snap_wire::encode::SnapEncoder;
use crate::zab::snap_wire::load::{LoadedSnap, SnapLoad};
use crate::zab::snap_wire::SnapFraming;

/// The two commands' limiters, made when the AdminServer starts.
pub struct Limiters {
    snapshot: RateLimiter,
    restore: RateLimiter,
}

impl Limiters {
    /// One of each per `admin.rateLimiterIntervalInMS`; `snapshot` reads
    /// the interval as microseconds, as ZooKeeper 3.9's does.
    pub fn new(interval_ms: u64) -> Limiters {
        Limiters {
            snapshot: RateLimiter::new(1, Duration::from_micros(interval_ms)),
            restore: RateLimiter::new(1, Duration::from_millis(interval_ms)),
        }
    }
}

pub const SNAPSHOT: &[&str] = &["snapshot", "snap"];
pub const RESTORE: &[&str] = &["restore", "rest"];

/// A JSON reply `{command, error, ...}` with a status.
fn json_reply(code: u16, command: &str, error: Option<&str>, extra: Map<String, Value>) -> Reply {
    let mut body = Map::new();
    body.insert("command".into(), json!(command));
    body.insert("error".into(), json!(error));
    body.extend(extra);
    let mut text = serde_json::to_string_pretty(&Value::Object(body)).unwrap_or_default();
    text.push('\n');
    http::reply(code, reason(code), JSON_CONTENT_TYPE, text.as_bytes(), true).into()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// What every guarded command checks before its own rules: a serving
/// server, then the caller's identity and its ALL on "/". `asked` is the
/// name in the URL, which ZooKeeper's refusals carry.
fn guard(req: &Request, asked: &str, src: &AdminSources) -> Result<(), Reply> {
    if src.stats.replica.mode() == Mode::Looking {
        let error = "This ZooKeeper instance is not currently serving requests";
        return Err(json_reply(200, asked, Some(error), Map::new()));
    }
    let header = req.header("Authorization");
    let super_digest = src.cfg.super_digest.as_deref();
    let auth = match auth::identity(header, req.peer.ip(), super_digest) {
        Ok(auth) => auth,
        Err(e) => {
            warn!("admin {asked}: {} (from {})", e.message(), req.peer);
            return Err(json_reply(401, asked, Some(e.message()), Map::new()));
        }
    };
    let (reply, answer) = answer_channel();
    match ask(src, AdminJob::Authorize { auth, reply }, answer) {
        Ok(true) => Ok(()),
        Ok(false) => {
            warn!("admin {asked}: not authorized (from {})", req.peer);
            Err(json_reply(403, asked, Some("Not authorized"), Map::new()))
        }
        Err(e) => {
            warn!("admin {asked}: error during auth: {e}");
            let error = "Error occurred during auth";
            Err(json_reply(500, asked, Some(error), Map::new()))
        }
    }
}

/// Posts a job to the pipeline and waits for its answer.
fn ask<T>(src: &AdminSources, job: AdminJob, answer: Receiver<T>) -> Result<T, String> {
    src.gather
        .jobs
        .post(job)
        .map_err(|_| "too many admin jobs waiting for the pipeline".to_string())?;
    answer
        .recv_timeout(JOB_ANSWER_TIMEOUT)
        .map_err(|e| match e {
            RecvTimeoutError::Timeout => {
                format!("no answer from the pipeline in {JOB_ANSWER_TIMEOUT:?}")
            }
            RecvTimeoutError::Disconnected => "the pipeline dropped the job".to_string(),
        })
}

/// After the guard: the command turned off, or the zxid not serialized.
fn switched_on(command: &str, enabled: bool, src: &AdminSources) -> Result<(), Reply> {
    if !enabled {
        warn!("admin: the {command} command is disabled");
        return Err(json_reply(503, command, None, Map::new()));
    }
    if !src.cfg.admin.serialize_last_processed_zxid {
        warn!("admin: {command} requires serializeLastProcessedZxid.enabled=true");
        return Err(json_reply(500, command, None, Map::new()));
    }
    Ok(())
}

fn within_rate(command: &str, limiter: &RateLimiter) -> Result<(), Reply> {
    if !limiter.allow() {
        warn!("admin: {command} request was rate limited");
        return Err(json_reply(429, command, None, Map::new()));
    }
    Ok(())
}

/// `GET /commands/snapshot[?streaming=false]` (HEAD: the headers only).
pub fn snapshot(req: &mut Request, asked: &str, src: &AdminSources, limits: &Limiters) -> Reply {
    let command = SNAPSHOT[0];
    if let Err(refused) = guard(req, asked, src) {
        return refused;
    }
    let checks = switched_on(command, src.cfg.admin.snapshot_enabled, src)
        .and_then(|()| within_rate(command, &limits.snapshot));
    if let Err(refused) = checks {
        return refused;
    }
    let streaming = query_param(req.query, "streaming").is_none_or(|v| java_bool(&v));
    let (reply, answer) = answer_channel();
    let taken = match ask(src, AdminJob::Snapshot { reply }, answer).and_then(|r| r) {
        Ok(taken) => taken,
        Err(e) => {
            warn!("admin: taking the snapshot failed: {e}");
            return json_reply(500, command, None, Map::new());
        }
    };
    let zxid = taken.tree.last_zxid();
    let mut encoder = SnapEncoder::file(taken.tree, taken.sessions);
    let size = encoder.stream_len();
    info!("admin: snapshot at 0x{zxid:x}, {size} bytes in ZooKeeper's format");
    let headers = format!("last_zxid: 0x{zxid:x}\r\nsnapshot_size: {size}\r\n");
    if req.method == "HEAD" {
        return head_only(with_headers(
            json_reply(200, command, None, Map::new()),
            &headers,
        ));
    }
    if !streaming {
        return with_headers(json_reply(200, command, None, Map::new()), &headers);
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{headers}\
         Content-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    Reply::Stream {
        head: head.into_bytes(),
        next: Box::new(move |chunk| encoder.fill(chunk, SNAPSHOT_CHUNK_BYTES)),
    }
}

/// Adds header lines to a whole reply, after its status line.
fn with_headers(reply: Reply, headers: &str) -> Reply {
    let Reply::Whole(bytes) = reply else {
        return reply;
    };
    let at = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(bytes.len(), |p| p + 2);
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(headers.as_bytes());
    out.extend_from_slice(&bytes[at..]);
    Reply::Whole(out)
}

/// A whole reply without its body (HEAD), its Content-Length kept.
fn head_only(reply: Reply) -> Reply {
    let Reply::Whole(mut bytes) = reply else {
        return reply;
    };
    if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        bytes.truncate(end + 4);
    }
    Reply::Whole(bytes)
}

/// `POST /commands/restore` with a snapshot file as the body.
pub fn restore(req: &mut Request, asked: &str, src: &AdminSources, limits: &Limiters) -> Reply {
    let command = RESTORE[0];
    if let Err(refused) = guard(req, asked, src) {
        return refused;
    }
    if let Err(refused) = switched_on(command, src.cfg.admin.restore_enabled, src) {
        return refused;
    }
    let length = match req.body.declared_len() {
        None => return http::status_only(411, reason(411)).into(),
        Some(len) if len > RESTORE_BODY_BYTES_MAX => {
            warn!("admin: restore body of {len} bytes is over {RESTORE_BODY_BYTES_MAX}");
            return http::status_only(413, reason(413)).into();
        }
        Some(len) => len,
    };
    if let Err(refused) = within_rate(command, &limits.restore) {
        return refused;
    }
    info!(
        "admin: restoring from a {length}-byte snapshot sent by {}",
        req.peer
    );
    let snap = match read_snapshot(&mut req.body) {
        Ok(snap) => snap,
        Err(e) => {
            warn!("admin: the restore's snapshot is unusable: {e}");
            return json_reply(500, command, None, Map::new());
        }
    };
    check_digest(&snap);
    let (reply, answer) = answer_channel();
    let job = AdminJob::Restore {
        snap: Box::new(snap),
        reply,
    };
    match ask(src, job, answer).and_then(|r| r) {
        Ok(zxid) => {
            let mut extra = Map::new();
            extra.insert("last_zxid".into(), json!(zxid));
            json_reply(200, command, None, extra)
        }
        Err(e) => {
            warn!("admin: restore failed: {e}");
            json_reply(500, command, None, Map::new())
        }
    }
}

/// The body, parsed record by record as it arrives (never whole in memory
/// besides the tree it builds).
fn read_snapshot(body: &mut impl Read) -> Result<LoadedSnap, String> {
    let mut load = SnapLoad::new(SnapFraming::File);
    let mut chunk = vec![0u8; SNAPSHOT_CHUNK_BYTES];
    loop {
        let n = body
            .read(&mut chunk)
            .map_err(|e| format!("reading the body: {e}"))?;
        if n == 0 {
            break;
        }
        load.push(&chunk[..n]).map_err(|e| e.to_string())?;
    }
    let snap = load.finish().map_err(|e| e.to_string())?;
    if snap.trailer.last_processed_zxid.is_none() {
        // 3.9 reads an older file's missing section as zxid 0; so does this.
        warn!("admin: the snapshot has no last processed zxid (written before 3.9)");
    }
    Ok(snap)
}

/// ZooKeeper's `compareSnapshotDigests`: a digest taken at the snapshot's
/// zxid must match the tree's; a mismatch is logged, not refused.
fn check_digest(snap: &LoadedSnap) {
    let zxid = snap.trailer.last_processed_zxid.unwrap_or(0);
    let Some(sealed) = snap.trailer.digest else {
        return;
    };
    if sealed.zxid != zxid || sealed.zxid <= 0 || sealed.version != DIGEST_VERSION {
        return;
    }
    if sealed.digest != snap.tree.digest() {
        warn!(
            "admin: the restored tree's digest {} is not the snapshot's {} at 0x{zxid:x}",
            snap.tree.digest(),
            sealed.digest
        );
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| http::percent_decode(k) == name)
        .map(|(_, v)| http::percent_decode(v))
}

/// `Boolean.parseBoolean`: "true" in any case; anything else is false.
fn java_bool(text: &str) -> bool {
    text.eq_ignore_ascii_case("true")
}
