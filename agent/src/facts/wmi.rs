//! The WMI classes and registry entries the Windows agent reads, as rows, and the facts they make.
//! Platform-neutral so that the conversion is tested everywhere on recorded rows; the queries run
//! in `windows.rs`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;
use unyo_crds::server::{
    CpuLedger, ObservedDevice, ObservedDisk, ObservedFilesystem, ObservedHardware, ObservedNic,
    ObservedOs, ObservedPackage, ObservedPatch, ObservedService,
};

/// Each class with the query that reads it.
pub const QUERIES: [(&str, &str); 10] = [
    (
        "Win32_OperatingSystem",
        "SELECT Caption, Version, BuildNumber, OSArchitecture, LastBootUpTime, CSName FROM Win32_OperatingSystem",
    ),
    (
        "Win32_ComputerSystem",
        "SELECT Name, Manufacturer, Model, TotalPhysicalMemory FROM Win32_ComputerSystem",
    ),
    ("Win32_BIOS", "SELECT SerialNumber FROM Win32_BIOS"),
    (
        "Win32_Processor",
        "SELECT Name, NumberOfCores, NumberOfLogicalProcessors FROM Win32_Processor",
    ),
    (
        "Win32_QuickFixEngineering",
        "SELECT HotFixID, InstalledOn FROM Win32_QuickFixEngineering",
    ),
    ("Win32_Service", "SELECT Name, State FROM Win32_Service"),
    (
        "Win32_NetworkAdapterConfiguration",
        "SELECT Description, MACAddress, IPAddress, IPEnabled FROM Win32_NetworkAdapterConfiguration",
    ),
    (
        "Win32_DiskDrive",
        "SELECT Index, Model, Size FROM Win32_DiskDrive",
    ),
    (
        "Win32_LogicalDisk",
        "SELECT DeviceID, FileSystem, Size, FreeSpace, DriveType FROM Win32_LogicalDisk",
    ),
    (
        "Win32_PnPEntity",
        "SELECT DeviceID, Manufacturer, Name FROM Win32_PnPEntity",
    ),
];

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct OperatingSystem {
    pub caption: Option<String>,
    pub version: Option<String>,
    pub build_number: Option<String>,
    #[serde(rename = "OSArchitecture")]
    pub os_architecture: Option<String>,
    pub last_boot_up_time: Option<String>,
    #[serde(rename = "CSName")]
    pub cs_name: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ComputerSystem {
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub total_physical_memory: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Bios {
    pub serial_number: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Processor {
    pub name: Option<String>,
    pub number_of_cores: Option<u32>,
    pub number_of_logical_processors: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
pub struct QuickFixEngineering {
    #[serde(rename = "HotFixID")]
    pub hot_fix_id: Option<String>,
    #[serde(rename = "InstalledOn")]
    pub installed_on: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    pub name: Option<String>,
    pub state: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
pub struct NetworkAdapterConfiguration {
    #[serde(rename = "Description")]
    pub description: Option<String>,
    #[serde(rename = "MACAddress")]
    pub mac_address: Option<String>,
    #[serde(rename = "IPAddress", default)]
    pub ip_address: Option<Vec<String>>,
    #[serde(rename = "IPEnabled")]
    pub ip_enabled: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DiskDrive {
    pub index: Option<u32>,
    pub model: Option<String>,
    pub size: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct LogicalDisk {
    // Asked for by this name; WMI matches property names without regard to case (Wine's own
    // spelling is DeviceId).
    #[serde(rename = "DeviceID")]
    pub device_id: Option<String>,
    pub file_system: Option<String>,
    pub size: Option<u64>,
    pub free_space: Option<u64>,
    pub drive_type: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PnPEntity {
    #[serde(rename = "DeviceID")]
    pub device_id: Option<String>,
    pub manufacturer: Option<String>,
    pub name: Option<String>,
}

/// One subkey of the registry's `...\CurrentVersion\Uninstall` (what Programs and Features lists).
#[derive(Debug, Default, Clone)]
pub struct UninstallEntry {
    pub display_name: Option<String>,
    pub display_version: Option<String>,
    /// 1 for parts of Windows that Programs and Features hides.
    pub system_component: Option<u32>,
    /// Set on updates of another entry.
    pub parent_key_name: Option<String>,
    /// `x86` for the 32-bit view (WOW6432Node).
    pub architecture: Option<String>,
}

/// Installed software as Programs and Features lists it: named entries that are neither system
/// components nor updates, sorted, one per name and architecture.
pub fn software(entries: &[UninstallEntry]) -> Vec<ObservedPackage> {
    let mut out: Vec<ObservedPackage> = entries
        .iter()
        .filter(|e| e.system_component != Some(1) && e.parent_key_name.is_none())
        .filter_map(|e| {
            let name = e.display_name.as_deref()?.trim();
            (!name.is_empty()).then(|| ObservedPackage {
                name: name.to_string(),
                version: e.display_version.clone().unwrap_or_default(),
                architecture: e.architecture.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
    out.dedup_by(|a, b| a.name == b.name && a.architecture == b.architecture);
    out
}

/// The IANA name of a Windows time zone (the registry's TimeZoneKeyName), for the zones of
/// CLDR's windowsZones table this fleet may meet; None for the others.
pub fn iana_zone(windows: &str) -> Option<&'static str> {
    const ZONES: [(&str, &str); 12] = [
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("UTC", "Etc/UTC"),
        ("Greenwich Standard Time", "Atlantic/Reykjavik"),
        ("GMT Standard Time", "Europe/London"),
        ("Korea Standard Time", "Asia/Seoul"),
        ("China Standard Time", "Asia/Shanghai"),
        ("Taipei Standard Time", "Asia/Taipei"),
        ("Singapore Standard Time", "Asia/Singapore"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Eastern Standard Time", "America/New_York"),
        ("Central Standard Time", "America/Chicago"),
        ("Pacific Standard Time", "America/Los_Angeles"),
    ];
    ZONES
        .iter()
        .find(|(w, _)| *w == windows.trim())
        .map(|(_, iana)| *iana)
}

fn first<'a, T>(rows: &'a [T], class: &str) -> Result<&'a T, String> {
    rows.first().ok_or_else(|| format!("{class}: no instance"))
}

/// Caption, version, build and architecture; `id` is `windows`.
pub fn os(rows: &[OperatingSystem]) -> Result<ObservedOs, String> {
    let o = first(rows, "Win32_OperatingSystem")?;
    Ok(ObservedOs {
        name: o.caption.as_ref().map(|c| c.trim().to_string()),
        version: o.version.clone(),
        id: Some("windows".into()),
        build: o.build_number.clone(),
        kernel: o.version.clone(),
        architecture: o.os_architecture.as_deref().map(|a| match a {
            "64-bit" | "64 ビット" => "x86_64".to_string(),
            other => other.to_string(),
        }),
    })
}

/// The host name (Win32_ComputerSystem.Name, else the OS's CSName), lower case as DNS has it.
pub fn hostname(cs: &[ComputerSystem], os: &[OperatingSystem]) -> Result<String, String> {
    cs.first()
        .and_then(|c| c.name.clone())
        .or_else(|| os.first().and_then(|o| o.cs_name.clone()))
        .map(|n| n.to_ascii_lowercase())
        .ok_or_else(|| "Win32_ComputerSystem: no Name".into())
}

/// Maker and model (Win32_ComputerSystem), serial number (Win32_BIOS).
pub fn identity(cs: &[ComputerSystem], bios: &[Bios]) -> Result<ObservedHardware, String> {
    let c = first(cs, "Win32_ComputerSystem")?;
    let keep = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != "0")
            .map(str::to_string)
    };
    Ok(ObservedHardware {
        vendor: keep(&c.manufacturer),
        model: keep(&c.model),
        serial_number: bios.first().and_then(|b| keep(&b.serial_number)),
    })
}

/// Sockets (one Win32_Processor each), cores and threads summed, the first model.
pub fn cpu(rows: &[Processor]) -> Result<CpuLedger, String> {
    let p = first(rows, "Win32_Processor")?;
    let sum = |f: fn(&Processor) -> Option<u32>| {
        rows.iter()
            .try_fold(0u32, |acc, r| f(r).and_then(|n| acc.checked_add(n)))
    };
    Ok(CpuLedger {
        model: p.name.as_ref().map(|n| n.trim().to_string()),
        sockets: u32::try_from(rows.len()).ok(),
        cores: sum(|r| r.number_of_cores),
        threads: sum(|r| r.number_of_logical_processors),
    })
}

pub fn memory_bytes(cs: &[ComputerSystem]) -> Result<u64, String> {
    first(cs, "Win32_ComputerSystem")?
        .total_physical_memory
        .ok_or_else(|| "Win32_ComputerSystem: no TotalPhysicalMemory".into())
}

/// `InstalledOn` as `YYYY-MM-DD`: Windows writes `M/D/YYYY` (Wine `D/M/YYYY`, taken the same
/// way where the month would exceed 12) or a hexadecimal FILETIME; None when unreadable.
fn installed_on(s: &str) -> Option<String> {
    let parts: Vec<u32> = s
        .split('/')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, year] = parts.as_slice() else {
        return None;
    };
    let (month, day) = if *a > 12 { (*b, *a) } else { (*a, *b) };
    let date = jiff::civil::Date::new(
        i16::try_from(*year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    Some(date.to_string())
}

/// Installed hotfixes by id, sorted and without repeats (a hotfix may be listed per package).
pub fn patches(rows: &[QuickFixEngineering]) -> Vec<ObservedPatch> {
    let mut out: Vec<ObservedPatch> = rows
        .iter()
        .filter_map(|r| {
            let id = r.hot_fix_id.as_deref()?.trim();
            (!id.is_empty() && id != "File 1").then(|| ObservedPatch {
                id: id.to_string(),
                installed_on: r.installed_on.as_deref().and_then(installed_on),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

pub fn services(rows: &[Service]) -> Vec<ObservedService> {
    let mut out: Vec<ObservedService> = rows
        .iter()
        .filter_map(|r| {
            Some(ObservedService {
                name: r.name.clone()?,
                state: match r.state.as_deref() {
                    Some("Running") => "active".into(),
                    Some("Stopped") => "inactive".into(),
                    Some(other) => other.to_ascii_lowercase(),
                    None => "unknown".into(),
                },
                sub_state: r.state.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Adapters with a MAC address; link-local scope suffixes (`%4`) dropped.
pub fn nics(rows: &[NetworkAdapterConfiguration]) -> Vec<ObservedNic> {
    let mut out: Vec<ObservedNic> = rows
        .iter()
        .filter(|r| r.ip_enabled == Some(true))
        .filter_map(|r| {
            let mac = r.mac_address.as_ref()?;
            Some(ObservedNic {
                name: r.description.clone().unwrap_or_else(|| mac.clone()),
                mac: Some(mac.to_ascii_lowercase().replace('-', ":")),
                addresses: r
                    .ip_address
                    .iter()
                    .flatten()
                    .map(|a| a.split('%').next().unwrap_or(a).to_string())
                    .collect(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Physical disks as `disk<Index>` (the number Disk Management shows).
pub fn disks(rows: &[DiskDrive]) -> Vec<ObservedDisk> {
    let mut out: Vec<ObservedDisk> = rows
        .iter()
        .filter_map(|r| {
            Some(ObservedDisk {
                name: format!("disk{}", r.index?),
                size_bytes: r.size,
                model: r.model.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Local fixed volumes (DriveType 3) with size and coarse usage.
pub fn filesystems(rows: &[LogicalDisk]) -> Vec<ObservedFilesystem> {
    let mut out: Vec<ObservedFilesystem> = rows
        .iter()
        .filter(|r| r.drive_type == Some(3))
        .filter_map(|r| {
            let used = match (r.size, r.free_space) {
                (Some(size), Some(free)) => {
                    Some(super::usage::coarse_used(size.saturating_sub(free), size))
                }
                _ => None,
            };
            Some(ObservedFilesystem {
                mount_point: r.device_id.clone()?,
                device: r.device_id.clone(),
                fs_type: r.file_system.clone(),
                size_bytes: r.size,
                used_bytes: used,
            })
        })
        .collect();
    out.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    out
}

/// The USB devices among the Plug and Play entities (device ids `USB\…`), as on Linux without
/// hubs and host controllers: `usb:<device id>`, maker and name.
pub fn devices(rows: &[PnPEntity]) -> Vec<ObservedDevice> {
    let mut out: Vec<ObservedDevice> = rows
        .iter()
        .filter_map(|r| {
            let id = r.device_id.as_deref()?;
            let usb = id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("USB\\"));
            let name = r.name.clone().unwrap_or_default();
            let lower = name.to_ascii_lowercase();
            let infrastructure = lower.contains("hub") || lower.contains("host controller");
            (usb && !infrastructure).then(|| ObservedDevice {
                name: format!("usb:{id}"),
                vendor: r.manufacturer.clone().filter(|m| !m.starts_with('(')),
                model: Some(name).filter(|n| !n.is_empty()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A CIM datetime `yyyymmddHHMMSS.ffffff±UUU` (offset in minutes), as WMI gives times.
pub fn cim_datetime(raw: &str) -> Option<jiff::Timestamp> {
    let (digits, offset) = raw.split_at_checked(21)?;
    let stamp = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S%.f", digits).ok()?;
    let minutes: i32 = offset.parse().ok()?;
    let zone = jiff::tz::Offset::from_seconds(minutes.checked_mul(60)?).ok()?;
    zone.to_timestamp(stamp).ok()
}

/// `LastBootUpTime`, a CIM datetime.
pub fn boot_time(rows: &[OperatingSystem]) -> Result<Time, String> {
    let raw = first(rows, "Win32_OperatingSystem")?
        .last_boot_up_time
        .clone()
        .ok_or("Win32_OperatingSystem: no LastBootUpTime")?;
    cim_datetime(&raw)
        .map(Time)
        .ok_or_else(|| format!("Win32_OperatingSystem.LastBootUpTime {raw:?}: not a CIM datetime"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn recorded() -> Value {
        serde_json::from_str(include_str!("fixtures/wmi-wine-8.0.json")).unwrap()
    }

    fn rows<T: serde::de::DeserializeOwned>(class: &str) -> Vec<T> {
        serde_json::from_value(recorded()[class].clone()).unwrap()
    }

    #[test]
    fn usb_devices_without_hubs_and_none_under_wine() {
        // Wine lists no USB device (only its own buses): an empty list, not unknown.
        assert!(devices(&rows("Win32_PnPEntity")).is_empty());
        assert_eq!(rows::<PnPEntity>("Win32_PnPEntity").len(), 6);
        let entity = |id: &str, maker: &str, name: &str| PnPEntity {
            device_id: Some(id.into()),
            manufacturer: Some(maker.into()),
            name: Some(name.into()),
        };
        let listed = devices(&[
            entity(
                r"USB\ROOT_HUB30\4&1",
                "(Standard USB HUBs)",
                "USB Root Hub (USB 3.0)",
            ),
            entity(r"USB\VID_0529&PID_0001\5&2", "SafeNet", "Sentinel HL Key"),
            entity(
                r"PCI\VEN_8086&DEV_A36D\3&1",
                "Intel",
                "USB 3.1 eXtensible Host Controller",
            ),
            entity(
                r"usb\VID_04B4&PID_6560\5&3",
                "(Standard USB HUBs)",
                "Generic USB Hub",
            ),
            entity(
                r"USB\VID_0BDA&PID_0129\5&4",
                "(Standard system devices)",
                "USB Card Reader",
            ),
        ]);
        let seen: Vec<(&str, Option<&str>, Option<&str>)> = listed
            .iter()
            .map(|d| (d.name.as_str(), d.vendor.as_deref(), d.model.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    r"usb:USB\VID_0529&PID_0001\5&2",
                    Some("SafeNet"),
                    Some("Sentinel HL Key")
                ),
                (
                    r"usb:USB\VID_0BDA&PID_0129\5&4",
                    None,
                    Some("USB Card Reader")
                ),
            ]
        );
    }

    #[test]
    fn the_queries_name_every_recorded_class() {
        let r = recorded();
        for (class, query) in QUERIES {
            assert!(query.ends_with(&format!("FROM {class}")), "{query}");
            assert!(r.get(class).is_some(), "no recording of {class}");
        }
    }

    #[test]
    fn facts_from_wine_rows() {
        let o = os(&rows("Win32_OperatingSystem")).unwrap();
        assert_eq!(o.name.as_deref(), Some("Microsoft Windows 7 Professional"));
        assert_eq!(
            (o.version.as_deref(), o.build.as_deref()),
            (Some("6.1.7601"), Some("7601"))
        );
        assert_eq!(o.architecture.as_deref(), Some("x86_64"));
        let cs: Vec<ComputerSystem> = rows("Win32_ComputerSystem");
        assert_eq!(hostname(&cs, &[]).unwrap(), "vm");
        assert_eq!(memory_bytes(&cs).unwrap(), 25_276_506_112);
        let id = identity(&cs, &rows("Win32_BIOS")).unwrap();
        assert_eq!(id.vendor.as_deref(), Some("The Wine Project"));
        assert_eq!(id.serial_number, None, "Wine's serial 0 is no serial");
        let c = cpu(&rows("Win32_Processor")).unwrap();
        assert_eq!((c.sockets, c.cores, c.threads), (Some(1), Some(2), Some(2)));
        let p = patches(&rows("Win32_QuickFixEngineering"));
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].id.as_str(), p[0].installed_on.as_deref()),
            ("KB1234567", Some("2022-02-22"))
        );
        let n = nics(&rows("Win32_NetworkAdapterConfiguration"));
        assert_eq!(n[0].name, "eth0");
        assert_eq!(
            n[0].addresses,
            ["fd00::2", "fe80::fc:ff:fe00:1", "192.0.2.2"]
        );
        let s = services(&rows("Win32_Service"));
        assert!(s.iter().any(|s| s.name == "RpcSs" && s.state == "active"));
        let d = disks(&rows("Win32_DiskDrive"));
        assert_eq!(
            (d[0].name.as_str(), d[0].size_bytes),
            ("disk0", Some(82_252_800_000))
        );
        let f = filesystems(&rows("Win32_LogicalDisk"));
        assert_eq!(f[0].mount_point, "C:");
        assert!(f[0].used_bytes.unwrap() <= 82_252_800_000 - 1_617_391_616);
        let boot = boot_time(&rows("Win32_OperatingSystem")).unwrap();
        assert_eq!(boot.0.to_string(), "2026-11-30T13:52:31.004Z");
    }

    #[test]
    fn software_as_programs_and_features_lists_it_and_zones_by_their_iana_name() {
        let e = |name: &str, version: &str| UninstallEntry {
            display_name: Some(name.into()),
            display_version: Some(version.into()),
            ..Default::default()
        };
        let entries = [
            e("Active Directory Domain Services", "10.0.17763"),
            UninstallEntry {
                system_component: Some(1),
                ..e("Microsoft Visual C++ 2019 X64 Minimum Runtime", "14.29")
            },
            UninstallEntry {
                parent_key_name: Some("OfficeProfessional".into()),
                ..e("Update for Office", "1")
            },
            UninstallEntry {
                architecture: Some("x86".into()),
                ..e("7-Zip", "23.01")
            },
            e("7-Zip", "23.01"),
            UninstallEntry::default(),
        ];
        let s = software(&entries);
        let names: Vec<_> = s
            .iter()
            .map(|p| (p.name.as_str(), p.architecture.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("7-Zip", None),
                ("7-Zip", Some("x86")),
                ("Active Directory Domain Services", None)
            ]
        );
        assert_eq!(iana_zone("Tokyo Standard Time"), Some("Asia/Tokyo"));
        assert_eq!(iana_zone("Mars Standard Time"), None);
    }

    #[test]
    fn odd_values_are_refused_not_panicked_on() {
        assert_eq!(installed_on("13/1/2024").as_deref(), Some("2024-01-13"));
        assert_eq!(installed_on("1/13/2024").as_deref(), Some("2024-01-13"));
        assert_eq!(installed_on("01d8c1a2b3c4d5e6"), None);
        assert_eq!(installed_on("99/99/99999999"), None);
        let bad = |t: &str| OperatingSystem {
            last_boot_up_time: Some(t.into()),
            ..Default::default()
        };
        for t in [
            "",
            "2026",
            "20261130135231.004000+99999999999",
            "x0261130135231.004000+000",
        ] {
            assert!(boot_time(&[bad(t)]).is_err(), "{t}");
        }
        let huge = Processor {
            number_of_cores: Some(u32::MAX),
            ..Default::default()
        };
        let big = Processor {
            number_of_cores: Some(1),
            ..Default::default()
        };
        assert_eq!(
            cpu(&[huge, big]).unwrap().cores,
            None,
            "an overflow is no count"
        );
        assert!(os(&[]).is_err());
    }
}
