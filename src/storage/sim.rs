//! A simulated disk for crash tests. Every file keeps what is durable apart
//! from what was written since its last sync; a crash keeps an in-order
//! prefix of those unsynced operations and tears the first one it does not
//! keep at a random byte. File creations survive only after a directory sync.
//! Fault injection makes the n-th mutating operation (and all after it) fail,
//! which is how a crash lands inside the WAL's own steps.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;

use rand::Rng;

use super::device::{LogDevice, LogStore};

enum PendingOp {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Default)]
struct SimFile {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingOp>,
}

#[derive(Default)]
struct SimDisk {
    files: BTreeMap<String, SimFile>,
    durable_names: BTreeSet<String>,
    ops_until_failure: Option<u64>,
    writes: u64,
    syncs: u64,
}

impl SimDisk {
    /// Counts a mutating operation against the armed failure.
    fn tick(&mut self) -> io::Result<()> {
        match self.ops_until_failure.as_mut() {
            Some(0) => Err(io::Error::other("simulated power failure")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn file(&mut self, name: &str) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))
    }
}

fn apply_write(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(bytes);
}

#[derive(Clone, Default)]
pub struct SimStore {
    disk: Rc<RefCell<SimDisk>>,
}

/// What a crash did to the unsynced operations.
#[derive(Debug, Default)]
pub struct CrashOutcome {
    /// Some unsynced operation was dropped or torn.
    pub lost: bool,
}

impl SimStore {
    pub fn new() -> SimStore {
        SimStore::default()
    }

    /// The `ops`-th mutating operation from now fails, and every later one.
    pub fn fail_after(&self, ops: u64) {
        self.disk.borrow_mut().ops_until_failure = Some(ops);
    }

    pub fn writes(&self) -> u64 {
        self.disk.borrow().writes
    }

    pub fn syncs(&self) -> u64 {
        self.disk.borrow().syncs
    }

    /// Power failure: unsynced operations are kept as a random prefix, the
    /// next one torn at a random byte; the disk then works again.
    pub fn crash(&self, rng: &mut impl Rng) -> CrashOutcome {
        let mut disk = self.disk.borrow_mut();
        let mut outcome = CrashOutcome::default();
        let durable_names = disk.durable_names.clone();
        disk.files.retain(|name, _| durable_names.contains(name));
        for file in disk.files.values_mut() {
            let keep = rng.gen_range(0..=file.pending.len());
            outcome.lost |= keep < file.pending.len();
            for (i, op) in file.pending.drain(..).enumerate() {
                match op {
                    PendingOp::SetLen(len) if i < keep => file.durable.resize(len as usize, 0),
                    PendingOp::Write { offset, bytes } if i < keep => {
                        apply_write(&mut file.durable, offset, &bytes)
                    }
                    PendingOp::Write { offset, bytes } if i == keep => {
                        let torn_len = rng.gen_range(0..bytes.len().max(1));
                        apply_write(
                            &mut file.durable,
                            offset,
                            &bytes[..torn_len.min(bytes.len())],
                        );
                    }
                    _ => {}
                }
            }
            file.current = file.durable.clone();
        }
        disk.ops_until_failure = None;
        outcome
    }
}

impl LogStore for SimStore {
    type Device = SimDevice;

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.disk.borrow().files.keys().cloned().collect())
    }

    fn create(&mut self, name: &str) -> io::Result<SimDevice> {
        let mut disk = self.disk.borrow_mut();
        disk.tick()?;
        if disk.files.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                name.to_string(),
            ));
        }
        disk.files.insert(name.to_string(), SimFile::default());
        Ok(self.device(name))
    }

    fn open(&mut self, name: &str) -> io::Result<SimDevice> {
        self.disk.borrow_mut().file(name)?;
        Ok(self.device(name))
    }

    type Contents = Vec<u8>;

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(self.disk.borrow_mut().file(name)?.current.clone())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        disk.tick()?;
        disk.files.remove(name);
        disk.durable_names.remove(name);
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        disk.tick()?;
        disk.durable_names = disk.files.keys().cloned().collect();
        Ok(())
    }

    fn display(&self, name: &str) -> String {
        format!("sim:{name}")
    }
}

impl SimStore {
    fn device(&self, name: &str) -> SimDevice {
        SimDevice {
            disk: self.disk.clone(),
            name: name.to_string(),
        }
    }
}

pub struct SimDevice {
    disk: Rc<RefCell<SimDisk>>,
    name: String,
}

impl LogDevice for SimDevice {
    fn write_at(&mut self, offset_bytes: u64, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        disk.tick()?;
        disk.writes += 1;
        let file = disk.file(&self.name)?;
        apply_write(&mut file.current, offset_bytes, bytes);
        file.pending.push(PendingOp::Write {
            offset: offset_bytes,
            bytes: bytes.to_vec(),
        });
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        disk.tick()?;
        disk.syncs += 1;
        let file = disk.file(&self.name)?;
        file.durable = file.current.clone();
        file.pending.clear();
        Ok(())
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.disk.borrow_mut().file(&self.name)?.current.len() as u64)
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        disk.tick()?;
        let file = disk.file(&self.name)?;
        file.current.resize(len_bytes as usize, 0);
        file.pending.push(PendingOp::SetLen(len_bytes));
        Ok(())
    }
}
