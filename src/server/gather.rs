//! A bounded cross-shard gather of what only shards hold: their watches
//! (each shard's registry belongs to its executor) and, from shard 0, the
//! ephemerals and digest log of the tree version it serves; and, when asked for, the
//! pipeline's session table (`dump`'s session expiry). `wchc`, `wchp` and
//! `dump` (four letters and AdminServer alike) see every shard through it.
//!
//! The pipeline has no poll task: shard 0, seeing sessions asked (or an
//! AdminServer job posted in [`AdminJobs`]), sends it a wake-up message,
//! and the pipeline answers at its next loop turn.
//!
//! A requester bumps a generation; each shard's poll task (every
//! `GATHER_POLL_INTERVAL`, off the request path: one relaxed load when
//! nothing is asked) notices it, copies at most its share of pairs and stores
//! them with the generation it answered. The requester waits, up to
//! `GATHER_TIMEOUT`, until every shard has answered that generation or a
//! newer one (a newer answer is as fresh), so concurrent requesters need no
//! turn-taking. No lock is taken by client traffic; the one mutex here is
//! taken by poll tasks and requesters only.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::limits::admin::{EPHEMERAL_GATHER_PAIRS_MAX, GATHER_TIMEOUT, WATCH_GATHER_PAIRS_MAX};
use crate::server::admin_jobs::AdminJobs;
use crate::server::messages::ToPipeline;
use crate::server::session_dump::SessionList;
use crate::server::shard::Shard;
use crate::tree::digest::ZxidDigest;

/// What one shard answered.
#[derive(Clone, Default)]
struct Answer {
    generation: u64,
    /// (watched path, session id) pairs of this shard's connections.
    watches: Vec<(Arc<str>, i64)>,
    /// (session id, ephemeral path) pairs; shard 0 only (every shard serves
    /// the same tree).
    ephemerals: Vec<(i64, String)>,
    /// The tree's digest log (`hash`); shard 0 only.
    digests: Vec<ZxidDigest>,
    truncated: bool,
}

/// Every shard's answer to one gather.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Gathered {
    pub watches: Vec<(Arc<str>, i64)>,
    pub ephemerals: Vec<(i64, String)>,
    /// The digest log of the tree shard 0 serves, oldest first.
    pub digests: Vec<ZxidDigest>,
    /// The pipeline's sessions, if they were asked for and it answered.
    pub sessions: Option<SessionList>,
    /// Some shard had more than its share of pairs.
    pub truncated: bool,
    /// Shards (and the pipeline, if asked) that did not answer in time.
    pub missing: usize,
}

/// Every answer so far, under one lock (one condvar wakes requesters).
struct Answers {
    shards: Vec<Answer>,
    /// The generation the pipeline last answered, and what it said.
    sessions_generation: u64,
    sessions: SessionList,
}

pub struct ShardGather {
    asked: AtomicU64,
    /// The newest generation that asked for the pipeline's sessions.
    sessions_asked: AtomicU64,
    /// The newest generation the pipeline was sent a wake-up for.
    pipeline_woken: AtomicU64,
    /// The generation the pipeline last answered (mirrors
    /// `Answers::sessions_generation`, so its loop checks without the lock).
    sessions_answered: AtomicU64,
    answers: Mutex<Answers>,
    answered: Condvar,
    /// The AdminServer's jobs for the pipeline (woken by the same relay).
    pub jobs: AdminJobs,
}

impl ShardGather {
    pub fn new(shards: usize) -> ShardGather {
        ShardGather {
            asked: AtomicU64::new(0),
            sessions_asked: AtomicU64::new(0),
            pipeline_woken: AtomicU64::new(0),
            sessions_answered: AtomicU64::new(0),
            answers: Mutex::new(Answers {
                shards: vec![Answer::default(); shards.max(1)],
                sessions_generation: 0,
                sessions: SessionList::default(),
            }),
            answered: Condvar::new(),
            jobs: AdminJobs::default(),
        }
    }

    fn shards(&self) -> usize {
        self.lock().shards.len()
    }

    fn lock(&self) -> MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks every shard (and, with `sessions`, the pipeline); returns the
    /// generation to wait for.
    fn ask(&self, sessions: bool) -> u64 {
        let generation = self.asked.fetch_add(1, AcqRel) + 1;
        if sessions {
            self.sessions_asked.fetch_max(generation, AcqRel);
        }
        generation
    }

    /// Called by the pipeline at every turn of its loop: one atomic load
    /// unless its sessions are asked for.
    pub fn answer_sessions_if_asked(&self, list: impl FnOnce() -> SessionList) {
        let asked = self.sessions_asked.load(Acquire);
        if self.sessions_answered.load(Acquire) >= asked {
            return;
        }
        let sessions = list();
        let mut answers = self.lock();
        answers.sessions_generation = asked;
        answers.sessions = sessions;
        drop(answers);
        self.sessions_answered.store(asked, Release);
        self.answered.notify_all();
    }

    /// Called by a shard's poll task (and by the shard that runs a four-letter
    /// word, before it waits): answers if a gather is asked and not yet
    /// answered by this shard.
    pub fn answer_if_asked(&self, shard: &Shard) {
        if shard.index == 0 {
            self.wake_pipeline_if_asked(shard);
            self.jobs.wake_pipeline_if_posted(shard);
        }
        let asked = self.asked.load(Acquire);
        if self
            .lock()
            .shards
            .get(shard.index)
            .is_none_or(|a| a.generation >= asked)
        {
            return;
        }
        let answer = shard_answer(shard, asked, self.shards());
        let mut answers = self.lock();
        answers.shards[shard.index] = answer;
        drop(answers);
        self.answered.notify_all();
    }

    /// Shard 0 wakes the pipeline once per generation that asks for sessions.
    fn wake_pipeline_if_asked(&self, shard: &Shard) {
        let asked = self.sessions_asked.load(Acquire);
        if self.pipeline_woken.fetch_max(asked, AcqRel) < asked {
            shard.send_to_pipeline(ToPipeline::Wake);
        }
    }

    /// The merged answers if everyone asked answered `generation`.
    fn collect(
        &self,
        generation: u64,
        answers: &Answers,
        sessions: bool,
        force: bool,
    ) -> Option<Gathered> {
        let shards_missing = answers
            .shards
            .iter()
            .filter(|a| a.generation < generation)
            .count();
        let sessions_missing = sessions && answers.sessions_generation < generation;
        let missing = shards_missing + usize::from(sessions_missing);
        if missing > 0 && !force {
            return None;
        }
        let mut out = Gathered {
            missing,
            ..Gathered::default()
        };
        for a in answers.shards.iter().filter(|a| a.generation >= generation) {
            out.watches.extend(a.watches.iter().cloned());
            out.ephemerals.extend(a.ephemerals.iter().cloned());
            out.digests.extend(a.digests.iter().copied());
            out.truncated |= a.truncated;
        }
        if sessions && !sessions_missing {
            out.sessions = Some(answers.sessions.clone());
        }
        Some(out)
    }

    /// For threads other than the shards' (the AdminServer's): asks and
    /// blocks until every shard (and, with `sessions`, the pipeline)
    /// answered or `GATHER_TIMEOUT` passed.
    pub fn gather_blocking(&self, sessions: bool) -> Gathered {
        let generation = self.ask(sessions);
        let deadline = Instant::now() + GATHER_TIMEOUT;
        let mut answers = self.lock();
        loop {
            let now = Instant::now();
            let timed_out = now >= deadline;
            if let Some(out) = self.collect(generation, &answers, sessions, timed_out) {
                return out;
            }
            answers = self
                .answered
                .wait_timeout(answers, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// For a shard's executor (a four-letter word): answers for this shard
    /// at once, then awaits the others without blocking the executor.
    pub async fn gather_from(&self, shard: &Shard, poll: Duration, sessions: bool) -> Gathered {
        let generation = self.ask(sessions);
        let deadline = Instant::now() + GATHER_TIMEOUT;
        loop {
            self.answer_if_asked(shard);
            let timed_out = Instant::now() >= deadline;
            if let Some(out) = self.collect(generation, &self.lock(), sessions, timed_out) {
                return out;
            }
            glommio::timer::sleep(poll).await;
        }
    }
}

/// Logs what a partial answer left out (an operator reading `dump` or
/// `wchc` should know it is not the whole picture).
pub fn warn_if_partial(command: &str, g: &Gathered) {
    if g.missing > 0 {
        tracing::warn!(
            "{command}: {} of the server's executors did not answer within {:?}; \
             their part is left out",
            g.missing,
            GATHER_TIMEOUT
        );
    }
    if g.truncated || g.sessions.as_ref().is_some_and(|s| s.truncated) {
        tracing::warn!("{command}: the answer was cut at its bound (limits::admin)");
    }
}

/// One shard's pairs, at most its share of each bound.
fn shard_answer(shard: &Shard, generation: u64, shards: usize) -> Answer {
    let share = (WATCH_GATHER_PAIRS_MAX / shards).max(1);
    let mut answer = Answer {
        generation,
        ..Answer::default()
    };
    let watches = shard.watches.borrow();
    let conns = shard.conns.borrow();
    'paths: for (path, watchers) in watches.data_side_paths() {
        for watcher in watchers {
            if answer.watches.len() == share {
                answer.truncated = true;
                break 'paths;
            }
            let session = conns.get(&watcher).map_or(0, |c| c.session_id.get());
            answer.watches.push((path.clone(), session));
        }
    }
    if shard.index == 0 {
        answer.truncated |= ephemeral_pairs(shard, &mut answer.ephemerals);
        answer.digests = shard.version.borrow().digest_log().copied().collect();
    }
    answer
}

/// The tree's (session, ephemeral path) pairs; true if cut at the bound.
fn ephemeral_pairs(shard: &Shard, out: &mut Vec<(i64, String)>) -> bool {
    let version = shard.version.borrow();
    for session in version.ephemeral_sessions() {
        for path in version.ephemerals_of(session, "/") {
            if out.len() == EPHEMERAL_GATHER_PAIRS_MAX {
                return true;
            }
            out.push((session, path));
        }
    }
    false
}

/// wchc/`watches`: session -> its watched paths, both sorted.
pub fn by_session(pairs: &[(Arc<str>, i64)]) -> std::collections::BTreeMap<i64, Vec<String>> {
    let mut m: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for (path, session) in pairs {
        m.entry(*session).or_default().push(path.to_string());
    }
    for paths in m.values_mut() {
        paths.sort();
        paths.dedup();
    }
    m
}

/// wchp/`watches_by_path`: path -> the sessions watching it, both sorted.
pub fn by_path(pairs: &[(Arc<str>, i64)]) -> std::collections::BTreeMap<String, Vec<i64>> {
    let mut m: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (path, session) in pairs {
        m.entry(path.to_string()).or_default().push(*session);
    }
    for sessions in m.values_mut() {
        sessions.sort_unstable();
        sessions.dedup();
    }
    m
}

/// `dump`'s ephemerals: session -> its ephemeral paths.
pub fn ephemerals_by_session(
    pairs: &[(i64, String)],
) -> std::collections::BTreeMap<i64, Vec<String>> {
    let mut m: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for (session, path) in pairs {
        m.entry(*session).or_default().push(path.clone());
    }
    m
}
