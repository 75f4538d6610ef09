//! The client event loop: each thread drives many sessions over non-blocking
//! sockets (mio). Requests are pipelined per session (`--outstanding` lanes)
//! and everything a loop iteration produced for a session goes out in one
//! write. Replies are matched to requests by xid.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokeeper::proto::{
    add_watch_mode, decode_watch_event, encode_request_frame, frame_len, xid, ConnectRequest,
    ConnectResponse, EventType, ReplyHeader, Request,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::rng::Rng;
use crate::stats::{Interval, ThreadStats, CONNECTION_LOSS};
use crate::workload::{Lane, OpKind, Step, Workload, WorkloadKind};

/// Largest reply frame accepted (ZooKeeper's default jute.maxbuffer is 1 MiB - 1).
const MAX_FRAME: usize = 64 << 20;
const READ_CHUNK: usize = 64 << 10;
const RECONNECT_DELAY_NS: u64 = 100_000_000;
const NO_LANE: usize = usize::MAX;

pub struct RunConfig {
    pub addrs: Vec<SocketAddr>,
    pub workload: Arc<Workload>,
    pub sessions: usize,
    pub outstanding: usize,
    /// Total target rate (requests/s, connects/s for the session storm,
    /// writes/s for watch); None = closed loop.
    pub rate: Option<f64>,
    pub warmup_ns: u64,
    pub end_ns: u64,
    pub session_timeout_ms: i32,
    pub watch_oneshot: bool,
    pub seed: u64,
}

pub struct Shared {
    pub base: Instant,
    pub watchers_ready: AtomicUsize,
    /// Send time of the latest write of the watch workload.
    pub last_write_ns: AtomicU64,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            base: Instant::now(),
            watchers_ready: AtomicUsize::new(0),
            last_write_ns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    #[inline]
    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Request lanes driven by the workload.
    Lanes,
    /// Watches the watch node, records notification latency.
    Watcher,
    /// Sets the watch node at the target rate once every watcher is ready.
    Writer,
    /// Connects, closes, reconnects.
    Storm,
}

/// The roles of every session of the run, by global session index.
pub fn roles(kind: WorkloadKind, sessions: usize) -> Vec<Role> {
    match kind {
        WorkloadKind::Watch => {
            let mut v = vec![Role::Watcher; sessions];
            v.push(Role::Writer);
            v
        }
        WorkloadKind::Sessions => vec![Role::Storm; sessions],
        _ => vec![Role::Lanes; sessions],
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Down { retry_at: u64 },
    Handshake,
    Ready,
}

struct Inflight {
    xid: i32,
    lane: usize,
    kind: OpKind,
    start: u64,
}

struct Session {
    id: usize,
    role: Role,
    addr: SocketAddr,
    stream: Option<TcpStream>,
    phase: Phase,
    rbuf: Vec<u8>,
    rstart: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    dirty: bool,
    next_xid: i32,
    inflight: VecDeque<Inflight>,
    lanes: Vec<Lane>,
    free: Vec<usize>,
    /// Open loop: intended send time of the next request; interval 0 = closed loop.
    next_tick: u64,
    interval: u64,
    last_send: u64,
    connect_start: u64,
    ping_every: u64,
    rng: Rng,
    counted_ready: bool,
}

struct Ctx<'a> {
    cfg: &'a RunConfig,
    shared: &'a Shared,
    stats: &'a mut ThreadStats,
    poll: &'a Poll,
    dirty: &'a mut Vec<usize>,
    watchers: usize,
}

impl Ctx<'_> {
    #[inline]
    fn measuring(&self, now: u64) -> bool {
        now >= self.cfg.warmup_ns && now <= self.cfg.end_ns
    }
}

impl Session {
    fn new(id: usize, role: Role, cfg: &RunConfig, slot: usize) -> Session {
        let lanes = match role {
            Role::Lanes => cfg.outstanding.max(1),
            _ => 0,
        };
        let interval = match (role, cfg.rate) {
            (Role::Writer, rate) => (1e9 / rate.unwrap_or(10.0).max(0.001)) as u64,
            (Role::Lanes | Role::Storm, Some(rate)) => {
                (1e9 * cfg.sessions as f64 / rate.max(0.001)) as u64
            }
            _ => 0,
        }
        .max(if cfg.rate.is_some() || role == Role::Writer {
            1
        } else {
            0
        });
        // Spread the sessions' first ticks over one interval.
        let first_tick = interval * (id % cfg.sessions.max(1)) as u64 / cfg.sessions.max(1) as u64;
        Session {
            id,
            role,
            addr: cfg.addrs[id % cfg.addrs.len()],
            stream: None,
            phase: Phase::Down { retry_at: 0 },
            rbuf: Vec::with_capacity(READ_CHUNK),
            rstart: 0,
            wbuf: Vec::with_capacity(READ_CHUNK),
            wpos: 0,
            dirty: false,
            next_xid: 1,
            inflight: VecDeque::new(),
            lanes: (0..lanes).map(Lane::new).collect(),
            free: (0..lanes).rev().collect(),
            next_tick: first_tick,
            interval,
            last_send: 0,
            connect_start: 0,
            ping_every: 3_000_000_000,
            rng: Rng::new(cfg.seed ^ ((id as u64 + 1) << 20) ^ slot as u64),
            counted_ready: false,
        }
    }

    fn token(&self, index: usize) -> Token {
        Token(index)
    }

    fn mark_dirty(&mut self, index: usize, ctx: &mut Ctx<'_>) {
        if !self.dirty {
            self.dirty = true;
            ctx.dirty.push(index);
        }
    }

    fn xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    fn connect(&mut self, index: usize, now: u64, ctx: &mut Ctx<'_>) {
        self.connect_start = match (self.role, self.interval) {
            // Open-loop storm: the connect was due at its tick.
            (Role::Storm, i) if i > 0 => self.next_tick.min(now),
            _ => now,
        };
        if self.role == Role::Storm && self.interval > 0 {
            self.next_tick += self.interval;
        }
        let mut stream = match TcpStream::connect(self.addr) {
            Ok(s) => s,
            Err(_) => {
                self.fail(now, ctx);
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        if ctx
            .poll
            .registry()
            .register(
                &mut stream,
                self.token(index),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.fail(now, ctx);
            return;
        }
        self.stream = Some(stream);
        self.phase = Phase::Handshake;
        self.rbuf.clear();
        self.rstart = 0;
        self.wbuf.clear();
        self.wpos = 0;
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: ctx.cfg.session_timeout_ms,
            session_id: 0,
            passwd: &[0; 16],
            read_only: Some(false),
        }
        .encode_frame(&mut self.wbuf);
        self.mark_dirty(index, ctx);
    }

    /// The connection is gone: its requests count as CONNECTIONLOSS.
    fn fail(&mut self, now: u64, ctx: &mut Ctx<'_>) {
        let measuring = ctx.measuring(now);
        if self.inflight.is_empty() || self.phase == Phase::Handshake {
            ctx.stats.error(CONNECTION_LOSS, measuring);
        }
        for _ in self.inflight.drain(..) {
            ctx.stats.error(CONNECTION_LOSS, measuring);
        }
        self.drop_stream(ctx);
        for lane in &mut self.lanes {
            lane.step = Step::Idle;
        }
        self.free = (0..self.lanes.len()).rev().collect();
        self.phase = Phase::Down {
            retry_at: now + RECONNECT_DELAY_NS,
        };
    }

    fn drop_stream(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(mut s) = self.stream.take() {
            let _ = ctx.poll.registry().deregister(&mut s);
        }
        self.wbuf.clear();
        self.wpos = 0;
        self.rbuf.clear();
        self.rstart = 0;
    }

    /// Writes as much of the send buffer as the socket takes.
    fn flush(&mut self, now: u64, ctx: &mut Ctx<'_>) {
        self.dirty = false;
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        while self.wpos < self.wbuf.len() {
            match stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return self.fail(now, ctx),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.fail(now, ctx),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
    }

    fn on_readable(&mut self, index: usize, ctx: &mut Ctx<'_>) {
        let mut closed = false;
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let len = self.rbuf.len();
            self.rbuf.resize(len + READ_CHUNK, 0);
            match stream.read(&mut self.rbuf[len..]) {
                Ok(0) => {
                    self.rbuf.truncate(len);
                    closed = true;
                    break;
                }
                Ok(n) => self.rbuf.truncate(len + n),
                Err(e) => {
                    self.rbuf.truncate(len);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => {}
                        _ => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
        }
        let now = ctx.shared.now();
        let rbuf = std::mem::take(&mut self.rbuf);
        let mut pos = self.rstart;
        let mut ok = true;
        while ok {
            match frame_len(&rbuf[pos..], MAX_FRAME) {
                Ok(Some(total)) => {
                    ok = self.on_frame(index, &rbuf[pos + 4..pos + total], now, ctx);
                    pos += total;
                }
                Ok(None) => break,
                Err(_) => ok = false,
            }
        }
        if self.stream.is_none() {
            // on_frame closed the connection (storm) or failed it.
            self.rbuf = rbuf;
            self.rbuf.clear();
            self.rstart = 0;
            return;
        }
        self.rbuf = rbuf;
        if !ok {
            return self.fail(now, ctx);
        }
        if pos == self.rbuf.len() {
            self.rbuf.clear();
            self.rstart = 0;
        } else if pos > (1 << 20) {
            self.rbuf.drain(..pos);
            self.rstart = 0;
        } else {
            self.rstart = pos;
        }
        if closed {
            return self.fail(now, ctx);
        }
        self.pump(index, now, ctx);
    }

    /// Handles one frame body; false on a protocol error.
    fn on_frame(&mut self, index: usize, body: &[u8], now: u64, ctx: &mut Ctx<'_>) -> bool {
        if self.phase == Phase::Handshake {
            let Ok(resp) = ConnectResponse::decode(body) else {
                return false;
            };
            if resp.timeout_ms <= 0 {
                // Session refused/expired.
                ctx.stats.error(-112, ctx.measuring(now));
                self.drop_stream(ctx);
                self.phase = Phase::Down {
                    retry_at: now + RECONNECT_DELAY_NS,
                };
                return true;
            }
            self.phase = Phase::Ready;
            self.ping_every = (resp.timeout_ms as u64 * 1_000_000 / 3).max(1_000_000);
            self.last_send = now;
            self.on_ready(index, now, ctx);
            return true;
        }
        let Ok((hdr, rest)) = ReplyHeader::split(body) else {
            return false;
        };
        match hdr.xid {
            xid::NOTIFICATION => {
                if let Ok(ev) = decode_watch_event(rest) {
                    if ev.event_type == EventType::NodeDataChanged && self.role == Role::Watcher {
                        let sent = ctx.shared.last_write_ns.load(Ordering::Relaxed);
                        ctx.stats.record(
                            OpKind::Notification,
                            now.saturating_sub(sent),
                            ctx.measuring(now),
                        );
                        if ctx.cfg.watch_oneshot {
                            self.arm_watch(index, now, ctx);
                        }
                    }
                }
                return true;
            }
            xid::PING | xid::AUTH | xid::SET_WATCHES => return true,
            _ => {}
        }
        let pos = match self.inflight.front() {
            Some(f) if f.xid == hdr.xid => 0,
            _ => match self.inflight.iter().position(|f| f.xid == hdr.xid) {
                Some(p) => p,
                None => return false,
            },
        };
        let req = self.inflight.remove(pos).expect("position is valid");
        let measuring = ctx.measuring(now);
        if hdr.err == 0 {
            ctx.stats
                .record(req.kind, now.saturating_sub(req.start), measuring);
        } else {
            ctx.stats.error(hdr.err, measuring);
        }
        match self.role {
            Role::Lanes => {
                if req.lane != NO_LANE {
                    ctx.cfg
                        .workload
                        .on_reply(&mut self.lanes[req.lane], req.kind, hdr.err, rest);
                    self.free.push(req.lane);
                }
            }
            Role::Watcher => {
                if hdr.err == 0 && !self.counted_ready {
                    self.counted_ready = true;
                    ctx.shared.watchers_ready.fetch_add(1, Ordering::Relaxed);
                }
            }
            Role::Writer => {}
            Role::Storm => {
                if req.kind == OpKind::CloseSession {
                    self.drop_stream(ctx);
                    self.phase = Phase::Down {
                        retry_at: if self.interval > 0 {
                            self.next_tick
                        } else {
                            now
                        },
                    };
                }
            }
        }
        true
    }

    fn on_ready(&mut self, index: usize, now: u64, ctx: &mut Ctx<'_>) {
        match self.role {
            Role::Lanes | Role::Writer => {
                if self.interval > 0 && self.next_tick < now && self.role == Role::Writer {
                    self.next_tick = now;
                }
            }
            Role::Watcher => self.arm_watch(index, now, ctx),
            Role::Storm => {
                let measuring = ctx.measuring(now);
                ctx.stats.record(
                    OpKind::Connect,
                    now.saturating_sub(self.connect_start),
                    measuring,
                );
                self.send(index, NO_LANE, OpKind::CloseSession, now, ctx, |out, x| {
                    encode_request_frame(out, x, &Request::CloseSession)
                });
            }
        }
    }

    fn arm_watch(&mut self, index: usize, now: u64, ctx: &mut Ctx<'_>) {
        let path = ctx.cfg.workload.watch_path.clone();
        if ctx.cfg.watch_oneshot {
            self.send(index, NO_LANE, OpKind::GetData, now, ctx, |out, x| {
                encode_request_frame(
                    out,
                    x,
                    &Request::GetData {
                        path: &path,
                        watch: true,
                    },
                )
            });
        } else {
            self.send(index, NO_LANE, OpKind::AddWatch, now, ctx, |out, x| {
                let req = Request::AddWatch {
                    path: &path,
                    mode: add_watch_mode::PERSISTENT,
                };
                encode_request_frame(out, x, &req)
            });
        }
    }

    fn send(
        &mut self,
        index: usize,
        lane: usize,
        kind: OpKind,
        start: u64,
        ctx: &mut Ctx<'_>,
        encode: impl FnOnce(&mut Vec<u8>, i32),
    ) {
        let x = self.xid();
        encode(&mut self.wbuf, x);
        self.inflight.push_back(Inflight {
            xid: x,
            lane,
            kind,
            start,
        });
        self.last_send = ctx.shared.now();
        self.mark_dirty(index, ctx);
    }

    fn issue_lane(&mut self, index: usize, lane: usize, start: u64, ctx: &mut Ctx<'_>) {
        let x = self.xid();
        let kind = ctx.cfg.workload.next(
            &mut self.lanes[lane],
            &mut self.rng,
            self.id,
            x,
            &mut self.wbuf,
        );
        self.inflight.push_back(Inflight {
            xid: x,
            lane,
            kind,
            start,
        });
        self.last_send = start.max(self.last_send);
        self.mark_dirty(index, ctx);
    }

    /// Sends whatever is due; returns the next time something will be.
    fn pump(&mut self, index: usize, now: u64, ctx: &mut Ctx<'_>) -> Option<u64> {
        if self.phase != Phase::Ready || now >= ctx.cfg.end_ns {
            return None;
        }
        match self.role {
            Role::Lanes if self.interval == 0 => {
                while let Some(lane) = self.free.pop() {
                    self.issue_lane(index, lane, now, ctx);
                }
                None
            }
            Role::Lanes => {
                while self.next_tick <= now {
                    let Some(lane) = self.free.pop() else {
                        return None; // woken again by a reply
                    };
                    let tick = self.next_tick;
                    self.next_tick += self.interval;
                    self.issue_lane(index, lane, tick, ctx);
                }
                Some(self.next_tick)
            }
            Role::Writer => {
                if !self.inflight.is_empty()
                    || ctx.shared.watchers_ready.load(Ordering::Relaxed) < ctx.watchers
                {
                    return Some(now + 1_000_000);
                }
                if self.next_tick > now {
                    return Some(self.next_tick);
                }
                let tick = self.next_tick;
                self.next_tick = (self.next_tick + self.interval).max(now);
                ctx.shared.last_write_ns.store(now, Ordering::Relaxed);
                let path = ctx.cfg.workload.watch_path.clone();
                let value = &ctx.cfg.workload.value;
                self.send(index, NO_LANE, OpKind::SetData, tick, ctx, |out, x| {
                    let req = Request::SetData {
                        path: &path,
                        data: Some(value),
                        version: -1,
                    };
                    encode_request_frame(out, x, &req)
                });
                Some(self.next_tick)
            }
            Role::Watcher | Role::Storm => None,
        }
    }

    /// Timers: reconnects, open-loop ticks, pings. Returns the next deadline.
    fn service(&mut self, index: usize, now: u64, ctx: &mut Ctx<'_>) -> Option<u64> {
        match self.phase {
            Phase::Down { retry_at } => {
                if now >= ctx.cfg.end_ns {
                    return None;
                }
                if now >= retry_at {
                    self.connect(index, now, ctx);
                    None
                } else {
                    Some(retry_at)
                }
            }
            Phase::Handshake => None,
            Phase::Ready => {
                if now.saturating_sub(self.last_send) >= self.ping_every {
                    let x = xid::PING;
                    encode_request_frame(&mut self.wbuf, x, &Request::Ping);
                    self.last_send = now;
                    self.mark_dirty(index, ctx);
                }
                let next = self.pump(index, now, ctx);
                let ping = self.last_send + self.ping_every;
                Some(next.map_or(ping, |n| n.min(ping)))
            }
        }
    }
}

/// Runs one thread's sessions until the end of the run; returns its totals.
pub fn run_thread(
    thread: usize,
    cfg: Arc<RunConfig>,
    shared: Arc<Shared>,
    my_sessions: Vec<(usize, Role)>,
    watchers: usize,
    tx: Sender<Interval>,
) -> io::Result<ThreadStats> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut stats = ThreadStats::new();
    let mut dirty: Vec<usize> = Vec::new();
    let mut sessions: Vec<Session> = my_sessions
        .iter()
        .map(|&(id, role)| Session::new(id, role, &cfg, thread))
        .collect();
    let mut cur_sec = 0u64;
    loop {
        let now = shared.now();
        if now >= cfg.end_ns || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let sec = now / 1_000_000_000;
        while cur_sec < sec {
            let _ = tx.send(stats.take_interval(cur_sec));
            cur_sec += 1;
        }
        let mut ctx = Ctx {
            cfg: &cfg,
            shared: &shared,
            stats: &mut stats,
            poll: &poll,
            dirty: &mut dirty,
            watchers,
        };
        let mut deadline = (now + 10_000_000)
            .min((sec + 1) * 1_000_000_000)
            .min(cfg.end_ns);
        for (i, s) in sessions.iter_mut().enumerate() {
            if let Some(d) = s.service(i, now, &mut ctx) {
                deadline = deadline.min(d);
            }
        }
        let now = shared.now();
        while let Some(i) = ctx.dirty.pop() {
            sessions[i].flush(now, &mut ctx);
        }
        let wait = deadline.saturating_sub(shared.now());
        let timeout = if wait >= 1_000_000 {
            Duration::from_nanos(wait - wait % 1_000_000)
        } else {
            Duration::ZERO
        };
        poll.poll(&mut events, Some(timeout))?;
        if events.is_empty() && wait > 0 && wait < 1_000_000 {
            std::thread::sleep(Duration::from_nanos(wait.min(100_000)));
        }
        let mut ctx = Ctx {
            cfg: &cfg,
            shared: &shared,
            stats: &mut stats,
            poll: &poll,
            dirty: &mut dirty,
            watchers,
        };
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(s) = sessions.get_mut(i) else {
                continue;
            };
            if ev.is_writable() && s.stream.is_some() {
                let now = ctx.shared.now();
                s.flush(now, &mut ctx);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                s.on_readable(i, &mut ctx);
            }
        }
        let now = shared.now();
        while let Some(i) = dirty.pop() {
            let mut ctx = Ctx {
                cfg: &cfg,
                shared: &shared,
                stats: &mut stats,
                poll: &poll,
                dirty: &mut Vec::new(),
                watchers,
            };
            sessions[i].flush(now, &mut ctx);
        }
    }
    let _ = tx.send(stats.take_interval(cur_sec));
    // Close the sessions politely (ephemerals go at once), best effort.
    for s in sessions.iter_mut() {
        if s.phase == Phase::Ready {
            if let Some(stream) = s.stream.as_mut() {
                let mut frame = Vec::new();
                encode_request_frame(&mut frame, s.next_xid, &Request::CloseSession);
                let _ = stream.write(&frame);
            }
        }
    }
    Ok(stats)
}
