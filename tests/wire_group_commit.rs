//! Group commit as configured in zoo.cfg: `flushDelay` holds each log batch
//! back for the delay (so more writes share one fdatasync), and still
//! acknowledges every write, in order.

mod common;

use std::time::{Duration, Instant};

use common::raw::{self, op};
use common::Server;

const FLUSH_DELAY_MS: u64 = 300;
const BURST: usize = 50;
/// The burst arrives at once; it may straddle a few batches, never one per write.
const MAX_BATCHES: usize = 5;

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

        // A pipelined burst: nothing is acknowledged before the delay, every
        // write is, in order, with consecutive versions, and they are grouped:
        // only a few replies come after a pause of a delay's length (one per
        // batch), not one per write.
        let started = Instant::now();
        let xids: Vec<i32> = (0..BURST)
            .map(|i| c.send(op::SET_DATA, &raw::set_data_body("/fd", &[i as u8], -1)))
            .collect();
        let mut last_reply = started;
        let mut delayed_replies = 0;
        for (i, xid) in xids.into_iter().enumerate() {
            let reply = c.read_reply().expect("reply");
            if i == 0 {
                assert!(started.elapsed() >= Duration::from_millis(FLUSH_DELAY_MS));
            }
            if last_reply.elapsed() >= Duration::from_millis(FLUSH_DELAY_MS / 2) {
                delayed_replies += 1;
            }
            last_reply = Instant::now();
            assert_eq!((reply.xid, reply.err), (xid, 0));
            assert_eq!(reply.stat().version, i as i32 + 1);
        }
        assert!(
            delayed_replies <= MAX_BATCHES,
            "{delayed_replies} of {BURST} writes waited for their own flushDelay"
        );
        let (_, get) = c.get_data("/fd", false);
        assert_eq!(get.data().0, Some(vec![BURST as u8 - 1]));
    })
    .await;
}
