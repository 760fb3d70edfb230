//! One submitting thread: keeps `limit + backlog` ops accepted by its
//! ring and counts their completions.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auraio_buffer_pool::{Buffer, BufferPool};
use auraio_controller::LatencyHistogram;
use auraio_engine::{Engine, Request};

use crate::offsets::OffsetGen;

use super::{Counters, APP_LAT_EVERY};

pub(super) struct Worker {
    pub(super) engine: Engine,
    pub(super) ring: usize,
    pub(super) file: Option<Arc<File>>,
    pub(super) pool: BufferPool,
    pub(super) gen: OffsetGen,
    pub(super) bs: usize,
    pub(super) backlog: u64,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) counters: &'static [Counters],
    pub(super) me: usize,
    pub(super) app_hist: Option<&'static LatencyHistogram>,
    pub(super) seq: u64,
}

impl Worker {
    pub(super) fn run(mut self) -> io::Result<()> {
        let mut submitted: u64 = 0;
        let result = self.main_loop(&mut submitted);
        // Let every accepted op finish (its callback touches our counters).
        let deadline = Instant::now() + Duration::from_secs(30);
        while submitted > self.counters[self.me].completed.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            self.engine.wait(Some(Duration::from_millis(10)))?;
        }
        result
    }

    fn main_loop(&mut self, submitted: &mut u64) -> io::Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            let limit = u64::from(self.engine.in_flight_limit(self.ring).unwrap_or(1));
            let target = limit + self.backlog;
            let done = self.counters[self.me].completed.load(Ordering::Acquire);
            let mut outstanding = *submitted - done;
            while outstanding < target {
                self.submit_one()?;
                *submitted += 1;
                outstanding += 1;
            }
            self.engine.wait(Some(Duration::from_millis(5)))?;
        }
        Ok(())
    }

    fn submit_one(&mut self) -> io::Result<()> {
        let c: &'static Counters = &self.counters[self.me];
        // Application latency on one op in APP_LAT_EVERY: two clock reads
        // per op are a visible cost at a few hundred thousand IOPS.
        self.seq = self.seq.wrapping_add(1);
        let app = self
            .app_hist
            .filter(|_| self.seq.is_multiple_of(APP_LAT_EVERY));
        let t0 = app.map(|_| Instant::now());
        let done = move |res: io::Result<usize>| {
            match res {
                Ok(n) => {
                    c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    if c.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        let _ = c.first_error.set(e.to_string());
                    }
                }
            }
            if let (Some(h), Some(t0)) = (app, t0) {
                h.record(t0.elapsed().as_nanos() as u64);
            }
            c.completed.fetch_add(1, Ordering::Release);
        };
        let Some(file) = &self.file else {
            return self
                .engine
                .submit(Request::nop(), move |r: io::Result<()>| done(r.map(|()| 0)))
                .map(drop)
                .map_err(|e| e.into_parts().0);
        };
        let req = self.gen.next_req();
        let buf: Buffer = self
            .pool
            .alloc(self.bs)
            .map_err(|e| io::Error::other(format!("buffer pool: {e}")))?;
        let cb = move |r: io::Result<usize>, _buf: Buffer| done(r);
        let r = if req.write {
            self.engine.write(&**file, buf, req.offset, cb)
        } else {
            self.engine.read(&**file, buf, req.offset, cb)
        };
        r.map(drop).map_err(|e| e.into_parts().0)
    }
}
