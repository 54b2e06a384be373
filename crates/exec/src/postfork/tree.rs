//! Find and signal a process tree through `/proc`, without allocating.
//!
//! [`signal_tree`] scans `/proc/<pid>/stat` into a buffer allocated in advance
//! ([`ProcScratch`]), works out which processes descend from an ancestor (by
//! parent-pid chains) or belong to a process group, and signals them. Being
//! allocation-free and built on raw system calls (rustix's `getdents64` iterator
//! over that buffer, no `errno`), it runs inside the per-run supervisor, which
//! shares the memory of a multi-threaded program. It never panics.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::RawDir;

use crate::sys;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    pid: i32,
    ppid: i32,
    pgid: i32,
    /// 0 unknown, 1 descendant, 2 not.
    mark: u8,
}

const UNKNOWN: u8 = 0;
const DESCENDANT: u8 = 1;
const UNRELATED: u8 = 2;

/// Buffers for [`signal_tree`], allocated in advance (the supervisor's are
/// pooled with its stacks).
pub struct ProcScratch {
    entries: Vec<Entry>,
    dirbuf: Vec<MaybeUninit<u8>>,
}

impl ProcScratch {
    /// Room for `max_processes` entries of the process table (processes beyond it are
    /// not seen in one scan).
    pub fn new(max_processes: usize) -> ProcScratch {
        ProcScratch {
            entries: Vec::with_capacity(max_processes.max(16)),
            dirbuf: vec![MaybeUninit::uninit(); 16 * 1024],
        }
    }
}

impl Default for ProcScratch {
    fn default() -> Self {
        ProcScratch::new(32 * 1024)
    }
}

impl std::fmt::Debug for ProcScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcScratch(capacity {})", self.entries.capacity())
    }
}

/// Parse decimal digits into a positive i32 (no sign, no overflow).
fn parse_pid(digits: &[u8]) -> Option<i32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    i32::try_from(v).ok()
}

/// From the contents of `/proc/<pid>/stat`, the parent pid and process group.
fn parse_stat(stat: &[u8]) -> Option<(i32, i32)> {
    // "pid (comm) S ppid pgrp ..." — comm may hold anything, so start after the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = stat.get(close + 1..)?;
    let mut fields = rest.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let _state = fields.next()?;
    let ppid = parse_pid(fields.next()?).or(Some(0))?;
    let pgid = parse_pid(fields.next()?)?;
    Some((ppid, pgid))
}

/// Read `/proc/<name>/stat` relative to the open `/proc` descriptor.
fn read_stat(proc_dir: BorrowedFd<'_>, name: &[u8], buf: &mut [u8]) -> Option<(i32, i32)> {
    let mut path = [0u8; 32];
    let suffix = b"/stat\0";
    let total = name.len() + suffix.len();
    if total > path.len() {
        return None;
    }
    path.get_mut(..name.len())?.copy_from_slice(name);
    path.get_mut(name.len()..total)?.copy_from_slice(suffix);
    let cpath = CStr::from_bytes_with_nul(path.get(..total)?).ok()?;
    let fd = sys::open_raw(Some(proc_dir), cpath, false).ok()?;
    let n = sys::read_raw(&fd, buf).ok()?;
    drop(fd);
    parse_stat(buf.get(..n)?)
}

/// Fill `scratch.entries` with the current process table.
fn scan(scratch: &mut ProcScratch) -> bool {
    scratch.entries.clear();
    let Ok(proc_dir) = sys::open_raw(None, c"/proc", true) else {
        return false;
    };
    let mut statbuf = [0u8; 512];
    let mut dir = RawDir::new(&proc_dir, &mut scratch.dirbuf);
    while let Some(entry) = dir.next() {
        let Ok(entry) = entry else { break };
        let name = entry.file_name().to_bytes();
        if let Some(pid) = parse_pid(name) {
            if let Some((ppid, pgid)) = read_stat(proc_dir.as_fd(), name, &mut statbuf) {
                if scratch.entries.len() < scratch.entries.capacity() {
                    scratch.entries.push(Entry {
                        pid,
                        ppid,
                        pgid,
                        mark: UNKNOWN,
                    });
                }
            }
        }
    }
    true
}

/// Mark every entry descending from `ancestor`.
fn mark_descendants(entries: &mut [Entry], ancestor: i32) {
    entries.sort_unstable_by_key(|e| e.pid);
    let n = entries.len();
    for i in 0..n {
        // Walk up until the answer is known.
        let mut cur = i;
        let mut steps = 0usize;
        let result = loop {
            let Some(e) = entries.get(cur) else {
                break UNRELATED;
            };
            if e.mark != UNKNOWN {
                break e.mark;
            }
            if e.ppid == ancestor {
                break DESCENDANT;
            }
            if e.ppid <= 1 || steps > n {
                break UNRELATED;
            }
            match entries.binary_search_by_key(&e.ppid, |x| x.pid) {
                Ok(j) => {
                    cur = j;
                    steps += 1;
                }
                Err(_) => break UNRELATED,
            }
        };
        // Walk again, recording the answer on the way.
        let mut cur = i;
        for _ in 0..=steps {
            let Some(e) = entries.get_mut(cur) else { break };
            if e.mark != UNKNOWN {
                break;
            }
            e.mark = result;
            let ppid = e.ppid;
            match entries.binary_search_by_key(&ppid, |x| x.pid) {
                Ok(j) => cur = j,
                Err(_) => break,
            }
        }
    }
}

/// Send `sig` to every process descending from `ancestor` and, if given, to every
/// member of process group `pgid`; never to `ancestor` or the caller. Returns how many
/// processes were signalled. Async-signal-safe; never panics.
pub fn signal_tree(ancestor: i32, pgid: Option<i32>, sig: i32, scratch: &mut ProcScratch) -> usize {
    if !scan(scratch) {
        return 0;
    }
    mark_descendants(&mut scratch.entries, ancestor);
    let me = sys::getpid();
    let mut count = 0;
    for e in scratch.entries.iter() {
        if e.pid == ancestor || e.pid == me || e.pid <= 1 {
            continue;
        }
        if (e.mark == DESCENDANT || Some(e.pgid) == pgid) && sys::kill_process(e.pid, sig).is_ok() {
            count += 1;
        }
    }
    count
}

/// The pids descending from `ancestor` now (allocates; for tests and diagnostics).
pub fn descendants(ancestor: i32) -> Vec<i32> {
    let mut scratch = ProcScratch::default();
    if !scan(&mut scratch) {
        return Vec::new();
    }
    mark_descendants(&mut scratch.entries, ancestor);
    scratch
        .entries
        .iter()
        .filter(|e| e.mark == DESCENDANT && e.pid != ancestor)
        .map(|e| e.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_names() {
        assert_eq!(parse_stat(b"42 (a) b) c) S 7 9 9 0 -1"), Some((7, 9)));
        assert_eq!(parse_stat(b"1 (init) S 0 1 1"), Some((0, 1)));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_pid(b"12a"), None);
        assert_eq!(parse_pid(b"99999999999"), None);
    }

    #[test]
    fn marks_chains() {
        let mut e = vec![
            Entry {
                pid: 10,
                ppid: 1,
                pgid: 10,
                mark: 0,
            },
            Entry {
                pid: 11,
                ppid: 10,
                pgid: 10,
                mark: 0,
            },
            Entry {
                pid: 12,
                ppid: 11,
                pgid: 12,
                mark: 0,
            },
            Entry {
                pid: 13,
                ppid: 12,
                pgid: 13,
                mark: 0,
            },
            Entry {
                pid: 20,
                ppid: 1,
                pgid: 20,
                mark: 0,
            },
            Entry {
                pid: 21,
                ppid: 20,
                pgid: 20,
                mark: 0,
            },
        ];
        e.reverse();
        mark_descendants(&mut e, 10);
        let d: Vec<i32> = e
            .iter()
            .filter(|x| x.mark == DESCENDANT)
            .map(|x| x.pid)
            .collect();
        assert_eq!(d, vec![11, 12, 13]);
    }

    #[test]
    fn finds_own_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let d = descendants(std::process::id() as i32);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(d.contains(&(child.id() as i32)), "{d:?}");
    }
}
