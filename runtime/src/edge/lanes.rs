//! Serving lanes: one thread per core, each with its own single-threaded async
//! runtime. The accept loop hands every new connection to the next lane in
//! turn; a connection, its requests and their guests then stay on that one
//! thread, with no task stealing or cross-thread wakeups on the request path.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// A connection handed to a lane: a future first polled on the lane's thread.
pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Connections waiting for their lane to pick them up; beyond this the accept
/// loop waits, which leaves further clients in the listen backlog.
const QUEUED_PER_LANE: usize = 256;

/// The serving threads.
pub struct Lanes {
    senders: Vec<mpsc::Sender<Job>>,
    next: usize,
}

impl Lanes {
    /// Starts `count` lanes (at least one).
    pub fn start(count: usize) -> io::Result<Self> {
        Self::with_queues(count, QUEUED_PER_LANE)
    }

    fn with_queues(count: usize, queued: usize) -> io::Result<Self> {
        let count = count.max(1);
        let mut senders = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, rx) = mpsc::channel::<Job>(queued);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            // Detached: a lane ends by itself once its sender is dropped and its
            // connections are done.
            std::thread::Builder::new()
                .name(format!("wedge-lane-{i}"))
                .spawn(move || runtime.block_on(run(rx)))?;
            senders.push(tx);
        }
        Ok(Self { senders, next: 0 })
    }

    /// Hands `job` to the next lane, waiting while that lane's queue is full.
    pub async fn dispatch(&mut self, job: Job) {
        let lane = &self.senders[self.next];
        self.next = (self.next + 1) % self.senders.len();
        // A lane only stops when its sender is dropped, so this cannot fail
        // while `self` lives; if it somehow did, the connection is closed.
        let _ = lane.send(job).await;
    }

    /// Hands `job` to the next lane unless `stop` resolves first, which it
    /// may while that lane's queue is full. Returns false when stopped.
    pub async fn dispatch_or_stop<F: Future<Output = ()>>(
        &mut self,
        job: Job,
        stop: Pin<&mut F>,
    ) -> bool {
        tokio::select! {
            () = self.dispatch(job) => true,
            () = stop => false,
        }
    }

    /// Stops taking connections. Each lane finishes the ones it has, then its
    /// thread ends.
    pub fn close(self) {
        drop(self.senders);
    }
}

/// Puts the calling task at the back of its lane's run queue, once: the tasks
/// already ready run first. Unlike `tokio::task::yield_now`, which waits for
/// the lane's next turn of its event loop, this stays fair to guests that yield
/// at every epoch tick: those keep the run queue from ever emptying, and a task
/// waiting for the event loop waited behind them for up to a second.
pub fn back_of_queue() -> BackOfQueue {
    BackOfQueue { queued: false }
}

/// The future [`back_of_queue`] returns.
#[derive(Debug)]
pub struct BackOfQueue {
    queued: bool,
}

impl Future for BackOfQueue {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.queued {
            return Poll::Ready(());
        }
        self.queued = true;
        // Waking itself from inside its own poll queues the task behind every
        // task already ready on this thread.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// How often a lane's standing timer fires, and so how often the lane hands
/// its freed memory back ([`crate::util::alloc`]). tokio wakes its event loop through
/// an eventfd whenever a timer is set earlier than every timer the loop holds.
/// hyper sets a header-read timer for each request on a keep-alive connection,
/// which on a lane holding no other timer cost one request in five a write(2)
/// and an extra turn of the event loop; a timer that is always set and always
/// sooner takes that off the request path.
const STANDING_TIMER: Duration = Duration::from_secs(1);

/// A lane's loop: serve every connection it is given until the accept loop
/// closes, then let the last ones finish.
async fn run(mut jobs: mpsc::Receiver<Job>) {
    let mut connections = JoinSet::new();
    let mut standing = tokio::time::interval(STANDING_TIMER);
    standing.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = standing.tick() => crate::util::alloc::collect_thread(),
            job = jobs.recv() => match job {
                Some(job) => {
                    connections.spawn(job);
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A lane that cannot take more connections does not hold up a shutdown.
    #[tokio::test]
    async fn a_full_lane_does_not_hold_up_shutdown() {
        let mut lanes = Lanes::with_queues(1, 1).unwrap();
        let (blocked_tx, blocked_rx) = std::sync::mpsc::channel::<()>();
        let (running_tx, running_rx) = tokio::sync::oneshot::channel::<()>();
        // The lane's thread blocks in this job until the test ends; the next
        // job fills its queue.
        lanes
            .dispatch(Box::pin(async move {
                let _ = running_tx.send(());
                let _ = blocked_rx.recv();
            }))
            .await;
        running_rx.await.unwrap();
        lanes.dispatch(Box::pin(async {})).await;
        let started = Instant::now();
        let stop = tokio::time::sleep(Duration::from_millis(100));
        tokio::pin!(stop);
        let dispatched = tokio::time::timeout(
            Duration::from_secs(5),
            lanes.dispatch_or_stop(Box::pin(async {}), stop),
        )
        .await
        .expect("the stop is noticed");
        assert!(!dispatched);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(blocked_tx);
    }
}
