//! Emulated registered buffers and files for the blocking backend.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::state::Target;
use super::BlockingRing;

/// io_uring's limit on registered buffers.
const MAX_BUFFERS: usize = 1 << 14;
/// io_uring's limit on registered files.
const MAX_FILES: usize = 1 << 20;

fn errno(e: i32, msg: &str) -> io::Error {
    io::Error::new(
        io::Error::from_raw_os_error(e).kind(),
        format!("{msg} ({})", io::Error::from_raw_os_error(e)),
    )
}

fn dup(fd: RawFd) -> io::Result<Option<Arc<OwnedFd>>> {
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: F_DUPFD_CLOEXEC on any integer is safe; an invalid fd is EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh fd nobody else owns.
    Ok(Some(Arc::new(unsafe { OwnedFd::from_raw_fd(new) })))
}

impl<T> BlockingRing<T> {
    /// Remembers buffers for [`Op::ReadFixed`](crate::Op::ReadFixed) /
    /// [`Op::WriteFixed`](crate::Op::WriteFixed); buffer `i` is `iovecs[i]`.
    /// A fixed op whose buffer is not inside its registered region completes
    /// with `-EFAULT`, as with io_uring. Errors as io_uring: `EINVAL` for an
    /// empty or oversized list, `EBUSY` if buffers are already registered.
    ///
    /// # Safety
    ///
    /// Same contract as [`Ring::register_buffers`](crate::Ring::register_buffers)
    /// (nothing here dereferences the iovecs: the fixed ops use their own
    /// buffers, which this only checks against the registered ranges).
    pub unsafe fn register_buffers(&mut self, iovecs: &[libc::iovec]) -> io::Result<()> {
        if iovecs.is_empty() || iovecs.len() > MAX_BUFFERS {
            return Err(errno(libc::EINVAL, "register_buffers: 1..=16384 buffers"));
        }
        if self.buffers.is_some() {
            return Err(errno(libc::EBUSY, "buffers are already registered"));
        }
        self.buffers = Some(
            iovecs
                .iter()
                .map(|v| (v.iov_base as usize, v.iov_len))
                .collect(),
        );
        Ok(())
    }

    /// Forgets the registered buffers (`ENXIO` if none). Ops already
    /// submitted were checked at submit and are not affected.
    pub fn unregister_buffers(&mut self) -> io::Result<()> {
        match self.buffers.take() {
            Some(_) => Ok(()),
            None => Err(errno(libc::ENXIO, "no buffers are registered")),
        }
    }

    /// Registers `fds` as the file table (`-1` = empty entry). Each fd is
    /// duplicated, so the entry stays valid if the caller closes its fd.
    /// `EBADF` for an invalid fd, `EBUSY` if a table exists.
    pub fn register_files(&mut self, fds: &[RawFd]) -> io::Result<()> {
        if fds.is_empty() || fds.len() > MAX_FILES {
            return Err(errno(libc::EINVAL, "register_files: 1..=1048576 files"));
        }
        if self.files.is_some() {
            return Err(errno(libc::EBUSY, "files are already registered"));
        }
        let table = fds.iter().map(|&fd| dup(fd)).collect::<io::Result<_>>()?;
        self.files = Some(table);
        Ok(())
    }

    /// Replaces registered file `index` with `fd` (`-1` clears it). `ENXIO`
    /// without a table, `EINVAL` for an index out of range.
    pub fn update_file(&mut self, index: u32, fd: RawFd) -> io::Result<()> {
        let Some(table) = self.files.as_mut() else {
            return Err(errno(libc::ENXIO, "no files are registered"));
        };
        let Some(entry) = table.get_mut(index as usize) else {
            return Err(errno(libc::EINVAL, "registered file index out of range"));
        };
        *entry = dup(fd)?;
        Ok(())
    }

    /// Drops the file table (`ENXIO` if none). Ops in flight keep their
    /// file open until they complete.
    pub fn unregister_files(&mut self) -> io::Result<()> {
        match self.files.take() {
            Some(_) => Ok(()),
            None => Err(errno(libc::ENXIO, "no files are registered")),
        }
    }

    /// The file behind `Fd::Fixed(index)`; `take` removes it (for close).
    pub(super) fn resolve_file(&mut self, index: u32, take: bool) -> Target {
        let entry = self.files.as_mut().and_then(|t| t.get_mut(index as usize));
        match entry {
            Some(e) if take => e.take().map_or(Target::Missing, Target::Registered),
            Some(Some(f)) => Target::Registered(Arc::clone(f)),
            _ => Target::Missing,
        }
    }

    /// `Some(-EFAULT)` unless `[addr, addr + len)` lies inside registered
    /// buffer `index`.
    pub(super) fn check_fixed_buf(&self, index: u16, addr: usize, len: usize) -> Option<i32> {
        let Some(&(base, size)) = self
            .buffers
            .as_ref()
            .and_then(|b| b.get(usize::from(index)))
        else {
            return Some(-libc::EFAULT);
        };
        let inside = addr >= base
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= base.saturating_add(size));
        if inside {
            None
        } else {
            Some(-libc::EFAULT)
        }
    }
}
