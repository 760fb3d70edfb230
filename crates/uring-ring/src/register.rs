//! Registered buffers and files.

use std::io;
use std::os::unix::io::RawFd;

use crate::ring::Ring;

impl<T> Ring<T> {
    /// Registers buffers for [`Op::ReadFixed`](crate::Op::ReadFixed) /
    /// [`Op::WriteFixed`](crate::Op::WriteFixed); buffer `i` is `iovecs[i]`.
    ///
    /// # Safety
    ///
    /// Every iovec must describe memory that stays allocated (and is not
    /// used for anything that conflicts with kernel I/O into it) until the
    /// buffers are unregistered or the ring is dropped. The kernel pins the
    /// pages, so freeing them early does not corrupt the kernel, but fixed
    /// ops would then read or write memory the caller no longer owns.
    pub unsafe fn register_buffers(&mut self, iovecs: &[libc::iovec]) -> io::Result<()> {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.ring.submitter().register_buffers(iovecs) }
    }

    /// Unregisters all buffers. Ops already submitted keep their buffers
    /// pinned in the kernel until they complete.
    pub fn unregister_buffers(&mut self) -> io::Result<()> {
        self.ring.submitter().unregister_buffers()
    }

    /// Registers `fds` as the ring's file table; [`Fd::Fixed(i)`](crate::Fd::Fixed)
    /// then means `fds[i]`. Use `-1` for an empty entry that
    /// [`update_file`](Self::update_file) can fill later.
    pub fn register_files(&mut self, fds: &[RawFd]) -> io::Result<()> {
        self.ring.submitter().register_files(fds)
    }

    /// Replaces registered file `index` with `fd` (`-1` clears the entry).
    pub fn update_file(&mut self, index: u32, fd: RawFd) -> io::Result<()> {
        let n = self.ring.submitter().register_files_update(index, &[fd])?;
        if n == 1 {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "registered file update at {index} applied {n} entries"
            )))
        }
    }

    /// Unregisters the file table.
    pub fn unregister_files(&mut self) -> io::Result<()> {
        self.ring.submitter().unregister_files()
    }
}
