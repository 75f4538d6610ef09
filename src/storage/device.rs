//! The I/O boundary of the write-ahead log. The WAL only ever talks to a
//! [`LogStore`] (the log directory) and its [`LogDevice`]s (segment files),
//! so the same WAL logic runs on `std::fs` today, on a simulated disk in the
//! crash tests, and can be ported to glommio's DMA files later.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::limits::storage::BACKGROUND_SYNC_EVERY_BYTES;

/// One segment file opened for writing.
pub trait LogDevice {
    /// Writes all of `bytes` at `offset_bytes`; not durable until `sync_data`.
    fn write_at(&mut self, offset_bytes: u64, bytes: &[u8]) -> io::Result<()>;
    /// fdatasync: everything written so far survives a crash once this returns.
    fn sync_data(&mut self) -> io::Result<()>;
    fn len_bytes(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros).
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()>;
    /// Reserves space up to `len_bytes` (never shrinks); reads of the new
    /// space return zeros, which the log format reads as "end of log".
    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        if self.len_bytes()? < len_bytes {
            self.set_len(len_bytes)?;
        }
        Ok(())
    }
}

/// The directory holding the segments.
pub trait LogStore {
    type Device: LogDevice;
    /// File names in the directory (not paths).
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates a new, empty file; fails if it exists.
    fn create(&mut self, name: &str) -> io::Result<Self::Device>;
    /// Opens an existing file for writing.
    fn open(&mut self, name: &str) -> io::Result<Self::Device>;
    /// A whole file's contents, as recovery scans them.
    type Contents: std::ops::Deref<Target = [u8]>;
    fn read(&self, name: &str) -> io::Result<Self::Contents>;
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Makes creations and removals in the directory durable.
    fn sync_dir(&mut self) -> io::Result<()>;
    /// How to name the file in messages (its full path for real files).
    fn display(&self, name: &str) -> String;
}

pub struct FsLogStore {
    dir: PathBuf,
}

impl FsLogStore {
    /// Creates the directory if needed.
    pub fn new(dir: &Path) -> io::Result<FsLogStore> {
        fs::create_dir_all(dir)?;
        Ok(FsLogStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl LogStore for FsLogStore {
    type Device = FileDevice;

    fn list(&self) -> io::Result<Vec<String>> {
        list_names(&self.dir)
    }

    fn create(&mut self, name: &str) -> io::Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.dir.join(name))?;
        Ok(FileDevice { file })
    }

    fn open(&mut self, name: &str) -> io::Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))?;
        Ok(FileDevice { file })
    }

    type Contents = FileContents;

    /// The bytes before the file's first hole: a preallocated segment's
    /// unwritten tail reads as zeros, so it is neither read nor scanned
    /// (a 64 MiB segment holding 17 MB of txns costs 17 MB at recovery).
    /// Mapped with its pages populated, not copied: the page cache is read
    /// in place, with no zero-filled buffer of the file's size to fault in.
    fn read(&self, name: &str) -> io::Result<FileContents> {
        let file = File::open(self.dir.join(name))?;
        let data_bytes = data_end(&file)?;
        if data_bytes == 0 {
            return Ok(FileContents::Empty);
        }
        // SAFETY: recovery is the only user of the log directory while it
        // reads (the server starts after it), and it drops the mapping
        // before truncating a segment, so the bytes cannot change or vanish
        // under it.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(data_bytes as usize)
                .populate()
                .map(&file)?
        };
        Ok(FileContents::Mapped(map))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        sync_dir(&self.dir)
    }

    fn display(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

pub struct FileDevice {
    file: File,
}

impl LogDevice for FileDevice {
    fn write_at(&mut self, offset_bytes: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset_bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        super::uring::fdatasync(&self.file)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }

    /// posix_fallocate reserves real blocks (a sparse `set_len` would make
    /// every later append allocate, i.e. a metadata update per fdatasync).
    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        let current = self.len_bytes()?;
        if current >= len_bytes {
            return Ok(());
        }
        let extra = (len_bytes - current) as libc::off_t;
        // SAFETY: the fd is open and owned by `self.file` for the whole call.
        let rc =
            unsafe { libc::posix_fallocate(self.file.as_raw_fd(), current as libc::off_t, extra) };
        match rc {
            0 => Ok(()),
            libc::EOPNOTSUPP | libc::EINVAL => self.file.set_len(len_bytes),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Names of the entries of `dir` that are valid UTF-8 (ours always are).
pub fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// fsync of a directory: makes a create, rename or unlink in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `name` in `dir` so that after a crash it is either absent (or
/// the old version) or complete: temp file, fsync, rename, fsync of the dir.
pub fn write_atomically(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut io::BufWriter<PacedWriter<'_>>) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let mut writer = io::BufWriter::new(PacedWriter {
        file: &file,
        unsynced_bytes: 0,
    });
    fill(&mut writer)?;
    io::Write::flush(&mut writer)?;
    drop(writer);
    file.sync_all()?;
    let target = dir.join(name);
    fs::rename(&tmp, &target)?;
    sync_dir(dir)?;
    Ok(target)
}

/// Writes a file and fdatasyncs it every [`BACKGROUND_SYNC_EVERY_BYTES`].
///
/// Why: a snapshot is hundreds of MB. Left to the final fsync, its dirty
/// pages pile up, and on ext4 (data=ordered) the log's next fdatasync must
/// commit the journal, which waits for that writeback: measured on a 1M-znode
/// tree, writes stalled for ~300 ms whenever a snapshot finished. Syncing as
/// it goes bounds what any log sync can be queued behind.
pub struct PacedWriter<'f> {
    file: &'f File,
    unsynced_bytes: usize,
}

impl io::Write for PacedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = io::Write::write(&mut self.file, buf)?;
        self.unsynced_bytes += written;
        if self.unsynced_bytes >= BACKGROUND_SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced_bytes = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log file's bytes as [`FsLogStore::read`] returns them.
pub enum FileContents {
    /// mmap cannot map zero bytes.
    Empty,
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for FileContents {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileContents::Empty => &[],
            FileContents::Mapped(map) => map,
        }
    }
}

/// Suffix of files being written by [`write_atomically`]; a leftover one is
/// an interrupted write and is ignored (and removed at recovery).
pub const TMP_SUFFIX: &str = ".tmp";

/// Where the file's data ends: its first hole (ext4, xfs and tmpfs report
/// preallocated, never-written extents as holes, also while their written
/// part is only in the page cache), or its length where the filesystem
/// cannot tell.
fn data_end(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    // SAFETY: lseek on a descriptor this function borrows open; it only
    // moves the file offset, which is put back to the start for the read.
    let hole = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_HOLE) };
    // SAFETY: as above.
    let rewound = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_SET) };
    if rewound != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if hole < 0 {
        len
    } else {
        (hole as u64).min(len)
    })
}
