//! The Windows Time service's state from `w32tm /query /status /verbose`: synchronised or not
//! (the leap indicator, the stratum, the source), the source, and the phase offset.
//!
//! w32tm prints its labels in the display language of the system. The leap indicator and the
//! stratum are its first two lines in every language, and their values begin with a number;
//! the source and the phase offset are read by their English labels only (on another display
//! language they stay unknown rather than guessed).

use unyo_crds::server::TimeSync;

/// The sources of a clock that is not synchronised to anything.
const FREE_RUNNING: [&str; 2] = ["Local CMOS Clock", "Free-running System Clock"];

/// The number a value begins with (`3(not synchronized)` → 3).
fn leading_number(value: &str) -> Option<i64> {
    let v = value.trim();
    let end = v
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(v.len(), |(i, _)| i);
    v[..end].parse().ok()
}

/// Seconds of a w32tm duration (`0.0012345s`, `-0.25s`).
fn seconds(value: &str) -> Option<f64> {
    let v = value.trim().strip_suffix('s')?;
    v.parse::<f64>().ok().filter(|s| s.is_finite())
}

/// The time sync state `w32tm /query /status /verbose` prints; an error when the output is
/// not w32tm's status (w32tm also prints its errors to standard output).
pub fn parse_status(text: &str) -> Result<TimeSync, String> {
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let leap = pairs.first().and_then(|(_, v)| leading_number(v));
    let stratum = pairs.get(1).and_then(|(_, v)| leading_number(v));
    let (Some(leap), Some(stratum)) = (leap, stratum) else {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!("w32tm /query /status: not a status ({first:?})"));
    };
    let get = |label: &str| pairs.iter().find(|(k, _)| *k == label).map(|(_, v)| *v);
    let source = get("Source")
        .map(|s| s.split(',').next().unwrap_or(s).trim().to_string())
        .filter(|s| !s.is_empty());
    let free = source.as_deref().is_some_and(|s| FREE_RUNNING.contains(&s));
    Ok(TimeSync {
        synchronized: Some(leap != 3 && (1..=15).contains(&stratum) && !free),
        offset_seconds: get("Phase Offset").and_then(seconds),
        source,
        time_zone: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synchronised_domain_member() {
        let t = parse_status(include_str!("fixtures/w32tm-status-synced.txt")).unwrap();
        assert_eq!(t.synchronized, Some(true));
        assert_eq!(t.source.as_deref(), Some("ad01.mie.example.lg.jp"));
        assert_eq!(t.offset_seconds, Some(-0.0012345));
    }

    #[test]
    fn a_free_running_clock_is_not_synchronised() {
        let t = parse_status(include_str!("fixtures/w32tm-status-free.txt")).unwrap();
        assert_eq!(t.synchronized, Some(false));
        assert_eq!(t.source.as_deref(), Some("Free-running System Clock"));
        assert_eq!(t.offset_seconds, Some(0.0));
    }

    #[test]
    fn other_labels_are_read_by_position_and_errors_are_not_a_status() {
        // Labels of another display language: the first two lines still give the state.
        let t = parse_status("A: 3(x)\nB: 0 (y)\nC: z\n").unwrap();
        assert_eq!(
            (t.synchronized, t.source, t.offset_seconds),
            (Some(false), None, None)
        );
        let t = parse_status("A: 0(x)\nB: 3 (y)\n").unwrap();
        assert_eq!(t.synchronized, Some(true));
        let err = parse_status(
            "The following error occurred: The service has not been started. (0x80070426)\n",
        )
        .unwrap_err();
        assert!(err.contains("not a status"), "{err}");
        assert!(parse_status("").is_err());
        assert_eq!(leading_number("99999999999999999999999"), None);
        assert_eq!(seconds("NaNs"), None);
        assert_eq!(seconds("1e999s"), None);
    }
}
