//! The controller's one error type, and the retry policy every loop shares: a failed reconcile
//! is retried after a backoff that doubles per consecutive failure of the same object (1 s up
//! to 5 min) and resets on success. Each variant has a metric label.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The failure of one reconcile.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// Creating an object failed (other than because it exists).
    #[error("creating {what}: {source}")]
    Create {
        /// What was being created.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// An object the controller built does not hold together (a bug, reported not panicked).
    #[error("building {what}: {why}")]
    Invalid {
        /// What was being built.
        what: String,
        /// Why it failed.
        why: String,
    },
    /// Writing an object or its status failed.
    #[error("writing {what}: {source}")]
    Write {
        /// What was being written.
        what: String,
        /// The API error.
        source: kube::Error,
    },
}

impl Error {
    /// The value of the `error` label of `unyo_controller_reconcile_errors`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::Create { source, .. } | Error::Write { source, .. } => match source {
                kube::Error::Api(s) if s.code == 409 => "conflict",
                kube::Error::Api(s) if s.code == 422 || s.code == 400 => "invalid",
                kube::Error::Api(s) if s.code == 403 => "forbidden",
                kube::Error::Api(s) if s.code == 404 => "not_found",
                kube::Error::Api(s) if s.code == 429 || s.code >= 500 => "server",
                _ if matches!(self, Error::Create { .. }) => "create",
                _ => "write",
            },
        }
    }

    /// An error constructor for writing `what`.
    pub fn write(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Write { what, source }
    }

    /// An error constructor for creating `what`.
    pub fn create(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Create { what, source }
    }
}

/// A short reason for an API error that may be shown in a status (code and reason, never a
/// body).
pub fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        _ => "the API server could not be reached".into(),
    }
}

/// Consecutive failures per object, for the backoff.
#[derive(Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

/// The first retry after a failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries.
const MAX_RETRY: Duration = Duration::from_secs(300);

impl Failures {
    /// Records one more failure of `key`; returns the wait before its retry.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        retry_after(*n)
    }

    /// Forgets the failures of `key` (it reconciled).
    pub fn succeeded(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

/// The wait before the retry that follows `failures` consecutive failures.
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_resets() {
        let f = Failures::default();
        assert_eq!(f.failed("Server/mie/db01"), Duration::from_secs(1));
        assert_eq!(f.failed("Server/mie/db01"), Duration::from_secs(2));
        assert_eq!(f.failed("Server/mie/db01"), Duration::from_secs(4));
        assert_eq!(f.failed("Server/mie/db02"), Duration::from_secs(1));
        f.succeeded("Server/mie/db01");
        assert_eq!(f.failed("Server/mie/db01"), Duration::from_secs(1));
        assert_eq!(retry_after(9), Duration::from_secs(256));
        assert_eq!(retry_after(10), MAX_RETRY);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
    }

    #[test]
    fn metric_labels_name_the_failure() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert_eq!(Error::write("s")(api(409)).metric_label(), "conflict");
        assert_eq!(Error::write("s")(api(422)).metric_label(), "invalid");
        assert_eq!(Error::create("s")(api(503)).metric_label(), "server");
        assert_eq!(Error::create("s")(api(418)).metric_label(), "create");
        assert_eq!(Error::write("s")(api(418)).metric_label(), "write");
    }
}
