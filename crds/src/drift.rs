//! Drift: where the observed facts of a host differ from its ledger (the Server's spec).
//!
//! Only what the ledger declares is compared: a field left out of the spec is never drift.
//! Lists are matched by name (`hardware.disks[name=sda]`, `software[name=openssl]`); a list named
//! in `drift.strict` also reports observed entries the ledger does not declare. Paths listed in
//! `drift.ignore` (exactly, as a prefix, or with `*` wildcards) are skipped, and so is every fact
//! the agent could not read. Sizes are compared with a tolerance, since the OS reports less
//! memory than is installed and vendors round disk sizes.

mod attached;

use std::collections::BTreeMap;

use crate::change::ChangeClass;
use crate::server::{DriftPolicy, ObservedFacts, ServerSpec, StrictList};

/// What kind of change a drifted path is, for classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    /// The operating system (name, version, build, kernel, architecture) or host name.
    Os,
    /// Hardware: CPU, memory, disks, network interfaces.
    Hardware,
    /// A declared package at another version.
    SoftwareVersion,
    /// A package declared but not installed, or installed but not declared (strict).
    SoftwareAddedRemoved,
}

/// One drifted ledger path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Drift {
    /// Ledger path, e.g. `os.version` or `software[name=openssl].version`.
    pub path: String,
    /// The declared value (None when the host has something the ledger does not declare).
    pub expected: Option<String>,
    /// The observed value (None when the host lacks something the ledger declares).
    pub observed: Option<String>,
    /// What kind of change it is.
    pub kind: DriftKind,
}

/// Relative tolerance of memory sizes (MemTotal excludes memory the kernel reserves).
const MEMORY_TOLERANCE: f64 = 0.05;
/// Relative tolerance of disk sizes.
const DISK_TOLERANCE: f64 = 0.02;

/// Bytes of a Kubernetes quantity such as `128Gi`, `960G` or `1.5Ti`.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        _ => return None,
    };
    Some(n * factor)
}

fn within(declared: f64, observed: f64, tolerance: f64) -> bool {
    declared > 0.0 && ((observed - declared).abs() / declared) <= tolerance
}

fn human_bytes(b: f64) -> String {
    format!("{:.1}Gi", b / 1024f64.powi(3))
}

/// Whether `path` is skipped by an `ignore` entry: equal, a prefix of it at a `.` or `[`
/// boundary, or a pattern with `*` wildcards matching it (or its prefix).
pub fn ignored(path: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|pattern| {
        if pattern.contains('*') {
            wildcard(pattern, path)
                || path
                    .match_indices(['.', '['])
                    .any(|(i, _)| wildcard(pattern, &path[..i]))
        } else {
            path == pattern
                || path
                    .strip_prefix(pattern.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        }
    })
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

struct Comparer<'a> {
    policy: &'a DriftPolicy,
    unknown: Vec<&'a str>,
    out: Vec<Drift>,
}

impl Comparer<'_> {
    fn known(&self, fact: &str) -> bool {
        !self.unknown.contains(&fact)
    }

    fn push(
        &mut self,
        path: String,
        expected: Option<String>,
        observed: Option<String>,
        kind: DriftKind,
    ) {
        if !ignored(&path, &self.policy.ignore) {
            self.out.push(Drift {
                path,
                expected,
                observed,
                kind,
            });
        }
    }

    /// Compares a declared value with an observed one; an unobserved value is no drift.
    fn value(
        &mut self,
        path: &str,
        declared: Option<String>,
        observed: Option<String>,
        kind: DriftKind,
    ) {
        if let (Some(d), Some(o)) = (&declared, &observed)
            && d != o
        {
            self.push(path.to_string(), declared, observed, kind);
        }
    }

    fn strict(&self, list: StrictList) -> bool {
        self.policy.strict.contains(&list)
    }
}

/// Every drifted path of `spec` against `observed`, in path order.
pub fn compare(spec: &ServerSpec, observed: &ObservedFacts) -> Vec<Drift> {
    let default_policy = DriftPolicy::default();
    let mut c = Comparer {
        policy: spec.drift.as_ref().unwrap_or(&default_policy),
        unknown: observed.unknown.iter().map(|u| u.fact.as_str()).collect(),
        out: Vec::new(),
    };
    c.value(
        "hostname",
        Some(spec.hostname.clone()),
        observed.hostname.clone(),
        DriftKind::Os,
    );
    if let Some(os) = &observed.os {
        let l = &spec.os;
        c.value(
            "os.name",
            Some(l.name.clone()),
            os.name.clone(),
            DriftKind::Os,
        );
        c.value(
            "os.version",
            Some(l.version.clone()),
            os.version.clone(),
            DriftKind::Os,
        );
        c.value("os.build", l.build.clone(), os.build.clone(), DriftKind::Os);
        c.value(
            "os.kernel",
            l.kernel.clone(),
            os.kernel.clone(),
            DriftKind::Os,
        );
        c.value(
            "os.architecture",
            l.architecture.clone(),
            os.architecture.clone(),
            DriftKind::Os,
        );
    }
    if let Some(hw) = &spec.hardware {
        hardware(&mut c, hw, observed);
    }
    if c.known("packages") && observed.has_packages() {
        software(&mut c, spec, observed);
    }
    attached::identity(&mut c, spec, observed);
    attached::patches(&mut c, spec, observed);
    attached::devices(&mut c, spec, observed);
    let mut out = c.out;
    out.sort();
    out.dedup();
    out
}

fn hardware(c: &mut Comparer<'_>, hw: &crate::server::HardwareLedger, observed: &ObservedFacts) {
    let hwk = DriftKind::Hardware;
    if let (Some(l), Some(o)) = (&hw.cpu, &observed.cpu) {
        c.value("hardware.cpu.model", l.model.clone(), o.model.clone(), hwk);
        let n = |v: Option<u32>| v.map(|v| v.to_string());
        c.value("hardware.cpu.sockets", n(l.sockets), n(o.sockets), hwk);
        c.value("hardware.cpu.cores", n(l.cores), n(o.cores), hwk);
        c.value("hardware.cpu.threads", n(l.threads), n(o.threads), hwk);
    }
    if let (Some(q), Some(o)) = (&hw.memory, observed.memory_bytes)
        && let Some(declared) = quantity_bytes(&q.0)
        && !within(declared, o as f64, MEMORY_TOLERANCE)
    {
        c.push(
            "hardware.memory".into(),
            Some(q.0.clone()),
            Some(human_bytes(o as f64)),
            hwk,
        );
    }
    if c.known("disks") && !observed.disks.is_empty() {
        let seen: BTreeMap<&str, _> = observed
            .disks
            .iter()
            .map(|d| (d.name.as_str(), d))
            .collect();
        for d in hw
            .disks
            .iter()
            .filter(|d| d.kind == crate::server::DiskKind::Physical)
        {
            let base = format!("hardware.disks[name={}]", d.name);
            match seen.get(d.name.as_str()) {
                None => c.push(base, Some(d.name.clone()), None, hwk),
                Some(o) => {
                    if let (Some(q), Some(size)) = (&d.size, o.size_bytes)
                        && let Some(declared) = quantity_bytes(&q.0)
                        && !within(declared, size as f64, DISK_TOLERANCE)
                    {
                        c.push(
                            format!("{base}.size"),
                            Some(q.0.clone()),
                            Some(human_bytes(size as f64)),
                            hwk,
                        );
                    }
                    c.value(
                        &format!("{base}.model"),
                        d.model.clone(),
                        o.model.clone(),
                        hwk,
                    );
                }
            }
        }
        if c.strict(StrictList::Disks) {
            for o in &observed.disks {
                if !hw.disks.iter().any(|d| d.name == o.name) {
                    c.push(
                        format!("hardware.disks[name={}]", o.name),
                        None,
                        Some(o.name.clone()),
                        hwk,
                    );
                }
            }
        }
    }
    if c.known("nics") && !observed.nics.is_empty() {
        for n in &hw.nics {
            let base = format!("hardware.nics[name={}]", n.name);
            let Some(o) = observed.nics.iter().find(|o| o.name == n.name) else {
                c.push(base, Some(n.name.clone()), None, hwk);
                continue;
            };
            c.value(
                &format!("{base}.mac"),
                n.mac.as_ref().map(|m| m.to_ascii_lowercase()),
                o.mac.as_ref().map(|m| m.to_ascii_lowercase()),
                hwk,
            );
            if !n.addresses.is_empty() {
                // A declared address without prefix length matches an observed one with any.
                let bare = |a: &str| a.split('/').next().unwrap_or(a).to_string();
                let matches = |d: &String| {
                    o.addresses
                        .iter()
                        .any(|a| a == d || (!d.contains('/') && bare(a) == *d))
                };
                if !n.addresses.iter().all(matches) {
                    c.push(
                        format!("{base}.addresses"),
                        Some(n.addresses.join(",")),
                        Some(o.addresses.join(",")),
                        hwk,
                    );
                }
            }
        }
        if c.strict(StrictList::Nics) {
            for o in &observed.nics {
                if !hw.nics.iter().any(|n| n.name == o.name) {
                    c.push(
                        format!("hardware.nics[name={}]", o.name),
                        None,
                        Some(o.name.clone()),
                        hwk,
                    );
                }
            }
        }
    }
}

fn software(c: &mut Comparer<'_>, spec: &ServerSpec, observed: &ObservedFacts) {
    let packages = observed.installed();
    let installed: BTreeMap<&str, &str> = packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    for s in &spec.software {
        let base = format!("software[name={}]", s.name);
        match installed.get(s.name.as_str()) {
            None => c.push(
                base,
                Some(s.version.clone()),
                None,
                DriftKind::SoftwareAddedRemoved,
            ),
            Some(v) if *v != s.version => c.push(
                format!("{base}.version"),
                Some(s.version.clone()),
                Some(v.to_string()),
                DriftKind::SoftwareVersion,
            ),
            Some(_) => {}
        }
    }
    if c.strict(StrictList::Software) {
        for (name, version) in installed {
            if !spec.software.iter().any(|s| s.name == name) {
                c.push(
                    format!("software[name={name}]"),
                    None,
                    Some(version.to_string()),
                    DriftKind::SoftwareAddedRemoved,
                );
            }
        }
    }
}

/// The observed value at a drift path, formatted as [`compare`] reports it (None when the host
/// has nothing there).
pub fn observed_at(path: &str, o: &ObservedFacts) -> Option<String> {
    let named = |rest: &str| -> Option<(String, String)> {
        let rest = rest.strip_prefix("[name=")?;
        let (name, tail) = rest.split_once(']')?;
        Some((name.to_string(), tail.trim_start_matches('.').to_string()))
    };
    let os = o.os.as_ref();
    let cpu = o.cpu.as_ref();
    let n = |v: Option<u32>| v.map(|v| v.to_string());
    match path {
        "hostname" => o.hostname.clone(),
        "os.name" => os?.name.clone(),
        "os.version" => os?.version.clone(),
        "os.build" => os?.build.clone(),
        "os.kernel" => os?.kernel.clone(),
        "os.architecture" => os?.architecture.clone(),
        "hardware.cpu.model" => cpu?.model.clone(),
        "hardware.cpu.sockets" => n(cpu?.sockets),
        "hardware.cpu.cores" => n(cpu?.cores),
        "hardware.cpu.threads" => n(cpu?.threads),
        "hardware.memory" => o.memory_bytes.map(|b| human_bytes(b as f64)),
        "hardware.vendor" => o.hardware.as_ref()?.vendor.clone(),
        "hardware.model" => o.hardware.as_ref()?.model.clone(),
        "hardware.serialNumber" => o.hardware.as_ref()?.serial_number.clone(),
        _ => {
            if let Some((name, field)) = path.strip_prefix("hardware.disks").and_then(named) {
                let d = o.disks.iter().find(|d| d.name == name)?;
                match field.as_str() {
                    "" => Some(d.name.clone()),
                    "size" => d.size_bytes.map(|b| human_bytes(b as f64)),
                    "model" => d.model.clone(),
                    _ => None,
                }
            } else if let Some((name, field)) = path.strip_prefix("hardware.nics").and_then(named) {
                let nic = o.nics.iter().find(|x| x.name == name)?;
                match field.as_str() {
                    "" => Some(nic.name.clone()),
                    "mac" => nic.mac.as_ref().map(|m| m.to_ascii_lowercase()),
                    "addresses" => Some(nic.addresses.join(",")),
                    _ => None,
                }
            } else if let Some(id) = path
                .strip_prefix("patches[id=")
                .and_then(|r| r.strip_suffix(']'))
            {
                attached::observed_patch(id, o)
            } else if let Some((name, _)) = path.strip_prefix("devices").and_then(named) {
                o.devices
                    .as_deref()?
                    .iter()
                    .find(|d| d.name == name)
                    .map(|d| attached::label(d.vendor.as_deref(), d.model.as_deref()))
            } else if let Some((name, _)) = path.strip_prefix("software").and_then(named) {
                o.installed()
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| p.version.clone())
            } else {
                None
            }
        }
    }
}

/// The classification of a set of drifts: the highest of each drift's class, by the defaults
/// (OS and hardware Major, software version Minor, software added or removed Major) or the
/// Server's `drift.classification`.
pub fn classify(drifts: &[Drift], policy: Option<&DriftPolicy>) -> ChangeClass {
    let over = policy.and_then(|p| p.classification.as_ref());
    drifts
        .iter()
        .map(|d| match d.kind {
            DriftKind::Os => over.and_then(|o| o.os).unwrap_or(ChangeClass::Major),
            DriftKind::Hardware => over.and_then(|o| o.hardware).unwrap_or(ChangeClass::Major),
            DriftKind::SoftwareVersion => over
                .and_then(|o| o.software_version)
                .unwrap_or(ChangeClass::Minor),
            DriftKind::SoftwareAddedRemoved => over
                .and_then(|o| o.software_added_removed)
                .unwrap_or(ChangeClass::Major),
        })
        .max()
        .unwrap_or(ChangeClass::Minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn spec() -> ServerSpec {
        serde_json::from_value(serde_json::json!({
            "hostname": "db01",
            "role": "DB",
            "os": {"name": "Debian GNU/Linux", "version": "12", "kernel": "6.1.0-25-amd64"},
            "hardware": {
                "cpu": {"sockets": 2, "threads": 32},
                "memory": "128Gi",
                "disks": [{"name": "sda", "kind": "Physical", "size": "960Gi"}, {"name": "data", "kind": "Logical", "size": "2Ti"}],
                "nics": [{"name": "eth0", "mac": "52:54:00:AA:00:01", "addresses": ["10.1.2.3"]}]
            },
            "software": [{"name": "postgresql-15", "version": "15.8-0+deb12u1"}, {"name": "openssl", "version": "3.0.14-1~deb12u2"}]
        }))
        .unwrap()
    }

    fn observed() -> ObservedFacts {
        serde_json::from_value(serde_json::json!({
            "hostname": "db01",
            "os": {"name": "Debian GNU/Linux", "version": "12", "build": "12.7", "kernel": "6.1.0-25-amd64"},
            "cpu": {"model": "Xeon", "sockets": 2, "cores": 16, "threads": 32},
            "memoryBytes": 131_000_000_000u64,
            "disks": [{"name": "sda", "sizeBytes": 1_030_792_151_040u64}, {"name": "sdb", "sizeBytes": 1000}],
            "nics": [{"name": "eth0", "mac": "52:54:00:aa:00:01", "addresses": ["10.1.2.3/24", "fe80::1/64"]}, {"name": "eth1"}],
            "packages": [
                {"name": "openssl", "version": "3.0.14-1~deb12u2"},
                {"name": "postgresql-15", "version": "15.8-0+deb12u1"},
                {"name": "tzdata", "version": "2024a"}
            ]
        }))
        .unwrap()
    }

    fn paths(d: &[Drift]) -> Vec<&str> {
        d.iter().map(|d| d.path.as_str()).collect()
    }

    #[test]
    fn matching_host_has_no_drift() {
        // Undeclared build and cores, logical disks, extra disks, NICs and packages are not
        // drift without strict; memory and disk sizes are within tolerance; MAC case and
        // prefix lengths do not matter.
        assert_eq!(compare(&spec(), &observed()), vec![]);
    }

    #[test]
    fn each_kind_of_drift() {
        let mut o = observed();
        o.os.as_mut().unwrap().version = Some("13".into());
        o.memory_bytes = Some(64 * 1024 * 1024 * 1024);
        o.nics[0].mac = Some("52:54:00:aa:00:02".into());
        o.nics[0].addresses = vec!["10.1.2.4/24".into()];
        o.packages.retain(|p| p.name != "openssl");
        o.packages[0].version = "15.9-0+deb12u1".into();
        let d = compare(&spec(), &o);
        assert_eq!(
            paths(&d),
            [
                "hardware.memory",
                "hardware.nics[name=eth0].addresses",
                "hardware.nics[name=eth0].mac",
                "os.version",
                "software[name=openssl]",
                "software[name=postgresql-15].version",
            ]
        );
        let pg = d
            .iter()
            .find(|d| d.path.starts_with("software[name=postgresql-15]"))
            .unwrap();
        assert_eq!(
            (pg.expected.as_deref(), pg.observed.as_deref(), pg.kind),
            (
                Some("15.8-0+deb12u1"),
                Some("15.9-0+deb12u1"),
                DriftKind::SoftwareVersion
            )
        );
        let ssl = d
            .iter()
            .find(|d| d.path == "software[name=openssl]")
            .unwrap();
        assert_eq!(ssl.observed, None);
        assert_eq!(classify(&d, None), ChangeClass::Major);
        let only_version: Vec<Drift> = d
            .into_iter()
            .filter(|d| d.kind == DriftKind::SoftwareVersion)
            .collect();
        assert_eq!(classify(&only_version, None), ChangeClass::Minor);
        let over = DriftPolicy {
            classification: Some(DriftClassification {
                software_version: Some(ChangeClass::Emergency),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(classify(&only_version, Some(&over)), ChangeClass::Emergency);
    }

    #[test]
    fn strict_lists_and_ignore() {
        let mut s = spec();
        s.drift = Some(DriftPolicy {
            strict: vec![StrictList::Software, StrictList::Disks, StrictList::Nics],
            ignore: vec![
                "software[name=tz*]".into(),
                "hardware.nics[name=eth1]".into(),
            ],
            classification: None,
        });
        let d = compare(&s, &observed());
        assert_eq!(paths(&d), ["hardware.disks[name=sdb]"]);
        assert_eq!(d[0].expected, None);
        s.drift.as_mut().unwrap().ignore = vec![
            "hardware.disks".into(),
            "hardware.nics".into(),
            "software".into(),
        ];
        assert!(compare(&s, &observed()).is_empty());
    }

    #[test]
    fn unknown_and_unobserved_facts_are_not_drift() {
        let mut o = observed();
        o.packages.clear();
        o.os = None;
        o.unknown.push(UnknownFact {
            fact: "disks".into(),
            reason: "x".into(),
        });
        o.disks.clear();
        assert!(compare(&spec(), &o).is_empty());
        let mut o = observed();
        o.unknown.push(UnknownFact {
            fact: "packages".into(),
            reason: "no dpkg".into(),
        });
        o.packages.retain(|p| p.name == "tzdata");
        assert!(compare(&spec(), &o).is_empty());
    }

    #[test]
    fn observed_values_by_path() {
        let mut o = observed();
        o.packages[1].version = "15.9".into();
        let mut s = spec();
        s.os.version = "11".into();
        for d in compare(&s, &o) {
            assert_eq!(observed_at(&d.path, &o), d.observed, "{}", d.path);
        }
        assert_eq!(
            observed_at("hardware.nics[name=eth0].mac", &o).as_deref(),
            Some("52:54:00:aa:00:01")
        );
        assert_eq!(
            observed_at("hardware.disks[name=sdb]", &o).as_deref(),
            Some("sdb")
        );
        assert_eq!(observed_at("software[name=nope]", &o), None);
        assert_eq!(observed_at("bogus.path", &o), None);
    }

    #[test]
    fn quantities_and_patterns() {
        assert_eq!(quantity_bytes("128Gi"), Some(128.0 * 1024f64.powi(3)));
        assert_eq!(quantity_bytes("1.5T"), Some(1.5e12));
        assert_eq!(quantity_bytes("512"), Some(512.0));
        assert_eq!(quantity_bytes("12Zi"), None);
        let _ = Quantity("1Gi".into());
        assert!(ignored(
            "software[name=tzdata].version",
            &["software[name=tz*]".into()]
        ));
        assert!(ignored("os.kernel", &["os.kernel".into()]));
        assert!(ignored("os.kernel", &["os".into()]));
        assert!(!ignored("os.kernelx", &["os.kernel".into()]));
        assert!(!ignored(
            "software[name=openssl]",
            &["software[name=tz*]".into()]
        ));
    }
}
