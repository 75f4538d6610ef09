//! The write-ahead log writer. A batch is encoded into one buffer (pure,
//! `format::encode_batch`), written with one `write_at` into preallocated
//! space and made durable with one `sync_data` (group commit). The caller
//! acknowledges the batch's writes only after [`Wal::append_batch`] returns.

use super::device::{LogDevice, LogStore};
use super::format::{
    encode_batch, log_name, zxid_follows, DbId, SegmentHeader, SEGMENT_HEADER_BYTES,
};
use super::recovery::LogTail;
use super::{IoContext, StorageError};
use crate::tree::{TxnHeader, TxnOp};

#[derive(Clone, Debug)]
pub struct WalOptions {
    pub db_id: DbId,
    /// Space is reserved in steps of this many bytes (`preAllocSize` KB × 1024).
    pub prealloc_bytes: u64,
    /// A segment this long is closed before the next batch.
    pub segment_bytes_max: u64,
    /// `forceSync=no` skips the fdatasync (a crash may then lose acknowledged txns).
    pub force_sync: bool,
}

struct Segment<D> {
    name: String,
    device: D,
    /// Where the next batch goes: just after the last complete batch.
    end_bytes: u64,
    allocated_bytes: u64,
}

pub struct Wal<S: LogStore> {
    store: S,
    opts: WalOptions,
    active: Option<Segment<S::Device>>,
    last_zxid: i64,
    roll_requested: bool,
    /// Reused encode buffer (one allocation for the life of the log).
    encoded: Vec<u8>,
    /// Set by a failed write or sync: what reached the disk is then unknown,
    /// so no later batch may be acknowledged until a restart recovers.
    failed: bool,
}

impl<S: LogStore> Wal<S> {
    /// Continues the log where recovery left it (`tail`).
    pub fn resume(mut store: S, opts: WalOptions, tail: &LogTail) -> Result<Wal<S>, StorageError> {
        let active = match &tail.segment {
            None => None,
            Some(name) => {
                let device = store
                    .open(name)
                    .ctx(|| format!("opening {}", store.display(name)))?;
                let allocated_bytes = device
                    .len_bytes()
                    .ctx(|| format!("stat {}", store.display(name)))?;
                Some(Segment {
                    name: name.clone(),
                    device,
                    end_bytes: tail.end_bytes,
                    allocated_bytes,
                })
            }
        };
        Ok(Wal {
            store,
            opts,
            active,
            last_zxid: tail.last_zxid,
            roll_requested: false,
            encoded: Vec::new(),
            failed: false,
        })
    }

    /// Group commit: writes the batch, then one fdatasync. When this returns
    /// Ok every txn of the batch survives a crash (with `force_sync`).
    pub fn append_batch(&mut self, batch: &[(TxnHeader, TxnOp)]) -> Result<(), StorageError> {
        self.write_batch(batch)?;
        self.sync()
    }

    /// The write half of [`append_batch`](Self::append_batch): not durable yet.
    pub fn write_batch(&mut self, batch: &[(TxnHeader, TxnOp)]) -> Result<(), StorageError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        self.check_usable()?;
        self.check_order(batch)?;
        self.encoded.clear();
        encode_batch(&mut self.encoded, batch);
        let result = self.write_encoded(first.0.zxid);
        match result {
            Ok(()) => self.last_zxid = last.0.zxid,
            Err(_) => self.failed = true,
        }
        result
    }

    /// The sync half: fdatasync of the active segment (skipped without `force_sync`).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        let Some(seg) = self.active.as_mut().filter(|_| self.opts.force_sync) else {
            return Ok(());
        };
        let result = seg
            .device
            .sync_data()
            .ctx(|| format!("fdatasync {}", self.store.display(&seg.name)));
        self.failed |= result.is_err();
        result
    }

    /// The next batch starts a new segment (called when a snapshot is taken,
    /// so older segments become purgeable as a whole).
    pub fn roll(&mut self) {
        self.roll_requested = true;
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The segment being appended to, if any.
    pub fn active_segment(&self) -> Option<&str> {
        self.active.as_ref().map(|s| s.name.as_str())
    }

    /// Makes everything written durable (even with `force_sync` off).
    pub fn close(mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        match self.active.as_mut() {
            Some(seg) => seg
                .device
                .sync_data()
                .ctx(|| format!("fdatasync {}", self.store.display(&seg.name))),
            None => Ok(()),
        }
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Invalid(
                "write-ahead log failed earlier; restart to recover".into(),
            ));
        }
        Ok(())
    }

    /// Zxids must continue the log without gaps: recovery treats a gap as lost txns.
    fn check_order(&self, batch: &[(TxnHeader, TxnOp)]) -> Result<(), StorageError> {
        let mut prev = self.last_zxid;
        for (hdr, _) in batch {
            if !zxid_follows(prev, hdr.zxid) {
                return Err(StorageError::Invalid(format!(
                    "zxid {:#x} appended after {prev:#x}",
                    hdr.zxid
                )));
            }
            prev = hdr.zxid;
        }
        Ok(())
    }

    fn needs_roll(&self) -> bool {
        match &self.active {
            None => true,
            Some(seg) => self.roll_requested || seg.end_bytes >= self.opts.segment_bytes_max,
        }
    }

    fn write_encoded(&mut self, first_zxid: i64) -> Result<(), StorageError> {
        if self.needs_roll() {
            self.start_segment(first_zxid)?;
        }
        let seg = self.active.as_mut().expect("a segment after rolling");
        let display = || self.store.display(&seg.name);
        let end_bytes = seg.end_bytes + self.encoded.len() as u64;
        if end_bytes > seg.allocated_bytes {
            let step = self.opts.prealloc_bytes.max(1);
            let target = end_bytes.div_ceil(step) * step;
            seg.device
                .preallocate(target)
                .ctx(|| format!("preallocating {}", display()))?;
            seg.allocated_bytes = target;
        }
        seg.device
            .write_at(seg.end_bytes, &self.encoded)
            .ctx(|| format!("writing {}", display()))?;
        seg.end_bytes = end_bytes;
        Ok(())
    }

    /// A new segment is complete (header, preallocation, fsync, dir fsync)
    /// before any record goes in, so a crash never leaves a segment whose
    /// name or header is missing while its records are acknowledged.
    fn start_segment(&mut self, first_zxid: i64) -> Result<(), StorageError> {
        if let Some(mut old) = self.active.take() {
            // Matters only without force_sync: a closed segment is always durable.
            old.device
                .sync_data()
                .ctx(|| format!("fdatasync {}", self.store.display(&old.name)))?;
        }
        let name = log_name(first_zxid);
        let display = self.store.display(&name);
        let mut device = self
            .store
            .create(&name)
            .ctx(|| format!("creating {display}"))?;
        let header = SegmentHeader {
            db_id: self.opts.db_id,
            first_zxid,
        };
        let allocated_bytes = self.opts.prealloc_bytes.max(SEGMENT_HEADER_BYTES as u64);
        device
            .write_at(0, &header.encode())
            .ctx(|| format!("writing {display}"))?;
        device
            .preallocate(allocated_bytes)
            .ctx(|| format!("preallocating {display}"))?;
        device.sync_data().ctx(|| format!("fdatasync {display}"))?;
        self.store
            .sync_dir()
            .ctx(|| format!("fsync of the directory of {display}"))?;
        self.active = Some(Segment {
            name,
            device,
            end_bytes: SEGMENT_HEADER_BYTES as u64,
            allocated_bytes,
        });
        self.roll_requested = false;
        Ok(())
    }
}
