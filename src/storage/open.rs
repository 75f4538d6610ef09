//! Start-up: the database id, recovery, and a log positioned to continue.

use std::path::{Path, PathBuf};

use super::device::{FsLogStore, LogStore};
use super::format::{parse_zxid_name, DbId, LOG_PREFIX};
use super::limits::{PREALLOC_BYTES_DEFAULT, SEGMENT_BYTES_MAX_DEFAULT};
use super::recovery::{recover, Recovered};
use super::secret::{create_db_id, load_db_id, load_or_create_secret};
use super::snapshot::list_snapshots;
use super::wal::{Wal, WalOptions};
use super::{IoContext, StorageError};
use crate::config::Config;

#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Snapshots, the database id and the secret (`dataDir`).
    pub data_dir: PathBuf,
    /// Log segments (`dataLogDir`, defaults to `dataDir`).
    pub data_log_dir: PathBuf,
    pub prealloc_bytes: u64,
    pub segment_bytes_max: u64,
    pub force_sync: bool,
}

impl StorageOptions {
    pub fn from_config(cfg: &Config) -> StorageOptions {
        StorageOptions {
            data_dir: cfg.data_dir.clone(),
            data_log_dir: cfg.data_log_dir.clone(),
            prealloc_bytes: cfg.pre_alloc_size_kb.saturating_mul(1024),
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            force_sync: cfg.force_sync,
        }
    }

    /// Defaults for a data dir holding both snapshots and logs.
    pub fn for_dir(dir: &Path) -> StorageOptions {
        StorageOptions {
            data_dir: dir.to_path_buf(),
            data_log_dir: dir.to_path_buf(),
            prealloc_bytes: PREALLOC_BYTES_DEFAULT,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            force_sync: true,
        }
    }
}

pub struct Opened {
    pub recovered: Recovered,
    pub wal: Wal<FsLogStore>,
    pub db_id: DbId,
    /// The per-database secret session passwords derive from.
    pub secret: [u8; 16],
}

/// Creates the directories if needed, recovers, and opens the log for appending.
pub fn open(opts: &StorageOptions) -> Result<Opened, StorageError> {
    let mut store = FsLogStore::new(&opts.data_log_dir)
        .ctx(|| format!("creating {}", opts.data_log_dir.display()))?;
    std::fs::create_dir_all(&opts.data_dir)
        .ctx(|| format!("creating {}", opts.data_dir.display()))?;
    let db_id = db_id_for(&opts.data_dir, &store)?;
    let secret = load_or_create_secret(&opts.data_dir)?;
    let recovered = recover(&opts.data_dir, &mut store, db_id)?;
    let wal_opts = WalOptions {
        db_id,
        prealloc_bytes: opts.prealloc_bytes,
        segment_bytes_max: opts.segment_bytes_max,
        force_sync: opts.force_sync,
    };
    let wal = Wal::resume(store, wal_opts, &recovered.tail)?;
    Ok(Opened {
        recovered,
        wal,
        db_id,
        secret,
    })
}

/// A new database gets a fresh id; existing files without one are refused
/// (the id is what tells our files from a different database's).
fn db_id_for(data_dir: &Path, store: &FsLogStore) -> Result<DbId, StorageError> {
    if let Some(id) = load_db_id(data_dir)? {
        return Ok(id);
    }
    let has_logs = store
        .list()
        .ctx(|| format!("listing {}", store.dir().display()))?
        .iter()
        .any(|n| parse_zxid_name(n, LOG_PREFIX).is_some());
    let has_snapshots = !list_snapshots(data_dir)
        .ctx(|| format!("listing {}", data_dir.display()))?
        .is_empty();
    if has_logs || has_snapshots {
        return Err(StorageError::Invalid(format!(
            "{} holds logs or snapshots but no database id file; refusing to guess",
            data_dir.display()
        )));
    }
    create_db_id(data_dir)
}
