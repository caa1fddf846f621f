//! Time synchronisation state (requirement R13): the time zone from the host's files, and
//! synchronisation and offset from chrony (`chronyc -c tracking`) or systemd-timesyncd
//! (`timedatectl show`) when one of them runs.

use std::process::Command;

use unyo_crds::server::TimeSync;

use super::Collector;
use super::services::systemd_running;

/// The time sync state, and the reason synchronisation is unknown when it is.
pub fn time_sync(c: &Collector) -> (TimeSync, Option<String>) {
    let mut sync = TimeSync {
        time_zone: time_zone(c),
        ..Default::default()
    };
    if !c.is_live() {
        return (
            sync,
            Some("synchronisation is asked of the running chrony or timesyncd; not read beneath --root".into()),
        );
    }
    if let Ok(out) = Command::new("chronyc").args(["-c", "tracking"]).output()
        && out.status.success()
        && let Some(t) = parse_chrony_tracking(&String::from_utf8_lossy(&out.stdout))
    {
        sync.synchronized = Some(t.0);
        sync.offset_seconds = Some(t.1);
        sync.source = Some(t.2);
        return (sync, None);
    }
    if systemd_running(c)
        && let Ok(out) = Command::new("timedatectl")
            .args(["show", "-p", "NTPSynchronized", "--value"])
            .output()
        && out.status.success()
    {
        sync.synchronized = Some(String::from_utf8_lossy(&out.stdout).trim() == "yes");
        sync.source = Some("systemd-timesyncd".into());
        return (sync, None);
    }
    (
        sync,
        Some("neither chrony (chronyc) nor systemd-timesyncd answers on this host".into()),
    )
}

/// The zone of `/etc/localtime` (a link into the zoneinfo tree) or `/etc/timezone`.
fn time_zone(c: &Collector) -> Option<String> {
    if let Ok(target) = std::fs::read_link(c.path("/etc/localtime")) {
        let t = target.to_string_lossy();
        if let Some((_, zone)) = t.split_once("zoneinfo/") {
            return Some(zone.to_string());
        }
    }
    c.read("/etc/timezone").ok().filter(|z| !z.is_empty())
}

/// `chronyc -c tracking` CSV: reference ID, name, stratum, reference time, system time offset
/// (seconds, positive when the clock is fast), …, leap status last. Returns (synchronised,
/// offset, source).
pub fn parse_chrony_tracking(csv: &str) -> Option<(bool, f64, String)> {
    let f: Vec<&str> = csv.trim().split(',').collect();
    if f.len() < 5 {
        return None;
    }
    let offset: f64 = f[4].parse().ok()?;
    let leap = f.last()?.trim();
    let synchronized = leap != "Not synchronised" && f[2] != "0";
    Some((synchronized, offset, f[1].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chrony_tracking_csv() {
        let csv = "7F7F0101,ntp1.example,3,1732400000.0,-0.000012345,0.000001,0.0000002,-3.1,0.01,0.2,0.01,0.02,64.5,Normal\n";
        let (sync, offset, source) = parse_chrony_tracking(csv).unwrap();
        assert!(sync);
        assert!((offset + 0.000012345).abs() < 1e-12);
        assert_eq!(source, "ntp1.example");
        let unsync = "00000000,,0,0.0,0.0,0,0,0,0,0,0,0,0,Not synchronised\n";
        assert!(!parse_chrony_tracking(unsync).unwrap().0);
        assert!(parse_chrony_tracking("garbage").is_none());
    }
}
