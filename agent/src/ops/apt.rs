//! apt and dpkg of the host beneath the agent's root: `apt-get update` from the host's configured
//! sources, the updates a simulated `dist-upgrade` would install (nothing is changed), where each
//! comes from (the archive's Release file: origin, label, suite, date) and its `Urgency`, when the
//! installed version went in (dpkg's log), what waits for a reboot, and the install of one
//! approved version.
//!
//! On the live host (root `/`) apt runs as configured there. Beneath another root (a test host,
//! or a host mounted into a container) the agent writes an apt configuration that points every
//! apt and dpkg path into that root (`Dir`, `dpkg --root`), so the machine running the agent is
//! never changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use unyo_crds::patch::{AvailableUpdate, PatchScan};
use unyo_crds::patching::{classify, severity_from_urgency};

use super::patch::HostPackages;
use crate::report::now_seconds;

/// apt of one host.
#[derive(Clone, Debug)]
pub struct Apt {
    root: PathBuf,
    /// The APT_CONFIG file for a host beneath another root.
    config: Option<PathBuf>,
    /// Where the preferences that block rejected versions are written.
    pins: PathBuf,
}

/// What the archive offering a version says of it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Origin {
    origin: String,
    label: String,
    suite: String,
    date: Option<Timestamp>,
}

impl Apt {
    /// apt of the host beneath `root`, keeping its own files in `state_dir`.
    pub fn new(root: &Path, state_dir: &Path) -> std::io::Result<Apt> {
        let pins = state_dir.join("apt-rejected.pref");
        if root == Path::new("/") {
            return Ok(Apt {
                root: root.to_path_buf(),
                config: None,
                pins,
            });
        }
        std::fs::create_dir_all(state_dir)?;
        for dir in [
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
        ] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let r = root.display();
        let config = state_dir.join("apt.conf");
        std::fs::write(
            &config,
            format!(
                "Dir \"{r}/\";\n\
                 Dir::State::status \"{r}/var/lib/dpkg/status\";\n\
                 Dir::Log \"{r}/var/log/apt\";\n\
                 Dir::Bin::dpkg \"/usr/bin/dpkg\";\n\
                 Dir::Bin::methods \"/usr/lib/apt/methods\";\n\
                 APT::Sandbox::User \"root\";\n\
                 DPkg::Options {{ \"--root={r}\"; \"--log={r}/var/log/dpkg.log\"; \"--force-script-chrootless\"; }};\n"
            ),
        )?;
        Ok(Apt {
            root: root.to_path_buf(),
            config: Some(config),
            pins,
        })
    }

    /// Whether this is the running host (root `/`).
    pub fn is_live(&self) -> bool {
        self.config.is_none()
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env_remove("APT_CONFIG");
        if let Some(conf) = &self.config {
            c.env("APT_CONFIG", conf);
        }
        c
    }

    /// `apt-get update`; an error names each source apt could not read.
    pub fn update(&self) -> Result<(), String> {
        let out = self
            .command("apt-get")
            .args(["-q", "update"])
            .output()
            .map_err(|e| format!("running apt-get update: {e}"))?;
        let text = combined(&out);
        let failures: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.starts_with("Err:")
                    || l.starts_with("E:")
                    || l.starts_with("W: Failed to fetch")
                    || l.starts_with("W: Some index files failed")
            })
            .collect();
        if !out.status.success() || !failures.is_empty() {
            return Err(format!(
                "apt-get update could not read every source: {}",
                if failures.is_empty() {
                    text.trim().to_string()
                } else {
                    failures.join("; ")
                }
            ));
        }
        Ok(())
    }

    /// The updates a simulated `dist-upgrade` would install, as (package, installed, candidate).
    pub fn upgradable(&self) -> Result<Vec<(String, String, String)>, String> {
        let out = self
            .command("apt-get")
            .args(["-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"])
            .output()
            .map_err(|e| format!("running apt-get -s dist-upgrade: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "apt-get -s dist-upgrade failed: {}",
                combined(&out).trim()
            ));
        }
        Ok(parse_simulation(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Each update with its classification, severity and release date, from the lists apt
    /// fetched.
    pub fn describe(&self, updates: Vec<(String, String, String)>) -> Vec<AvailableUpdate> {
        let lists = self.path("/var/lib/apt/lists");
        let wanted: BTreeMap<(String, String), ()> = updates
            .iter()
            .map(|(p, _, v)| ((p.clone(), v.clone()), ()))
            .collect();
        let found = index_lists(&lists, &wanted);
        updates
            .into_iter()
            .map(|(package, installed_version, version)| {
                let (origin, urgency) = found
                    .get(&(package.clone(), version.clone()))
                    .cloned()
                    .unwrap_or_default();
                AvailableUpdate {
                    classification: classify(&origin.origin, &origin.label, &origin.suite),
                    severity: urgency.as_deref().and_then(severity_from_urgency),
                    released_at: origin
                        .date
                        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
                    archive: match (origin.origin.is_empty(), origin.suite.is_empty()) {
                        (true, true) => String::new(),
                        _ => format!("{}/{}", origin.origin, origin.suite),
                    },
                    package,
                    installed_version,
                    version,
                }
            })
            .collect()
    }

    /// Installed packages and their versions (`dpkg-query` on the host's database).
    pub fn installed(&self) -> Result<BTreeMap<String, String>, String> {
        let out = Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                self.path("/var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"])
            .output()
            .map_err(|e| format!("running dpkg-query: {e}"))?;
        if !out.status.success() {
            return Err(format!("dpkg-query failed: {}", combined(&out).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let (status, name, version) = (f.next()?, f.next()?, f.next()?);
                status
                    .starts_with("ii")
                    .then(|| (name.to_string(), version.to_string()))
            })
            .collect())
    }

    /// When each installed package version went in, from dpkg's log (`status installed`).
    pub fn install_times(&self) -> BTreeMap<(String, String), Timestamp> {
        let Ok(text) = std::fs::read_to_string(self.path("/var/log/dpkg.log")) else {
            return BTreeMap::new();
        };
        parse_dpkg_log(&text, &jiff::tz::TimeZone::system())
    }

    /// Whether the host waits for a reboot, and the packages that asked for it.
    pub fn reboot_required(&self) -> (bool, Vec<String>) {
        let dir = ["/run", "/var/run"]
            .into_iter()
            .map(|d| self.path(d))
            .find(|d| d.join("reboot-required").exists());
        let Some(dir) = dir else {
            return (false, vec![]);
        };
        let mut pkgs: Vec<String> = std::fs::read_to_string(dir.join("reboot-required.pkgs"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        pkgs.sort();
        pkgs.dedup();
        (true, pkgs)
    }

    /// Installs exactly `package=version` (an upgrade only). With `blocked` versions (rejected
    /// patches, as `package` or `package=version`) apt may not pick them, not even as a
    /// dependency; a plan that would need one fails its simulation and nothing is changed.
    pub fn install(
        &self,
        package: &str,
        version: &str,
        blocked: &[String],
    ) -> Result<String, String> {
        let pin = if blocked.is_empty() {
            None
        } else {
            let prefs: String = blocked
                .iter()
                .map(|entry| {
                    let (p, v) = entry.split_once('=').unwrap_or((entry.as_str(), "*"));
                    format!("Package: {p}\nPin: version {v}\nPin-Priority: -1\n\n")
                })
                .collect();
            std::fs::write(&self.pins, prefs)
                .map_err(|e| format!("writing {}: {e}", self.pins.display()))?;
            Some(format!("Dir::Etc::Preferences={}", self.pins.display()))
        };
        let target = format!("{package}={version}");
        let run = |simulate: bool| -> Result<Output, String> {
            let mut c = self.command("apt-get");
            c.args([
                "-q",
                "-y",
                "--only-upgrade",
                "-o",
                "Dpkg::Options::=--force-confold",
            ]);
            if let Some(p) = &pin {
                c.args(["-o", p]);
            }
            if simulate {
                c.args(["-s", "-o", "Debug::NoLocking=1"]);
            }
            c.args(["install", "--", &target])
                .output()
                .map_err(|e| format!("running apt-get install: {e}"))
        };
        let plan = run(true)?;
        if !plan.status.success() {
            return Err(format!(
                "not installed: apt cannot plan {target}{}: {}",
                if pin.is_some() {
                    " without a rejected patch"
                } else {
                    ""
                },
                errors(&combined(&plan))
            ));
        }
        let done = run(false)?;
        if !done.status.success() {
            return Err(format!(
                "apt-get install {target} failed: {}",
                errors(&combined(&done))
            ));
        }
        Ok(format!("installed {target}"))
    }
}

impl super::patch::Source for Apt {
    /// `apt-get update`, the simulated upgrade, installed versions and reboot state.
    fn scan(&self) -> HostPackages {
        let mut scan = PatchScan {
            scanned_at: Some(Time(now_seconds())),
            ..Default::default()
        };
        let updated = self.update();
        let listed = self.upgradable();
        match (&updated, &listed) {
            (Ok(()), Ok(_)) => scan.succeeded = true,
            (Err(e), _) | (_, Err(e)) => scan.message = Some(e.clone()),
        }
        if let Ok(list) = listed {
            scan.available = self.describe(list);
        }
        (scan.reboot_required, scan.reboot_packages) = self.reboot_required();
        let installed = self.installed().unwrap_or_else(|e| {
            scan.succeeded = false;
            scan.message = Some(e);
            BTreeMap::new()
        });
        HostPackages {
            scan,
            installed,
            installed_at: self.install_times(),
        }
    }

    fn reread(&self) -> HostPackages {
        let mut h = HostPackages {
            installed: self.installed().unwrap_or_default(),
            installed_at: self.install_times(),
            ..Default::default()
        };
        h.scan.available = self
            .upgradable()
            .map(|l| self.describe(l))
            .unwrap_or_default();
        (h.scan.reboot_required, h.scan.reboot_packages) = self.reboot_required();
        h.scan.scanned_at = Some(Time(now_seconds()));
        h.scan.succeeded = true;
        h
    }

    fn install(&self, package: &str, version: &str, blocked: &[String]) -> Result<String, String> {
        Apt::install(self, package, version, blocked)
    }

    fn reboot(&self) -> Result<String, String> {
        if !self.is_live() {
            return Err("a reboot is required; only the live host is rebooted".into());
        }
        Command::new("shutdown")
            .args(["-r", "+1", "unyo: rebooting for installed patches"])
            .status()
            .map_err(|e| format!("shutdown -r: {e}"))?;
        Ok("rebooting in 1 minute for the installed patches (reboot policy RebootIfNeeded)".into())
    }
}

fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The lines of apt's and dpkg's output that say what went wrong.
fn errors(text: &str) -> String {
    let picked: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("E:")
                || l.starts_with("dpkg: error")
                || l.contains("Depends:")
                || l.contains("trying to overwrite")
        })
        .collect();
    if picked.is_empty() {
        text.lines().rev().take(3).collect::<Vec<_>>().join("; ")
    } else {
        picked.join("; ")
    }
}

/// The `Inst pkg [installed] (candidate …)` lines of a simulation that upgrade a package.
fn parse_simulation(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Inst ")?;
            let (package, rest) = rest.split_once(' ')?;
            let rest = rest.strip_prefix('[')?;
            let (installed, rest) = rest.split_once(']')?;
            let rest = rest.trim_start().strip_prefix('(')?;
            let candidate = rest.split_whitespace().next()?;
            Some((
                package.to_string(),
                installed.to_string(),
                candidate.to_string(),
            ))
        })
        .collect()
}

/// `(package, version) → installed at` from dpkg's log, whose times are the host's local time.
fn parse_dpkg_log(text: &str, tz: &jiff::tz::TimeZone) -> BTreeMap<(String, String), Timestamp> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 6 && f[2] == "status" && f[3] == "installed" {
            let package = f[4].split(':').next().unwrap_or(f[4]);
            let Ok(dt) = format!("{}T{}", f[0], f[1]).parse::<jiff::civil::DateTime>() else {
                continue;
            };
            if let Ok(z) = dt.to_zoned(tz.clone()) {
                out.insert((package.to_string(), f[5].to_string()), z.timestamp());
            }
        }
    }
    out
}

/// The text of a Release or InRelease file without its signature armour.
fn unsigned(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----") else {
        return text;
    };
    let body = rest.split_once("\n\n").map_or(rest, |(_, b)| b);
    body.split("-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap_or(body)
}

fn read_release(path: &Path) -> Option<Origin> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: deb822_fast::Deb822 = unsigned(&text).parse().ok()?;
    let p = doc.iter().next()?;
    let get = |k: &str| p.get(k).unwrap_or_default().trim().to_string();
    Some(Origin {
        origin: get("Origin"),
        label: get("Label"),
        suite: get("Suite"),
        date: p
            .get("Date")
            .and_then(|d| jiff::fmt::rfc2822::parse(d.trim()).ok())
            .map(|z| z.timestamp()),
    })
}

/// For each wanted (package, version): the archive offering it and its `Urgency`. A lists file
/// `<site>_dists_<suite>_main_binary-amd64_Packages` (or `<site>_._Packages` for a flat
/// repository) belongs to the Release or InRelease file of the longest matching prefix.
fn index_lists(
    lists: &Path,
    wanted: &BTreeMap<(String, String), ()>,
) -> BTreeMap<(String, String), (Origin, Option<String>)> {
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return out;
    }
    let Ok(entries) = std::fs::read_dir(lists) else {
        return out;
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let releases: Vec<(String, Origin)> = names
        .iter()
        .filter_map(|n| {
            let stem = n
                .strip_suffix("_InRelease")
                .or_else(|| n.strip_suffix("_Release"))?;
            Some((stem.to_string(), read_release(&lists.join(n))?))
        })
        .collect();
    for name in names.iter().filter(|n| n.ends_with("_Packages")) {
        let origin = releases
            .iter()
            .filter(|(stem, _)| name.starts_with(stem.as_str()))
            .max_by_key(|(stem, _)| stem.len())
            .map(|(_, o)| o.clone())
            .unwrap_or_default();
        let Ok(file) = std::fs::File::open(lists.join(name)) else {
            continue;
        };
        let reader = std::io::BufReader::new(file);
        for para in deb822_fast::Deb822::iter_paragraphs_from_reader(reader).flatten() {
            let (Some(p), Some(v)) = (para.get("Package"), para.get("Version")) else {
                continue;
            };
            let key = (p.trim().to_string(), v.trim().to_string());
            if wanted.contains_key(&key) && !out.contains_key(&key) {
                let urgency = para.get("Urgency").map(|u| u.trim().to_string());
                out.insert(key, (origin.clone(), urgency));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_lines() {
        let text = "Reading package lists...\n\
            Inst alpha [1.0] (1.1 Debian-Security:bookworm-security [all])\n\
            Inst newdep (2.0 bookworm-updates [all])\n\
            Inst beta [1.0] (2.0 bookworm-updates [all])\n\
            Conf alpha (1.1 Debian-Security:bookworm-security [all])\n";
        assert_eq!(
            parse_simulation(text),
            vec![
                ("alpha".into(), "1.0".into(), "1.1".into()),
                ("beta".into(), "1.0".into(), "2.0".into())
            ]
        );
    }

    #[test]
    fn dpkg_log_times() {
        let log = "2026-11-24 18:05:01 startup packages configure\n\
            2026-11-24 18:05:01 status installed alpha:all 1.1\n\
            2026-11-24 18:05:01 status half-configured beta:all 2.0\n";
        let t = parse_dpkg_log(log, &jiff::tz::TimeZone::UTC);
        assert_eq!(
            t.get(&("alpha".to_string(), "1.1".to_string())),
            Some(&"2026-11-24T18:05:01Z".parse().unwrap())
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn signed_release_armour_is_removed() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: bookworm-security\n-----BEGIN PGP SIGNATURE-----\nxyz\n";
        let doc: deb822_fast::Deb822 = unsigned(text).parse().unwrap();
        let p = doc.iter().next().unwrap();
        assert_eq!(p.get("Suite"), Some("bookworm-security"));
    }
}
