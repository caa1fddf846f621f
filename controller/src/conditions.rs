//! Status conditions as Kubernetes conventions want them: a transition time that moves only
//! when the status does, and the generation they were computed for.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Builds condition `type_`, keeping the lastTransitionTime of the matching condition in
/// `previous` when its status has not changed.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    judged(previous, type_, Some(ok), reason, message, generation, now)
}

/// A condition that may be Unknown (`ok` None), e.g. before anything was reported.
pub fn judged(
    previous: &[Condition],
    type_: &str,
    ok: Option<bool>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = match ok {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(truncate_to_seconds(now)));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Ready, followed — when it is False — by Stalled=True with the same reason and message if that
/// reason is one only a change of the spec can mend
/// ([`unyo_crds::names::reasons::SPEC_ERRORS`]; kstatus, for Flux and Argo CD, reads Failed), or
/// else by Reconciling=True (waiting for something that may still come; kstatus reads
/// InProgress).
pub fn ready(
    previous: &[Condition],
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    use unyo_crds::names::{conditions, reasons};
    let ready = condition(
        previous,
        conditions::READY,
        ok,
        reason,
        message,
        generation,
        now,
    );
    let follow = (!ok).then(|| {
        let type_ = if reasons::SPEC_ERRORS.contains(&reason) {
            conditions::STALLED
        } else {
            conditions::RECONCILING
        };
        let message = ready.message.clone();
        condition(previous, type_, true, reason, message, generation, now)
    });
    std::iter::once(ready).chain(follow).collect()
}

/// metav1.Time keeps whole seconds; a value with a fraction would differ after a round trip.
pub fn truncate_to_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let t0: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-24T01:00:00.5Z".parse().unwrap();
        let first = condition(&[], "Ready", true, "Evaluated", "ok", Some(1), t0);
        assert_eq!(first.last_transition_time.0, t0);
        let same = condition(
            std::slice::from_ref(&first),
            "Ready",
            true,
            "Evaluated",
            "still",
            Some(2),
            t1,
        );
        assert_eq!(same.last_transition_time.0, t0);
        assert_eq!(same.observed_generation, Some(2));
        let flipped = condition(&[first], "Ready", false, "InvalidSpec", "bad", Some(3), t1);
        assert_eq!(flipped.status, "False");
        assert_eq!(flipped.last_transition_time.0, truncate_to_seconds(t1));
        assert_eq!(flipped.last_transition_time.0.subsec_nanosecond(), 0);
    }

    #[test]
    fn a_spec_error_stalls_and_a_missing_dependency_waits() {
        let now: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
        let bad = ready(
            &[],
            false,
            "InvalidSelector",
            "spec.selector: x",
            Some(2),
            now,
        );
        assert_eq!(bad.len(), 2);
        assert_eq!(
            (bad[1].type_.as_str(), bad[1].status.as_str()),
            ("Stalled", "True")
        );
        assert_eq!(bad[1].reason, "InvalidSelector");
        assert_eq!(bad[1].message, "spec.selector: x");
        assert_eq!(bad[1].observed_generation, Some(2));
        let waiting = ready(&[], false, "CalendarNotFound", "no calendar", Some(2), now);
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting[0].status, "False");
        assert_eq!(
            (waiting[1].type_.as_str(), waiting[1].status.as_str()),
            ("Reconciling", "True")
        );
        let fine = ready(&bad, true, "Evaluated", "ok", Some(3), now);
        assert_eq!(fine.len(), 1, "Stalled goes once the spec is mended");
    }
}
