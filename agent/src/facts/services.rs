//! Service units and their states, from the running systemd.

use std::process::Command;

use unyo_crds::server::ObservedService;

use super::Collector;

/// Whether systemd runs the host (sd_booted(3): `/run/systemd/system` exists).
pub fn systemd_running(c: &Collector) -> bool {
    c.path("/run/systemd/system").is_dir()
}

/// Every service unit systemd knows, with its active and sub state.
pub fn services(c: &Collector) -> Result<Vec<ObservedService>, String> {
    if !c.is_live() {
        return Err(
            "service states come from the running systemd, not from files; not read beneath --root"
                .into(),
        );
    }
    if !systemd_running(c) {
        return Err("systemd is not running on this host (no /run/systemd/system)".into());
    }
    let out = Command::new("systemctl")
        .args([
            "list-units",
            "--type=service",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])
        .output()
        .map_err(|e| format!("running systemctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "systemctl failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_list_units(&String::from_utf8_lossy(&out.stdout)))
}

/// `UNIT LOAD ACTIVE SUB DESCRIPTION...` lines of `systemctl list-units --plain`.
pub fn parse_list_units(text: &str) -> Vec<ObservedService> {
    let mut out: Vec<ObservedService> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (name, active, sub) = (f.first()?, f.get(2)?, f.get(3)?);
            name.ends_with(".service").then(|| ObservedService {
                name: name.to_string(),
                state: active.to_string(),
                sub_state: Some(sub.to_string()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_units_lines() {
        let s = parse_list_units(
            "ssh.service loaded active running OpenBSD Secure Shell server\n\
             postgresql.service loaded failed failed PostgreSQL RDBMS\n\
             foo.socket loaded active listening Foo\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "postgresql.service");
        assert_eq!(s[0].state, "failed");
        assert_eq!(s[1].sub_state.as_deref(), Some("running"));
    }
}
