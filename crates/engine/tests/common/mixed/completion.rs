//! The per-thread `Counters` and the completion checks (`complete`,
//! `note_error`) every delivered op goes through.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::buf::{Kind, StressBuf};
use super::shadow::lock;

/// Counters shared by a thread's ops (callbacks may run on any thread).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) accepted: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) outstanding_cb: AtomicUsize,
    pub(super) ok_reads: AtomicU64,
    pub(super) ok_writes: AtomicU64,
    pub(super) short_reads: AtomicU64,
    pub(super) short_writes: AtomicU64,
    pub(super) canceled: AtomicU64,
    pub(super) cancels: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    pub(super) bytes_checked: AtomicU64,
    pub(super) misrouted: AtomicU64,
    pub(super) bad_data: AtomicU64,
    pub(super) bad_errors: Mutex<Vec<String>>,
}

pub(super) fn note_error(c: &Counters, e: &io::Error, what: &str) {
    match e.raw_os_error() {
        Some(libc::ECANCELED) => {
            c.canceled.fetch_add(1, Ordering::Relaxed);
        }
        // io-wq interrupts a cancelled op that is already running.
        Some(libc::EINTR) => {}
        _ => lock(&c.bad_errors).push(format!("{what}: {e}")),
    }
}

/// Applies one completion; `id` is the op the completion was meant for.
pub(super) fn complete(c: &Counters, id: u64, res: io::Result<usize>, mut buf: StressBuf) {
    c.delivered.fetch_add(1, Ordering::Relaxed);
    if buf.id != id {
        c.misrouted.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match (buf.kind, res) {
        (Kind::Write, Ok(n)) => {
            if n > buf.len {
                c.bad_data.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if n < buf.len {
                c.short_writes.fetch_add(1, Ordering::Relaxed);
            }
            {
                let mut r = lock(&buf.region);
                let off = buf.off;
                r.content[off..off + n].copy_from_slice(&buf.data[..n]);
                for k in &mut r.known[off..off + n] {
                    *k = true;
                }
                // A short write left the rest as it was: known state kept.
            }
            buf.applied = true;
            c.ok_writes.fetch_add(1, Ordering::Relaxed);
            c.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
        }
        (Kind::Read, Ok(n)) => {
            if n > buf.len || buf.data.len() != n {
                // The count and the buffer's init length must agree.
                c.bad_data.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if n < buf.len {
                c.short_reads.fetch_add(1, Ordering::Relaxed);
            }
            let r = lock(&buf.region);
            let off = buf.off;
            let mut bad = false;
            let mut checked = 0;
            for (i, b) in buf.data.iter().enumerate() {
                if r.known[off + i] {
                    checked += 1;
                    bad |= r.content[off + i] != *b;
                }
            }
            drop(r);
            if bad {
                c.bad_data.fetch_add(1, Ordering::Relaxed);
            }
            c.ok_reads.fetch_add(1, Ordering::Relaxed);
            c.bytes_checked.fetch_add(checked, Ordering::Relaxed);
        }
        (k, Err(e)) => note_error(c, &e, if k == Kind::Read { "read" } else { "write" }),
    }
}
