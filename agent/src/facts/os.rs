//! Host name and operating system (os-release(5), kernel release, architecture).

use unyo_crds::server::ObservedOs;

use super::Collector;

/// `/etc/hostname`, or the kernel's host name on the live host.
pub fn hostname(c: &Collector) -> Result<String, String> {
    match c.read("/etc/hostname") {
        Ok(h) if !h.is_empty() => Ok(h.lines().next().unwrap_or_default().to_string()),
        other => {
            if c.is_live()
                && let Some(h) = sysinfo::System::host_name()
            {
                return Ok(h);
            }
            Err(match other {
                Ok(_) => "/etc/hostname is empty".to_string(),
                Err(e) => e,
            })
        }
    }
}

/// Values of an os-release file: `KEY=value` lines, values optionally in shell quotes.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            let unescaped = unquoted
                .replace("\\\"", "\"")
                .replace("\\$", "$")
                .replace("\\`", "`")
                .replace("\\\\", "\\");
            (k.trim().to_string(), unescaped)
        })
        .collect()
}

/// The OS from `/etc/os-release` (or `/usr/lib/os-release`), the kernel release and the
/// architecture.
pub fn os(c: &Collector) -> Result<ObservedOs, String> {
    let text = c
        .read("/etc/os-release")
        .or_else(|_| c.read("/usr/lib/os-release"))?;
    let values = parse_os_release(&text);
    let get = |key: &str| {
        values
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let version = get("VERSION_ID");
    // Debian keeps its point release in /etc/debian_version (e.g. 12.7).
    let build = c
        .read("/etc/debian_version")
        .ok()
        .filter(|b| Some(b) != version.as_ref());
    let architecture = c
        .read("/proc/sys/kernel/arch")
        .ok()
        .or_else(|| c.is_live().then(|| std::env::consts::ARCH.to_string()));
    Ok(ObservedOs {
        name: get("NAME"),
        version,
        id: get("ID"),
        build,
        kernel: c.read("/proc/sys/kernel/osrelease").ok(),
        architecture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quotes_and_comments() {
        let v = parse_os_release(
            "# comment\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\nPRETTY_NAME='A \\\"b\\\"'\n\n",
        );
        assert_eq!(
            v,
            [
                ("NAME".to_string(), "Debian GNU/Linux".to_string()),
                ("VERSION_ID".into(), "12".into()),
                ("ID".into(), "debian".into()),
                ("PRETTY_NAME".into(), "A \"b\"".into()),
            ]
        );
    }
}
