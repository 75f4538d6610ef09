//! Group commit as configured in zoo.cfg: `flushDelay` holds each log batch
//! back for the delay (so more writes share one fdatasync), and still
//! acknowledges every write, in order.

mod common;

use std::time::{Duration, Instant};

use common::raw::{self, op};
use common::Server;

const FLUSH_DELAY_MS: u64 = 300;
const BURST: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_delay_holds_writes_back_and_acknowledges_them_in_order() {
    if common::is_apache() {
        eprintln!("flush_delay: Apache reads zookeeper.flushDelay from a system property; not run");
        return;
    }
    common::bounded(60, async {
        let delay = FLUSH_DELAY_MS.to_string();
        let s = Server::start(&[("flushDelay", delay.as_str())]);
        let mut c = s.raw();

        let started = Instant::now();
        assert_eq!(c.create("/fd", b"", 0).err, 0);
        assert!(
            started.elapsed() >= Duration::from_millis(FLUSH_DELAY_MS),
            "a lone write was acknowledged after {:?}, before flushDelay",
            started.elapsed()
        );

        // A pipelined burst: nothing is acknowledged before the delay, and
        // every write is, in order, with consecutive versions.
        let started = Instant::now();
        let xids: Vec<i32> = (0..BURST)
            .map(|i| c.send(op::SET_DATA, &raw::set_data_body("/fd", &[i as u8], -1)))
            .collect();
        for (i, xid) in xids.into_iter().enumerate() {
            let reply = c.read_reply().expect("reply");
            if i == 0 {
                assert!(started.elapsed() >= Duration::from_millis(FLUSH_DELAY_MS));
            }
            assert_eq!((reply.xid, reply.err), (xid, 0));
            assert_eq!(reply.stat().version, i as i32 + 1);
        }
        let (_, get) = c.get_data("/fd", false);
        assert_eq!(get.data().0, Some(vec![BURST as u8 - 1]));
    })
    .await;
}
