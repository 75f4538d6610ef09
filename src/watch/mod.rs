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

#[derive(Default)]
pub struct WatchRegistry {
    by_kind: [HashMap<Arc<str>, Watchers>; 4],
    /// Reverse index so a closing connection drops its watches without a scan.
    by_watcher: HashMap<WatcherId, HashSet<(WatchKind, Arc<str>)>>,
    /// For each watched path, a bit per kind that has watchers on it, so the
    /// number of distinct watched paths is known without a scan.
    path_kinds: HashMap<Arc<str>, u8>,
    total: usize,
}

fn slot(kind: WatchKind) -> usize {
    kind as usize
}

impl WatchRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total registered watches (wchs's count).
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Paths with at least one watch.
    pub fn path_count(&self) -> usize {
        self.path_kinds.len()
    }

    /// Watches one connection holds.
    pub fn count_of(&self, watcher: WatcherId) -> usize {
        self.by_watcher.get(&watcher).map_or(0, HashSet::len)
    }

    /// Connections with at least one watch.
    pub fn watcher_count(&self) -> usize {
        self.by_watcher.len()
    }

    fn path_gained(&mut self, kind: WatchKind, path: &Arc<str>) {
        *self.path_kinds.entry(path.clone()).or_insert(0) |= 1 << slot(kind);
    }

    fn path_lost(&mut self, kind: WatchKind, path: &str) {
        if let Some(bits) = self.path_kinds.get_mut(path) {
            *bits &= !(1 << slot(kind));
            if *bits == 0 {
                self.path_kinds.remove(path);
            }
        }
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
            self.by_watcher
                .entry(watcher)
                .or_default()
                .insert((kind, key));
            self.total += 1;
        }
    }

    pub fn contains(&self, kind: WatchKind, path: &str, watcher: WatcherId) -> bool {
        self.by_kind[slot(kind)]
            .get(path)
            .is_some_and(|w| w.contains(&watcher))
    }

    fn remove_one(&mut self, kind: WatchKind, path: &str, watcher: WatcherId) -> bool {
        let map = &mut self.by_kind[slot(kind)];
        let Some((key, set)) = map.get_key_value_mut(path) else {
            return false;
        };
        if !set.remove(&watcher) {
            return false;
        }
        let key = key.clone();
        if set.is_empty() {
            map.remove(path);
            self.path_lost(kind, path);
        }
        self.forget(watcher, kind, key);
        self.total -= 1;
        true
    }

    /// Drops one entry of the reverse index: a hash lookup, not a scan of
    /// all the connection's watches (a client may hold a million).
    fn forget(&mut self, watcher: WatcherId, kind: WatchKind, path: Arc<str>) {
        if let Some(mine) = self.by_watcher.get_mut(&watcher) {
            mine.remove(&(kind, path));
            if mine.is_empty() {
                self.by_watcher.remove(&watcher);
            }
        }
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
        let Some(mine) = self.by_watcher.remove(&watcher) else {
            return;
        };
        for (kind, path) in mine {
            let map = &mut self.by_kind[slot(kind)];
            if let Some(set) = map.get_mut(&path) {
                set.remove(&watcher);
                if set.is_empty() {
                    map.remove(&path);
                    self.path_lost(kind, &path);
                }
            }
            self.total -= 1;
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
            self.forget(watcher, kind, key.clone());
            self.total -= 1;
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

    /// (path, watchers) pairs, for the wchp/wchc four-letter words.
    pub fn paths(&self) -> Vec<(Arc<str>, Vec<WatcherId>)> {
        let mut by_path: HashMap<Arc<str>, Vec<WatcherId>> = HashMap::new();
        for map in &self.by_kind {
            for (path, set) in map {
                by_path
                    .entry(path.clone())
                    .or_default()
                    .extend(set.iter().copied());
            }
        }
        by_path.into_iter().collect()
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
    fn distinct_paths_and_watchers_are_counted() {
        let mut r = WatchRegistry::new();
        r.add(WatchKind::Data, "/a", 1);
        r.add(WatchKind::Child, "/a", 2);
        r.add(WatchKind::Data, "/b", 1);
        assert_eq!((r.path_count(), r.watcher_count()), (2, 2));
        assert_eq!((r.count_of(1), r.count_of(2), r.count_of(3)), (2, 1, 0));
        r.trigger(EventType::NodeDataChanged, "/a");
        assert_eq!(r.path_count(), 2, "the child watch still covers /a");
        r.remove_watcher(2);
        assert_eq!((r.path_count(), r.watcher_count()), (1, 1));
        r.remove("/b", watcher_type::ANY, 1);
        assert_eq!((r.path_count(), r.watcher_count()), (0, 0));
    }

    #[test]
    fn ancestors() {
        let all: Vec<&str> = ancestors_and_self("/a/b").collect();
        assert_eq!(all, vec!["/a/b", "/a", "/"]);
        assert_eq!(ancestors_and_self("/").collect::<Vec<_>>(), vec!["/"]);
    }
}
