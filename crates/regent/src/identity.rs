//! Who is calling: the kernel's word, never the client's.
//!
//! On a Unix socket the peer's pid, uid and gid come from `SO_PEERCRED`, read when
//! the connection is accepted. The user name and groups are resolved from those ids
//! through the system's user database (cached briefly, since a connection per
//! request is the common case). Nothing a client writes in a request changes this.

use nix::unistd::{Gid, Group, Uid, User};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The caller of a request, as the kernel and the user database describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Process id at connect time (`None` when the transport has none).
    pub pid: Option<i32>,
    /// Real user id from the kernel.
    pub uid: u32,
    /// Real (primary) group id from the kernel.
    pub gid: u32,
    /// User name for `uid`, if the user database knows it.
    pub user: Option<String>,
    /// Every group the user is in: the kernel's gid plus the database's supplementary groups.
    pub groups: Vec<u32>,
    /// Names of `groups` that the group database knows.
    pub group_names: Vec<String>,
}

impl Caller {
    /// True when the caller is in group `gid` (primary or supplementary).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// True when the caller is in the group named `name`.
    pub fn in_group_named(&self, name: &str) -> bool {
        self.group_names.iter().any(|g| g == name)
    }

    /// The user name, or the numeric uid when the database has no name.
    pub fn user_or_uid(&self) -> String {
        self.user.clone().unwrap_or_else(|| self.uid.to_string())
    }

    /// The identity of the current process (for in-process callers and tests).
    pub fn current_process() -> Caller {
        let resolved = resolve(Uid::current().as_raw(), Gid::current().as_raw());
        resolved.into_caller(Some(std::process::id() as i32))
    }
}

/// Names and groups for one (uid, gid), as the user database says.
#[derive(Debug, Clone)]
struct Resolved {
    uid: u32,
    gid: u32,
    user: Option<String>,
    groups: Vec<u32>,
    group_names: Vec<String>,
}

impl Resolved {
    fn into_caller(self, pid: Option<i32>) -> Caller {
        Caller {
            pid,
            uid: self.uid,
            gid: self.gid,
            user: self.user,
            groups: self.groups,
            group_names: self.group_names,
        }
    }
}

fn resolve(uid: u32, gid: u32) -> Resolved {
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
    Resolved {
        uid,
        gid,
        user: user.map(|u| u.name),
        groups,
        group_names,
    }
}

type Cache = HashMap<(u32, u32), (Instant, Resolved)>;

/// Resolves kernel credentials into a [`Caller`], caching the database lookups.
///
/// The cache is keyed by (uid, gid) and kept for a short time so that a change in
/// the user database takes effect quickly; it never caches the pid.
#[derive(Clone)]
pub struct IdentityResolver {
    cache: Arc<Mutex<Cache>>,
    ttl: Duration,
}

impl Default for IdentityResolver {
    fn default() -> Self {
        IdentityResolver::new(Duration::from_secs(5))
    }
}

impl IdentityResolver {
    /// A resolver whose cached entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        IdentityResolver {
            cache: Arc::new(Mutex::new(HashMap::new())),
            ttl,
        }
    }

    /// The caller for kernel credentials (pid, uid, gid).
    pub fn resolve(&self, pid: Option<i32>, uid: u32, gid: u32) -> Caller {
        let now = Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, r)) = cache.get(&(uid, gid)) {
                if now.duration_since(*at) < self.ttl {
                    return r.clone().into_caller(pid);
                }
            }
        }
        let r = resolve(uid, gid);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 4096 {
            cache.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if cache.len() > 4096 {
                cache.clear();
            }
        }
        cache.insert((uid, gid), (now, r.clone()));
        r.into_caller(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_to_root_with_group_root() {
        let c = IdentityResolver::default().resolve(Some(1), 0, 0);
        assert_eq!(c.user.as_deref(), Some("root"));
        assert!(c.in_group(0));
        assert!(c.in_group_named("root"));
        assert_eq!(c.pid, Some(1));
    }

    #[test]
    fn unknown_uid_has_no_name_but_keeps_its_ids() {
        let c = IdentityResolver::default().resolve(None, 3_999_999_999, 3_999_999_998);
        assert_eq!(c.user, None);
        assert_eq!(c.user_or_uid(), "3999999999");
        assert!(c.in_group(3_999_999_998));
        assert!(!c.in_group(0));
    }
}
