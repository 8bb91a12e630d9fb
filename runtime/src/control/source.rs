//! Where changes to what serves come from, and the one channel that carries
//! them to the control loop ([`crate::control`]):
//!
//! - the functions directory's watcher ([`crate::control::catalogue::watcher`]);
//! - compiles that finished in the background;
//! - in a fleet, the desired state a node applied to its functions
//!   directory ([`crate::control::fleet`]).
//!
//! Each sends the name of the function to reload. The control loop takes them
//! in batches, debounced, so a burst of writes to one file becomes one reload.
//! The channel is bounded: a source that outruns the control loop waits.
//!
//! Two kinds of change do not come through here, because their caller waits
//! for the outcome: the admin API's (an upload, a deployment change, a
//! promote or rollback) and the node's own canary decisions. They write the
//! function's files and call [`crate::control::Control::reload`] for that
//! function, which takes the same lock as the loop's reloads: one reload and
//! swap at a time, whichever way a change came in. The watcher sees their
//! writes too, and the loop's reload that follows finds nothing changed.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;

/// Quiet time after the last change before a reload starts. Long enough to
/// take in a truncate-and-write as one change, short enough that a swap lands
/// within tens of milliseconds.
pub const DEBOUNCE: Duration = Duration::from_millis(15);

/// Changes a source may send before it waits for the control loop.
const CAPACITY: usize = 1024;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Files of this function changed under the functions directory.
    Files(String),
    /// A compile of one of this function's versions finished.
    Compiled(String),
    /// The fleet's desired state for this function was applied.
    Fleet(String),
}

impl Change {
    /// The function to reload.
    pub fn function(&self) -> &str {
        match self {
            Self::Files(name) | Self::Compiled(name) | Self::Fleet(name) => name,
        }
    }
}

/// The sending end, one clone per source.
pub type Sender = mpsc::Sender<Change>;

/// The control loop's end.
pub struct Changes {
    rx: mpsc::Receiver<Change>,
}

/// A new channel.
pub fn channel() -> (Sender, Changes) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (tx, Changes { rx })
}

impl Changes {
    /// Waits for a change, lets a burst settle for [`DEBOUNCE`], and returns
    /// every function named meanwhile, each once. `None` once every source
    /// is gone.
    pub async fn next_batch(&mut self) -> Option<Vec<String>> {
        let first = self.rx.recv().await?;
        tokio::time::sleep(DEBOUNCE).await;
        let mut names = BTreeSet::from([first.function().to_string()]);
        while let Ok(change) = self.rx.try_recv() {
            names.insert(change.function().to_string());
        }
        Some(names.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_is_one_batch() {
        let (tx, mut changes) = channel();
        for _ in 0..100 {
            tx.send(Change::Files("hello".into())).await.unwrap();
        }
        tx.send(Change::Compiled("inventory".into())).await.unwrap();
        assert_eq!(
            changes.next_batch().await,
            Some(vec!["hello".to_string(), "inventory".to_string()])
        );
        drop(tx);
        assert_eq!(changes.next_batch().await, None);
    }
}
