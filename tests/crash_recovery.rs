//! Process-level durability tests of the real binary: SIGKILL at random
//! moments under concurrent writes (every acknowledged write survives, sequence
//! numbers never go back), retention with `ferrokeeper purge`, and a full log
//! disk (writes fail with SYSTEMERROR, nothing unlogged is acknowledged, reads
//! go on).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::node::{answers_ruok, Node};

use rand::{Rng, SeedableRng};
use zookeeper_client as zk;

const WRITERS: usize = 4;
const CRASHES: usize = 3;

/// What the clients saw acknowledged: created path -> data, and per writer the
/// last value of its counter node.
#[derive(Clone, Default)]
struct Acked {
    created: BTreeMap<String, Vec<u8>>,
    counters: BTreeMap<usize, u64>,
}

/// Creates sequential nodes and bumps a counter until the server dies.
async fn writer(client: zk::Client, id: usize, start_value: u64, acked: Arc<Mutex<Acked>>) {
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let mut value = start_value;
    loop {
        value += 1;
        let data = format!("w{id}-{value}").into_bytes();
        match client.create(&format!("/crash/w{id}-"), &data, &seq).await {
            Ok((_, sequence)) => {
                let path = format!("/crash/w{id}-{sequence}");
                acked.lock().unwrap().created.insert(path, data);
            }
            Err(_) => return,
        }
        let counter = format!("/counters/w{id}");
        match client
            .set_data(&counter, value.to_string().as_bytes(), None)
            .await
        {
            Ok(_) => {
                acked.lock().unwrap().counters.insert(id, value);
            }
            Err(_) => return,
        }
    }
}

async fn verify(client: &zk::Client, acked: &Acked) {
    for (path, data) in &acked.created {
        let got = client.get_data(path).await;
        let (bytes, _) = got.unwrap_or_else(|e| panic!("acknowledged {path} lost: {e}"));
        assert_eq!(&bytes, data, "data of {path}");
    }
    for (id, value) in &acked.counters {
        let (bytes, _) = client.get_data(&format!("/counters/w{id}")).await.unwrap();
        let on_disk: u64 = String::from_utf8(bytes).unwrap().parse().unwrap();
        assert!(
            on_disk >= *value,
            "counter w{id} went back: {on_disk} < {value}"
        );
    }
    let children = client.list_children("/crash").await.unwrap();
    for child in &children {
        let (bytes, _) = client.get_data(&format!("/crash/{child}")).await.unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with(&child[..child.find('-').unwrap() + 1]),
            "{child} holds {text}: a write that was never sent"
        );
    }
}

async fn setup(client: &zk::Client) {
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for path in ["/crash", "/counters"] {
        let _ = client.create(path, b"", &open).await;
    }
    for id in 0..WRITERS {
        let _ = client
            .create(&format!("/counters/w{id}"), b"0", &open)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_repeated_sigkill() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut node = Node::new();
    node.start();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut highest_sequence = 0u64;
    for round in 0..CRASHES {
        let client = node.client(Duration::from_secs(10)).await;
        setup(&client).await;
        let seen = acked.lock().unwrap().clone();
        verify(&client, &seen).await;
        let mut tasks = Vec::new();
        for id in 0..WRITERS {
            let start = acked
                .lock()
                .unwrap()
                .counters
                .get(&id)
                .copied()
                .unwrap_or(0);
            tasks.push(tokio::spawn(writer(
                client.clone(),
                id,
                start,
                acked.clone(),
            )));
        }
        // Let the writers make progress, then pull the plug at a random moment.
        let settle = Duration::from_millis(rng.gen_range(100..400));
        let before = acked.lock().unwrap().created.len();
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().created.len() < before + 50 {
            assert!(
                Instant::now() < deadline,
                "writers made no progress in round {round}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(settle).await;
        node.kill();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("writer noticed the crash")
                .unwrap();
        }
        drop(client);
        node.start();
        let client = node.client(Duration::from_secs(10)).await;
        let seen = acked.lock().unwrap().clone();
        verify(&client, &seen).await;
        let sequence = max_sequence(&client).await;
        assert!(sequence >= highest_sequence, "sequence numbers went back");
        highest_sequence = sequence;
    }
    assert!(
        acked.lock().unwrap().created.len() >= CRASHES * 50,
        "too few writes to mean anything"
    );
}

async fn max_sequence(client: &zk::Client) -> u64 {
    let children = client.list_children("/crash").await.unwrap();
    children
        .iter()
        .filter_map(|c| c.rsplit('-').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_subcommand_keeps_the_newest_snapshots_and_the_data() {
    let mut node = Node::new();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for round in 0..5 {
        node.start();
        let client = node.client(Duration::from_secs(10)).await;
        client
            .create(&format!("/round{round}"), b"kept", &open)
            .await
            .unwrap();
        drop(client);
        node.stop();
    }
    let before = node.snapshots();
    assert_eq!(before.len(), 5, "one snapshot per clean stop: {before:?}");
    let status = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
        .args(["purge", "-n", "3"])
        .arg(node.dir.join("zoo.cfg"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        node.snapshots(),
        before[2..].to_vec(),
        "the 3 newest are kept"
    );
    node.start();
    let client = node.client(Duration::from_secs(10)).await;
    for round in 0..5 {
        let (data, _) = client.get_data(&format!("/round{round}")).await.unwrap();
        assert_eq!(data, b"kept");
    }
}

/// A small tmpfs for the log; unmounted when dropped.
struct TinyDisk(PathBuf);

impl TinyDisk {
    fn mount(size: &str) -> TinyDisk {
        let dir = std::env::temp_dir().join(format!("ferrokeeper-tiny-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a tmpfs and needs root (as CI has)"
        );
        TinyDisk(dir)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_log_disk_fails_writes_but_keeps_reads() {
    let disk = TinyDisk::mount("2m");
    let mut node = Node::with_cfg(&format!(
        "dataLogDir={}\npreAllocSize=64\n",
        disk.0.display()
    ));
    node.start();
    let mut c = common::raw::Conn::connect(node.addr(), 30_000);
    assert_eq!(c.create("/kept", b"before", 0).err, 0);
    let value = vec![b'x'; 100 << 10];
    let mut acknowledged = 0;
    let failed_with = loop {
        let reply = c.create(&format!("/big{acknowledged}"), &value, 0);
        if reply.err != 0 {
            break reply.err;
        }
        acknowledged += 1;
        assert!(acknowledged < 100, "2 MB of log took 100 writes of 100 KB");
    };
    assert!(acknowledged > 0, "some writes fit before the disk filled");
    assert_eq!(
        failed_with, -1,
        "a write that cannot be logged gets SYSTEMERROR"
    );
    // Later writes are refused too, even small ones that would now fit.
    assert_eq!(c.create("/after", b"", 0).err, -1);
    assert_eq!(c.set_data("/kept", b"changed").1.err, -1);
    // Reads go on, and show only what was acknowledged.
    let (_, reply) = c.get_data("/kept", false);
    assert_eq!(reply.err, 0);
    assert_eq!(c.exists(&format!("/big{acknowledged}"), false).1.err, -101);
    assert_eq!(c.exists("/after", false).1.err, -101);
    assert!(answers_ruok(node.addr()));
    assert!(node.log_tail().contains("write-ahead log failed"));
}
