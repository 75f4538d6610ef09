//! fdatasync through io_uring. Each thread that syncs keeps one small ring;
//! where io_uring is unavailable (old kernel, seccomp, `io_uring_disabled`)
//! it falls back to the fdatasync syscall, once with a warning.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types, IoUring};
use tracing::warn;

/// Entries of the per-thread ring: a sync is one submission at a time.
const RING_ENTRIES: u32 = 4;

enum Ring {
    Ready(Box<IoUring>),
    Unavailable,
}

thread_local! {
    static RING: RefCell<Option<Ring>> = const { RefCell::new(None) };
}

/// Flushes `file`'s data (and the metadata needed to read it) to stable storage.
pub fn fdatasync(file: &impl AsRawFd) -> io::Result<()> {
    RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        let ring = slot.get_or_insert_with(new_ring);
        match ring {
            Ring::Ready(ring) => uring_fdatasync(ring, file.as_raw_fd()),
            Ring::Unavailable => syscall_fdatasync(file.as_raw_fd()),
        }
    })
}

fn new_ring() -> Ring {
    match IoUring::new(RING_ENTRIES) {
        Ok(ring) => Ring::Ready(Box::new(ring)),
        Err(e) => {
            warn!("io_uring unavailable ({e}); syncing the log with fdatasync(2)");
            Ring::Unavailable
        }
    }
}

fn uring_fdatasync(ring: &mut IoUring, fd: i32) -> io::Result<()> {
    let entry = opcode::Fsync::new(types::Fd(fd))
        .flags(types::FsyncFlags::DATASYNC)
        .build()
        .user_data(1);
    // SAFETY: the entry refers only to `fd`, which the caller keeps open
    // until we have waited for the completion below.
    unsafe { ring.submission().push(&entry) }
        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("io_uring returned no completion"))?;
    match cqe.result() {
        r if r < 0 => Err(io::Error::from_raw_os_error(-r)),
        _ => Ok(()),
    }
}

fn syscall_fdatasync(fd: i32) -> io::Result<()> {
    // SAFETY: fdatasync on a descriptor the caller owns.
    match unsafe { libc::fdatasync(fd) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn syncs_a_file_and_reports_errors() {
        let path = std::env::temp_dir().join(format!("fk-uring-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"durable").unwrap();
        fdatasync(&file).unwrap();
        fdatasync(&file).unwrap();
        // The server needs io_uring anyway (glommio), so here it must be used.
        RING.with(|c| assert!(matches!(c.borrow().as_ref(), Some(Ring::Ready(_)))));
        std::fs::remove_file(&path).unwrap();
        // A read-only pipe cannot be synced: the error must come back.
        let (read_end, _write_end) = std::io::pipe().unwrap();
        assert!(fdatasync(&read_end).is_err());
    }
}
