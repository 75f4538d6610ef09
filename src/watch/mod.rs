//! The watch registry of one shard (pure): which of the shard's connections
//! watch which paths, and who a tree change notifies. Mirrors ZooKeeper's
//! WatchManager: one-shot data/child watches are removed when they fire;
//! persistent watches stay; persistent-recursive watches cover the subtree and
//! never see NodeChildrenChanged; a watcher gets one event per change.

use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use smallvec::SmallVec;

use crate::proto::{watcher_type, EventType};

/// The shard-local id of a watching connection.
pub type WatcherId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// getData/exists one-shot (exists on a missing node included).
    Data,
    /// getChildren one-shot.
    Child,
    /// addWatch mode 0.
    Persistent,
    /// addWatch mode 1.
    Recursive,
}

const KINDS: [WatchKind; 4] = [
    WatchKind::Data,
    WatchKind::Child,
    WatchKind::Persistent,
    WatchKind::Recursive,
];

type Watchers = HashSet<WatcherId>;

const fn bit(kind: WatchKind) -> u8 {
    1 << kind as u8
}

/// The kinds ZooKeeper keeps in its `dataWatches` manager: data watches and
/// both addWatch modes (`DataTree.addWatch`).
const DATA_SIDE: u8 = bit(WatchKind::Data) | bit(WatchKind::Persistent) | bit(WatchKind::Recursive);
/// The kinds in its `childWatches`: child watches and persistent ones.
const CHILD_SIDE: u8 = bit(WatchKind::Child) | bit(WatchKind::Persistent);

/// What one connection watches: per path, a bit per kind.
#[derive(Default)]
struct Held {
    kinds: HashMap<Arc<str>, u8>,
    /// (kind, path) entries, the per-connection bound's count.
    entries: usize,
    /// Paths with a data-side kind.
    data_paths: usize,
}

/// The counts ZooKeeper reports, which follow its two watch managers: a
/// (path, connection) pair counts once per manager that holds it, so a
/// persistent watch counts in both, and a data and a persistent watch on one
/// path count once in `dataWatches`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchCounts {
    /// mntr's `watch_count` (`dataWatches.size() + childWatches.size()`).
    pub total: usize,
    /// wchs's "N connections watching" (`dataWatches` only, as ZooKeeper).
    pub data_watchers: usize,
    /// wchs's "watching M paths".
    pub data_paths: usize,
    /// wchs's "Total watches".
    pub data_pairs: usize,
}

#[derive(Default)]
pub struct WatchRegistry {
    by_kind: [HashMap<Arc<str>, Watchers>; 4],
    /// Reverse index so a closing connection drops its watches without a scan.
    by_watcher: HashMap<WatcherId, Held>,
    /// For each watched path, a bit per kind that has watchers on it, so the
    /// number of distinct watched paths is known without a scan.
    path_kinds: HashMap<Arc<str>, u8>,
    /// (kind, path, connection) entries.
    total: usize,
    data_pairs: usize,
    child_pairs: usize,
    data_paths: usize,
    data_watchers: usize,
}

fn slot(kind: WatchKind) -> usize {
    kind as usize
}

impl WatchRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// (kind, path, connection) entries.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Watches one connection holds.
    pub fn count_of(&self, watcher: WatcherId) -> usize {
        self.by_watcher.get(&watcher).map_or(0, |h| h.entries)
    }

    /// The counts mntr and wchs report, as ZooKeeper counts them.
    pub fn counts(&self) -> WatchCounts {
        WatchCounts {
            total: self.data_pairs + self.child_pairs,
            data_watchers: self.data_watchers,
            data_paths: self.data_paths,
            data_pairs: self.data_pairs,
        }
    }

    fn path_gained(&mut self, kind: WatchKind, path: &Arc<str>) {
        let bits = self.path_kinds.entry(path.clone()).or_insert(0);
        let before = *bits;
        *bits |= bit(kind);
        if before & DATA_SIDE == 0 && *bits & DATA_SIDE != 0 {
            self.data_paths += 1;
        }
    }

    fn path_lost(&mut self, kind: WatchKind, path: &str) {
        if let Some(bits) = self.path_kinds.get_mut(path) {
            let before = *bits;
            *bits &= !bit(kind);
            if before & DATA_SIDE != 0 && *bits & DATA_SIDE == 0 {
                self.data_paths -= 1;
            }
            if *bits == 0 {
                self.path_kinds.remove(path);
            }
        }
    }

    /// Records that `watcher` holds `kind` on `path`.
    fn hold(&mut self, watcher: WatcherId, kind: WatchKind, path: Arc<str>) {
        let held = self.by_watcher.entry(watcher).or_default();
        let bits = held.kinds.entry(path).or_insert(0);
        let before = *bits;
        *bits |= bit(kind);
        held.entries += 1;
        let after = *bits;
        let data_gained = before & DATA_SIDE == 0 && after & DATA_SIDE != 0;
        if data_gained {
            held.data_paths += 1;
            if held.data_paths == 1 {
                self.data_watchers += 1;
            }
        }
        self.data_pairs += usize::from(data_gained);
        self.child_pairs += usize::from(before & CHILD_SIDE == 0 && after & CHILD_SIDE != 0);
        self.total += 1;
    }

    /// Drops one entry of the reverse index: a hash lookup, not a scan of
    /// all the connection's watches (a client may hold a million).
    fn forget(&mut self, watcher: WatcherId, kind: WatchKind, path: &str) {
        let Some(held) = self.by_watcher.get_mut(&watcher) else {
            return;
        };
        let Some(bits) = held.kinds.get_mut(path) else {
            return;
        };
        let before = *bits;
        *bits &= !bit(kind);
        let after = *bits;
        if after == 0 {
            held.kinds.remove(path);
        }
        held.entries -= 1;
        let data_lost = before & DATA_SIDE != 0 && after & DATA_SIDE == 0;
        if data_lost {
            held.data_paths -= 1;
            if held.data_paths == 0 {
                self.data_watchers -= 1;
            }
        }
        if held.entries == 0 {
            self.by_watcher.remove(&watcher);
        }
        self.data_pairs -= usize::from(data_lost);
        self.child_pairs -= usize::from(before & CHILD_SIDE != 0 && after & CHILD_SIDE == 0);
        self.total -= 1;
    }

    pub fn add(&mut self, kind: WatchKind, path: &str, watcher: WatcherId) {
        let map = &mut self.by_kind[slot(kind)];
        let key: Arc<str> = match map.get_key_value(path) {
            Some((k, _)) => k.clone(),
            None => Arc::from(path),
        };
        let set = map.entry(key.clone()).or_default();
        let first_on_path = set.is_empty();
        if set.insert(watcher) {
            if first_on_path {
                self.path_gained(kind, &key);
            }
            self.hold(watcher, kind, key);
        }
    }

    pub fn contains(&self, kind: WatchKind, path: &str, watcher: WatcherId) -> bool {
        self.by_kind[slot(kind)]
            .get(path)
            .is_some_and(|w| w.contains(&watcher))
    }

    fn remove_one(&mut self, kind: WatchKind, path: &str, watcher: WatcherId) -> bool {
        let map = &mut self.by_kind[slot(kind)];
        let Some(set) = map.get_mut(path) else {
            return false;
        };
        if !set.remove(&watcher) {
            return false;
        }
        if set.is_empty() {
            map.remove(path);
            self.path_lost(kind, path);
        }
        self.forget(watcher, kind, path);
        true
    }

    /// The kinds a removeWatches/checkWatches `WatcherType` names.
    fn kinds_of(watcher_type: i32) -> &'static [WatchKind] {
        match watcher_type {
            watcher_type::CHILDREN => &[WatchKind::Child],
            watcher_type::DATA => &[WatchKind::Data],
            watcher_type::PERSISTENT => &[WatchKind::Persistent],
            watcher_type::PERSISTENT_RECURSIVE => &[WatchKind::Recursive],
            watcher_type::ANY => &KINDS,
            _ => &[],
        }
    }

    /// removeWatches: true if anything was removed (else the client gets NOWATCHER).
    pub fn remove(&mut self, path: &str, watcher_type: i32, watcher: WatcherId) -> bool {
        let mut removed = false;
        for &kind in Self::kinds_of(watcher_type) {
            removed |= self.remove_one(kind, path, watcher);
        }
        removed
    }

    /// checkWatches: true if the watcher has a watch of that type on the path.
    pub fn check(&self, path: &str, watcher_type: i32, watcher: WatcherId) -> bool {
        Self::kinds_of(watcher_type)
            .iter()
            .any(|&kind| self.contains(kind, path, watcher))
    }

    /// Drops every watch of a connection (it closed).
    pub fn remove_watcher(&mut self, watcher: WatcherId) {
        let Some(held) = self.by_watcher.get(&watcher) else {
            return;
        };
        let mine: Vec<(Arc<str>, u8)> = held.kinds.iter().map(|(p, b)| (p.clone(), *b)).collect();
        for (path, bits) in mine {
            for kind in KINDS.into_iter().filter(|k| bits & bit(*k) != 0) {
                self.remove_one(kind, &path, watcher);
            }
        }
    }

    /// The watchers a tree change notifies, each once; one-shot watches that
    /// fire are removed.
    pub fn trigger(&mut self, event: EventType, path: &str) -> SmallVec<[WatcherId; 4]> {
        let mut out: SmallVec<[WatcherId; 4]> = SmallVec::new();
        let one_shot: &[WatchKind] = match event {
            EventType::NodeCreated | EventType::NodeDataChanged => &[WatchKind::Data],
            EventType::NodeDeleted => &[WatchKind::Data, WatchKind::Child],
            EventType::NodeChildrenChanged => &[WatchKind::Child],
            _ => &[],
        };
        for &kind in one_shot {
            self.take_one_shot(kind, path, &mut out);
        }
        self.collect(WatchKind::Persistent, path, &mut out);
        if event != EventType::NodeChildrenChanged
            && !self.by_kind[slot(WatchKind::Recursive)].is_empty()
        {
            for ancestor in ancestors_and_self(path) {
                self.collect(WatchKind::Recursive, ancestor, &mut out);
            }
        }
        // A connection watching through several kinds gets one event.
        out.sort_unstable();
        out.dedup();
        out
    }

    fn take_one_shot(&mut self, kind: WatchKind, path: &str, out: &mut SmallVec<[WatcherId; 4]>) {
        let Some((key, set)) = self.by_kind[slot(kind)].remove_entry(path) else {
            return;
        };
        self.path_lost(kind, path);
        for watcher in set {
            self.forget(watcher, kind, &key);
            out.push(watcher);
        }
    }

    fn collect(&self, kind: WatchKind, path: &str, out: &mut SmallVec<[WatcherId; 4]>) {
        if let Some(set) = self.by_kind[slot(kind)].get(path) {
            for &watcher in set {
                out.push(watcher);
            }
        }
    }

    /// (path, watchers) pairs of ZooKeeper's `dataWatches` (data watches
    /// and both addWatch modes), which is all its wchc/wchp and the
    /// AdminServer's watches/watches_by_path list; each watcher once a path.
    pub fn data_side_paths(&self) -> Vec<(Arc<str>, Vec<WatcherId>)> {
        let mut by_path: HashMap<Arc<str>, Vec<WatcherId>> = HashMap::new();
        for kind in KINDS.into_iter().filter(|k| DATA_SIDE & bit(*k) != 0) {
            for (path, set) in &self.by_kind[slot(kind)] {
                by_path
                    .entry(path.clone())
                    .or_default()
                    .extend(set.iter().copied());
            }
        }
        by_path
            .into_iter()
            .map(|(path, mut watchers)| {
                watchers.sort_unstable();
                watchers.dedup();
                (path, watchers)
            })
            .collect()
    }
}

/// "/a/b" -> "/a/b", "/a", "/".
fn ancestors_and_self(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = if current == "/" {
            None
        } else {
            match current.rfind('/') {
                Some(0) => Some("/"),
                Some(i) => Some(&current[..i]),
                None => None,
            }
        };
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_data_watch_fires_once() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Data, "/a", 1);
        r.add(WatchKind::Data, "/a", 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r.trigger(EventType::NodeDataChanged, "/a").as_slice(), &[1]);
        assert!(r.trigger(EventType::NodeDataChanged, "/a").is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn delete_fires_data_and_child_watchers_once_each_watcher() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Data, "/a", 1);
        r.add(WatchKind::Child, "/a", 1);
        r.add(WatchKind::Child, "/a", 2);
        let mut fired = r.trigger(EventType::NodeDeleted, "/a").to_vec();
        fired.sort();
        assert_eq!(fired, vec![1, 2]);
        assert!(r.is_empty());
    }

    #[test]
    fn child_watch_fires_on_children_changed_only() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Child, "/p", 1);
        assert!(r.trigger(EventType::NodeDataChanged, "/p").is_empty());
        assert_eq!(
            r.trigger(EventType::NodeChildrenChanged, "/p").as_slice(),
            &[1]
        );
    }

    #[test]
    fn persistent_watch_stays_and_sees_children_changes() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Persistent, "/p", 1);
        for _ in 0..3 {
            assert_eq!(r.trigger(EventType::NodeDataChanged, "/p").as_slice(), &[1]);
            assert_eq!(
                r.trigger(EventType::NodeChildrenChanged, "/p").as_slice(),
                &[1]
            );
        }
        assert!(r.trigger(EventType::NodeDataChanged, "/p/c").is_empty());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn recursive_watch_covers_subtree_but_not_children_changed() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Recursive, "/a", 7);
        assert_eq!(r.trigger(EventType::NodeCreated, "/a/b/c").as_slice(), &[7]);
        assert_eq!(r.trigger(EventType::NodeDeleted, "/a").as_slice(), &[7]);
        assert!(r.trigger(EventType::NodeChildrenChanged, "/a").is_empty());
        assert!(r.trigger(EventType::NodeCreated, "/ab").is_empty());
        r.add(WatchKind::Recursive, "/", 8);
        assert_eq!(r.trigger(EventType::NodeCreated, "/x").as_slice(), &[8]);
    }

    #[test]
    fn remove_and_check_by_type() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Data, "/a", 1);
        r.add(WatchKind::Child, "/a", 1);
        assert!(r.check("/a", watcher_type::CHILDREN, 1));
        assert!(!r.check("/a", watcher_type::PERSISTENT, 1));
        assert!(r.remove("/a", watcher_type::CHILDREN, 1));
        assert!(!r.remove("/a", watcher_type::CHILDREN, 1));
        assert!(r.remove("/a", watcher_type::ANY, 1));
        assert!(r.is_empty());
    }

    #[test]
    fn closing_connection_drops_its_watches_only() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Data, "/a", 1);
        r.add(WatchKind::Recursive, "/", 1);
        r.add(WatchKind::Data, "/a", 2);
        r.remove_watcher(1);
        assert_eq!(r.len(), 1);
        assert_eq!(r.trigger(EventType::NodeDataChanged, "/a").as_slice(), &[2]);
    }

    #[test]
    fn counts_follow_zookeepers_two_managers() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Data, "/a", 1);
        r.add(WatchKind::Child, "/a", 2);
        r.add(WatchKind::Data, "/b", 1);
        let counts = |r: &WatchRegistry| {
            let c = r.counts();
            (c.total, c.data_watchers, c.data_paths, c.data_pairs)
        };
        // The child watch counts in mntr's total, not in wchs's data side.
        assert_eq!(counts(&r), (3, 1, 2, 2));
        assert_eq!((r.count_of(1), r.count_of(2), r.count_of(3)), (2, 1, 0));
        // A persistent watch is in both managers; with a data watch on the
        // same path, once in dataWatches.
        r.add(WatchKind::Persistent, "/a", 1);
        assert_eq!(counts(&r), (4, 1, 2, 2));
        r.add(WatchKind::Recursive, "/c", 2);
        assert_eq!(counts(&r), (5, 2, 3, 3));
        r.trigger(EventType::NodeDataChanged, "/a");
        assert_eq!(
            counts(&r),
            (5, 2, 3, 3),
            "the persistent watch still holds /a"
        );
        r.remove_watcher(2);
        assert_eq!(counts(&r), (3, 1, 2, 2));
        r.remove("/b", watcher_type::ANY, 1);
        r.remove("/a", watcher_type::ANY, 1);
        assert_eq!(counts(&r), (0, 0, 0, 0));
        assert!(r.is_empty());
    }

    #[test]
    fn data_side_paths_leave_out_child_watches() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Data, "/a", 1);
        r.add(WatchKind::Persistent, "/a", 1);
        r.add(WatchKind::Child, "/", 1);
        r.add(WatchKind::Recursive, "/r", 2);
        let mut paths = r.data_side_paths();
        paths.sort();
        assert_eq!(
            paths,
            vec![(Arc::from("/a"), vec![1]), (Arc::from("/r"), vec![2])]
        );
    }

    #[test]
    fn ancestors() {
        let all: Vec<&str> = ancestors_and_self("/a/b").collect();
        assert_eq!(all, vec!["/a/b", "/a", "/"]);
        assert_eq!(ancestors_and_self("/").collect::<Vec<_>>(), vec!["/"]);
    }
}
