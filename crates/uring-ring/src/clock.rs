//! The ring's latency clock: nanoseconds from the CPU's time-stamp counter
//! where the kernel itself keeps time with it, else from `CLOCK_MONOTONIC`.
//!
//! A ring reads its clock twice per submit/reap round (hand-off and reap).
//! On the VMs this was tuned on, `clock_gettime` costs ≈ 23 ns per read and
//! a bare `rdtsc` ≈ 10 ns: ≈ 3 ns per NOP at batch 8.
//!
//! The TSC is used only when the kernel's current clocksource is `tsc`
//! (the kernel checked it is invariant and in step across CPUs: it is what
//! `CLOCK_MONOTONIC` reads too) and the CPU reports an invariant TSC. Its
//! rate is calibrated once per process against `CLOCK_MONOTONIC` (≈ 1 ms,
//! at the first ring's creation). Only differences of readings are used
//! (latencies), so the TSC's origin does not matter; a reading taken on a
//! CPU whose counter is behind gives a latency of 0, never a negative one
//! (callers subtract with `saturating_sub`).

use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds per TSC tick in 32.32 fixed point (`None`: not usable).
static TSC_NS_PER_TICK_Q32: OnceLock<Option<u64>> = OnceLock::new();

/// A ring's clock; `now_ns` counts from its creation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// Nanoseconds per tick, 32.32 fixed point; 0: use `Instant`.
    ns_per_tick_q32: u64,
    epoch_tsc: u64,
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let q = (*TSC_NS_PER_TICK_Q32.get_or_init(calibrate)).unwrap_or(0);
        Clock {
            ns_per_tick_q32: q,
            epoch_tsc: if q != 0 { rdtsc() } else { 0 },
            epoch: Instant::now(),
        }
    }

    /// The `Instant` clock only (tests compare both).
    #[cfg(all(test, not(loom)))]
    fn monotonic() -> Self {
        Clock {
            ns_per_tick_q32: 0,
            epoch_tsc: 0,
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the clock was made.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        if self.ns_per_tick_q32 != 0 {
            let ticks = rdtsc().wrapping_sub(self.epoch_tsc);
            // A counter behind the epoch's (another CPU) reads as 0.
            if ticks > i64::MAX as u64 {
                return 0;
            }
            ((u128::from(ticks) * u128::from(self.ns_per_tick_q32)) >> 32) as u64
        } else {
            self.epoch.elapsed().as_nanos() as u64
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` exists on every x86-64 CPU and has no memory
    // effects; it is only called once `tsc_usable` said the counter is
    // invariant and the kernel's own clock (or from `calibrate` after
    // that check).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn rdtsc() -> u64 {
    0
}

/// Whether the TSC may be used: x86-64, invariant per CPUID, and the
/// kernel's current clocksource.
#[cfg(target_arch = "x86_64")]
fn tsc_usable() -> bool {
    use core::arch::x86_64::__cpuid;
    if cfg!(miri) || !kernel_uses_tsc() {
        return false;
    }
    // SAFETY: `cpuid` exists on every x86-64 CPU; leaf 0x8000_0000 gives
    // the highest extended leaf, checked before 0x8000_0007 is read.
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
    }
}

#[cfg(target_arch = "x86_64")]
/// Whether the kernel's current clocksource is the TSC.
fn kernel_uses_tsc() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim() == "tsc")
        .unwrap_or(false)
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc_usable() -> bool {
    false
}

/// The TSC's rate against `Instant` over ≈ 1 ms; `None` when not usable
/// or the measurement looks wrong (no ticks, or a rate outside
/// 0.1–10 GHz).
fn calibrate() -> Option<u64> {
    if std::env::var_os("AURAIO_NO_TSC").is_some() || !tsc_usable() {
        return None;
    }
    let t0 = Instant::now();
    let c0 = rdtsc();
    let mut t1;
    let mut c1;
    loop {
        t1 = t0.elapsed().as_nanos() as u64;
        c1 = rdtsc();
        if t1 >= 1_000_000 {
            break;
        }
        std::hint::spin_loop();
    }
    let ticks = c1.wrapping_sub(c0);
    if ticks == 0 || ticks > i64::MAX as u64 {
        return None;
    }
    let q = ((u128::from(t1) << 32) / u128::from(ticks)) as u64;
    // 0.1–10 GHz: 10 to 0.1 ns per tick.
    let (lo, hi) = ((1u64 << 32) / 10, 10u64 << 32);
    (lo..=hi).contains(&q).then_some(q)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Both clocks advance by the same time (within 2 % and 0.5 ms: the
    /// two reads are not simultaneous and the machine is shared).
    #[test]
    fn tsc_clock_follows_the_monotonic_clock() {
        let c = Clock::new();
        let m = Clock::monotonic();
        let (a0, b0) = (c.now_ns(), m.now_ns());
        std::thread::sleep(Duration::from_millis(30));
        let (a1, b1) = (c.now_ns(), m.now_ns());
        let (da, db) = (a1 - a0, b1 - b0);
        assert!(db >= 30_000_000, "{db}");
        let diff = da.abs_diff(db);
        assert!(
            diff <= db / 50 + 500_000,
            "clock {da} ns vs monotonic {db} ns (tsc rate {:?})",
            TSC_NS_PER_TICK_Q32.get()
        );
        // Readings never go backwards on one thread.
        let mut last = c.now_ns();
        for _ in 0..10_000 {
            let n = c.now_ns();
            assert!(n >= last, "{n} < {last}");
            last = n;
        }
    }

    #[test]
    fn tsc_is_used_where_the_kernel_keeps_time_with_it() {
        let q = *TSC_NS_PER_TICK_Q32.get_or_init(calibrate);
        if tsc_usable() && std::env::var_os("AURAIO_NO_TSC").is_none() {
            assert!(q.is_some(), "calibration failed on a TSC machine");
        }
        if !tsc_usable() {
            assert_eq!(q, None);
        }
    }
}
