//! Feature probe (`IORING_REGISTER_PROBE`): which opcodes this kernel has.

use io_uring::{IoUring, Probe};

use crate::op::OpKind;

/// Ops that every io_uring kernel (5.1+) has; assumed when probing fails.
const LEGACY: [OpKind; 6] = [
    OpKind::Nop,
    OpKind::Readv,
    OpKind::Writev,
    OpKind::Fsync,
    OpKind::ReadFixed,
    OpKind::WriteFixed,
];

/// A bit set of supported [`OpKind`]s (bit = `OpKind as u32`).
pub(crate) fn supported_ops(ring: &IoUring) -> u32 {
    let mut probe = Probe::new();
    match ring.submitter().register_probe(&mut probe) {
        Ok(()) => OpKind::ALL
            .iter()
            .filter(|k| probe.is_supported(k.opcode()))
            .fold(0, |acc, k| acc | k.bit()),
        // Kernels before 5.6 have no probe; they do have the original ops.
        Err(_) => LEGACY.iter().fold(0, |acc, k| acc | k.bit()),
    }
}
