//! Tests of the op module: opcodes, validation, and the SQEs built for ops
//! (checked byte for byte against io-uring's builders).

use io_uring::{opcode, squeue, types};

use super::sqe::sqe_words;
use super::*;
use crate::resources::Held;

#[test]
fn kinds_map_to_distinct_opcodes() {
    let mut codes: Vec<u8> = OpKind::ALL.iter().map(|k| k.opcode()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), OpKind::ALL.len());
    for (i, k) in OpKind::ALL.iter().enumerate() {
        assert_eq!(*k as usize, i, "ALL is in declaration order");
    }
}

#[test]
fn too_many_iovecs_is_invalid() {
    let bufs: Vec<Box<dyn OwnedBuf>> = (0..MAX_IOVECS + 1)
        .map(|_| Box::new(vec![0u8; 1]) as Box<dyn OwnedBuf>)
        .collect();
    let op = Op::Writev {
        fd: Fd::Raw(0),
        bufs,
        offset: 0,
    };
    assert!(op.validate().is_err());
}

#[test]
fn read_sqe_points_at_the_buffer() {
    let buf = vec![0u8; 0].into_iter().collect::<Vec<u8>>();
    let mut buf = buf;
    buf.reserve_exact(64);
    let total = buf.capacity();
    let op = Op::read(Fd::Raw(3), buf, 4096);
    assert_eq!(op.len(), total as u64);
    let (sqe, held) = op.into_sqe();
    assert_eq!(sqe.get_opcode(), u32::from(opcode::Read::CODE));
    assert!(matches!(held, Held::Read(_)));
}

/// The SQE bytes of a 64-byte entry.
fn sqe_bytes(e: &squeue::Entry) -> [u8; 64] {
    // SAFETY: test-only view of a 64-byte `repr(C)` value of integers.
    unsafe { std::mem::transmute_copy::<squeue::Entry, [u8; 64]>(e) }
}

/// `sqe_words` (the hot ops' SQEs, built as whole words) produces the
/// very bytes io-uring's builders produce, for raw and registered
/// files, with a user_data set afterwards as the ring does.
#[test]
fn sqe_words_match_the_builders() {
    let (off, addr, len, bi) = (0x1234_5678_9abc_u64, 0xdead_beef_f00d_u64, 4096u32, 7u16);
    for (fd, raw, fixed) in [(Fd::Raw(5), 5, None), (Fd::Fixed(9), 9, Some(9u32))] {
        let ours = [
            sqe_words(opcode::Read::CODE, fd, off, addr, len, 0),
            sqe_words(opcode::Write::CODE, fd, off, addr, len, 0),
            sqe_words(opcode::ReadFixed::CODE, fd, off, addr, len, bi),
            sqe_words(opcode::WriteFixed::CODE, fd, off, addr, len, bi),
        ];
        let theirs = match fixed {
            None => {
                let f = types::Fd(raw);
                [
                    opcode::Read::new(f, addr as *mut u8, len)
                        .offset(off)
                        .build(),
                    opcode::Write::new(f, addr as *const u8, len)
                        .offset(off)
                        .build(),
                    opcode::ReadFixed::new(f, addr as *mut u8, len, bi)
                        .offset(off)
                        .build(),
                    opcode::WriteFixed::new(f, addr as *const u8, len, bi)
                        .offset(off)
                        .build(),
                ]
            }
            Some(i) => {
                let f = types::Fixed(i);
                [
                    opcode::Read::new(f, addr as *mut u8, len)
                        .offset(off)
                        .build(),
                    opcode::Write::new(f, addr as *const u8, len)
                        .offset(off)
                        .build(),
                    opcode::ReadFixed::new(f, addr as *mut u8, len, bi)
                        .offset(off)
                        .build(),
                    opcode::WriteFixed::new(f, addr as *const u8, len, bi)
                        .offset(off)
                        .build(),
                ]
            }
        };
        for (i, (a, b)) in ours.into_iter().zip(theirs).enumerate() {
            let (a, b) = (a.user_data(0x77), b.user_data(0x77));
            assert_eq!(sqe_bytes(&a), sqe_bytes(&b), "op {i} on {fd:?}");
        }
    }
    let nop = sqe_words(opcode::Nop::CODE, Fd::Raw(-1), 0, 0, 0, 0).user_data(3);
    let want = opcode::Nop::new().build().user_data(3);
    assert_eq!(sqe_bytes(&nop), sqe_bytes(&want));
    // And what `into_sqe` builds for a NOP and a read is exactly that.
    let (sqe, _) = Op::Nop.into_sqe();
    assert_eq!(sqe_bytes(&sqe.user_data(3)), sqe_bytes(&want));
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    let ptr = buf.as_mut_ptr();
    let total = buf.capacity() as u32;
    let (sqe, _) = Op::read(Fd::Raw(3), buf, 4096).into_sqe();
    let want = opcode::Read::new(types::Fd(3), ptr, total)
        .offset(4096)
        .build();
    assert_eq!(sqe_bytes(&sqe), sqe_bytes(&want));
}

/// `take_sqe` builds the SQE `into_sqe` builds, hands the buffer over
/// (as the same `Held`) and leaves `Op::Nop` behind, for every op.
#[test]
fn take_sqe_matches_into_sqe_and_leaves_a_nop() {
    let make = |which: u32| -> Op {
        let b: Vec<u8> = Vec::with_capacity(16);
        match which {
            0 => Op::Nop,
            1 => Op::read(Fd::Raw(3), b, 7),
            2 => Op::Write {
                fd: Fd::Fixed(2),
                buf: Box::new(vec![1u8; 9]),
                offset: 11,
            },
            3 => Op::ReadFixed {
                fd: Fd::Raw(4),
                buf: Box::new(b),
                buf_index: 3,
                offset: 5,
            },
            4 => Op::WriteFixed {
                fd: Fd::Fixed(1),
                buf: Box::new(vec![2u8; 4]),
                buf_index: 6,
                offset: 8,
            },
            _ => Op::Fsync {
                fd: Fd::Raw(5),
                datasync: true,
            },
        }
    };
    let kind = |h: &Held| std::mem::discriminant(h);
    for which in 0..6 {
        let mut op = make(which);
        let (ours, held) = op.take_sqe();
        assert!(matches!(op, Op::Nop), "op {which}: a NOP left behind");
        let (theirs, held2) = make(which).into_sqe();
        assert_eq!(kind(&held), kind(&held2), "op {which}: same Held");
        let (mut a, mut b) = (sqe_bytes(&ours), sqe_bytes(&theirs));
        // The address is the buffer's (a different one in `theirs`).
        if let Held::Read(buf) | Held::Write(buf) = &held {
            let addr = u64::from_le_bytes(a[16..24].try_into().unwrap());
            assert_eq!(addr, buf.stable_ptr() as u64, "op {which}: address");
            a[16..24].fill(0);
            b[16..24].fill(0);
        }
        assert_eq!(a, b, "op {which}");
    }
}
