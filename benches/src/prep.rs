//! Test file preparation: real (non-sparse) pseudo-random data, reused when
//! already present, large enough and fully allocated.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Instant;

/// What [`prepare_file`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// An existing file of at least the size, fully allocated, was kept.
    Reused,
    /// The file was (re)written with `bytes` of data.
    Created {
        /// Bytes written.
        bytes: u64,
    },
    /// The path is a block device: used as it is, never written here.
    BlockDevice,
}

/// Bytes written per `write` call while creating the file.
const CHUNK: usize = 8 << 20;

/// True when `path` is a regular file of at least `size` bytes whose first
/// `size` bytes are allocated on disk (not sparse).
pub fn is_ready(path: &Path, size: u64) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => m.is_file() && m.len() >= size && m.blocks().saturating_mul(512) >= size,
        Err(_) => false,
    }
}

/// Makes sure `path` holds at least `size` bytes of real data.
///
/// Existing regular files that are large enough and not sparse are reused
/// untouched. Otherwise the file is written from the start with large
/// buffered writes of pseudo-random data (so nothing compresses or
/// deduplicates to nothing) and fsynced. `log` receives one line per step.
///
/// With `overwrite == false` (a file the user named) an existing non-empty
/// file that is too small or sparse is an error rather than rewritten: its
/// data may matter to someone.
pub fn prepare_file(
    path: &Path,
    size: u64,
    overwrite: bool,
    log: &mut dyn FnMut(&str),
) -> io::Result<Prepared> {
    if let Ok(m) = std::fs::metadata(path) {
        if m.file_type().is_block_device() {
            return Ok(Prepared::BlockDevice);
        }
        if !m.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} exists and is not a regular file", path.display()),
            ));
        }
        if is_ready(path, size) {
            return Ok(Prepared::Reused);
        }
        if !overwrite && m.len() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} holds {} bytes ({} allocated), less than --size {}: not overwriting it; \
                     pass a smaller --size, remove the file, or name a new one",
                    path.display(),
                    m.len(),
                    m.blocks().saturating_mul(512).min(m.len()),
                    size
                ),
            ));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    log(&format!(
        "creating test file {} ({} of pseudo-random data, not sparse) ...",
        path.display(),
        crate::cli::fmt_bytes(size)
    ));
    let start = Instant::now();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    write_random(&mut f, size, 0x9e37_79b9_7f4a_7c15)?;
    log("  fsync ...");
    f.sync_all()?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    log(&format!(
        "  done in {secs:.1} s ({:.0} MiB/s)",
        size as f64 / (1 << 20) as f64 / secs
    ));
    Ok(Prepared::Created { bytes: size })
}

/// Reads the first `size` bytes of `path` once (buffered), so a buffered
/// run measures reads from a hot page cache. Returns the bytes read.
pub fn warm_cache(path: &Path, size: u64) -> io::Result<u64> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    while total < size {
        let want = (size - total).min(CHUNK as u64) as usize;
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok(total)
}

/// Block size of [`warm_device`]'s reads.
const WARM_BLOCK: usize = 1 << 20;

/// Reads the first `size` bytes of `path` once, sequentially, with O_DIRECT
/// (so the guest's page cache stays out of it): wakes a virtual disk whose
/// host has let the file go cold. On this machine's disk the first 10-20 s
/// of random reads after some idle minutes ran at 7-28k IOPS instead of
/// ~95k; a comparison whose first run lands there measures the host, not
/// the runs. Returns the bytes read.
pub fn warm_device(path: &Path, size: u64) -> io::Result<u64> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open {} with O_DIRECT: {e}", path.display()),
            )
        })?;
    let pool = auraio_buffer_pool::BufferPool::with_defaults();
    let mut buf = pool
        .alloc(WARM_BLOCK)
        .map_err(|e| io::Error::other(format!("aligned buffer: {e}")))?;
    let mut total = 0u64;
    while total < size {
        // O_DIRECT wants whole blocks: round the tail up (a short read at
        // the end of the file is fine).
        let want = ((size - total).min(WARM_BLOCK as u64) as usize).next_multiple_of(4096);
        let n = f.read_at(&mut buf[..want.min(WARM_BLOCK)], total)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok(total.min(size))
}

fn write_random(f: &mut File, size: u64, seed: u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut state = seed | 1;
    let mut left = size;
    while left > 0 {
        // xorshift64*: fast and non-repeating over the file.
        for word in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(CHUNK as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_real_data_of_the_right_size_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("testfile");
        let size = 3 * (1 << 20) + 4096;
        let mut lines = Vec::new();
        let r = prepare_file(&path, size, true, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(r, Prepared::Created { bytes: size });
        assert!(!lines.is_empty());
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.len(), size);
        assert!(m.blocks() * 512 >= size, "sparse: {} blocks", m.blocks());
        let data = std::fs::read(&path).unwrap();
        let zeros = data.iter().filter(|&&b| b == 0).count();
        assert!(zeros < data.len() / 100, "{zeros} zero bytes");
        // Not one repeated chunk either.
        assert_ne!(&data[..4096], &data[1 << 20..(1 << 20) + 4096]);

        let mtime = m.modified().unwrap();
        let r = prepare_file(&path, size, true, &mut |_| {}).unwrap();
        assert_eq!(r, Prepared::Reused);
        // Smaller requests reuse the larger file too.
        assert_eq!(
            prepare_file(&path, 4096, false, &mut |_| {}).unwrap(),
            Prepared::Reused
        );
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn sparse_or_short_files_are_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let size = 1 << 20;
        let f = File::create(&path).unwrap();
        f.set_len(size).unwrap(); // a hole: right length, no blocks
        drop(f);
        assert!(!is_ready(&path, size));
        let r = prepare_file(&path, size, true, &mut |_| {}).unwrap();
        assert_eq!(r, Prepared::Created { bytes: size });
        assert!(is_ready(&path, size));

        // Too short: rewritten and extended.
        let r = prepare_file(&path, 2 * size, true, &mut |_| {}).unwrap();
        assert_eq!(r, Prepared::Created { bytes: 2 * size });
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * size);
    }

    #[test]
    fn warming_the_device_reads_the_region_with_o_direct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        let size = 3 * (1 << 20) + 8192;
        prepare_file(&path, size, true, &mut |_| {}).unwrap();
        match warm_device(&path, size) {
            Ok(n) => assert_eq!(n, size),
            // tmpfs and some overlay filesystems refuse O_DIRECT: the error
            // says so (the caller goes on without warming).
            Err(e) => {
                assert!(e.to_string().contains("O_DIRECT"), "{e}");
                eprintln!("skipping: {e}");
                return;
            }
        }
        assert_eq!(warm_device(&path, 4096).unwrap(), 4096);
        // More than the file holds: what is there.
        assert_eq!(warm_device(&path, 2 * size).unwrap(), size);
        assert!(warm_device(&dir.path().join("missing"), 1).is_err());
    }

    #[test]
    fn warming_reads_the_region() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        prepare_file(&path, 1 << 20, true, &mut |_| {}).unwrap();
        assert_eq!(warm_cache(&path, 1 << 20).unwrap(), 1 << 20);
        assert_eq!(warm_cache(&path, 4096).unwrap(), 4096);
        // Asking for more than the file holds stops at its end.
        assert_eq!(warm_cache(&path, 2 << 20).unwrap(), 1 << 20);
        assert!(warm_cache(&dir.path().join("missing"), 1).is_err());
    }

    #[test]
    fn a_named_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious");
        let precious = vec![7u8; 64 << 10];
        std::fs::write(&path, &precious).unwrap();
        let e = prepare_file(&path, 1 << 20, false, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("not overwriting"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), precious);
        // Large enough: used as it is, still untouched.
        assert!(is_ready(&path, 4096));
        assert_eq!(
            prepare_file(&path, 4096, false, &mut |_| {}).unwrap(),
            Prepared::Reused
        );
        // Missing or empty named files are created.
        let fresh = dir.path().join("fresh");
        assert!(matches!(
            prepare_file(&fresh, 4096, false, &mut |_| {}).unwrap(),
            Prepared::Created { .. }
        ));
    }

    #[test]
    fn a_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let e = prepare_file(dir.path(), 4096, true, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("not a regular file"));
    }
}
