//! The state of one check over time: a measured level becomes the reported state only after it
//! has held for the check's `for` duration (a return to OK, or Unknown, counts at once), and a
//! transition is produced only when the reported state changes.

use std::time::Duration;

use jiff::Timestamp;
use unyo_crds::server::CheckState;

/// One evaluation of a check.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The level the measurement puts the check in.
    pub state: CheckState,
    /// The measured value, where there is one.
    pub value: Option<f64>,
    /// What was seen, for people.
    pub message: String,
}

/// A change of the reported state.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The new state.
    pub state: CheckState,
    /// When the new state began (for a `for` duration: when the level was first seen).
    pub since: Timestamp,
    /// The value that made it.
    pub value: Option<f64>,
    /// What was seen.
    pub message: String,
}

/// Reported state of one check and the level waiting out its `for` duration.
#[derive(Clone, Debug)]
pub struct Tracker {
    hold: Duration,
    reported: Option<CheckState>,
    pending: Option<(CheckState, Timestamp)>,
}

impl Tracker {
    /// A tracker for a check with `for` duration `hold`, starting from a previously reported
    /// state (kept across restarts) or none.
    pub fn new(hold: Duration, reported: Option<CheckState>) -> Self {
        Tracker {
            hold,
            reported,
            pending: None,
        }
    }

    /// Feeds one sample taken at `now`; returns the transition it causes, if any.
    pub fn observe(&mut self, sample: &Sample, now: Timestamp) -> Option<Transition> {
        if self.reported == Some(sample.state) {
            self.pending = None;
            return None;
        }
        let needs_hold = matches!(sample.state, CheckState::Warning | CheckState::Critical)
            && !self.hold.is_zero();
        let since = if needs_hold {
            let started = match self.pending {
                Some((state, at)) if state == sample.state => at,
                _ => {
                    self.pending = Some((sample.state, now));
                    now
                }
            };
            let held = now.duration_since(started).unsigned_abs();
            if held < self.hold {
                return None;
            }
            started
        } else {
            now
        };
        self.pending = None;
        self.reported = Some(sample.state);
        Some(Transition {
            state: sample.state,
            since,
            value: sample.value,
            message: sample.message.clone(),
        })
    }
}

/// The level of a thresholded value: Critical at or above `critical`, Warning at or above
/// `warning`, else OK.
pub fn level(value: f64, warning: Option<f64>, critical: Option<f64>) -> CheckState {
    if critical.is_some_and(|c| value >= c) {
        CheckState::Critical
    } else if warning.is_some_and(|w| value >= w) {
        CheckState::Warning
    } else {
        CheckState::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(state: CheckState) -> Sample {
        Sample {
            state,
            value: Some(1.0),
            message: String::new(),
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn for_duration_delays_worse_states_only() {
        let mut tr = Tracker::new(Duration::from_secs(300), None);
        let first = tr.observe(&s(CheckState::OK), t(0)).unwrap();
        assert_eq!(first.state, CheckState::OK);
        assert!(tr.observe(&s(CheckState::OK), t(60)).is_none());
        // Critical must hold five minutes; the transition is dated from its start.
        assert!(tr.observe(&s(CheckState::Critical), t(120)).is_none());
        assert!(tr.observe(&s(CheckState::Critical), t(300)).is_none());
        let crit = tr.observe(&s(CheckState::Critical), t(420)).unwrap();
        assert_eq!((crit.state, crit.since), (CheckState::Critical, t(120)));
        // A dip below the threshold resets the wait; recovery is immediate.
        let ok = tr.observe(&s(CheckState::OK), t(480)).unwrap();
        assert_eq!((ok.state, ok.since), (CheckState::OK, t(480)));
        assert!(tr.observe(&s(CheckState::Warning), t(540)).is_none());
        assert!(tr.observe(&s(CheckState::OK), t(600)).is_none());
        assert!(tr.observe(&s(CheckState::Warning), t(660)).is_none());
        assert!(tr.observe(&s(CheckState::Warning), t(900)).is_none());
        assert!(tr.observe(&s(CheckState::Warning), t(960)).is_some());
    }

    #[test]
    fn no_hold_and_restored_state() {
        let mut tr = Tracker::new(Duration::ZERO, Some(CheckState::Critical));
        assert!(tr.observe(&s(CheckState::Critical), t(0)).is_none());
        assert_eq!(
            tr.observe(&s(CheckState::Unknown), t(1)).unwrap().state,
            CheckState::Unknown
        );
    }

    #[test]
    fn thresholds() {
        assert_eq!(level(79.9, Some(80.0), Some(95.0)), CheckState::OK);
        assert_eq!(level(80.0, Some(80.0), Some(95.0)), CheckState::Warning);
        assert_eq!(level(99.0, Some(80.0), Some(95.0)), CheckState::Critical);
        assert_eq!(level(99.0, None, Some(95.0)), CheckState::Critical);
        assert_eq!(level(90.0, None, Some(95.0)), CheckState::OK);
    }
}
