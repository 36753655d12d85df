//! [`GovernedCache`]: governed states already loaded, by base commit, so that many changes
//! proposed against one base parse its catalog, build its graph and compile its policy once.
//!
//! A git commit id names its tree and, through it, the bytes of every file: what
//! [`crate::governed::load`] reads from a commit can never change, so a state cached under the
//! commit id is exactly what a fresh load would return, files read included (the record's
//! `inputs` stay byte-identical). Nothing is ever invalidated, only evicted (oldest first)
//! when more than `capacity` bases are held. A load that fails for its input (a malformed or
//! over-limit catalog, a bad policy: the commit's content) is cached too, as its message:
//! the commit cannot change, so neither can the failure, and a hostile base is not parsed
//! again by every proposal against it. A failure of the machine (I/O) or of this clone (a
//! missing object) is not cached: the next caller tries again.
//!
//! Concurrent callers asking for the same base wait for the one load in flight instead of
//! repeating it. This module reads nothing itself: the caller passes the load.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{DecideError, Result};
use crate::governed::GovernedState;

/// A governed state and the files its load read (absent ones as `None`), by path: the
/// `inputs` of every decision judged by it.
pub struct Loaded {
    pub state: GovernedState,
    pub reads: BTreeMap<String, Option<Vec<u8>>>,
}

type Key = (PathBuf, String);
/// A held load: the state, or the input failure (its whole message) that loading it gave.
type Slot = Arc<Mutex<Option<std::result::Result<Arc<Loaded>, String>>>>;

/// See the module docs. Share one per process (it is `Sync`).
pub struct GovernedCache {
    capacity: usize,
    inner: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    by_key: HashMap<Key, Slot>,
    /// Keys in insertion order, for eviction.
    order: VecDeque<Key>,
}

impl std::fmt::Debug for GovernedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_key
            .len();
        f.debug_struct("GovernedCache")
            .field("capacity", &self.capacity)
            .field("held", &held)
            .finish()
    }
}

impl GovernedCache {
    /// A cache holding at most `capacity` base commits (at least one).
    pub fn new(capacity: usize) -> GovernedCache {
        GovernedCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Slots::default()),
        }
    }

    /// The state of commit `commit` (a full id) of the repository at `repo`, loading it with
    /// `load` unless it is held.
    pub fn get_or_load(
        &self,
        repo: &std::path::Path,
        commit: &str,
        load: impl FnOnce() -> Result<Loaded>,
    ) -> Result<Arc<Loaded>> {
        let key = (repo.to_owned(), commit.to_owned());
        let slot = {
            // A poisoned lock only means another thread panicked mid-update of plain maps;
            // the worst case is a missing or extra entry, never a wrong state.
            let mut slots = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = slots.by_key.get(&key) {
                slot.clone()
            } else {
                let slot = Slot::default();
                slots.by_key.insert(key.clone(), slot.clone());
                slots.order.push_back(key);
                while slots.order.len() > self.capacity {
                    if let Some(oldest) = slots.order.pop_front() {
                        slots.by_key.remove(&oldest);
                    }
                }
                slot
            }
        };
        // Held while loading: concurrent callers for the same base wait for this load.
        let mut loaded = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match loaded.as_ref() {
            Some(Ok(loaded)) => return Ok(loaded.clone()),
            Some(Err(message)) => return Err(DecideError::invalid(message.clone())),
            None => {}
        }
        match load() {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *loaded = Some(Ok(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => {
                // Content, not the state of this clone: a missing object (a shallow clone
                // deepened later) is asked again.
                if error.is_input() && error.repo_error().is_none() {
                    *loaded = Some(Err(error.chain()));
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use countersign_graph::MemorySource;
    use std::cell::Cell;
    use std::path::Path;

    fn load(count: &Cell<u32>) -> Result<Loaded> {
        count.set(count.get() + 1);
        let source = MemorySource::new(Vec::<(String, Vec<u8>)>::new());
        Ok(Loaded {
            state: crate::governed::load(&source)?,
            reads: BTreeMap::new(),
        })
    }

    #[test]
    fn loads_once_per_commit_and_evicts_the_oldest() {
        let cache = GovernedCache::new(2);
        let count = Cell::new(0);
        let repo = Path::new("/r");
        let a = cache.get_or_load(repo, "a", || load(&count)).unwrap();
        let again = cache.get_or_load(repo, "a", || load(&count)).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(count.get(), 1);
        cache.get_or_load(repo, "b", || load(&count)).unwrap();
        cache
            .get_or_load(Path::new("/other"), "a", || load(&count))
            .unwrap();
        assert_eq!(count.get(), 3, "another repository is another key");
        // Capacity 2: "a" of /r was evicted by the third key.
        cache.get_or_load(repo, "a", || load(&count)).unwrap();
        assert_eq!(count.get(), 4);
    }

    #[test]
    fn a_failed_load_of_the_content_is_cached_one_of_the_machine_is_not() {
        let count = Cell::new(0);
        // The base's content is at fault: the commit cannot change, so neither can the
        // failure; it is remembered, message included, and the load is not run again.
        let cache = GovernedCache::new(4);
        for _ in 0..3 {
            let failed = cache.get_or_load(Path::new("/r"), "a", || {
                count.set(count.get() + 1);
                Err(crate::error::DecideError::invalid(
                    "catalog-info.yaml:3: boom",
                ))
            });
            let error = failed.err().unwrap();
            assert!(error.is_input());
            assert!(
                error.to_string().contains("catalog-info.yaml:3: boom"),
                "{error}"
            );
        }
        assert_eq!(count.get(), 1);
        // The machine is at fault: the next caller tries again, and may succeed.
        let failed = cache.get_or_load(Path::new("/r"), "b", || {
            Err(crate::error::DecideError::internal("disk on fire"))
        });
        assert!(failed.is_err());
        let count = Cell::new(0);
        cache
            .get_or_load(Path::new("/r"), "b", || load(&count))
            .unwrap();
        assert_eq!(count.get(), 1);
    }
}
