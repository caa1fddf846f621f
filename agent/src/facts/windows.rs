//! Facts of a Windows host through WMI (root\cimv2) and the registry (installed software, time
//! zone). Each class is queried once per collection; what cannot be read goes to `unknown` with
//! the reason, as on Linux.

use serde::de::DeserializeOwned;
use unyo_crds::server::{ObservedFacts, TimeSync};

use super::wmi::{self as rows, QUERIES};

/// The rows of `class`, by the query of [`QUERIES`].
fn query<T: DeserializeOwned>(con: &::wmi::WMIConnection, class: &str) -> Result<Vec<T>, String> {
    let q = QUERIES
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, q)| *q)
        .ok_or_else(|| format!("{class}: no query"))?;
    con.raw_query(q).map_err(|e| format!("{class}: {e}"))
}

const UNINSTALL: &str = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";

/// The Uninstall entries of the 64-bit and the 32-bit (WOW6432Node) views of HKLM.
fn uninstall_entries() -> Result<Vec<rows::UninstallEntry>, String> {
    use winreg::RegKey;
    use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_32KEY, KEY_WOW64_64KEY};
    let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
    let mut out = Vec::new();
    for (view, architecture) in [(KEY_WOW64_64KEY, None), (KEY_WOW64_32KEY, Some("x86"))] {
        let Ok(root) = hklm.open_subkey_with_flags(UNINSTALL, KEY_READ | view) else {
            continue;
        };
        for name in root.enum_keys().flatten() {
            let Ok(k) = root.open_subkey(&name) else {
                continue;
            };
            out.push(rows::UninstallEntry {
                display_name: k.get_value("DisplayName").ok(),
                display_version: k.get_value("DisplayVersion").ok(),
                system_component: k.get_value::<u32, _>("SystemComponent").ok(),
                parent_key_name: k.get_value("ParentKeyName").ok(),
                architecture: architecture.map(str::to_string),
            });
        }
    }
    Ok(out)
}

/// The Windows Time service's state, from `w32tm /query /status /verbose`.
fn w32tm_status() -> Result<TimeSync, String> {
    let out = std::process::Command::new("w32tm.exe")
        .args(["/query", "/status", "/verbose"])
        .output()
        .map_err(|e| format!("w32tm.exe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    super::w32tm::parse_status(&text)
}

/// The time zone: its IANA name where known, else the Windows name.
fn time_zone() -> Result<String, String> {
    let key = r"SYSTEM\CurrentControlSet\Control\TimeZoneInformation";
    let tz = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE)
        .open_subkey(key)
        .map_err(|e| format!("HKLM\\{key}: {e}"))?;
    let name: String = tz
        .get_value("TimeZoneKeyName")
        .map_err(|e| format!("HKLM\\{key}\\TimeZoneKeyName: {e}"))?;
    Ok(rows::iana_zone(&name).map(str::to_string).unwrap_or(name))
}

/// The rows of a query, or its error.
fn rows_of<T>(rows: &Result<Vec<T>, String>) -> Result<&[T], String> {
    rows.as_deref().map_err(Clone::clone)
}

/// Every fact WMI and the registry give; the others are unknown with the reason.
pub fn collect() -> ObservedFacts {
    let mut facts = ObservedFacts {
        agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        ..Default::default()
    };
    let mut unknown = super::Unknown::default();
    let con = match ::wmi::WMIConnection::new() {
        Ok(c) => c,
        Err(e) => {
            unknown.note("wmi", Err(format!("connecting to WMI root\\cimv2: {e}")));
            facts.unknown = unknown.0;
            return facts;
        }
    };
    // A failed query keeps WMI's own error for every fact read from it.
    let os: Result<Vec<rows::OperatingSystem>, String> = query(&con, "Win32_OperatingSystem");
    let cs: Result<Vec<rows::ComputerSystem>, String> = query(&con, "Win32_ComputerSystem");
    let bios: Result<Vec<rows::Bios>, String> = query(&con, "Win32_BIOS");
    let os_rows = os.as_deref().unwrap_or_default();
    unknown.note(
        "hostname",
        rows_of(&cs)
            .and_then(|c| rows::hostname(c, os_rows))
            .map(|h| facts.hostname = Some(h)),
    );
    unknown.note(
        "os",
        rows_of(&os).and_then(rows::os).map(|o| facts.os = Some(o)),
    );
    unknown.note(
        "bootTime",
        rows_of(&os)
            .and_then(rows::boot_time)
            .map(|t| facts.boot_time = Some(t)),
    );
    unknown.note(
        "memoryBytes",
        rows_of(&cs)
            .and_then(rows::memory_bytes)
            .map(|m| facts.memory_bytes = Some(m)),
    );
    unknown.note(
        "hardware",
        rows_of(&cs)
            .and_then(|c| rows::identity(c, bios.as_deref().unwrap_or_default()))
            .map(|h| facts.hardware = Some(h)),
    );
    unknown.note(
        "cpu",
        query(&con, "Win32_Processor")
            .and_then(|p| rows::cpu(&p))
            .map(|c| facts.cpu = Some(c)),
    );
    unknown.note(
        "patches",
        query(&con, "Win32_QuickFixEngineering").map(|r| facts.patches = rows::patches(&r)),
    );
    unknown.note(
        "services",
        query(&con, "Win32_Service").map(|r| facts.services = rows::services(&r)),
    );
    unknown.note(
        "nics",
        query(&con, "Win32_NetworkAdapterConfiguration").map(|r| facts.nics = rows::nics(&r)),
    );
    unknown.note(
        "disks",
        query(&con, "Win32_DiskDrive").map(|r| facts.disks = rows::disks(&r)),
    );
    unknown.note(
        "filesystems",
        query(&con, "Win32_LogicalDisk").map(|r| facts.filesystems = rows::filesystems(&r)),
    );
    unknown.note(
        "packages",
        uninstall_entries().map(|e| facts.packages = rows::software(&e)),
    );
    let mut sync = TimeSync::default();
    unknown.note("timeSync.synchronized", w32tm_status().map(|t| sync = t));
    unknown.note(
        "timeSync.timeZone",
        time_zone().map(|z| sync.time_zone = Some(z)),
    );
    facts.time_sync = Some(sync);
    unknown.note(
        "devices",
        query(&con, "Win32_PnPEntity").map(|r| facts.devices = Some(rows::devices(&r))),
    );
    facts.unknown = unknown.0;
    facts
}
