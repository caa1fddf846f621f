//! The checks this host runs: which MonitoringPolicy checks select its Server, one task per
//! check sampling at the policy's interval, and transitions handed to the reporter.

#[cfg(unix)]
mod logtail;
#[cfg(unix)]
mod measure;
#[cfg(unix)]
mod run;
mod tracker;

use serde::{Deserialize, Serialize};
use unyo_crds::monitoring::Check;

#[cfg(unix)]
pub use run::supervise;
pub use tracker::{Sample, Transition};

/// A check assigned to this host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Assigned {
    /// The MonitoringPolicy.
    pub policy: String,
    /// How often it is sampled.
    pub interval_ms: u64,
    /// The check.
    pub check: Check,
}

impl Assigned {
    /// The (policy, check) key of its result.
    pub fn key(&self) -> (String, String) {
        (self.policy.clone(), self.check.name.clone())
    }
}
