//! The lock, condition variables and threads around [`State`]: workers that
//! run jobs, a timer thread for link timeouts, and waiting for completions.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::blocking::exec;
use crate::blocking::state::{Job, State};
use crate::resources::Resources;

/// A worker with nothing to do for this long exits (a new one is started
/// when work arrives).
const IDLE_EXIT: Duration = Duration::from_secs(10);
/// Stack size of worker threads (they run syscalls and little else).
const WORKER_STACK: usize = 256 * 1024;

/// Shared by a [`BlockingRing`](super::BlockingRing), its workers, its
/// timer thread and its [`Waiter`](crate::Waiter)s.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Work for parked workers.
    work_cv: Condvar,
    /// Completions (or a notify) for waiters.
    cq_cv: Condvar,
    /// A new, possibly earlier, deadline for the timer thread.
    timer_cv: Condvar,
    eventfd: Option<OwnedFd>,
    epoch: Instant,
    waiter_enters: AtomicU64,
}

impl Shared {
    pub(crate) fn new(state: State, eventfd: Option<OwnedFd>) -> Self {
        Shared {
            state: Mutex::new(state),
            work_cv: Condvar::new(),
            cq_cv: Condvar::new(),
            timer_cv: Condvar::new(),
            eventfd,
            epoch: Instant::now(),
            waiter_enters: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but never propagate poison.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub(crate) fn eventfd(&self) -> Option<std::os::fd::RawFd> {
        self.eventfd.as_ref().map(|f| f.as_raw_fd())
    }

    pub(crate) fn waiter_enters(&self) -> u64 {
        self.waiter_enters.load(Ordering::Relaxed)
    }

    /// Wakes everyone waiting for completions and signals the eventfd.
    pub(crate) fn signal_completion(&self) {
        self.cq_cv.notify_all();
        if let Some(fd) = &self.eventfd {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd. A
            // full counter (EAGAIN) only means it is already readable.
            let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Wakes `n` parked workers.
    pub(crate) fn wake_workers(&self, n: u32) {
        for _ in 0..n {
            self.work_cv.notify_one();
        }
    }

    pub(crate) fn wake_all(&self) {
        self.work_cv.notify_all();
        self.timer_cv.notify_all();
        self.cq_cv.notify_all();
    }

    pub(crate) fn wake_timer(&self) {
        self.timer_cv.notify_all();
    }

    /// Blocks until completions are waiting (at least `min`, counting
    /// unconsumed notifies) or `timeout` passed. Fires due link timeouts.
    pub(crate) fn waiter_wait(&self, min: u32, timeout: Option<Duration>) {
        self.waiter_enters.fetch_add(1, Ordering::Relaxed);
        if min == 0 {
            return;
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.lock();
        loop {
            let have = st.done.len().saturating_add(st.notifies as usize);
            if have >= min as usize {
                return;
            }
            st = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return;
                    }
                    self.cq_cv
                        .wait_timeout(st, d - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
                None => self.cq_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// Blocks until a completion is waiting or `deadline` passes. Returns
    /// the guard (for the caller to reap with).
    pub(crate) fn wait_done<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        while st.done.is_empty() {
            st = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    self.cq_cv
                        .wait_timeout(st, d - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
                None => self.cq_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
        st
    }

    /// Blocks until no op is running or `deadline` passes.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        while st.running > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .cq_cv
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }
}

/// Starts one worker thread.
pub(crate) fn spawn_worker(sh: &Arc<Shared>) -> io::Result<()> {
    let sh = Arc::clone(sh);
    std::thread::Builder::new()
        .name("auraio-blocking".into())
        .stack_size(WORKER_STACK)
        .spawn(move || worker_main(sh))
        .map(|_| ())
}

/// Starts the link-timeout thread.
pub(crate) fn spawn_timer(sh: &Arc<Shared>) -> io::Result<()> {
    let sh = Arc::clone(sh);
    std::thread::Builder::new()
        .name("auraio-blocking-timer".into())
        .stack_size(WORKER_STACK)
        .spawn(move || timer_main(sh))
        .map(|_| ())
}

fn worker_main(sh: Arc<Shared>) {
    let mut st = sh.lock();
    st.starting = st.starting.saturating_sub(1);
    let mut timed_out = false;
    loop {
        if st.shutdown {
            break;
        }
        if let Some(job) = st.pop_next() {
            timed_out = false;
            let now = sh.now_ns();
            if job.deadline_ns.is_some_and(|d| d <= now) {
                // Its link timeout passed before it could start.
                st.finish_cancelled(job, now);
                drop(st);
                sh.signal_completion();
                st = sh.lock();
                continue;
            }
            st.start_running();
            drop(st);
            run_chain(&sh, job);
            st = sh.lock();
            continue;
        }
        if timed_out {
            break;
        }
        st.idle += 1;
        let (g, res) = sh
            .work_cv
            .wait_timeout(st, IDLE_EXIT)
            .unwrap_or_else(|p| p.into_inner());
        st = g;
        st.unpark();
        timed_out = res.timed_out();
    }
    st.workers = st.workers.saturating_sub(1);
}

/// Runs `job`, then the second op of its link if it succeeded fully (else
/// completes that one with `-ECANCELED`). Called with `running` counted.
fn run_chain(sh: &Shared, first: Job) {
    let mut job = first;
    loop {
        let kind = job.op.kind();
        let expected = job.op.len();
        let (id, link) = (job.id, job.link);
        let (result, resources) = match catch_unwind(AssertUnwindSafe(|| {
            exec::execute(job.op, job.target, job.pre)
        })) {
            Ok(r) => r,
            // A caller's buffer code panicked (set_init): the buffer is
            // gone, but the op still completes exactly once.
            Err(_) => (-libc::EIO, Resources::None),
        };
        let now = sh.now_ns();
        let mut st = sh.lock();
        st.complete(id, result, resources, now);
        let next = link.and_then(|l| st.take_job(l));
        match next {
            Some(second) if exec::succeeded_fully(kind, expected, result) && !st.shutdown => {
                drop(st);
                sh.signal_completion();
                job = second;
                continue;
            }
            Some(second) => st.finish_cancelled(second, now),
            None => {}
        }
        st.running = st.running.saturating_sub(1);
        drop(st);
        sh.signal_completion();
        return;
    }
}

fn timer_main(sh: Arc<Shared>) {
    let mut st = sh.lock();
    loop {
        if st.shutdown {
            break;
        }
        let now = sh.now_ns();
        if st.expire(now) > 0 {
            sh.signal_completion();
        }
        st = match st.next_deadline() {
            Some(d) => sh
                .timer_cv
                .wait_timeout(st, Duration::from_nanos(d.saturating_sub(now)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0),
            None => sh.timer_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
        };
    }
    st.timer_running = false;
}
