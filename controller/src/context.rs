//! What every reconcile loop shares: the API client, the clock, the Event recorder and the
//! metrics.

use std::sync::Arc;

use jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;

/// The field manager of everything the controller writes.
pub const FIELD_MANAGER: &str = "unyo-controller";

/// The clock calendars and records are evaluated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant (tests and demos).
    Fixed(Timestamp),
}

impl Clock {
    /// The current instant by this clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// Shared by the reconcile loops.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The clock.
    pub clock: Clock,
    /// Publishes Events (events.k8s.io) as `unyo-controller`.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// How long an agent may be disconnected before it is an Incident.
    pub agent_grace: jiff::SignedDuration,
}

impl Context {
    /// A context for `client`.
    pub fn new(
        client: Client,
        clock: Clock,
        metrics: Arc<Metrics>,
        agent_grace: jiff::SignedDuration,
    ) -> Arc<Context> {
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance,
            },
        );
        Arc::new(Context {
            client,
            clock,
            recorder,
            metrics,
            agent_grace,
        })
    }
}
