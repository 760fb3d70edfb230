//! O_DIRECT with aligned buffers, and a misaligned request failing cleanly,
//! on both backends.

mod common;

use std::os::unix::fs::OpenOptionsExt;

use auraio_ring::{BackendKind, Op};
use common::*;

backend_tests!(
    direct_write_then_read_aligned,
    misaligned_direct_read_is_einval_result
);

fn open_direct(path: &std::path::Path) -> Option<std::fs::File> {
    match std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            println!("SKIP: O_DIRECT not supported here ({e})");
            None
        }
    }
}

fn direct_write_then_read_aligned(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let Some(file) = open_direct(&path) else {
        return;
    };
    let mut r = any_ring::<u32>(b, 16);
    const BS: usize = 4096;
    let n = 16;
    for i in 0..n {
        let mut buf = AlignedBuf::new(BS, 4096);
        buf.as_mut_slice().copy_from_slice(&pattern(BS, i as u8));
        r.submit(Op::write(fd(&file), buf, (i * BS) as u64), i as u32)
            .unwrap();
    }
    for c in wait_n(&mut r, n) {
        assert_eq!(c.result, BS as i32, "write {}", c.token);
    }
    for i in 0..n {
        r.submit(
            Op::read(fd(&file), AlignedBuf::new(BS, 4096), (i * BS) as u64),
            i as u32,
        )
        .unwrap();
    }
    for c in wait_n(&mut r, n) {
        assert_eq!(c.result, BS as i32);
        let buf: AlignedBuf = c.resources.into_buf().unwrap();
        assert_eq!(buf.as_slice(), &pattern(BS, c.token as u8)[..]);
    }
}

fn misaligned_direct_read_is_einval_result(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let Some(file) = open_direct(&path) else {
        return;
    };
    std::fs::write(&path, pattern(16384, 1)).unwrap();
    let mut r = any_ring::<()>(b, 8);
    // Aligned memory, but a file offset of 1 and length 4095.
    r.submit(Op::read(fd(&file), AlignedBuf::new(4095, 4096), 1), ())
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, -libc::EINVAL, "misaligned O_DIRECT read");
    // The buffer still comes back.
    let buf: AlignedBuf = c.resources.into_buf().unwrap();
    assert_eq!(buf.as_slice().len(), 4095);
}
