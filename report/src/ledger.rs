//! 構成管理台帳: the configuration ledger of a namespace as tables (one per sheet): servers with
//! the columns of R1, then software, patches, disks, NICs and devices; every row carries the
//! server's current drift on that row's paths.

use unyo_crds::server::Server;

use crate::Lang;
use crate::doc::{Cell, Document, Section};

/// The drift entries of a server whose path starts with `prefix`, as `path: expected → observed`.
fn drift(s: &Server, prefix: &str) -> String {
    let entries = s
        .status
        .iter()
        .flat_map(|st| &st.drift)
        .filter(|d| d.path.starts_with(prefix));
    let parts: Vec<String> = entries
        .map(|d| {
            format!(
                "{}: {} → {}",
                d.path,
                d.expected.as_deref().unwrap_or("-"),
                d.observed.as_deref().unwrap_or("-")
            )
        })
        .collect();
    parts.join("; ")
}

fn name(s: &Server) -> String {
    s.metadata.name.clone().unwrap_or_default()
}

/// The ledger as a document: one section (one sheet) per table.
pub fn document(namespace: &str, servers: &[Server], t: Lang) -> Document {
    let mut servers: Vec<&Server> = servers.iter().collect();
    servers.sort_by_key(|s| name(s));
    Document {
        title: t.t("ledger").to_string(),
        subtitle: format!("{} {}", t.t("namespace"), namespace),
        lang: t,
        sections: vec![
            server_sheet(&servers, t),
            software_sheet(&servers, t),
            patch_sheet(&servers, t),
            disk_sheet(&servers, t),
            nic_sheet(&servers, t),
            device_sheet(&servers, t),
        ],
    }
}

fn sheet(title: &str, columns: &[&str], rows: Vec<Vec<Cell>>) -> Section {
    let mut s = Section::new(title);
    s.table(title, columns, rows);
    s
}

fn server_sheet(servers: &[&Server], t: Lang) -> Section {
    let rows = servers
        .iter()
        .map(|s| {
            let sp = &s.spec;
            let hw = sp.hardware.as_ref();
            let cpu = hw.and_then(|h| h.cpu.as_ref());
            let addresses: Vec<String> = hw
                .iter()
                .flat_map(|h| &h.nics)
                .flat_map(|n| n.addresses.iter().cloned())
                .collect();
            let macs: Vec<String> = hw
                .iter()
                .flat_map(|h| &h.nics)
                .filter_map(|n| n.mac.clone())
                .collect();
            vec![
                name(s).into(),
                sp.hostname.clone().into(),
                format!("{:?}", sp.role).into(),
                format!("{:?}", sp.environment).into(),
                sp.location.clone().into(),
                sp.os.name.clone().into(),
                sp.os.version.clone().into(),
                sp.os.build.clone().into(),
                addresses.join(", ").into(),
                macs.join(", ").into(),
                cpu.and_then(|c| c.model.clone()).into(),
                cpu.and_then(|c| c.cores).map(|c| c.to_string()).into(),
                hw.and_then(|h| h.memory.as_ref())
                    .map(|q| q.0.clone())
                    .into(),
                hw.and_then(|h| h.vendor.clone()).into(),
                hw.and_then(|h| h.model.clone()).into(),
                hw.and_then(|h| h.serial_number.clone()).into(),
                drift(s, "").into(),
            ]
        })
        .collect();
    let cols = [
        t.t("server"),
        t.t("hostname"),
        t.t("role"),
        t.t("environment"),
        t.t("location"),
        t.t("os"),
        t.t("version"),
        t.t("build"),
        t.t("address"),
        t.t("mac"),
        t.t("cpu"),
        t.t("cpu_cores"),
        t.t("memory"),
        t.t("vendor"),
        t.t("model"),
        t.t("serial"),
        t.t("drift"),
    ];
    sheet(t.t("servers"), &cols, rows)
}

fn software_sheet(servers: &[&Server], t: Lang) -> Section {
    let mut rows = Vec::new();
    for s in servers {
        for e in &s.spec.software {
            let d = drift(s, &format!("software[name={}]", e.name));
            rows.push(vec![
                name(s).into(),
                e.name.clone().into(),
                e.version.clone().into(),
                e.vendor.clone().into(),
                d.into(),
            ]);
        }
    }
    sheet(
        t.t("software"),
        &[
            t.t("server"),
            t.t("name"),
            t.t("version"),
            t.t("vendor"),
            t.t("drift"),
        ],
        rows,
    )
}

fn patch_sheet(servers: &[&Server], t: Lang) -> Section {
    let mut rows = Vec::new();
    for s in servers {
        for p in &s.spec.patches {
            let d = drift(s, &format!("patches[id={}]", p.id));
            rows.push(vec![
                name(s).into(),
                p.id.clone().into(),
                p.installed_on.clone().into(),
                p.description.clone().into(),
                d.into(),
            ]);
        }
    }
    sheet(
        t.t("patches"),
        &[
            t.t("server"),
            t.t("id"),
            t.t("installed_on"),
            t.t("message"),
            t.t("drift"),
        ],
        rows,
    )
}

fn disk_sheet(servers: &[&Server], t: Lang) -> Section {
    let mut rows = Vec::new();
    for s in servers {
        for d in s.spec.hardware.iter().flat_map(|h| &h.disks) {
            let dr = drift(s, &format!("hardware.disks[name={}]", d.name));
            rows.push(vec![
                name(s).into(),
                d.name.clone().into(),
                format!("{:?}", d.kind).into(),
                d.size.as_ref().map(|q| q.0.clone()).into(),
                d.model.clone().into(),
                d.mount_point.clone().into(),
                dr.into(),
            ]);
        }
    }
    sheet(
        t.t("disks"),
        &[
            t.t("server"),
            t.t("name"),
            t.t("kind"),
            t.t("size"),
            t.t("model"),
            t.t("mount_point"),
            t.t("drift"),
        ],
        rows,
    )
}

fn nic_sheet(servers: &[&Server], t: Lang) -> Section {
    let mut rows = Vec::new();
    for s in servers {
        for n in s.spec.hardware.iter().flat_map(|h| &h.nics) {
            let d = drift(s, &format!("hardware.nics[name={}]", n.name));
            rows.push(vec![
                name(s).into(),
                n.name.clone().into(),
                n.mac.clone().into(),
                n.addresses.join(", ").into(),
                d.into(),
            ]);
        }
    }
    sheet(
        t.t("nics"),
        &[
            t.t("server"),
            t.t("name"),
            t.t("mac"),
            t.t("address"),
            t.t("drift"),
        ],
        rows,
    )
}

fn device_sheet(servers: &[&Server], t: Lang) -> Section {
    let mut rows = Vec::new();
    for s in servers {
        for d in &s.spec.devices {
            let dr = drift(s, &format!("devices[name={}]", d.name));
            rows.push(vec![
                name(s).into(),
                d.name.clone().into(),
                d.kind.clone().into(),
                d.vendor.clone().into(),
                d.model.clone().into(),
                d.connection.clone().into(),
                dr.into(),
            ]);
        }
    }
    sheet(
        t.t("devices"),
        &[
            t.t("server"),
            t.t("name"),
            t.t("kind"),
            t.t("vendor"),
            t.t("model"),
            t.t("device"),
            t.t("drift"),
        ],
        rows,
    )
}
