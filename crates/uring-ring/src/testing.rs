//! Test support shared with other crates' tests (hidden from the docs):
//! make `io_uring_setup` fail with `EPERM` through seccomp, as Docker's
//! default profile does, and re-run one test in a child process.
//!
//! Typical use (see `tests/blocking_seccomp.rs`): a parent test calls
//! [`run_child`] with the name of a child test; the child test returns at
//! once unless [`is_child`] is true, otherwise calls
//! [`deny_io_uring_setup`] and runs its workload, printing a marker line the
//! parent checks.

use std::io;
use std::process::{Command, Output};

/// Environment variable that puts a test binary in child mode.
pub const CHILD_ENV: &str = "AURAIO_SECCOMP_CHILD";

/// True inside a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some_and(|v| v == "1")
}

/// Re-executes the current test binary running only `test_name` (exact
/// match, output not captured) with [`CHILD_ENV`]`=1`, and returns its
/// output.
pub fn run_child(test_name: &str) -> io::Result<Output> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
}

/// Installs a seccomp filter on the whole process (all threads) that makes
/// `io_uring_setup` fail with `EPERM`; every other syscall is allowed.
/// Irreversible: call it only in a process that exists for the test.
pub fn deny_io_uring_setup() -> io::Result<()> {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "seccomp test filter only knows x86_64 and aarch64",
        ));
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
        const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
        // Offsets in `struct seccomp_data`.
        const NR_OFFSET: u32 = 0;
        const ARCH_OFFSET: u32 = 4;
        let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
        let ld_w_abs = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
        let jeq_k = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
        let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
        let filter = [
            // A foreign architecture's syscall numbers mean something else:
            // allow those untouched.
            ins(ld_w_abs, 0, 0, ARCH_OFFSET),
            ins(jeq_k, 1, 0, AUDIT_ARCH),
            ins(ret_k, 0, 0, SECCOMP_RET_ALLOW),
            ins(ld_w_abs, 0, 0, NR_OFFSET),
            ins(jeq_k, 0, 1, libc::SYS_io_uring_setup as u32),
            ins(ret_k, 0, 0, SECCOMP_RET_ERRNO | libc::EPERM as u32),
            ins(ret_k, 0, 0, SECCOMP_RET_ALLOW),
        ];
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prctl with integer arguments; only affects this process.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `prog` points at `filter`, both alive for the call; the
        // kernel copies the program. TSYNC applies it to every thread.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
