//! Installed packages, from the host's package database through its own tool (`dpkg-query`
//! with `--admindir` beneath the root).

use std::process::Command;

use unyo_crds::server::ObservedPackage;

use super::Collector;

/// Installed packages with versions and architectures.
pub fn packages(c: &Collector) -> Result<Vec<ObservedPackage>, String> {
    let admindir = c.path("/var/lib/dpkg");
    if !admindir.join("status").is_file() {
        return Err(
            "no dpkg database (/var/lib/dpkg/status); only Debian-family hosts are read".into(),
        );
    }
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args([
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n",
        ])
        .output()
        .map_err(|e| format!("running dpkg-query: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dpkg-query failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_dpkg_query(&String::from_utf8_lossy(&out.stdout)))
}

/// Lines of `status<TAB>name<TAB>version<TAB>arch`; only installed packages (`ii`) count.
pub fn parse_dpkg_query(text: &str) -> Vec<ObservedPackage> {
    let mut out: Vec<ObservedPackage> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (status, name, version, arch) = (f.next()?, f.next()?, f.next()?, f.next());
            if !status.starts_with("ii") || version.is_empty() {
                return None;
            }
            Some(ObservedPackage {
                name: name.to_string(),
                version: version.to_string(),
                architecture: arch.filter(|a| !a.is_empty()).map(str::to_string),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(a.architecture.cmp(&b.architecture))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_installed_packages() {
        let p = parse_dpkg_query(
            "ii \tbash\t5.2.15-2+b7\tamd64\nrc \told\t1.0\tamd64\nii \tbase-files\t12.4\tamd64\nun \tx\t\t\n",
        );
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base-files", "bash"]);
        assert_eq!(p[1].version, "5.2.15-2+b7");
        assert_eq!(p[1].architecture.as_deref(), Some("amd64"));
    }
}
