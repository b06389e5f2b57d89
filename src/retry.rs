//! Retries written by hand, in one place. The SDK retries whole requests (throttling, 5xx,
//! timeouts) as many times as the user configured (AWS_MAX_ATTEMPTS, the profile's max_attempts);
//! what it cannot retry is a call that succeeded with some of its entries refused: PutRecords'
//! failed entries, BatchWriteItem's UnprocessedItems. `resend` is the one loop that sends only
//! those again, with bounded attempts, a deadline, and `backoff` between attempts. A call that
//! fails as a whole has had the SDK's attempts already: it is not sent again here, so the two
//! layers add up to what the user configured; what the caller does next is `Error::disposition`'s.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::Error;

/// First backoff ceiling.
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Largest backoff.
pub const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Exponential backoff with equal jitter: the ceiling is min(cap, base · 2^attempt); half of it is
/// always waited and the other half is random, so resends spread out but never come back at once.
/// <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

/// How long `resend` keeps trying.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Calls at most, the first included.
    pub max_attempts: u32,
    /// No resend starts unless its backoff ends this long before `deadline`.
    pub deadline: Option<(Instant, Duration)>,
}

impl Policy {
    /// `max_attempts` calls, no deadline.
    pub fn attempts(max_attempts: u32) -> Self {
        Policy { max_attempts, deadline: None }
    }
}

/// What resending came to.
#[derive(Debug, Default)]
pub struct Resent {
    /// Items (indices into what was given) still failing after the last attempt, with the last
    /// error code: the item's own, or that of the call that failed as a whole.
    pub failed: Vec<(usize, String)>,
    /// The last call that failed as a whole, in words (operation, resource, code, message).
    pub last_error: Option<String>,
    /// Calls made.
    pub calls: usize,
    /// Calls after the first.
    pub resends: usize,
    /// Items sent again.
    pub resent_items: usize,
    /// The error that ended the resending before the attempts ran out (`Rejected` or `Fatal`).
    pub stopped_by: Option<Error>,
}

/// Sends items `0..n` with `call` and sends again only those it reports failed (index and code),
/// until none is left, or the attempts or the time run out. A call that fails as a whole ends the
/// resending (`stopped_by`): the SDK has already made the attempts the user configured for it.
pub async fn resend<F, Fut>(n: usize, policy: Policy, mut call: F) -> Resent
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: Future<Output = Result<Vec<(usize, String)>, Error>>,
{
    let mut out = Resent::default();
    let mut pending: Vec<(usize, String)> = (0..n).map(|i| (i, String::new())).collect();
    for attempt in 0..policy.max_attempts {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            let delay = backoff(attempt);
            if let Some((deadline, reserve)) = policy.deadline
                && Instant::now() + delay + reserve >= deadline
            {
                tracing::warn!(left = pending.len(), "deadline near: no time for another attempt");
                break;
            }
            out.resends += 1;
            out.resent_items += pending.len();
            tokio::time::sleep(delay).await;
        }
        out.calls += 1;
        match call(pending.iter().map(|(i, _)| *i).collect()).await {
            Ok(failed) => pending = failed,
            Err(e) => {
                let code = e.code().unwrap_or("RequestFailed").to_string();
                pending.iter_mut().for_each(|(_, r)| r.clone_from(&code));
                out.last_error = Some(e.to_string());
                out.stopped_by = Some(e);
                break;
            }
        }
    }
    out.failed = pending;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AwsFailure, Disposition};
    use std::sync::Mutex;

    fn service_error(code: &str) -> Error {
        Error::Aws {
            op: "Op",
            resource: "r".into(),
            message: format!("{code}: no"),
            kind: AwsFailure::Service,
            code: Some(code.into()),
            retryable: code.contains("Throttl"),
            detail: String::new(),
        }
    }

    #[test]
    fn backoff_doubles_from_base_to_cap_with_half_of_it_fixed() {
        for attempt in 1..30u32 {
            let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
            for _ in 0..20 {
                let d = backoff(attempt);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "attempt {attempt}: {d:?} within [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
        assert!(backoff(1) >= Duration::from_millis(50), "never zero");
        assert_eq!(BACKOFF_BASE.saturating_mul(1 << 6).min(BACKOFF_CAP), BACKOFF_CAP, "capped from attempt 6");
    }

    /// The first call fails items 1 and 3; the second gets exactly those and fails 3; the third
    /// succeeds: three calls, three items resent.
    #[tokio::test(start_paused = true)]
    async fn only_failed_items_are_sent_again() {
        let seen = Mutex::new(Vec::new());
        let out = resend(5, Policy::attempts(8), |items: Vec<usize>| {
            let round = {
                let mut seen = seen.lock().expect("lock");
                seen.push(items.clone());
                seen.len()
            };
            async move {
                let fail: &[usize] = match round {
                    1 => &[1, 3],
                    2 => &[3],
                    _ => &[],
                };
                Ok(items.into_iter().filter(|i| fail.contains(i)).map(|i| (i, "Throttled".to_string())).collect())
            }
        })
        .await;
        assert_eq!(*seen.lock().expect("lock"), vec![vec![0, 1, 2, 3, 4], vec![1, 3], vec![3]]);
        assert!(out.failed.is_empty() && out.stopped_by.is_none());
        assert_eq!((out.calls, out.resends, out.resent_items), (3, 2, 3));
    }

    /// An item failing every time is given up after exactly `max_attempts` calls, with its reason.
    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let calls = Mutex::new(0);
        let out = resend(2, Policy::attempts(4), |items: Vec<usize>| {
            *calls.lock().expect("lock") += 1;
            async move { Ok(items.into_iter().filter(|i| *i == 0).map(|i| (i, "InternalFailure".into())).collect()) }
        })
        .await;
        assert_eq!(*calls.lock().expect("lock"), 4);
        assert_eq!(out.failed, vec![(0, "InternalFailure".to_string())]);
    }

    /// A call that fails as a whole — throttled past the SDK's attempts, refused, or without a
    /// table — is not sent again here: the SDK's attempts are the user's to set.
    #[tokio::test(start_paused = true)]
    async fn a_call_that_fails_as_a_whole_is_not_sent_again() {
        for (code, expected) in [
            ("ThrottlingException", Disposition::Transient),
            ("ValidationException", Disposition::Rejected),
            ("ResourceNotFoundException", Disposition::Fatal),
        ] {
            let out =
                resend(3, Policy::attempts(8), |_items: Vec<usize>| async move { Err(service_error(code)) }).await;
            assert_eq!(out.calls, 1, "{code}: no second call");
            assert_eq!(out.failed.len(), 3);
            assert_eq!(out.failed[0].1, code, "the code of the call, for each item");
            assert!(out.last_error.as_deref().is_some_and(|e| e.contains("no")), "and the error in words");
            assert_eq!(out.stopped_by.map(|e| e.disposition()), Some(expected));
        }
    }

    /// No resend starts when its backoff would end within the reserve before the deadline.
    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_resending() {
        let policy = Policy {
            max_attempts: 8,
            deadline: Some((Instant::now() + Duration::from_millis(150), Duration::from_millis(100))),
        };
        let calls = Mutex::new(0);
        let out = resend(1, policy, |items: Vec<usize>| {
            *calls.lock().expect("lock") += 1;
            async move { Ok(items.into_iter().map(|i| (i, "Unprocessed".into())).collect()) }
        })
        .await;
        assert_eq!(*calls.lock().expect("lock"), 1, "backoff(1) >= 50 ms would end past deadline - reserve");
        assert_eq!(out.failed.len(), 1);
    }
}
