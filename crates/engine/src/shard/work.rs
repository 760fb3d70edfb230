//! [`Work`]: ops the engine accepted and has not handed to the ring yet (one
//! op, or two linked ones), and [`Failed`]: a target completed without
//! reaching the kernel.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use auraio_ring::{Op, Resources};

use crate::op_state::{OpCtl, Target};
use crate::request::{clone_error, op_into_resources};

/// Work accepted by the engine, not yet handed to the ring.
pub(crate) enum Work {
    Single {
        op: Op,
        target: Target,
        timeout: Option<Duration>,
    },
    /// Boxed: links are rare, and every move of a `Work` on the common
    /// path copies the size of its largest variant.
    Linked(Box<Pair>),
}

/// Two linked ops (`IOSQE_IO_LINK`), in order.
pub(crate) struct Pair {
    pub(crate) first: (Op, Target),
    pub(crate) second: (Op, Target),
}

impl Work {
    /// Two linked ops.
    pub(crate) fn linked(first: (Op, Target), second: (Op, Target)) -> Self {
        Work::Linked(Box::new(Pair { first, second }))
    }
}

impl Work {
    /// (ops using registered buffers, ops targeting registered files).
    pub(super) fn fixed_uses(&self) -> (u64, u64) {
        let one = |t: &Target| {
            (
                u64::from(t.info().fixed_buf),
                u64::from(t.info().fixed_file),
            )
        };
        match self {
            Work::Single { target, .. } => one(target),
            Work::Linked(p) => {
                let (a, b) = (one(&p.first.1), one(&p.second.1));
                (a.0 + b.0, a.1 + b.1)
            }
        }
    }

    /// How many ops this is (each completes once).
    pub(super) fn ops(&self) -> u64 {
        match self {
            Work::Single { .. } => 1,
            Work::Linked { .. } => 2,
        }
    }

    pub(super) fn contains(&self, ctl: &Arc<OpCtl>) -> bool {
        match self {
            Work::Single { target, .. } => is_ctl(target, ctl),
            Work::Linked(p) => is_ctl(&p.first.1, ctl) || is_ctl(&p.second.1, ctl),
        }
    }

    /// Every target with the error it completes with (and its resources).
    pub(crate) fn into_failed(self, e: io::Error, out: &mut Vec<Failed>) {
        match self {
            Work::Single { op, target, .. } => out.push(Failed {
                target,
                result: Err(e),
                resources: op_into_resources(op),
            }),
            Work::Linked(p) => {
                let Pair { first, second } = *p;
                out.push(Failed {
                    target: first.1,
                    result: Err(clone_error(&e)),
                    resources: op_into_resources(first.0),
                });
                out.push(Failed {
                    target: second.1,
                    result: Err(e),
                    resources: op_into_resources(second.0),
                });
            }
        }
    }
}

/// A target completed without reaching the kernel (cancelled in the
/// backlog, failed at a deferred submit, or shut down).
pub(crate) struct Failed {
    pub(crate) target: Target,
    pub(crate) result: io::Result<u32>,
    pub(crate) resources: Resources,
}

/// Whether `t` is the target of the op with control block `ctl`.
fn is_ctl(t: &Target, ctl: &Arc<OpCtl>) -> bool {
    t.ctl_ref()
        .is_some_and(|c| std::ptr::eq(c, Arc::as_ptr(ctl)))
}
