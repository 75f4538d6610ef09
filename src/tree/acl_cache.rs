//! Interning of ACL lists, as ZooKeeper's `ReferenceCountedACLCache` does:
//! nearly every znode carries one of a handful of ACL lists, so nodes share
//! one `Arc<[Acl]>` per distinct list instead of each holding a copy
//! (about 100 bytes and three allocations per znode for `world:anyone`).

use std::sync::Arc;

use crate::limits::ACL_CACHE_SWEEP_MIN;
use crate::proto::Acl;

/// The distinct ACL lists in use. Only the pipeline's working tree interns;
/// published clones never create nodes, so cloning yields an empty cache
/// (which keeps publishing a version O(1)). An empty cache only loses
/// sharing, never correctness.
#[derive(Debug, Default)]
pub struct AclCache {
    lists: hashbrown::HashSet<Arc<[Acl]>>,
    /// The list interned last: creates and snapshot loads mostly repeat it,
    /// and comparing is cheaper than hashing.
    last: Option<Arc<[Acl]>>,
    /// Sweep unused lists once the cache grows past this many.
    sweep_at: usize,
}

impl Clone for AclCache {
    fn clone(&self) -> Self {
        AclCache::default()
    }
}

impl AclCache {
    /// The shared handle of `acl`, adding it if it is new.
    pub fn intern(&mut self, acl: &[Acl]) -> Arc<[Acl]> {
        if let Some(last) = self.last.as_ref().filter(|last| ***last == *acl) {
            return last.clone();
        }
        let shared = self.intern_slow(acl);
        self.last = Some(shared.clone());
        shared
    }

    fn intern_slow(&mut self, acl: &[Acl]) -> Arc<[Acl]> {
        if let Some(shared) = self.lists.get(acl) {
            return shared.clone();
        }
        if self.lists.len() >= self.sweep_at {
            self.sweep();
        }
        let shared: Arc<[Acl]> = acl.into();
        self.lists.insert(shared.clone());
        shared
    }

    /// Drops the lists no node (of any live tree version) uses any more,
    /// so a workload of ever-new ACLs cannot grow the cache without bound.
    /// Amortised O(1): the next sweep waits until the cache doubles.
    fn sweep(&mut self) {
        self.lists.retain(|list| Arc::strong_count(list) > 1);
        self.sweep_at = (self.lists.len() * 2).max(ACL_CACHE_SWEEP_MIN);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{perms, Id};

    fn digest_acl(i: usize) -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::new("digest", &format!("user{i}:hash")),
        }]
    }

    #[test]
    fn equal_lists_share_one_allocation() {
        let mut cache = AclCache::default();
        let a = cache.intern(&Acl::open_unsafe());
        let b = cache.intern(&Acl::open_unsafe());
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.intern(&Acl::read_unsafe());
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn unused_lists_are_swept_and_used_ones_kept() {
        let mut cache = AclCache::default();
        let kept = cache.intern(&digest_acl(0));
        for i in 1..ACL_CACHE_SWEEP_MIN * 8 {
            drop(cache.intern(&digest_acl(i)));
        }
        assert!(cache.len() <= ACL_CACHE_SWEEP_MIN * 2, "{}", cache.len());
        assert!(Arc::ptr_eq(&kept, &cache.intern(&digest_acl(0))));
    }

    #[test]
    fn clones_start_empty() {
        let mut cache = AclCache::default();
        cache.intern(&Acl::open_unsafe());
        assert!(cache.clone().is_empty());
    }
}
