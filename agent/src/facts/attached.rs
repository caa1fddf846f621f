//! The machine's identity (maker, model, serial number from DMI) and the devices attached to it
//! (USB devices but hubs), from sysfs beneath the root.

use unyo_crds::server::{ObservedDevice, ObservedHardware};

use super::Collector;

/// What firmware writes where a value was never set; reported as no value.
const PLACEHOLDERS: &[&str] = &[
    "to be filled by o.e.m.",
    "default string",
    "system serial number",
    "system product name",
    "system manufacturer",
    "not specified",
    "none",
    "0",
];

fn meaningful(value: String) -> Option<String> {
    let v = value.trim();
    (!v.is_empty() && !PLACEHOLDERS.contains(&v.to_ascii_lowercase().as_str()))
        .then(|| v.to_string())
}

/// Maker, model and serial number from `/sys/class/dmi/id` (the serial is readable by root only).
pub fn identity(c: &Collector) -> Result<ObservedHardware, String> {
    let dmi = "/sys/class/dmi/id";
    if !c.path(dmi).is_dir() {
        return Err(format!(
            "{dmi}: no DMI table (a virtual machine or container may have none)"
        ));
    }
    let field = |name: &str| c.read(&format!("{dmi}/{name}")).ok().and_then(meaningful);
    Ok(ObservedHardware {
        vendor: field("sys_vendor"),
        model: field("product_name"),
        serial_number: field("product_serial"),
    })
}

/// USB devices from `/sys/bus/usb/devices`: each device (not its interfaces, the root hubs or
/// other hubs) with its manufacturer and product strings, or its vendor and product ids.
pub fn devices(c: &Collector) -> Result<Vec<ObservedDevice>, String> {
    let dir = "/sys/bus/usb/devices";
    let entries = std::fs::read_dir(c.path(dir)).map_err(|e| format!("{dir}: {e}"))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `usb1` is a root hub, `1-1:1.0` an interface of device `1-1`.
        if !name.contains('-') || name.contains(':') {
            continue;
        }
        let attr = |a: &str| {
            c.read(&format!("{dir}/{name}/{a}"))
                .ok()
                .and_then(meaningful)
        };
        if attr("bDeviceClass").as_deref() == Some("09") {
            continue;
        }
        out.push(ObservedDevice {
            vendor: attr("manufacturer").or_else(|| attr("idVendor")),
            model: attr("product").or_else(|| attr("idProduct")),
            name: format!("usb:{name}"),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &std::path::Path, path: &str, text: &str) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn dmi_identity_without_placeholders_and_usb_devices_without_hubs() {
        let tmp = std::env::temp_dir().join(format!("unyo-attached-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        write(&tmp, "sys/class/dmi/id/sys_vendor", "FUJITSU\n");
        write(
            &tmp,
            "sys/class/dmi/id/product_name",
            "PRIMERGY RX2540 M5\n",
        );
        write(
            &tmp,
            "sys/class/dmi/id/product_serial",
            "To Be Filled By O.E.M.\n",
        );
        let usb = "sys/bus/usb/devices";
        write(&tmp, &format!("{usb}/usb1/bDeviceClass"), "09\n");
        write(&tmp, &format!("{usb}/1-1/bDeviceClass"), "09\n");
        write(&tmp, &format!("{usb}/1-1.2/bDeviceClass"), "00\n");
        write(
            &tmp,
            &format!("{usb}/1-1.2/manufacturer"),
            "American Power Conversion\n",
        );
        write(
            &tmp,
            &format!("{usb}/1-1.2/product"),
            "Smart-UPS 1500 FW:UPS 15.0\n",
        );
        write(&tmp, &format!("{usb}/1-1.2:1.0/bInterfaceClass"), "03\n");
        write(&tmp, &format!("{usb}/2-3/idVendor"), "0781\n");
        write(&tmp, &format!("{usb}/2-3/idProduct"), "5567\n");
        let c = Collector::new(&tmp);
        let id = identity(&c).unwrap();
        assert_eq!(id.vendor.as_deref(), Some("FUJITSU"));
        assert_eq!(id.model.as_deref(), Some("PRIMERGY RX2540 M5"));
        assert_eq!(id.serial_number, None);
        let d = devices(&c).unwrap();
        let seen: Vec<_> = d
            .iter()
            .map(|d| (d.name.as_str(), d.vendor.as_deref(), d.model.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "usb:1-1.2",
                    Some("American Power Conversion"),
                    Some("Smart-UPS 1500 FW:UPS 15.0")
                ),
                ("usb:2-3", Some("0781"), Some("5567")),
            ]
        );
        std::fs::remove_dir_all(&tmp).unwrap();
        let none = Collector::new(&tmp);
        assert!(identity(&none).unwrap_err().contains("no DMI"));
        assert!(
            devices(&none)
                .unwrap_err()
                .starts_with("/sys/bus/usb/devices")
        );
    }
}
