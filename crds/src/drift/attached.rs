//! Drift of what is installed on or attached to a host beyond its packages: the machine's
//! identity (maker, model, serial number), security patches and connected devices.

use std::cmp::Ordering;

use super::{Comparer, DriftKind};
use crate::server::{ConnectedDevice, ObservedFacts, ServerSpec, StrictList};

/// `hardware.vendor`, `hardware.model`, `hardware.serialNumber`, where declared and observed.
pub(super) fn identity(c: &mut Comparer<'_>, spec: &ServerSpec, observed: &ObservedFacts) {
    let (Some(l), Some(o)) = (&spec.hardware, &observed.hardware) else {
        return;
    };
    if !c.known("hardware") {
        return;
    }
    let k = DriftKind::Hardware;
    // Makers and models are written by people and by firmware in any letter case.
    for (path, l, o) in [
        ("hardware.vendor", &l.vendor, &o.vendor),
        ("hardware.model", &l.model, &o.model),
    ] {
        if o.is_some() && !same(l.as_deref(), o.as_deref()) {
            c.push(path.into(), l.clone(), o.clone(), k);
        }
    }
    c.value(
        "hardware.serialNumber",
        l.serial_number.clone(),
        o.serial_number.clone(),
        k,
    );
}

/// Whether the host lists hotfixes by id (Windows does; Debian has packages instead).
fn lists_hotfixes(o: &ObservedFacts) -> bool {
    let windows =
        o.os.as_ref()
            .and_then(|os| os.id.as_deref())
            .is_some_and(|id| id.eq_ignore_ascii_case("windows"));
    windows || !o.patches.is_empty()
}

/// `patches[id=…]`: a declared patch the host lacks — a hotfix id not in its hotfix list, or a
/// `package=version` whose package is missing or older — and, with `strict: [patches]`, a hotfix
/// installed that the ledger does not declare.
pub(super) fn patches(c: &mut Comparer<'_>, spec: &ServerSpec, observed: &ObservedFacts) {
    let hotfixes = lists_hotfixes(observed) && c.known("patches");
    let packages = c.known("packages") && observed.has_packages();
    let installed = observed.installed();
    for p in &spec.patches {
        let path = format!("patches[id={}]", p.id);
        match p.id.split_once('=') {
            Some((name, version)) if packages => {
                let have = installed.iter().find(|i| i.name == name);
                let older = have.is_none_or(|i| {
                    crate::patching::version_cmp(&i.version, version) == Ordering::Less
                });
                if older {
                    let observed = have.map(|i| format!("{name}={}", i.version));
                    c.push(
                        path,
                        Some(p.id.clone()),
                        observed,
                        DriftKind::SoftwareAddedRemoved,
                    );
                }
            }
            None if hotfixes && observed.patch(&p.id).is_none() => {
                c.push(
                    path,
                    Some(p.id.clone()),
                    None,
                    DriftKind::SoftwareAddedRemoved,
                );
            }
            _ => {}
        }
    }
    if hotfixes && c.strict(StrictList::Patches) {
        for o in &observed.patches {
            if !spec
                .patches
                .iter()
                .any(|p| p.id.eq_ignore_ascii_case(&o.id))
            {
                let path = format!("patches[id={}]", o.id);
                c.push(
                    path,
                    None,
                    Some(o.id.clone()),
                    DriftKind::SoftwareAddedRemoved,
                );
            }
        }
    }
}

/// What the host has for patch `id`, as [`patches`] reports it.
pub(super) fn observed_patch(id: &str, o: &ObservedFacts) -> Option<String> {
    match id.split_once('=') {
        Some((name, _)) => o
            .installed()
            .iter()
            .find(|p| p.name == name)
            .map(|p| format!("{name}={}", p.version)),
        None => o.patch(id).map(|p| p.id.clone()),
    }
}

fn same(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// Whether a declared device says what to look for: a maker or a model.
fn checkable(d: &ConnectedDevice) -> bool {
    d.vendor.is_some() || d.model.is_some()
}

/// Whether an observed device is the declared one: the same maker and model (those declared;
/// letter case and surrounding blanks aside).
fn matches(d: &ConnectedDevice, o: &crate::server::ObservedDevice) -> bool {
    checkable(d)
        && same(d.vendor.as_deref(), o.vendor.as_deref())
        && same(d.model.as_deref(), o.model.as_deref())
}

/// A device as `maker model`.
pub(super) fn label(vendor: Option<&str>, model: Option<&str>) -> String {
    [vendor, model]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `devices[name=…]`: a declared device with a maker or model that no attached device matches,
/// and, with `strict: [devices]`, an attached device the ledger does not declare. Only when the
/// agent lists devices (a device it cannot see, e.g. one on the LAN, is declared without maker
/// and model, or ignored with `drift.ignore`).
pub(super) fn devices(c: &mut Comparer<'_>, spec: &ServerSpec, observed: &ObservedFacts) {
    let Some(attached) = observed.devices.as_deref().filter(|_| c.known("devices")) else {
        return;
    };
    let k = DriftKind::Hardware;
    for d in &spec.devices {
        if checkable(d) && !attached.iter().any(|o| matches(d, o)) {
            let expected = label(d.vendor.as_deref(), d.model.as_deref());
            c.push(format!("devices[name={}]", d.name), Some(expected), None, k);
        }
    }
    if c.strict(StrictList::Devices) {
        for o in attached {
            if !spec.devices.iter().any(|d| matches(d, o)) {
                let seen = label(o.vendor.as_deref(), o.model.as_deref());
                c.push(format!("devices[name={}]", o.name), None, Some(seen), k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::drift::compare;
    use crate::server::{ObservedFacts, ServerSpec};
    use serde_json::json;

    fn spec(extra: serde_json::Value) -> ServerSpec {
        let mut v = json!({"hostname": "ad01", "role": "AD",
            "os": {"name": "Windows Server 2019", "version": "1809"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn facts(extra: serde_json::Value) -> ObservedFacts {
        let mut v = json!({"hostname": "ad01", "os": {"name": "Windows Server 2019", "version": "1809", "id": "windows"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn paths(s: &ServerSpec, o: &ObservedFacts) -> Vec<(String, Option<String>, Option<String>)> {
        compare(s, o)
            .into_iter()
            .map(|d| (d.path, d.expected, d.observed))
            .collect()
    }

    #[test]
    fn a_declared_hotfix_the_host_lacks_is_drift_and_strict_reports_extra_ones() {
        let s = spec(json!({"patches": [{"id": "KB5044277"}, {"id": "KB5043050"}]}));
        let o = facts(
            json!({"patches": [{"id": "kb5044277"}, {"id": "KB5041578", "installedOn": "2024-09-11"}]}),
        );
        assert_eq!(
            paths(&s, &o),
            [(
                "patches[id=KB5043050]".into(),
                Some("KB5043050".into()),
                None
            )]
        );
        let mut strict = s.clone();
        strict.drift = serde_json::from_value(json!({"strict": ["patches"]})).unwrap();
        let p = paths(&strict, &o);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0],
            (
                "patches[id=KB5041578]".into(),
                None,
                Some("KB5041578".into())
            )
        );
        assert_eq!(
            crate::drift::observed_at("patches[id=KB5044277]", &o).as_deref(),
            Some("kb5044277")
        );
        // Hotfixes unreadable on the host: nothing judged.
        let mut unread = o.clone();
        unread.unknown =
            serde_json::from_value(json!([{"fact": "patches", "reason": "WMI"}])).unwrap();
        assert!(paths(&strict, &unread).is_empty());
    }

    #[test]
    fn a_package_patch_needs_that_version_or_a_later_one() {
        let s = spec(
            json!({"patches": [{"id": "openssl=3.0.15-1~deb12u1"}, {"id": "KB1"}],
            "os": {"name": "Debian GNU/Linux", "version": "12"}}),
        );
        let linux = |v: &str| {
            serde_json::from_value::<ObservedFacts>(json!({"hostname": "ad01",
                "os": {"name": "Debian GNU/Linux", "version": "12", "id": "debian"},
                "packages": [{"name": "openssl", "version": v}]}))
            .unwrap()
        };
        // A hotfix id on a host without a hotfix list is not judged.
        assert!(paths(&s, &linux("3.0.15-1~deb12u1")).is_empty());
        assert!(paths(&s, &linux("3.0.16-1~deb12u1")).is_empty());
        assert_eq!(
            paths(&s, &linux("3.0.14-1~deb12u1")),
            [(
                "patches[id=openssl=3.0.15-1~deb12u1]".into(),
                Some("openssl=3.0.15-1~deb12u1".into()),
                Some("openssl=3.0.14-1~deb12u1".into())
            )]
        );
    }

    #[test]
    fn machine_identity_and_devices() {
        let s = spec(json!({
        "hardware": {"vendor": "Fujitsu", "model": "PRIMERGY RX2540 M5", "serialNumber": "MA1234"},
        "devices": [
            {"name": "ups", "kind": "ups", "vendor": "APC", "model": "Smart-UPS 1500"},
            {"name": "lan-printer", "kind": "printer"}
        ]}));
        let o = facts(json!({
            "hardware": {"vendor": "FUJITSU", "model": "PRIMERGY RX2540 M5", "serialNumber": "MA9999"},
            "devices": [{"name": "usb:1-1", "vendor": "apc ", "model": "smart-ups 1500"},
                        {"name": "usb:1-2", "vendor": "SanDisk", "model": "Cruzer"}]}));
        // The maker in another letter case is the same maker; another serial number is not.
        assert_eq!(
            paths(&s, &o),
            [(
                "hardware.serialNumber".into(),
                Some("MA1234".into()),
                Some("MA9999".into())
            )]
        );
        let mut strict = s.clone();
        strict.drift = serde_json::from_value(json!({"strict": ["devices"]})).unwrap();
        let p = paths(&strict, &o);
        assert!(
            p.contains(&(
                "devices[name=usb:1-2]".into(),
                None,
                Some("SanDisk Cruzer".into())
            )),
            "{p:?}"
        );
        assert_eq!(
            crate::drift::observed_at("devices[name=usb:1-2]", &o).as_deref(),
            Some("SanDisk Cruzer")
        );
        assert_eq!(
            crate::drift::observed_at("hardware.serialNumber", &o).as_deref(),
            Some("MA9999")
        );
        let mut gone = o.clone();
        gone.devices.as_mut().unwrap().remove(0);
        assert!(paths(&s, &gone).iter().any(|d| d.0 == "devices[name=ups]" && d.1.as_deref() == Some("APC Smart-UPS 1500")));
    }
}
