//! A local, size-bounded cache of extracted FMUs, keyed by the archive's SHA-256 (the FMU's
//! id), under `<data>/cache/fmus/<sha256>/`: workers `dlopen` a binary from a directory, so
//! an FMU kept in the object store is extracted here before it runs.
//!
//! A miss is filled once however many callers ask at the same moment (the others wait for
//! that fill); a directory appears whole (filled under a temporary name, then renamed). When
//! the cache holds more than its bound, the least recently used entries nobody holds are
//! removed; an entry a running job holds (a [`Pinned`]) is never removed, so the bound can be
//! exceeded while every entry is in use. The same code serves both backends: with the local
//! one the archive is read where it lies, only the extraction is cached.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The cache of extracted FMUs.
#[derive(Debug)]
pub struct FmuCache {
    root: PathBuf,
    max_bytes: u64,
    entries: Mutex<Entries>,
    /// One lock per key being filled, so that concurrent misses fill it once.
    fills: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, Entry>,
    bytes: u64,
    /// A counter that orders uses (least recently used = smallest).
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    bytes: u64,
    used: u64,
    /// How many [`Pinned`] hold it.
    pins: usize,
    /// Which filling of the key this is (a key whose files vanished is filled again).
    generation: u64,
}

/// An extracted FMU held for use: it is not evicted until this is dropped.
#[derive(Debug)]
pub struct Pinned {
    cache: Arc<FmuCache>,
    key: String,
    generation: u64,
    dir: PathBuf,
}

impl Pinned {
    /// The directory of the extracted FMU.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let victims = {
            let mut entries = self.cache.lock();
            entries.clock += 1;
            let now = entries.clock;
            if let Some(entry) = entries.map.get_mut(&self.key)
                && entry.generation == self.generation
            {
                entry.pins -= 1;
                entry.used = now;
            }
            self.cache.evict(&mut entries)
        };
        remove_dirs(victims);
    }
}

impl FmuCache {
    /// The cache at `root`, bounded to `max_bytes`, knowing what a previous process left
    /// there (least recently used first by modification time); half-done fills are removed.
    pub fn open(root: PathBuf, max_bytes: u64) -> io::Result<Arc<FmuCache>> {
        std::fs::create_dir_all(&root)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            found.push((modified, name, tree_size(&entry.path())));
        }
        found.sort();
        let mut entries = Entries::default();
        for (_, key, bytes) in found {
            entries.clock += 1;
            entries.bytes += bytes;
            let used = entries.clock;
            entries.map.insert(
                key,
                Entry {
                    bytes,
                    used,
                    pins: 0,
                    generation: used,
                },
            );
        }
        let cache = Arc::new(FmuCache {
            root,
            max_bytes,
            entries: Mutex::new(entries),
            fills: Mutex::new(HashMap::new()),
        });
        let victims = cache.evict(&mut cache.lock());
        remove_dirs(victims);
        Ok(cache)
    }

    /// The extracted FMU `key`, pinned; on a miss `fill` extracts it into the (new) directory
    /// it is given, once for all concurrent callers of the same key.
    pub async fn get<F, Fut>(self: &Arc<Self>, key: &str, fill: F) -> io::Result<Pinned>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = io::Result<()>>,
    {
        if let Some(pinned) = self.pin(key) {
            return Ok(pinned);
        }
        let lock = self
            .fills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        let filling = lock.lock().await;
        let result = match self.pin(key) {
            Some(pinned) => Ok(pinned),
            None => self.fill(key, fill).await,
        };
        drop(filling);
        let mut fills = self.fills.lock().unwrap_or_else(|p| p.into_inner());
        if fills.get(key).is_some_and(|l| Arc::ptr_eq(l, &lock)) {
            fills.remove(key);
        }
        result
    }

    /// Removes `key` now unless a job holds it (then the bound removes it once released):
    /// its FMU was deleted.
    pub fn forget(&self, key: &str) {
        let aside = {
            let mut entries = self.lock();
            match entries.map.get(key) {
                Some(entry) if entry.pins == 0 => {
                    let bytes = entry.bytes;
                    entries.map.remove(key);
                    entries.bytes -= bytes;
                    self.set_aside(key)
                }
                _ => None,
            }
        };
        remove_dirs(aside.into_iter().collect());
    }

    /// Bytes the cache holds now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Whether `key` is in the cache.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().map.contains_key(key)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pins `key` if it is there. An entry whose directory vanished (removed by hand, a
    /// disk cleaned) is forgotten, so that it is filled again rather than failing every run.
    fn pin(self: &Arc<Self>, key: &str) -> Option<Pinned> {
        let dir = self.root.join(key);
        let mut entries = self.lock();
        if !dir.is_dir() {
            if let Some(gone) = entries.map.remove(key) {
                entries.bytes -= gone.bytes;
            }
            return None;
        }
        entries.clock += 1;
        let now = entries.clock;
        let entry = entries.map.get_mut(key)?;
        entry.pins += 1;
        entry.used = now;
        Some(Pinned {
            cache: self.clone(),
            key: key.to_string(),
            generation: entry.generation,
            dir,
        })
    }

    async fn fill<F, Fut>(self: &Arc<Self>, key: &str, fill: F) -> io::Result<Pinned>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = io::Result<()>>,
    {
        let temp = self
            .root
            .join(format!(".fill-{:016x}", rand::random::<u64>()));
        let dir = self.root.join(key);
        let filled = fill(temp.clone()).await;
        let placed = filled.and_then(|()| {
            // What a crash left under this name is not in the map: replace it.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&temp, &dir)
        });
        if let Err(e) = placed {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(e);
        }
        let bytes = tree_size(&dir);
        let victims = {
            let mut entries = self.lock();
            entries.clock += 1;
            let used = entries.clock;
            entries.bytes += bytes;
            let replaced = entries.map.insert(
                key.to_string(),
                Entry {
                    bytes,
                    used,
                    pins: 1,
                    generation: used,
                },
            );
            if let Some(old) = replaced {
                entries.bytes -= old.bytes;
            }
            (self.evict(&mut entries), used)
        };
        let (victims, generation) = victims;
        remove_dirs(victims);
        Ok(Pinned {
            cache: self.clone(),
            key: key.to_string(),
            generation,
            dir,
        })
    }

    /// Takes the least recently used unpinned entries out while over the bound; returns
    /// their directories, renamed aside (so a new fill of the key cannot meet them), to be
    /// removed outside the lock.
    fn evict(&self, entries: &mut Entries) -> Vec<PathBuf> {
        let mut victims = Vec::new();
        while entries.bytes > self.max_bytes {
            let Some(key) = entries
                .map
                .iter()
                .filter(|(_, e)| e.pins == 0)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(entry) = entries.map.remove(&key) {
                entries.bytes -= entry.bytes;
            }
            victims.extend(self.set_aside(&key));
        }
        victims
    }

    /// Renames `key`'s directory aside, so that a new fill of the key cannot meet it.
    fn set_aside(&self, key: &str) -> Option<PathBuf> {
        let aside = self
            .root
            .join(format!(".evict-{:016x}", rand::random::<u64>()));
        std::fs::rename(self.root.join(key), &aside)
            .is_ok()
            .then_some(aside)
    }
}

fn remove_dirs(dirs: Vec<PathBuf>) {
    for dir in dirs {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an evicted FMU");
        }
    }
}

/// Bytes of the regular files under `dir` (not following links).
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fill that writes one file of `bytes` bytes and counts its calls.
    fn filler<'a>(
        bytes: usize,
        calls: &'a AtomicUsize,
    ) -> impl FnOnce(PathBuf) -> std::pin::Pin<Box<dyn Future<Output = io::Result<()>> + 'a>> + 'a
    {
        move |dir| {
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                std::fs::create_dir_all(dir.join("binaries"))?;
                std::fs::write(dir.join("binaries").join("model.so"), vec![7u8; bytes])
            })
        }
    }

    #[tokio::test]
    async fn the_least_recently_used_unheld_entry_goes_when_over_the_bound() {
        let root = tempfile::tempdir().unwrap();
        let cache = FmuCache::open(root.path().join("fmus"), 250).unwrap();
        let calls = AtomicUsize::new(0);
        drop(cache.get("a", filler(100, &calls)).await.unwrap());
        drop(cache.get("b", filler(100, &calls)).await.unwrap());
        // `a` used again: `b` is now the least recently used.
        drop(cache.get("a", filler(100, &calls)).await.unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a hit does not fill");
        let c = cache.get("c", filler(100, &calls)).await.unwrap();
        assert!(cache.contains("a") && cache.contains("c") && !cache.contains("b"));
        assert_eq!(cache.bytes(), 200);
        assert!(
            !root.path().join("fmus/b").exists(),
            "an evicted entry's files go"
        );
        assert_eq!(
            std::fs::read(c.dir().join("binaries/model.so"))
                .unwrap()
                .len(),
            100
        );
    }

    #[tokio::test]
    async fn an_entry_in_use_is_never_evicted() {
        let root = tempfile::tempdir().unwrap();
        let cache = FmuCache::open(root.path().join("fmus"), 150).unwrap();
        let calls = AtomicUsize::new(0);
        let a = cache.get("a", filler(100, &calls)).await.unwrap();
        let b = cache.get("b", filler(100, &calls)).await.unwrap();
        // Both held: over the bound, nothing can go.
        assert!(cache.contains("a") && cache.contains("b"));
        assert_eq!(cache.bytes(), 200);
        assert!(a.dir().join("binaries/model.so").exists());
        drop(a);
        // `a` released and least recently used: it goes; `b`, still held, stays.
        assert!(!cache.contains("a") && cache.contains("b"));
        assert!(b.dir().join("binaries/model.so").exists());
        drop(b);
        assert!(cache.contains("b"), "within the bound now");
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_key_fill_it_once() {
        let root = tempfile::tempdir().unwrap();
        let cache = FmuCache::open(root.path().join("fmus"), 1 << 20).unwrap();
        let calls = AtomicUsize::new(0);
        let gets = (0..8).map(|_| cache.get("same", filler(10, &calls)));
        let pinned = futures_util::future::try_join_all(gets).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            pinned
                .iter()
                .all(|p| p.dir() == root.path().join("fmus/same"))
        );
        assert_eq!(cache.bytes(), 10);
    }

    #[tokio::test]
    async fn a_failed_fill_leaves_nothing_and_the_next_one_tries_again() {
        let root = tempfile::tempdir().unwrap();
        let cache = FmuCache::open(root.path().join("fmus"), 1 << 20).unwrap();
        let failed = cache
            .get("x", |dir| async move {
                std::fs::create_dir_all(&dir)?;
                Err(io::Error::other("the store is away"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read_dir(root.path().join("fmus")).unwrap().count(),
            0
        );
        let calls = AtomicUsize::new(0);
        cache.get("x", filler(5, &calls)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_restart_knows_what_the_cache_holds_and_keeps_its_bound() {
        let root = tempfile::tempdir().unwrap();
        let calls = AtomicUsize::new(0);
        {
            let cache = FmuCache::open(root.path().join("fmus"), 1 << 20).unwrap();
            cache.get("a", filler(100, &calls)).await.unwrap();
            cache.get("b", filler(100, &calls)).await.unwrap();
        }
        std::fs::create_dir_all(root.path().join("fmus/.fill-0")).unwrap();
        let cache = FmuCache::open(root.path().join("fmus"), 150).unwrap();
        assert_eq!(
            cache.bytes(),
            100,
            "one of the two goes to fit the new bound"
        );
        assert!(!root.path().join("fmus/.fill-0").exists());
    }
}
