//! Small random per-database values kept in the data dir: the secret that
//! session passwords are derived from (so they verify after a restart) and
//! the database id stamped into every log segment and snapshot.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::device::write_atomically;
use super::format::DbId;
use super::{IoContext, StorageError};

pub const SECRET_FILE: &str = "ferrokeeper.secret";
pub const DB_ID_FILE: &str = "ferrokeeper.dbid";
const VALUE_BYTES: usize = 16;

/// The database's session-password secret, created on first use.
pub fn load_or_create_secret(dir: &Path) -> Result<[u8; 16], StorageError> {
    if let Some(secret) = load_value(dir, SECRET_FILE)? {
        return Ok(secret);
    }
    create_value(dir, SECRET_FILE)
}

/// The database id, if the data dir has one.
pub fn load_db_id(dir: &Path) -> Result<Option<DbId>, StorageError> {
    load_value(dir, DB_ID_FILE)
}

pub(crate) fn create_db_id(dir: &Path) -> Result<DbId, StorageError> {
    create_value(dir, DB_ID_FILE)
}

fn load_value(dir: &Path, name: &str) -> Result<Option<[u8; VALUE_BYTES]>, StorageError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => bytes.try_into().map(Some).map_err(|b: Vec<u8>| {
            StorageError::Invalid(format!(
                "{}: expected {VALUE_BYTES} bytes, found {}",
                path.display(),
                b.len()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(format!("reading {}", path.display()), e)),
    }
}

fn create_value(dir: &Path, name: &str) -> Result<[u8; VALUE_BYTES], StorageError> {
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let value: [u8; VALUE_BYTES] = rand::random();
    write_atomically(dir, name, |w| w.write_all(&value))
        .ctx(|| format!("writing {}", dir.join(name).display()))?;
    Ok(value)
}
