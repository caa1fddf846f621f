//! Network interfaces with MAC and addresses.

use unyo_crds::server::ObservedNic;

use super::Collector;

/// On the live host: every interface but loopback, from the kernel (sysinfo). Beneath another
/// root: names and MACs from `/sys/class/net` and IPv6 addresses from `/proc/net/if_inet6`
/// (IPv4 addresses exist only in the kernel, not in files).
pub fn nics(c: &Collector) -> Result<Vec<ObservedNic>, String> {
    let mut out = if c.is_live() {
        live_nics()
    } else {
        file_nics(c)?
    };
    out.retain(|n| n.name != "lo");
    out.sort_by(|a, b| a.name.cmp(&b.name));
    for n in &mut out {
        n.addresses.sort();
    }
    Ok(out)
}

fn live_nics() -> Vec<ObservedNic> {
    let networks = sysinfo::Networks::new_with_refreshed_list();
    networks
        .iter()
        .map(|(name, data)| {
            let mac = data.mac_address().to_string();
            ObservedNic {
                name: name.clone(),
                mac: (mac != "00:00:00:00:00:00").then_some(mac),
                addresses: data
                    .ip_networks()
                    .iter()
                    .map(|n| format!("{}/{}", n.addr, n.prefix))
                    .collect(),
            }
        })
        .collect()
}

fn file_nics(c: &Collector) -> Result<Vec<ObservedNic>, String> {
    let entries =
        std::fs::read_dir(c.path("/sys/class/net")).map_err(|e| format!("/sys/class/net: {e}"))?;
    let inet6 = c.read("/proc/net/if_inet6").unwrap_or_default();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mac = c
            .read(&format!("/sys/class/net/{name}/address"))
            .ok()
            .filter(|m| !m.is_empty() && m != "00:00:00:00:00:00");
        let addresses = parse_if_inet6(&inet6, &name);
        out.push(ObservedNic {
            name,
            mac,
            addresses,
        });
    }
    Ok(out)
}

/// IPv6 addresses of `interface` in `/proc/net/if_inet6` (32 hex digits, index, prefix length
/// in hex, scope, flags, name).
pub fn parse_if_inet6(text: &str, interface: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [hex, _, prefix, _, _, name] = f[..] else {
                return None;
            };
            if name != interface || hex.len() != 32 {
                return None;
            }
            let bits = u128::from_str_radix(hex, 16).ok()?;
            let prefix = u8::from_str_radix(prefix, 16).ok()?;
            Some(format!("{}/{prefix}", std::net::Ipv6Addr::from(bits)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_inet6_lines() {
        let text = "fe80000000000000505400fffe123456 02 40 20 80     eth0\n\
                    00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(parse_if_inet6(text, "eth0"), ["fe80::5054:ff:fe12:3456/64"]);
        assert_eq!(parse_if_inet6(text, "lo"), ["::1/128"]);
        assert!(parse_if_inet6(text, "eth1").is_empty());
    }
}
