//! Certificate rotation without a restart (ZooKeeper's `client.certReload`):
//! the shards ask for the current configuration on every TLS accept; at most
//! once per [`limits::tls::RELOAD_CHECK_INTERVAL`] that looks at the store
//! files' size, mtime and inode, and rebuilds the configuration when one
//! changed. New connections get the new certificate; connections already
//! open keep theirs (their session state holds the old configuration).
//! A store that does not load is logged and the old configuration kept,
//! until the file changes again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Instant, SystemTime};

use rustls::ServerConfig;
use tracing::{info, warn};

use super::context;
use super::settings::TlsConfig;
use crate::limits;

/// What tells a replaced file from the one loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &PathBuf) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

struct Watch {
    files: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
    checked_at: Instant,
}

/// Something built from the stores and rebuilt when they change: the
/// client port's `ServerConfig`, or the quorum's pair of configurations.
pub struct Reloading<T> {
    settings: TlsConfig,
    build: fn(&TlsConfig) -> Result<T, String>,
    current: Mutex<Arc<T>>,
    watch: Mutex<Watch>,
}

/// The client port's TLS configuration, shared by every shard.
pub type ReloadingConfig = Reloading<ServerConfig>;

impl Reloading<ServerConfig> {
    /// Loads the stores; an error stops startup.
    pub fn load(settings: &TlsConfig) -> Result<ReloadingConfig, String> {
        Reloading::load_with(settings, context::build)
    }
}

impl<T> Reloading<T> {
    /// Loads the stores with `build`; an error stops startup.
    pub fn load_with(
        settings: &TlsConfig,
        build: fn(&TlsConfig) -> Result<T, String>,
    ) -> Result<Reloading<T>, String> {
        let files: Vec<PathBuf> = [&settings.key_store.location, &settings.trust_store.location]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        // Stamped before loading: a file replaced while it is read is seen
        // as changed at the next check.
        let stamps = files.iter().map(stamp).collect();
        let config = build(settings)?;
        Ok(Reloading {
            settings: settings.clone(),
            build,
            current: Mutex::new(Arc::new(config)),
            watch: Mutex::new(Watch {
                files,
                stamps,
                checked_at: Instant::now(),
            }),
        })
    }

    pub fn settings(&self) -> &TlsConfig {
        &self.settings
    }

    /// The configuration for a new connection, reloaded first if a store
    /// file changed (checked at a bounded rate; a shard that finds another
    /// one checking does not wait for it).
    pub fn current(&self) -> Arc<T> {
        if self.settings.cert_reload {
            self.check_files();
        }
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn check_files(&self) {
        let mut watch = match self.watch.try_lock() {
            Ok(watch) => watch,
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
        };
        if watch.checked_at.elapsed() < limits::tls::RELOAD_CHECK_INTERVAL {
            return;
        }
        watch.checked_at = Instant::now();
        let stamps: Vec<_> = watch.files.iter().map(stamp).collect();
        if stamps == watch.stamps {
            return;
        }
        watch.stamps = stamps;
        match (self.build)(&self.settings) {
            Ok(config) => {
                *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                info!("TLS key/trust store changed: reloaded for new connections");
            }
            Err(e) => warn!(
                "TLS key/trust store changed but cannot be used ({e}); keeping the previous one"
            ),
        }
    }
}
