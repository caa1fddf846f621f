//! Times and numbers as the reports print them.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A Kubernetes time as a jiff timestamp.
pub fn ts(t: &Time) -> Timestamp {
    t.0
}

/// `2026-11-03 14:05` in the report's zone.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// An optional Kubernetes time as `local`, empty when absent.
pub fn local_opt(t: Option<&Time>, tz: &TimeZone) -> String {
    t.map(|t| local(ts(t), tz)).unwrap_or_default()
}

/// Seconds as whole minutes (rounded), for downtime columns.
pub fn minutes(seconds: i64) -> f64 {
    (seconds as f64 / 60.0).round()
}

/// A number without needless decimals: 12, 12.5, 99.93.
pub fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        let s = format!("{n:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A ratio 0..=1 as a percentage with two decimals.
pub fn percent(r: f64) -> String {
    format!("{:.2}%", r * 100.0)
}
