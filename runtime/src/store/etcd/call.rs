//! One store call against etcd: a deadline for the whole call, retries of
//! what etcd may answer differently a moment later (no leader, a member gone,
//! a connection reset), and etcd's errors as the guest's statuses.
//!
//! Retrying a write is safe because every write carries its operation id in
//! the same transaction (see [`super::store`]): a retry after a lost reply
//! finds the id and returns what the first attempt did.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::backend::KvError;

/// The first pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// What to do with an error etcd gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Try again before the deadline: etcd may answer next time.
    Retry(String),
    /// The op-record lease is gone (it expired while etcd was away): take a
    /// new one and try again.
    LeaseGone,
    /// Give up with this error.
    Fatal(KvError),
}

/// Sorts an etcd client error.
pub fn classify(error: &etcd_client::Error) -> Failure {
    use tonic::Code;
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            match status.code() {
                _ if message.contains("requested lease not found") => Failure::LeaseGone,
                _ if message.contains("request is too large") => Failure::Fatal(KvError::TooLarge),
                Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                    Failure::Fatal(KvError::Io(format!("etcd refused the call: {message}")))
                }
                Code::ResourceExhausted if message.contains("space exceeded") => {
                    Failure::Fatal(KvError::Io(format!("etcd is out of space: {message}")))
                }
                Code::PermissionDenied | Code::Unauthenticated => {
                    Failure::Fatal(KvError::Io(format!("etcd denied the call: {message}")))
                }
                _ => Failure::Retry(format!("etcd: {message}")),
            }
        }
        etcd_client::Error::TransportError(e) => Failure::Retry(format!("etcd unreachable: {e}")),
        etcd_client::Error::IoError(e) => Failure::Retry(format!("etcd unreachable: {e}")),
        other => Failure::Fatal(KvError::Io(format!("etcd: {other}"))),
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `deadline` passes;
/// `renew_lease` runs when etcd says the op-record lease is gone.
pub async fn retrying<T, F, Fut, R, RFut>(
    deadline: Instant,
    mut attempt: F,
    mut renew_lease: R,
) -> Result<T, KvError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
    R: FnMut() -> RFut,
    RFut: Future<Output = Result<(), KvError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut last = String::from("etcd did not answer in time");
    loop {
        match tokio::time::timeout_at(deadline, attempt()).await {
            Err(_) => return Err(KvError::Io(last)),
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => match classify(&e) {
                Failure::Fatal(e) => return Err(e),
                Failure::LeaseGone => {
                    last = "the op-record lease expired".into();
                    tokio::time::timeout_at(deadline, renew_lease())
                        .await
                        .map_err(|_| KvError::Io(last.clone()))??;
                    continue;
                }
                Failure::Retry(why) => last = why,
            },
        }
        if Instant::now() + pause >= deadline {
            return Err(KvError::Io(last));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_become_statuses() {
        let status =
            |code, msg: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg));
        assert_eq!(
            classify(&status(
                tonic::Code::InvalidArgument,
                "etcdserver: request is too large"
            )),
            Failure::Fatal(KvError::TooLarge)
        );
        assert!(matches!(
            classify(&status(
                tonic::Code::Unavailable,
                "etcdserver: leader changed"
            )),
            Failure::Retry(_)
        ));
        assert_eq!(
            classify(&status(
                tonic::Code::NotFound,
                "etcdserver: requested lease not found"
            )),
            Failure::LeaseGone
        );
        assert!(matches!(
            classify(&status(
                tonic::Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded"
            )),
            Failure::Fatal(KvError::Io(_))
        ));
    }

    #[tokio::test]
    async fn retries_stop_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut attempts = 0;
        let result: Result<(), _> = retrying(
            deadline,
            || {
                attempts += 1;
                async {
                    Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                        "etcdserver: no leader",
                    )))
                }
            },
            || async { Ok(()) },
        )
        .await;
        assert!(matches!(result, Err(KvError::Io(m)) if m.contains("no leader")));
        assert!((3..20).contains(&attempts), "{attempts} attempts");
        assert!(Instant::now() <= deadline);
    }
}
