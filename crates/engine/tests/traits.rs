//! Compile-time guarantees: the engine is shareable across threads and its
//! futures can move between executor threads.

use auraio_engine::{BufResult, Engine, OpFuture, OpHandle, Request, SubmitError};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn engine_types_are_send_and_sync() {
    send_sync::<Engine>();
    send_sync::<OpHandle>();
    send::<OpFuture<BufResult<Vec<u8>>>>();
    send::<OpFuture<std::io::Result<()>>>();
    send::<Request<BufResult<Vec<u8>>>>();
    send::<SubmitError<BufResult<Vec<u8>>>>();
    // A future is Unpin: it can be polled through `&mut` without pinning.
    fn unpin<T: Unpin>() {}
    unpin::<OpFuture<BufResult<Vec<u8>>>>();
    // An engine handle can be built and moved to another thread.
    let e = Engine::builder().rings(1).queue_depth(8).build().unwrap();
    let t = std::thread::spawn(move || e.ring_count());
    assert_eq!(t.join().unwrap(), 1);
}
