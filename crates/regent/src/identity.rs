//! Who is calling: the kernel's word, never the client's.
//!
//! On a Unix socket the peer's pid, uid and gid come from `SO_PEERCRED`, read when
//! the connection is accepted. The user name and groups are resolved from those ids
//! through the system's user database. Nothing a client writes in a request
//! changes this.
//!
//! # Off the event loop
//!
//! A user-database lookup goes through NSS and may take seconds (LDAP, sssd). The
//! [`IdentityResolver`] therefore never looks up on the caller's thread: a cache
//! hit ([`IdentityResolver::cached`]) is a map lookup under a short lock, with no
//! I/O and no thread hop; a miss ([`IdentityResolver::resolve`]) runs the lookup on
//! tokio's blocking pool, and only the connection that needs it waits. Concurrent
//! misses for the same (uid, gid) share one lookup.
//!
//! The cache is keyed by the kernel's (uid, gid), which a caller cannot choose
//! beyond its own uid and the groups it may switch to, and it holds at most
//! [`DEFAULT_CAPACITY`] entries (expired ones go first, then the oldest). Entries
//! live for the resolver's ttl (5 s by default) so that a change in the user
//! database takes effect quickly; a uid the database does not know (or a failed
//! lookup) is a negative entry kept for at most [`NEGATIVE_TTL`], so that a new
//! account is seen soon while a caller without one still costs at most one lookup
//! a second. At most one lookup per (uid, gid) is in flight: it fills the cache
//! even if every connection waiting for it has gone, so that a caller who opens
//! and closes connections cannot start more; an entry whose lookup is in flight
//! is never evicted, so only while the user database hangs for many different
//! callers at once can the cache exceed its capacity, by those callers' entries.
//! The pid is never cached.

use nix::unistd::{Gid, Group, Uid, User};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The caller of a request, as the kernel and the user database describe it: the
/// shared [`regent_model::Principal`], under the name this crate's API has used.
pub type Caller = regent_model::Principal;

/// What the user database says about one (uid, gid): the user's name and groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The user name, if the database knows the uid.
    pub user: Option<String>,
    /// The gid and the user's supplementary groups.
    pub groups: Vec<u32>,
    /// The names of `groups` that the group database knows.
    pub group_names: Vec<String>,
}

impl Identity {
    /// Nothing known beyond the kernel's ids: what a failed lookup gives.
    fn unknown(gid: u32) -> Identity {
        Identity {
            user: None,
            groups: vec![gid],
            group_names: Vec::new(),
        }
    }
}

/// A user-database lookup for (uid, gid). It may block for a long time: the
/// resolver runs it on tokio's blocking pool, never on an event loop.
pub type Lookup = dyn Fn(u32, u32) -> Identity + Send + Sync;

/// The system's lookup (NSS: `getpwuid`, `getgrouplist`, `getgrgid`). Blocking.
/// An error is taken as "unknown": no name, only the kernel's gid.
pub fn lookup(uid: u32, gid: u32) -> Identity {
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
    let mut groups = vec![gid];
    if let Some(u) = &user {
        if let Ok(name) = CString::new(u.name.clone()) {
            if let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
                for g in list {
                    if !groups.contains(&g.as_raw()) {
                        groups.push(g.as_raw());
                    }
                }
            }
        }
    }
    let group_names = groups
        .iter()
        .filter_map(|g| {
            Group::from_gid(Gid::from_raw(*g))
                .ok()
                .flatten()
                .map(|g| g.name)
        })
        .collect();
    Identity {
        user: user.map(|u| u.name),
        groups,
        group_names,
    }
}

/// The caller for kernel credentials and what the database says of them. The
/// ids are always the kernel's; the kernel's gid is always among the groups.
fn caller_from(identity: &Identity, pid: Option<i32>, uid: u32, gid: u32) -> Caller {
    let mut groups = identity.groups.clone();
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    Caller {
        groups,
        group_names: identity.group_names.clone(),
        ..Caller::unix(pid, uid, gid, identity.user.clone())
    }
}

/// The most (uid, gid) pairs cached by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The longest a negative entry (a uid the database does not know, or a failed
/// lookup) is cached.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// A finished lookup.
struct Done {
    at: Instant,
    ttl: Duration,
    identity: Arc<Identity>,
}

impl Done {
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < self.ttl
    }
}

/// One cache entry: empty while its lookup is in flight. The lookup fills it
/// whether or not anyone still waits, so a connection that gives up waiting
/// (closed, timed out, shutdown) neither loses the answer nor starts a second
/// lookup: there is at most one lookup in flight per (uid, gid).
#[derive(Default)]
struct Entry {
    done: OnceLock<Done>,
    ready: Notify,
}

type Slot = Arc<Entry>;

impl Entry {
    fn get(&self) -> Option<&Done> {
        self.done.get()
    }

    fn fill(&self, done: Done) {
        let _ = self.done.set(done);
        self.ready.notify_waiters();
    }

    /// Wait until the lookup has filled the entry.
    async fn wait(&self) -> &Done {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(done) = self.done.get() {
                return done;
            }
            notified.await;
        }
    }
}

struct Inner {
    cache: Mutex<HashMap<(u32, u32), Slot>>,
    ttl: Duration,
    capacity: usize,
    lookup: Arc<Lookup>,
}

/// Resolves kernel credentials into a [`Caller`], caching the database lookups
/// and running them off the event loop (see the [module documentation](self)).
/// Clones share the cache.
#[derive(Clone)]
pub struct IdentityResolver(Arc<Inner>);

impl Default for IdentityResolver {
    fn default() -> Self {
        IdentityResolver::new(Duration::from_secs(5))
    }
}

impl std::fmt::Debug for IdentityResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityResolver")
            .field("ttl", &self.0.ttl)
            .field("capacity", &self.0.capacity)
            .finish_non_exhaustive()
    }
}

impl IdentityResolver {
    /// A resolver over the system's user database whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        IdentityResolver::with_lookup(ttl, DEFAULT_CAPACITY, lookup)
    }

    /// A resolver over another user database (a directory service, or a test's
    /// slow one), caching at most `capacity` (uid, gid) pairs for `ttl`.
    pub fn with_lookup(
        ttl: Duration,
        capacity: usize,
        lookup: impl Fn(u32, u32) -> Identity + Send + Sync + 'static,
    ) -> Self {
        IdentityResolver(Arc::new(Inner {
            cache: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
            lookup: Arc::new(lookup),
        }))
    }

    /// The caller from the cache, if a fresh entry is there: no I/O, no thread
    /// hop, so it may run on the event loop. `None`: call [`Self::resolve`].
    pub fn cached(&self, pid: Option<i32>, uid: u32, gid: u32) -> Option<Caller> {
        let cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
        let done = cache.get(&(uid, gid))?.get()?;
        done.fresh(Instant::now())
            .then(|| caller_from(&done.identity, pid, uid, gid))
    }

    /// The caller for kernel credentials (pid, uid, gid): from the cache, or
    /// looked up on the blocking pool (joining a lookup already in flight for the
    /// same ids). Only the task awaiting this waits for the lookup; dropping the
    /// wait leaves the lookup to fill the cache.
    pub async fn resolve(&self, pid: Option<i32>, uid: u32, gid: u32) -> Caller {
        let slot = match self.slot(uid, gid, Instant::now()) {
            Ok(identity) => return caller_from(&identity, pid, uid, gid),
            Err((slot, false)) => slot,
            Err((slot, true)) => {
                let (inner, entry) = (self.0.clone(), slot.clone());
                tokio::task::spawn_blocking(move || inner.look_up(&entry, uid, gid));
                slot
            }
        };
        let done = slot.wait().await;
        caller_from(&done.identity, pid, uid, gid)
    }

    /// A fresh cached identity, or the slot to wait for, and whether it is new
    /// (then the caller starts its lookup).
    fn slot(&self, uid: u32, gid: u32, now: Instant) -> Result<Arc<Identity>, (Slot, bool)> {
        let mut cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
        let key = (uid, gid);
        match cache.get(&key) {
            Some(slot) => match slot.get() {
                None => return Err((slot.clone(), false)),
                Some(done) if done.fresh(now) => return Ok(done.identity.clone()),
                Some(_expired) => {}
            },
            None if cache.len() >= self.0.capacity => evict(&mut cache, now),
            None => {}
        }
        let slot = Slot::default();
        cache.insert(key, slot.clone());
        Err((slot, true))
    }

    /// How many (uid, gid) pairs are cached or being looked up.
    pub fn len(&self) -> usize {
        self.0.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Look (uid, gid) up (blocking) and fill `entry`, always: a lookup that
    /// panics gives an unknown identity, kept as a negative entry.
    fn look_up(&self, entry: &Entry, uid: u32, gid: u32) {
        let lookup = std::panic::AssertUnwindSafe(|| (self.lookup)(uid, gid));
        let identity = std::panic::catch_unwind(lookup).unwrap_or_else(|_| {
            tracing::error!(
                uid,
                gid,
                "user database lookup failed; the caller is treated as unknown"
            );
            Identity::unknown(gid)
        });
        let ttl = if identity.user.is_some() {
            self.ttl
        } else {
            self.ttl.min(NEGATIVE_TTL)
        };
        entry.fill(Done {
            at: Instant::now(),
            ttl,
            identity: Arc::new(identity),
        });
    }
}

/// Make room in a full cache: drop the expired entries, and if none was, the
/// oldest finished one. Lookups in flight stay (their connections are waiting,
/// and are bounded by the connection limits).
fn evict(cache: &mut HashMap<(u32, u32), Slot>, now: Instant) {
    let before = cache.len();
    cache.retain(|_, slot| slot.get().is_none_or(|d| d.fresh(now)));
    if cache.len() < before {
        return;
    }
    let oldest = cache
        .iter()
        .filter_map(|(k, slot)| slot.get().map(|d| (d.at, *k)))
        .min()
        .map(|(_, k)| k);
    if let Some(k) = oldest {
        cache.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn root_resolves_to_root_with_group_root() {
        let r = IdentityResolver::default();
        assert_eq!(r.cached(Some(1), 0, 0), None, "nothing cached yet");
        let c = r.resolve(Some(1), 0, 0).await;
        assert_eq!(c.user.as_deref(), Some("root"));
        assert!(c.in_group(0));
        assert!(c.in_group_named("root"));
        assert_eq!(c.pid, Some(1));
        // Now a hit, with this connection's pid.
        let hit = r.cached(Some(2), 0, 0).unwrap();
        assert_eq!(hit.pid, Some(2));
        assert_eq!(hit.user.as_deref(), Some("root"));
    }

    #[tokio::test]
    async fn unknown_uid_has_no_name_but_keeps_its_ids() {
        let c = IdentityResolver::default()
            .resolve(None, 3_999_999_999, 3_999_999_998)
            .await;
        assert_eq!(c.user, None);
        assert_eq!(c.user_or_uid(), "3999999999");
        assert!(c.in_group(3_999_999_998));
        assert!(!c.in_group(0));
    }

    /// A lookup that counts its calls and names every uid "u<uid>".
    fn counting(calls: Arc<AtomicUsize>) -> impl Fn(u32, u32) -> Identity + Send + Sync {
        move |uid, gid| {
            calls.fetch_add(1, Ordering::SeqCst);
            // A real thread-blocking wait, long enough for the other misses to join.
            std::thread::sleep(Duration::from_millis(200));
            Identity {
                user: (uid < 1000).then(|| format!("u{uid}")),
                groups: vec![gid, 7],
                group_names: vec![],
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_lookup_and_ids_stay_the_kernels() {
        let calls = Arc::new(AtomicUsize::new(0));
        let r = IdentityResolver::with_lookup(Duration::from_secs(60), 16, counting(calls.clone()));
        let tasks: Vec<_> = (0..8)
            .map(|pid| {
                let r = r.clone();
                tokio::spawn(async move { r.resolve(Some(pid), 5, 6).await })
            })
            .collect();
        for (pid, t) in tasks.into_iter().enumerate() {
            let c = t.await.unwrap();
            assert_eq!((c.pid, c.uid, c.gid), (Some(pid as i32), 5, 6));
            assert_eq!(c.user.as_deref(), Some("u5"));
            assert!(c.in_group(7) && c.in_group(6));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one lookup for one key");
        // A lookup that leaves out the kernel's gid cannot take it away.
        let r = IdentityResolver::with_lookup(Duration::from_secs(60), 16, |_, _| Identity {
            user: Some("x".into()),
            groups: vec![9],
            group_names: vec![],
        });
        assert!(r.resolve(None, 1, 2).await.groups.starts_with(&[2, 9]));
    }

    #[tokio::test]
    async fn an_abandoned_wait_keeps_its_lookup_and_a_panicking_lookup_is_unknown() {
        let calls = Arc::new(AtomicUsize::new(0));
        let r = IdentityResolver::with_lookup(Duration::from_secs(60), 16, counting(calls.clone()));
        // Given up before the lookup (200 ms) ends: the lookup goes on.
        let gave_up = tokio::time::timeout(Duration::from_millis(1), r.resolve(None, 5, 5)).await;
        assert!(gave_up.is_err());
        let c = r.resolve(None, 5, 5).await;
        assert_eq!(c.user.as_deref(), Some("u5"));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no second lookup");

        let r = IdentityResolver::with_lookup(Duration::from_secs(60), 16, |_, _| -> Identity {
            panic!("the directory is on fire")
        });
        let c = r.resolve(Some(3), 7, 8).await;
        assert_eq!((c.user, c.uid, c.gid, c.groups), (None, 7, 8, vec![8]));
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_negative_entries_expire_sooner() {
        let calls = Arc::new(AtomicUsize::new(0));
        let r = IdentityResolver::with_lookup(Duration::from_secs(60), 4, counting(calls.clone()));
        for uid in 0..10 {
            r.resolve(None, uid, uid).await;
            assert!(r.len() <= 4, "{} entries", r.len());
        }
        // The newest are kept, the oldest went.
        assert!(r.cached(None, 9, 9).is_some());
        assert!(r.cached(None, 0, 0).is_none());
        // A uid the database does not know is cached for at most NEGATIVE_TTL.
        r.resolve(None, 5000, 5000).await;
        assert!(r.cached(None, 5000, 5000).is_some(), "cached for now");
        let slot = r.slot(5000, 5000, Instant::now() + NEGATIVE_TTL);
        assert!(slot.is_err(), "expired after NEGATIVE_TTL: looked up again");
        let named = r.slot(9, 9, Instant::now() + NEGATIVE_TTL);
        assert!(named.is_ok(), "a known user stays for the ttl");
    }
}
