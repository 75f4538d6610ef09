//! ZAB's two durable epochs, kept in the data dir as ZooKeeper keeps them
//! (`QuorumPeer.writeLongToFile`, `loadDataBase`): `acceptedEpoch`, the
//! newest epoch this server promised to follow (persisted before its
//! ACKEPOCH), and `currentEpoch`, the newest epoch whose history it holds
//! in full (persisted after the sync's txns are durable and before its
//! NEWLEADER ACK). Each is decimal text without a newline.
//!
//! Written with [`write_atomically`]: temp file, fsync, rename, fsync of the
//! directory. ZooKeeper skips the directory fsync, so after a power loss its
//! rename may be lost while the txns that followed it are not (the window of
//! ZOOKEEPER-4269, which it closes by reading `currentEpoch.tmp` back).
//!
//! Loading follows `loadDataBase`, with one deliberate change: a log holding
//! txns of an epoch newer than `currentEpoch` is accepted with a warning
//! where ZooKeeper refuses to start. Our learners log the leader's live
//! proposals during sync but acknowledge nothing of the new epoch before
//! `currentEpoch` is durable, so such txns were never acknowledged by this
//! server: a later sync keeps or cuts them, exactly as after an election
//! without a restart. A complete `currentEpoch.tmp` (a crash between its
//! fsync and the rename) is still taken, as ZooKeeper takes it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use tracing::{info, warn};

use super::device::{write_atomically, TMP_SUFFIX};
use super::{IoContext, StorageError};

pub const ACCEPTED_EPOCH_FILE: &str = "acceptedEpoch";
pub const CURRENT_EPOCH_FILE: &str = "currentEpoch";
/// Longest epoch file read: a long in decimal with a sign.
const EPOCH_FILE_BYTES_MAX: usize = 20;

/// The two epochs as loaded or last persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epochs {
    pub accepted: i64,
    pub current: i64,
}

/// The epoch of a zxid (`ZxidUtils.getEpochFromZxid`).
fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

/// Loads both epochs for a data dir whose log ends at `last_zxid`, creating
/// missing files with the epoch of `last_zxid` (a server that never ran in
/// an ensemble). Refuses, as ZooKeeper does, an acceptedEpoch below the
/// currentEpoch: that server's promises cannot be trusted.
pub fn load_epochs(dir: &Path, last_zxid: i64) -> Result<Epochs, StorageError> {
    let zxid_epoch = epoch_of(last_zxid);
    let mut current = match read_epoch(dir, CURRENT_EPOCH_FILE)? {
        Some(epoch) => epoch,
        None => {
            info!(
                "{CURRENT_EPOCH_FILE} not found in {}: creating it with {zxid_epoch}",
                dir.display()
            );
            persist_epoch(dir, CURRENT_EPOCH_FILE, zxid_epoch)?;
            zxid_epoch
        }
    };
    if zxid_epoch > current {
        current = newer_epoch_in_log(dir, current, last_zxid)?;
    }
    remove_temp(dir, CURRENT_EPOCH_FILE)?;
    let accepted = match read_epoch(dir, ACCEPTED_EPOCH_FILE)? {
        Some(epoch) => epoch,
        None => {
            info!(
                "{ACCEPTED_EPOCH_FILE} not found in {}: creating it with {zxid_epoch}",
                dir.display()
            );
            persist_epoch(dir, ACCEPTED_EPOCH_FILE, zxid_epoch)?;
            zxid_epoch
        }
    };
    remove_temp(dir, ACCEPTED_EPOCH_FILE)?;
    if accepted < current {
        return Err(StorageError::Invalid(format!(
            "{}: the accepted epoch {accepted} is below the current epoch {current}",
            dir.display()
        )));
    }
    Ok(Epochs { accepted, current })
}

/// The log holds txns of an epoch newer than `current`.
fn newer_epoch_in_log(dir: &Path, current: i64, last_zxid: i64) -> Result<i64, StorageError> {
    if let Some(tmp) = read_temp(dir, CURRENT_EPOCH_FILE) {
        if tmp > current {
            info!(
                "{CURRENT_EPOCH_FILE}{TMP_SUFFIX} found in {}: current epoch {tmp}",
                dir.display()
            );
            persist_epoch(dir, CURRENT_EPOCH_FILE, tmp)?;
            return Ok(tmp);
        }
    }
    warn!(
        "{}: the log ends at {last_zxid:#x}, past the current epoch {current}; its newer txns \
         were never acknowledged by this server and the next sync keeps or cuts them",
        dir.display()
    );
    Ok(current)
}

/// Writes one epoch durably (temp file, fsync, rename, fsync of the dir).
pub fn persist_epoch(dir: &Path, name: &str, epoch: i64) -> Result<(), StorageError> {
    write_atomically(dir, name, |w| w.write_all(epoch.to_string().as_bytes()))
        .ctx(|| format!("writing {}", dir.join(name).display()))?;
    Ok(())
}

pub fn persist_accepted_epoch(dir: &Path, epoch: i64) -> Result<(), StorageError> {
    persist_epoch(dir, ACCEPTED_EPOCH_FILE, epoch)
}

pub fn persist_current_epoch(dir: &Path, epoch: i64) -> Result<(), StorageError> {
    persist_epoch(dir, CURRENT_EPOCH_FILE, epoch)
}

fn read_epoch(dir: &Path, name: &str) -> Result<Option<i64>, StorageError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => parse_epoch(&bytes).map(Some).ok_or_else(|| {
            StorageError::Invalid(format!(
                "{}: not an epoch (decimal digits expected): {:?}",
                path.display(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(EPOCH_FILE_BYTES_MAX + 1)])
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(format!("reading {}", path.display()), e)),
    }
}

/// The value of an interrupted write, if it completed (a torn one is ignored).
fn read_temp(dir: &Path, name: &str) -> Option<i64> {
    let bytes = fs::read(dir.join(format!("{name}{TMP_SUFFIX}"))).ok()?;
    parse_epoch(&bytes)
}

fn remove_temp(dir: &Path, name: &str) -> Result<(), StorageError> {
    let path = dir.join(format!("{name}{TMP_SUFFIX}"));
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(format!("removing {}", path.display()), e)),
    }
}

/// Java's `Long.parseLong` of the whole file (ZooKeeper reads one line).
fn parse_epoch(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > EPOCH_FILE_BYTES_MAX {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    line.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::tests::TempDir;

    fn dir() -> TempDir {
        TempDir::new("epochs")
    }

    const E3: i64 = 3 << 32;

    #[test]
    fn missing_files_are_created_from_the_last_zxid_as_zookeeper_text() {
        let d = dir();
        let epochs = load_epochs(d.path(), E3 | 7).expect("load");
        assert_eq!(
            epochs,
            Epochs {
                accepted: 3,
                current: 3
            }
        );
        assert_eq!(fs::read(d.path().join(CURRENT_EPOCH_FILE)).unwrap(), b"3");
        assert_eq!(fs::read(d.path().join(ACCEPTED_EPOCH_FILE)).unwrap(), b"3");
    }

    #[test]
    fn persisted_epochs_load_back() {
        let d = dir();
        persist_accepted_epoch(d.path(), 9).unwrap();
        persist_current_epoch(d.path(), 8).unwrap();
        assert_eq!(
            load_epochs(d.path(), E3).unwrap(),
            Epochs {
                accepted: 9,
                current: 8
            }
        );
        // ZooKeeper's files may end with a newline when written by hand.
        fs::write(d.path().join(ACCEPTED_EPOCH_FILE), "10\n").unwrap();
        assert_eq!(load_epochs(d.path(), E3).unwrap().accepted, 10);
    }

    #[test]
    fn accepted_below_current_refuses_to_start() {
        let d = dir();
        persist_accepted_epoch(d.path(), 2).unwrap();
        persist_current_epoch(d.path(), 3).unwrap();
        let err = load_epochs(d.path(), E3).unwrap_err().to_string();
        assert!(
            err.contains("accepted epoch 2 is below the current epoch 3"),
            "{err}"
        );
    }

    #[test]
    fn garbage_in_an_epoch_file_names_the_file() {
        let d = dir();
        fs::write(d.path().join(CURRENT_EPOCH_FILE), "three").unwrap();
        let err = load_epochs(d.path(), E3).unwrap_err().to_string();
        assert!(
            err.contains(CURRENT_EPOCH_FILE) && err.contains("three"),
            "{err}"
        );
    }

    #[test]
    fn zookeeper_4269_a_complete_temp_file_is_taken_when_the_log_is_newer() {
        let d = dir();
        persist_current_epoch(d.path(), 2).unwrap();
        persist_accepted_epoch(d.path(), 3).unwrap();
        fs::write(d.path().join("currentEpoch.tmp"), "3").unwrap();
        let epochs = load_epochs(d.path(), E3 | 1).unwrap();
        assert_eq!(epochs.current, 3);
        assert_eq!(fs::read(d.path().join(CURRENT_EPOCH_FILE)).unwrap(), b"3");
        assert!(!d.path().join("currentEpoch.tmp").exists());
    }

    #[test]
    fn a_log_past_the_current_epoch_without_a_temp_file_is_kept_not_refused() {
        let d = dir();
        persist_current_epoch(d.path(), 2).unwrap();
        persist_accepted_epoch(d.path(), 3).unwrap();
        // A torn temp file is ignored and removed.
        fs::write(d.path().join("currentEpoch.tmp"), "").unwrap();
        let epochs = load_epochs(d.path(), E3 | 1).unwrap();
        assert_eq!(
            epochs,
            Epochs {
                accepted: 3,
                current: 2
            }
        );
        assert!(!d.path().join("currentEpoch.tmp").exists());
    }
}
