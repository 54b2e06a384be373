//! The sandbox's seccomp filter: a classic BPF program, built before fork and
//! installed by the command process (after its credential changes, `no_new_privs`
//! and Landlock) through [`crate::sys::seccomp_set_filter`].
//!
//! Landlock has no right for file metadata and cannot see which address family a
//! socket has, so an operation that declares a `sandbox` also gets this filter.
//! Unless `sandbox.allow` opts a family back in, it answers `EPERM` to:
//!
//! - **metadata**: `chmod`, `fchmod`, `fchmodat`, `fchmodat2`, `chown`, `fchown`,
//!   `lchown`, `fchownat`, `utime`, `utimes`, `futimesat`, `utimensat`, `setxattr`,
//!   `lsetxattr`, `fsetxattr`, `setxattrat`, `removexattr`, `lremovexattr`,
//!   `fremovexattr`, `removexattrat`, `file_setattr`, and `ioctl` with
//!   `FS_IOC_SETFLAGS` (`chattr`), its 32-bit twin or `FS_IOC_FSSETXATTR`
//!   (the legacy calls exist on x86-64 only);
//! - **unix**: `socket(AF_UNIX, ...)`, and `socketpair(AF_UNIX, ...)` of any type
//!   but `SOCK_STREAM` (a datagram pair can `sendto` any named socket);
//! - `io_uring_setup` unless both families are allowed (io_uring can set xattrs
//!   and create sockets without the system calls above).
//!
//! **Foreign system-call ABIs.** The filter only knows the native numbering. A
//! system call made through another ABI (i386 `int 0x80` or x32 on x86-64, 32-bit
//! ARM on aarch64) kills the process (`SECCOMP_RET_KILL_PROCESS`, seen as SIGSYS):
//! such a call is either a 32-bit program, which could not work under a filter
//! written for 64-bit numbers anyway, or an attempt to slip past the filter. Where
//! the kernel lacks `SECCOMP_RET_KILL_PROCESS` (before 4.14) the filter is reported
//! as unsupported.
//!
//! Architectures: x86-64 and aarch64 (little endian). Elsewhere the filter is
//! unsupported and `on_unsupported` decides.

use crate::sys;
use regent_model::SandboxAllow;

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

// Return actions (linux/seccomp.h).
/// `SECCOMP_RET_KILL_PROCESS`.
pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// Offsets in `struct seccomp_data` (nr, arch, instruction_pointer, args[6]); the
// low 32 bits of an argument on a little-endian machine.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

/// `__X32_SYSCALL_BIT`: x32 system calls are the x86-64 numbers with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Newer system calls (the same number on every architecture).
const SYS_FCHMODAT2: u32 = 452;
const SYS_SETXATTRAT: u32 = 463;
const SYS_REMOVEXATTRAT: u32 = 466;
const SYS_FILE_SETATTR: u32 = 469;
const SYS_IO_URING_SETUP: u32 = 425;

// ioctl commands that change inode flags or extended attributes of a file.
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;

/// The `AUDIT_ARCH_*` value of this build's native system-call ABI, or `None`
/// where the filter is not supported.
pub fn native_arch() -> Option<u32> {
    if cfg!(target_endian = "big") {
        None
    } else if cfg!(target_arch = "x86_64") {
        Some(0xc000_003e) // AUDIT_ARCH_X86_64
    } else if cfg!(target_arch = "aarch64") {
        Some(0xc000_00b7) // AUDIT_ARCH_AARCH64
    } else {
        None
    }
}

/// The metadata system calls of the native ABI.
fn metadata_syscalls() -> Vec<u32> {
    let mut v: Vec<u32> = vec![
        libc::SYS_fchmod as u32,
        libc::SYS_fchmodat as u32,
        SYS_FCHMODAT2,
        libc::SYS_fchown as u32,
        libc::SYS_fchownat as u32,
        libc::SYS_utimensat as u32,
        libc::SYS_setxattr as u32,
        libc::SYS_lsetxattr as u32,
        libc::SYS_fsetxattr as u32,
        SYS_SETXATTRAT,
        libc::SYS_removexattr as u32,
        libc::SYS_lremovexattr as u32,
        libc::SYS_fremovexattr as u32,
        SYS_REMOVEXATTRAT,
        SYS_FILE_SETATTR,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_chmod as u32,
        libc::SYS_chown as u32,
        libc::SYS_lchown as u32,
        libc::SYS_utime as u32,
        libc::SYS_utimes as u32,
        libc::SYS_futimesat as u32,
    ]);
    v
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Build the filter for a sandbox that allows `allow`, for the native ABI `arch`.
/// `None` when there is nothing to deny (every family allowed).
pub(crate) fn build_for(arch: u32, allow: &SandboxAllow) -> Option<Vec<libc::sock_filter>> {
    if allow.metadata && allow.unix {
        return None;
    }
    let eperm = stmt(RET_K, RET_ERRNO | libc::EPERM as u32);
    let mut p = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JEQ_K, arch, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, DATA_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        p.push(jump(JSET_K, X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(RET_K, RET_KILL_PROCESS));
    }
    let mut deny: Vec<u32> = vec![SYS_IO_URING_SETUP];
    if !allow.metadata {
        deny.extend(metadata_syscalls());
    }
    for nr in deny {
        p.push(jump(JEQ_K, nr, 0, 1));
        p.push(eperm);
    }
    if !allow.unix {
        // socket(AF_UNIX, ...)
        p.push(jump(JEQ_K, libc::SYS_socket as u32, 0, 4));
        p.push(stmt(LD_W_ABS, arg_low(0)));
        p.push(jump(JEQ_K, libc::AF_UNIX as u32, 0, 1));
        p.push(eperm);
        p.push(stmt(RET_K, RET_ALLOW));
        // socketpair(AF_UNIX, type other than SOCK_STREAM, ...)
        p.push(jump(JEQ_K, libc::SYS_socketpair as u32, 0, 7));
        p.push(stmt(LD_W_ABS, arg_low(0)));
        p.push(jump(JEQ_K, libc::AF_UNIX as u32, 0, 4));
        p.push(stmt(LD_W_ABS, arg_low(1)));
        p.push(stmt(AND_K, 0xf)); // the type without SOCK_NONBLOCK/SOCK_CLOEXEC
        p.push(jump(JEQ_K, libc::SOCK_STREAM as u32, 1, 0));
        p.push(eperm);
        p.push(stmt(RET_K, RET_ALLOW));
    }
    if !allow.metadata {
        let cmds = [FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS, FS_IOC_FSSETXATTR];
        let n = cmds.len() as u8;
        p.push(jump(JEQ_K, libc::SYS_ioctl as u32, 0, n + 3));
        p.push(stmt(LD_W_ABS, arg_low(1)));
        for (j, cmd) in cmds.iter().enumerate() {
            p.push(jump(JEQ_K, *cmd, n - j as u8, 0));
        }
        p.push(stmt(RET_K, RET_ALLOW));
        p.push(eperm);
    }
    p.push(stmt(RET_K, RET_ALLOW));
    Some(p)
}

/// Why the filter cannot be used on this system, if it cannot.
pub(crate) fn unsupported_reason() -> Option<String> {
    if native_arch().is_none() {
        return Some(format!(
            "not built for this architecture ({})",
            std::env::consts::ARCH
        ));
    }
    match sys::seccomp_action_available(RET_KILL_PROCESS) {
        Ok(()) => None,
        Err(e) => Some(format!("seccomp filters unavailable: {e}")),
    }
}

/// True when this kernel and build can install the sandbox's seccomp filter.
pub fn available() -> bool {
    unsupported_reason().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;

    /// A classic BPF interpreter for the opcodes the builder emits.
    fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend(nr.to_le_bytes());
        data.extend(arch.to_le_bytes());
        data.extend(0u64.to_le_bytes());
        for a in args {
            data.extend(a.to_le_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let o = i.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                JEQ_K | JSET_K => {
                    let hit = if i.code == JEQ_K {
                        acc == i.k
                    } else {
                        acc & i.k != 0
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
                AND_K => acc &= i.k,
                RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn nr(n: libc::c_long) -> u32 {
        n as u32
    }

    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn denies_each_family_unless_allowed() {
        let none = build_for(X86_64, &SandboxAllow::default()).unwrap();
        let meta = build_for(
            X86_64,
            &SandboxAllow {
                metadata: true,
                ..SandboxAllow::default()
            },
        )
        .unwrap();
        let unix = build_for(
            X86_64,
            &SandboxAllow {
                unix: true,
                ..SandboxAllow::default()
            },
        )
        .unwrap();
        let unix_sock = [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        let inet_sock = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        for call in metadata_syscalls() {
            assert_eq!(eval(&none, X86_64, call, [0; 6]), EPERM, "syscall {call}");
            assert_eq!(eval(&unix, X86_64, call, [0; 6]), EPERM, "syscall {call}");
            assert_eq!(
                eval(&meta, X86_64, call, [0; 6]),
                RET_ALLOW,
                "syscall {call}"
            );
        }
        let socket = nr(libc::SYS_socket);
        assert_eq!(eval(&none, X86_64, socket, unix_sock), EPERM);
        assert_eq!(eval(&meta, X86_64, socket, unix_sock), EPERM);
        assert_eq!(eval(&unix, X86_64, socket, unix_sock), RET_ALLOW);
        assert_eq!(eval(&none, X86_64, socket, inet_sock), RET_ALLOW);
        // Only the low 32 bits of the family count, as in the kernel.
        let high = [(1u64 << 32) | libc::AF_UNIX as u64, 1, 0, 0, 0, 0];
        assert_eq!(eval(&none, X86_64, socket, high), EPERM);

        let pair = nr(libc::SYS_socketpair);
        let stream = (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as u64;
        let dgram = (libc::SOCK_DGRAM | libc::SOCK_NONBLOCK) as u64;
        let unix = libc::AF_UNIX as u64;
        assert_eq!(
            eval(&none, X86_64, pair, [unix, stream, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(eval(&none, X86_64, pair, [unix, dgram, 0, 0, 0, 0]), EPERM);

        let ioctl = nr(libc::SYS_ioctl);
        for cmd in [FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS, FS_IOC_FSSETXATTR] {
            let args = [3, u64::from(cmd), 0, 0, 0, 0];
            assert_eq!(eval(&none, X86_64, ioctl, args), EPERM, "{cmd:#x}");
            assert_eq!(eval(&meta, X86_64, ioctl, args), RET_ALLOW, "{cmd:#x}");
        }
        let tcgets = [0, 0x5401, 0, 0, 0, 0]; // TCGETS
        assert_eq!(eval(&none, X86_64, ioctl, tcgets), RET_ALLOW);

        for p in [&none, &meta] {
            assert_eq!(eval(p, X86_64, SYS_IO_URING_SETUP, [0; 6]), EPERM);
            assert_eq!(eval(p, X86_64, nr(libc::SYS_read), [0; 6]), RET_ALLOW);
            assert_eq!(eval(p, X86_64, nr(libc::SYS_openat), [0; 6]), RET_ALLOW);
        }
        let all = SandboxAllow {
            metadata: true,
            unix: true,
            ..SandboxAllow::default()
        };
        assert!(build_for(X86_64, &all).is_none());
    }

    #[test]
    fn foreign_abis_are_killed() {
        let p = build_for(X86_64, &SandboxAllow::default()).unwrap();
        // i386 `int 0x80`: read(2) there is number 3, harmless natively.
        assert_eq!(eval(&p, I386, 3, [0; 6]), RET_KILL_PROCESS);
        if cfg!(target_arch = "x86_64") {
            let x32_read = X32_SYSCALL_BIT;
            assert_eq!(eval(&p, X86_64, x32_read, [0; 6]), RET_KILL_PROCESS);
        }
    }

    #[test]
    fn jumps_stay_in_bounds() {
        for bits in 0..4u8 {
            let allow = SandboxAllow {
                metadata: bits & 1 != 0,
                unix: bits & 2 != 0,
                ..SandboxAllow::default()
            };
            let Some(p) = build_for(X86_64, &allow) else {
                continue;
            };
            assert_eq!(p.last().unwrap().code, RET_K);
            for (i, ins) in p.iter().enumerate() {
                if ins.code == JEQ_K || ins.code == JSET_K {
                    assert!(i + 1 + usize::from(ins.jt.max(ins.jf)) < p.len());
                }
            }
        }
    }
}
