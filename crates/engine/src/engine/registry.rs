//! Registered resources: buffers and files registered with every ring
//! (all rings or none), `update_file`, `disable_op`.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use auraio_ring::AnyRing;

use crate::error::shutdown_error;
use crate::op_state::Target;
use crate::request::FixedFile;
use crate::shard::Shard;

use super::Engine;

impl Engine {
    // ----- registration ---------------------------------------------------------

    /// Locks every ring (in index order) for an operation that must apply
    /// to all of them or none.
    fn lock_all(&self) -> io::Result<Vec<crate::ring_lock::RingGuard<'_, crate::shard::Core>>> {
        let guards: Vec<_> = self.sh().rings.iter().map(|s| s.lock()).collect();
        if guards.iter().any(|g| g.closed) {
            return Err(shutdown_error());
        }
        Ok(guards)
    }

    /// Registers buffers with every ring for [`read_fixed`](Self::read_fixed)
    /// / [`write_fixed`](Self::write_fixed) (index = position in `iovecs`).
    ///
    /// All rings or none: if one ring refuses (e.g. `EBUSY`, buffers already
    /// registered), those already registered are unregistered again.
    /// An empty `iovecs` is an `InvalidInput` error.
    ///
    /// # Safety
    /// The memory described by `iovecs` must stay valid until
    /// [`unregister_buffers`](Self::unregister_buffers) or the engine is
    /// dropped, and must only be accessed through owned buffers passed to
    /// fixed ops while an op uses it.
    pub unsafe fn register_buffers(&self, iovecs: &[libc::iovec]) -> io::Result<()> {
        if iovecs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "register_buffers needs at least one buffer",
            ));
        }
        let mut guards = self.lock_all()?;
        for i in 0..guards.len() {
            // SAFETY: forwarded from this function's contract.
            if let Err(e) = unsafe { guards[i].ring.register_buffers(iovecs) } {
                for g in guards.iter_mut().take(i) {
                    let _ = g.ring.unregister_buffers();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Unregisters the buffers of every ring.
    ///
    /// Refused with `ResourceBusy` (`EBUSY`), changing nothing, while any
    /// accepted op that uses a registered buffer has not completed: drain
    /// them first (older kernels would block here until they complete, and
    /// the ops' buffers must stay registered while the kernel uses them).
    pub fn unregister_buffers(&self) -> io::Result<()> {
        self.unregister_all(
            |s| s.fixed_bufs.load(Ordering::Relaxed),
            "using registered buffers",
            |r| r.unregister_buffers(),
        )
    }

    /// Registers `fds` with every ring; use the returned [`FixedFile`]s as
    /// the target of any op. The files must stay open while registered.
    /// All rings or none (as [`register_buffers`](Self::register_buffers));
    /// an empty `fds` is an `InvalidInput` error.
    pub fn register_files(&self, fds: &[RawFd]) -> io::Result<Vec<FixedFile>> {
        if fds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "register_files needs at least one file (use -1 for an empty slot)",
            ));
        }
        let n = u32::try_from(fds.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "too many files to register")
        })?;
        let mut guards = self.lock_all()?;
        for i in 0..guards.len() {
            if let Err(e) = guards[i].ring.register_files(fds) {
                for g in guards.iter_mut().take(i) {
                    let _ = g.ring.unregister_files();
                }
                return Err(e);
            }
        }
        Ok((0..n).map(FixedFile).collect())
    }

    /// Replaces registered file `file` with `fd` (-1 clears the slot).
    pub fn update_file(&self, file: FixedFile, fd: RawFd) -> io::Result<()> {
        for shard in &self.sh().rings {
            shard.with_ring(|r| r.update_file(file.0, fd))?;
        }
        Ok(())
    }

    /// Treats `op` as unsupported on every ring from now on: submitting it
    /// fails with `io::ErrorKind::Unsupported`. Useful to forbid an op, or to
    /// test a program's fallback path on a kernel that has it.
    pub fn disable_op(&self, op: auraio_ring::OpKind) {
        for shard in &self.sh().rings {
            let _ = shard.with_ring(|r| {
                r.disable_op(op);
                Ok(())
            });
        }
    }

    /// Unregisters the files of every ring. Refused with `ResourceBusy`,
    /// changing nothing, while any accepted op on a registered file has not
    /// completed (as [`unregister_buffers`](Self::unregister_buffers)).
    pub fn unregister_files(&self) -> io::Result<()> {
        self.unregister_all(
            |s| s.fixed_files.load(Ordering::Relaxed),
            "on registered files",
            |r| r.unregister_files(),
        )
    }

    /// Unregisters one kind of registered resource on every ring, under all
    /// ring locks. Refused with `ResourceBusy`, changing nothing, while
    /// `pending` counts accepted ops that still use it; otherwise every ring
    /// is tried and the first error is returned.
    fn unregister_all(
        &self,
        pending: impl Fn(&Shard) -> u64,
        what: &str,
        unregister: impl Fn(&mut AnyRing<Target>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut guards = self.lock_all()?;
        let busy: u64 = self.sh().rings.iter().map(pending).sum();
        if busy > 0 {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "{busy} operation(s) {what} are still pending; \
                     wait for them before unregistering"
                ),
            ));
        }
        let mut first_err = None;
        for g in guards.iter_mut() {
            if let Err(e) = unregister(&mut g.ring) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
