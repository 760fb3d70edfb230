//! `Op`'s `Debug` output: its kind and the fields that identify it, never
//! its buffers' contents.

use std::fmt;

use super::Op;

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Op");
        d.field("kind", &self.kind());
        match self {
            Op::Read { fd, offset, .. }
            | Op::Write { fd, offset, .. }
            | Op::Readv { fd, offset, .. }
            | Op::Writev { fd, offset, .. }
            | Op::ReadFixed { fd, offset, .. }
            | Op::WriteFixed { fd, offset, .. } => {
                d.field("fd", fd)
                    .field("offset", offset)
                    .field("len", &self.len());
            }
            Op::Fsync { fd, datasync } => {
                d.field("fd", fd).field("datasync", datasync);
            }
            Op::Fallocate {
                fd,
                mode,
                offset,
                len,
            } => {
                d.field("fd", fd)
                    .field("mode", mode)
                    .field("offset", offset)
                    .field("len", len);
            }
            Op::Ftruncate { fd, len } => {
                d.field("fd", fd).field("len", len);
            }
            Op::Statx { dirfd, path, .. } | Op::OpenAt { dirfd, path, .. } => {
                d.field("dirfd", dirfd).field("path", path);
            }
            Op::Close { fd } => {
                d.field("fd", fd);
            }
            Op::Nop => {}
        }
        d.finish_non_exhaustive()
    }
}
