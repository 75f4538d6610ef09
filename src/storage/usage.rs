//! How many bytes the data and log directories hold, as ZooKeeper reports
//! them (`dirs`, `conf`'s `dataDirSize`, `srvr`'s `data_dir_size`): the sum
//! of every file's length under the directory, recursively
//! (`ZooKeeperServer.getDirSize`), preallocated log space included.

use std::path::Path;

/// Bounds the walk, so a directory that holds far more than ZooKeeper's
/// own files (a data dir under `/`, say) cannot make a command slow.
const ENTRIES_MAX: usize = 100_000;

/// The summed length of the files under `dir`; 0 for a missing directory,
/// and unreadable entries are skipped (as Java's `File.length` gives 0).
pub fn dir_size_bytes(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > ENTRIES_MAX {
                return total;
            }
            // file_type does not follow symlinks; Java's isDirectory does,
            // but a link loop must not hang the walk.
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => total += entry.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_files_recursively() {
        let dir = std::env::temp_dir().join(format!("fk-usage-{}", std::process::id()));
        let sub = dir.join("version-2");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.join("a"), [0u8; 10]).unwrap();
        std::fs::write(sub.join("b"), [0u8; 32]).unwrap();
        assert_eq!(dir_size_bytes(&dir), 42);
        assert_eq!(dir_size_bytes(&dir.join("missing")), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
