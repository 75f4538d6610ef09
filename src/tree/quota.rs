//! ZooKeeper's quotas (pure): `/zookeeper/quota/<path>/zookeeper_limits`
//! holds the limits of the subtree at `<path>`, `zookeeper_stats` next to
//! it what the subtree holds ("count=N,bytes=M"), both in ZooKeeper's
//! `StatsTrack` text format.
//!
//! Clients (zkCli's setquota/delquota) write these nodes with ordinary
//! creates, setData and deletes; the server's part, as in ZooKeeper 3.9's
//! `DataTree` and `ZooKeeperServer.checkQuota`:
//! - creating a `zookeeper_limits` node under `/zookeeper/quota` puts its
//!   path in the quota index (ZooKeeper's `pTrie`), deleting it takes it out;
//! - creating a `zookeeper_stats` node replaces the data the client sent with
//!   the subtree's current count and bytes;
//! - every create, delete and setData rewrites the stats node of the deepest
//!   quota path above the node (count ±1, bytes ± data length), in place:
//!   its version, mzxid and mtime stay, only its data (and so its
//!   dataLength) changes, and no watch fires;
//! - with `enforceQuota`, prep refuses a create or setData that would take
//!   the subtree over a hard limit with QuotaExceeded, and reports one over a
//!   soft limit (ZooKeeper logs it) — without `enforceQuota` ZooKeeper checks
//!   nothing and logs nothing;
//! - a snapshot load recomputes every stats node and the index
//!   ([`DataTree::setup_quotas`], ZooKeeper's `setupQuota`).
//!
//! The index is empty unless some quota exists, and every hook returns at
//! once then: quotas cost ordinary writes one emptiness check.

use std::collections::BTreeMap;
use std::fmt;

use super::node::data_len;
use super::{path, DataTree, QUOTA_PATH, ZOOKEEPER_PATH};
use crate::proto::ErrorCode;

/// The node holding a quota path's limits.
pub const LIMITS_NODE: &str = "zookeeper_limits";
/// The node holding a quota path's current count and bytes.
pub const STATS_NODE: &str = "zookeeper_stats";

const COUNT_KEY: &str = "count";
const BYTES_KEY: &str = "bytes";
const COUNT_HARD_LIMIT_KEY: &str = "countHardLimit";
const BYTE_HARD_LIMIT_KEY: &str = "byteHardLimit";

/// Quota paths, as ZooKeeper's `PathTrie` of them: the set of paths with a
/// limits node, each in the trie's normal form (see [`normalize`]). A set
/// answers `findMaxPrefix` the same as the trie does, since a trie node
/// exists for every prefix of a path it holds.
pub(super) type QuotaIndex = imbl::OrdSet<String>;

/// ZooKeeper's `StatsTrack`: `key=value` pairs separated by ',' or ';'.
/// A missing key reads as -1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses a limits or stats node's data as ZooKeeper does. ZooKeeper
    /// throws on a pair without '=' or with a value that is not a number
    /// (and fails the request or the txn); such a pair is skipped here.
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut values = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|pair| !pair.is_empty()) {
            // Java's split("=") drops trailing empty fields, so "bytes=5=" is
            // bytes 5 (the 3.7 format's trick for old parsers) and "count="
            // has no value; an empty value before another field reads as -1.
            let mut fields: Vec<&str> = pair.split('=').collect();
            while fields.last() == Some(&"") {
                fields.pop();
            }
            let [key, value, ..] = fields[..] else {
                continue;
            };
            let value = if value.is_empty() {
                Ok(-1)
            } else {
                // Long.parseLong: an optional sign and decimal digits.
                value.parse::<i64>()
            };
            if let Ok(value) = value {
                values.insert(key.to_string(), value);
            }
        }
        StatsTrack { values }
    }

    pub fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, value: i64) {
        self.values.insert(key.to_string(), value);
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT_KEY)
    }

    pub fn bytes(&self) -> i64 {
        self.get(BYTES_KEY)
    }

    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD_LIMIT_KEY)
    }

    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTE_HARD_LIMIT_KEY)
    }

    /// ZooKeeper's `toString`: "count=N,bytes=M" first (always, -1 when
    /// absent), then, if there are other keys, "=" and ";key=value" for each
    /// in key order: "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2".
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = format!("{COUNT_KEY}={},{BYTES_KEY}={}", self.count(), self.bytes());
        let mut others = self
            .values
            .iter()
            .filter(|(key, _)| *key != COUNT_KEY && *key != BYTES_KEY)
            .peekable();
        if others.peek().is_some() {
            text.push('=');
            for (key, value) in others {
                text.push_str(&format!(";{key}={value}"));
            }
        }
        text.into_bytes()
    }
}

/// A write that goes over a limit, as ZooKeeper's checkQuota logs it. Over
/// a hard limit the write fails with QuotaExceeded; over a soft one it
/// succeeds and is only logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The quota path (the node under `/zookeeper/quota`, without that prefix).
    pub quota_path: String,
    /// "count" or "bytes".
    pub what: &'static str,
    /// The subtree's count or bytes after the write.
    pub after: i64,
    pub limit: i64,
    pub hard: bool,
}

impl fmt::Display for QuotaExceeded {
    /// ZooKeeper's message: "Quota exceeded: /q [current count=3, hardCountLimit=2]".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.hard { "hard" } else { "soft" };
        let limit_name = if self.what == COUNT_KEY {
            "CountLimit"
        } else {
            "ByteLimit"
        };
        write!(
            f,
            "Quota exceeded: {} [current {}={}, {kind}{limit_name}={}]",
            self.quota_path, self.what, self.after, self.limit
        )
    }
}

/// `Quotas.limitPath` / `statPath`.
fn quota_node_path(quota_path: &str, node: &str) -> String {
    format!("{QUOTA_PATH}{quota_path}/{node}")
}

/// Java's `trim().isEmpty()`: ZooKeeper's trie skips components made of
/// characters up to U+0020 only.
fn is_blank(component: &str) -> bool {
    component.chars().all(|c| c <= ' ')
}

/// The trie's form of a path: its non-blank components joined by '/', or
/// None when there are none (ZooKeeper's trie cannot hold such a path).
fn normalize(quota_path: &str) -> Option<String> {
    let mut normal = String::with_capacity(quota_path.len());
    for component in quota_path.split('/').filter(|c| !is_blank(c)) {
        normal.push('/');
        normal.push_str(component);
    }
    (!normal.is_empty()).then_some(normal)
}

/// `Quotas.trimQuotaPath`: the parent path without its first
/// `/zookeeper/quota`-length characters (ZooKeeper applies it to any parent
/// under `/zookeeper` when a limits node is deleted, so "/zookeeper/quotaX"
/// trims to "X"). None where ZooKeeper's substring would throw.
fn trim_quota_path(parent_path: &str) -> Option<&str> {
    parent_path.get(QUOTA_PATH.len()..)
}

impl DataTree {
    /// ZooKeeper's `getMaxPrefixWithQuota`: the deepest quota path at or
    /// above `node_path`, None if there is none.
    pub fn quota_prefix(&self, node_path: &str) -> Option<String> {
        if self.quotas.is_empty() {
            return None;
        }
        let mut prefix = String::with_capacity(node_path.len());
        let mut deepest = None;
        for component in node_path.split('/').filter(|c| !is_blank(c)) {
            prefix.push('/');
            prefix.push_str(component);
            if self.quotas.contains(prefix.as_str()) {
                deepest = Some(prefix.len());
            }
        }
        deepest.map(|len| prefix[..len].to_string())
    }

    /// Whether any quota path exists.
    pub fn has_quotas(&self) -> bool {
        !self.quotas.is_empty()
    }

    /// ZooKeeper's `checkQuota` for a create (`count_delta` 1) or a setData
    /// (0) changing the data at `node_path` by `bytes_delta`, against this
    /// tree's limits and stats. Limits exceeded are appended to `exceeded`;
    /// QuotaExceeded at the first hard one.
    pub(super) fn check_quota(
        &self,
        node_path: &str,
        bytes_delta: i64,
        count_delta: i64,
        exceeded: &mut Vec<QuotaExceeded>,
    ) -> Result<(), ErrorCode> {
        let Some(quota_path) = self.quota_prefix(node_path) else {
            return Ok(());
        };
        let Some(limits) = self.get(&quota_node_path(&quota_path, LIMITS_NODE)) else {
            return Ok(());
        };
        let limits = StatsTrack::parse(limits.data.as_deref().unwrap_or_default());
        let check_count =
            count_delta != 0 && (limits.count() > -1 || limits.count_hard_limit() > -1);
        let check_bytes =
            bytes_delta != 0 && (limits.bytes() > -1 || limits.byte_hard_limit() > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let Some(stats) = self.get(&quota_node_path(&quota_path, STATS_NODE)) else {
            return Ok(());
        };
        let stats = StatsTrack::parse(stats.data.as_deref().unwrap_or_default());
        let checks = [
            (
                check_count,
                COUNT_KEY,
                stats.count().wrapping_add(count_delta),
                limits.count_hard_limit(),
                limits.count(),
            ),
            (
                check_bytes,
                BYTES_KEY,
                stats.bytes().wrapping_add(bytes_delta),
                limits.byte_hard_limit(),
                limits.bytes(),
            ),
        ];
        for (checked, what, after, hard_limit, soft_limit) in checks {
            let hard = hard_limit > -1;
            let limit = if hard { hard_limit } else { soft_limit };
            if checked && after > limit {
                exceeded.push(QuotaExceeded {
                    quota_path: quota_path.clone(),
                    what,
                    after,
                    limit,
                    hard,
                });
                if hard {
                    return Err(ErrorCode::QuotaExceeded);
                }
            }
        }
        Ok(())
    }

    /// After a node was created: a limits node starts a quota, a stats node
    /// gets the subtree's current stats, and the quota above the node counts it.
    pub(super) fn note_quota_create(&mut self, node_path: &str, parent_path: &str, bytes: i64) {
        if parent_path.starts_with(QUOTA_PATH) {
            let quota_path = trim_quota_path(parent_path).unwrap_or_default();
            match path::basename(node_path) {
                LIMITS_NODE => {
                    if let Some(normal) = normalize(quota_path) {
                        self.quotas.insert(normal);
                    }
                }
                STATS_NODE => {
                    let quota_path = quota_path.to_string();
                    self.recount_quota(&quota_path);
                }
                _ => {}
            }
        }
        self.update_quota_stat(node_path, bytes, 1);
    }

    /// After a node was deleted: a limits node ends its quota, and the quota
    /// above the node stops counting it.
    pub(super) fn note_quota_delete(&mut self, node_path: &str, parent_path: &str, bytes: i64) {
        if parent_path.starts_with(ZOOKEEPER_PATH) && path::basename(node_path) == LIMITS_NODE {
            if let Some(normal) = trim_quota_path(parent_path).and_then(normalize) {
                self.quotas.remove(&normal);
            }
        }
        self.update_quota_stat(node_path, -bytes, -1);
    }

    /// After a setData changed a node's data length by `bytes_delta`.
    pub(super) fn note_quota_set_data(&mut self, node_path: &str, bytes_delta: i64) {
        self.update_quota_stat(node_path, bytes_delta, 0);
    }

    /// ZooKeeper's `updateQuotaStat`: adds the deltas to the stats node of
    /// the deepest quota above `node_path` (rewriting it even for zero
    /// deltas, as ZooKeeper does). A missing stats node is left alone.
    fn update_quota_stat(&mut self, node_path: &str, bytes_delta: i64, count_delta: i64) {
        let Some(quota_path) = self.quota_prefix(node_path) else {
            return;
        };
        let stats_path = quota_node_path(&quota_path, STATS_NODE);
        let Some(stats_node) = self.get(&stats_path) else {
            return;
        };
        let mut stats = StatsTrack::parse(stats_node.data.as_deref().unwrap_or_default());
        stats.set(COUNT_KEY, stats.count().wrapping_add(count_delta));
        stats.set(BYTES_KEY, stats.bytes().wrapping_add(bytes_delta));
        self.rewrite_in_place(&stats_path, stats.to_bytes());
    }

    /// ZooKeeper's `updateQuotaForPath`: the stats node of `quota_path` gets
    /// the count of nodes in the subtree at `quota_path` (itself included)
    /// and the bytes of their data, and loses any other key.
    fn recount_quota(&mut self, quota_path: &str) {
        let stats_path = quota_node_path(quota_path, STATS_NODE);
        if !self.contains(&stats_path) {
            return;
        }
        let (count, bytes) = self.subtree_count_and_bytes(quota_path);
        let mut stats = StatsTrack::default();
        stats.set(COUNT_KEY, count);
        stats.set(BYTES_KEY, bytes);
        self.rewrite_in_place(&stats_path, stats.to_bytes());
    }

    /// ZooKeeper's `getCounts` (no node: 0 and 0). Iterative: paths may
    /// nest deeper than a thread's stack allows recursion.
    fn subtree_count_and_bytes(&self, top: &str) -> (i64, i64) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let Some(top) = self.get(top) else {
            return (0, 0);
        };
        let mut stack = vec![top];
        while let Some(node) = stack.pop() {
            count += 1;
            bytes += data_len(&node.data) as i64;
            stack.extend(node.children.paths().map(|child| self.node(child)));
        }
        (count, bytes)
    }

    /// Replaces a node's data keeping its stat (version, mzxid, mtime), as
    /// ZooKeeper's quota updates assign `DataNode.data` directly.
    fn rewrite_in_place(&mut self, node_path: &str, data: Vec<u8>) {
        let node = self.node_mut(node_path).expect("the caller found the node");
        let bytes_delta = data.len() as i64 - data_len(&node.data) as i64;
        node.stat.data_length = data.len() as i32;
        node.data = Some(data.into_boxed_slice());
        self.data_bytes += bytes_delta;
    }

    /// ZooKeeper's `setupQuota`, after a snapshot is loaded (before the log
    /// is replayed): every limits node under `/zookeeper/quota` that has no
    /// children makes its path a quota again, and its stats are recounted.
    pub fn setup_quotas(&mut self) {
        self.quotas = QuotaIndex::new();
        let limits_suffix = format!("/{LIMITS_NODE}");
        let mut quota_paths = Vec::new();
        let mut stack = vec![QUOTA_PATH.to_string()];
        while let Some(at) = stack.pop() {
            let Some(node) = self.get(&at) else { continue };
            if node.children.is_empty() {
                if at.ends_with(&limits_suffix) {
                    // ZooKeeper cuts at the first "/zookeeper_limits".
                    let end = at.find(&limits_suffix).expect("ends with it");
                    quota_paths.push(at[QUOTA_PATH.len()..end].to_string());
                }
                continue;
            }
            stack.extend(node.children.paths().map(str::to_string));
        }
        for quota_path in quota_paths {
            // ZooKeeper's trie refuses "" (its load fails); nothing to set up.
            if quota_path.is_empty() {
                continue;
            }
            self.recount_quota(&quota_path);
            if let Some(normal) = normalize(&quota_path) {
                self.quotas.insert(normal);
            }
        }
    }
}

#[cfg(test)]
mod stats_track_tests {
    use super::*;

    #[test]
    fn formats_as_zookeeper_with_hard_limits_after_the_old_fields() {
        let mut limits = StatsTrack::default();
        limits.set(COUNT_KEY, -1);
        limits.set(BYTES_KEY, -1);
        limits.set(COUNT_HARD_LIMIT_KEY, 2);
        limits.set(BYTE_HARD_LIMIT_KEY, -1);
        let text = limits.to_bytes();
        assert_eq!(
            text,
            b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2".to_vec()
        );
        assert_eq!(StatsTrack::parse(&text), limits);
        let mut stats = StatsTrack::default();
        stats.set(COUNT_KEY, 3);
        stats.set(BYTES_KEY, 10);
        assert_eq!(stats.to_bytes(), b"count=3,bytes=10".to_vec());
        assert_eq!(StatsTrack::default().to_bytes(), b"count=-1,bytes=-1");
    }

    #[test]
    fn parses_the_pre_3_7_format_and_skips_what_zookeeper_would_throw_on() {
        let old = StatsTrack::parse(b"count=5,bytes=100");
        assert_eq!(
            (old.count(), old.bytes(), old.count_hard_limit()),
            (5, 100, -1)
        );
        let odd = StatsTrack::parse(b"count=x;;bytes==7,countHardLimit,byteHardLimit=+3,key=");
        assert_eq!(odd.count(), -1, "not a number");
        assert_eq!(odd.bytes(), -1, "an empty value reads as -1");
        assert_eq!(odd.count_hard_limit(), -1, "no '='");
        assert_eq!(odd.byte_hard_limit(), 3);
        assert!(!odd.values.contains_key("key"), "no value");
        assert_eq!(StatsTrack::parse(b""), StatsTrack::default());
    }

    #[test]
    fn trie_form_skips_blank_components() {
        assert_eq!(normalize("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(normalize("/a/ /b").as_deref(), Some("/a/b"));
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("/ "), None);
        assert_eq!(trim_quota_path("/zookeeper/quota/a"), Some("/a"));
        assert_eq!(trim_quota_path("/zookeeper/quotaX"), Some("X"));
        assert_eq!(trim_quota_path("/zookeeper/x"), None);
    }

    #[test]
    fn exceeded_reads_as_zookeepers_log_line() {
        let exceeded = QuotaExceeded {
            quota_path: "/q".to_string(),
            what: COUNT_KEY,
            after: 3,
            limit: 2,
            hard: true,
        };
        assert_eq!(
            exceeded.to_string(),
            "Quota exceeded: /q [current count=3, hardCountLimit=2]"
        );
        let soft_bytes = QuotaExceeded {
            what: BYTES_KEY,
            hard: false,
            ..exceeded
        };
        assert_eq!(
            soft_bytes.to_string(),
            "Quota exceeded: /q [current bytes=3, softByteLimit=2]"
        );
    }
}
