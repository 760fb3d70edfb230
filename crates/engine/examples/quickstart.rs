//! The smallest useful program: read a file with a callback.
//!
//! `cargo run --example quickstart [FILE]` (default: a temp file it creates)

use std::io::Write;

use auraio_engine::Engine;

fn main() -> std::io::Result<()> {
    // A file to read: the one given, or a temp file with known content.
    let dir = tempfile::tempdir()?;
    let (path, expected) = match std::env::args().nth(1) {
        Some(p) => (std::path::PathBuf::from(p), None),
        None => {
            let p = dir.path().join("hello.txt");
            let text = b"Hello from auraio: self-tuning async I/O on io_uring!\n".to_vec();
            std::fs::File::create(&p)?.write_all(&text)?;
            (p, Some(text))
        }
    };
    let file = std::fs::File::open(&path)?;

    // Zero configuration: one ring per CPU, AIMD tuning.
    let engine = Engine::new()?;

    // The buffer moves into the op and comes back in the callback.
    engine.read(
        &file,
        Vec::with_capacity(4096),
        0,
        move |res, buf| match res {
            Ok(n) => {
                println!("read {n} bytes from {}:", path.display());
                print!("{}", String::from_utf8_lossy(&buf));
                if let Some(exp) = &expected {
                    assert_eq!(&buf, exp, "content mismatch");
                    println!("content verified");
                }
            }
            Err(e) => eprintln!("read failed: {e}"),
        },
    )?;

    // Run callbacks until nothing is pending.
    engine.run_until_idle()?;
    Ok(())
}
