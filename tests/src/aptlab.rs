//! A local, file-based apt world for patch tests: `.deb` packages built with `dpkg-deb`, flat
//! repositories indexed with `dpkg-scanpackages` and released with `apt-ftparchive` (origin,
//! label, suite and date of our choosing), and minimal host roots (a dpkg database, sources
//! and the apt directories) that apt and dpkg work on with `--root`, never on the machine
//! running the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A package to build.
#[derive(Clone, Debug, Default)]
pub struct Deb {
    /// Package name.
    pub name: &'static str,
    /// Version.
    pub version: &'static str,
    /// `Urgency` field (the source's severity), if any.
    pub urgency: Option<&'static str>,
    /// `Depends` field, if any.
    pub depends: Option<&'static str>,
    /// Extra file (path below the root, content); every package also ships
    /// `/usr/share/<name>/VERSION`.
    pub file: Option<(&'static str, &'static str)>,
    /// A `postinst` script, if any.
    pub postinst: Option<&'static str>,
}

impl Deb {
    /// `name` at `version`, with nothing else set.
    pub fn new(name: &'static str, version: &'static str) -> Deb {
        Deb {
            name,
            version,
            ..Default::default()
        }
    }
}

/// The file `build_archives` writes for `name` at `version` in the archive directory `dir`
/// below `lab`.
pub fn deb_file(lab: &Path, dir: &str, name: &str, version: &str) -> PathBuf {
    lab.join(dir).join(deb_name(name, version))
}

fn deb_name(name: &str, version: &str) -> String {
    format!("{name}_{version}_all.deb")
}

/// An archive: a flat repository with its Release file.
#[derive(Clone, Debug)]
pub struct Archive {
    /// Directory name below the lab.
    pub dir: &'static str,
    /// `Origin`.
    pub origin: &'static str,
    /// `Label`.
    pub label: &'static str,
    /// `Suite`.
    pub suite: &'static str,
    /// `Date`, RFC 2822 (e.g. `Tue, 10 Nov 2026 00:00:00 +0000`).
    pub date: String,
    /// Its packages.
    pub debs: Vec<Deb>,
}

fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Builds `deb` into `out_dir`; returns the file.
pub fn build_deb(work: &Path, out_dir: &Path, deb: &Deb) -> Result<PathBuf> {
    let tree = work.join(format!("build/{}-{}", deb.name, deb.version));
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("DEBIAN"))?;
    let own = tree.join(format!("usr/share/{}", deb.name));
    std::fs::create_dir_all(&own)?;
    std::fs::write(
        own.join("VERSION"),
        format!("{} {}\n", deb.name, deb.version),
    )?;
    if let Some((path, content)) = deb.file {
        let p = tree.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().context("file path")?)?;
        std::fs::write(p, content)?;
    }
    let mut control = format!(
        "Package: {}\nVersion: {}\nArchitecture: all\nMaintainer: unyo tests <tests@unyo.invalid>\nDescription: unyo patch test package {}\n",
        deb.name, deb.version, deb.name
    );
    if let Some(u) = deb.urgency {
        control.push_str(&format!("Urgency: {u}\n"));
    }
    if let Some(d) = deb.depends {
        control.push_str(&format!("Depends: {d}\n"));
    }
    std::fs::write(tree.join("DEBIAN/control"), control)?;
    if let Some(script) = deb.postinst {
        use std::os::unix::fs::PermissionsExt;
        let p = tree.join("DEBIAN/postinst");
        std::fs::write(&p, script)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::create_dir_all(out_dir)?;
    let file = out_dir.join(deb_name(deb.name, deb.version));
    run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&tree)
            .arg(&file),
        "dpkg-deb --build",
    )?;
    Ok(file)
}

/// Builds each archive below `lab` (packages, `Packages`, `Release`); returns their directories.
pub fn build_archives(lab: &Path, archives: &[Archive]) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for a in archives {
        let dir = lab.join(a.dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        for deb in &a.debs {
            build_deb(lab, &dir, deb)?;
        }
        let packages = run(
            Command::new("dpkg-scanpackages")
                .args(["--multiversion", "."])
                .current_dir(&dir),
            "dpkg-scanpackages",
        )?;
        std::fs::write(dir.join("Packages"), packages)?;
        let release = run(
            Command::new("apt-ftparchive")
                .arg("-o")
                .arg(format!("APT::FTPArchive::Release::Origin={}", a.origin))
                .arg("-o")
                .arg(format!("APT::FTPArchive::Release::Label={}", a.label))
                .arg("-o")
                .arg(format!("APT::FTPArchive::Release::Suite={}", a.suite))
                .arg("-o")
                .arg(format!("APT::FTPArchive::Release::Date={}", a.date))
                .args(["release", "."])
                .current_dir(&dir),
            "apt-ftparchive release",
        )?;
        std::fs::write(dir.join("Release"), release)?;
        dirs.push(dir);
    }
    Ok(dirs)
}

/// The RFC 2822 date `days` before now, for a Release file.
pub fn days_ago(days: i64) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days);
    jiff::fmt::rfc2822::to_string(&t.to_zoned(jiff::tz::TimeZone::UTC)).unwrap_or_default()
}

/// A minimal Debian host below `root`: an empty dpkg database, the apt directories,
/// `sources` as its `sources.list` lines, and `debs` installed with `dpkg --root`.
pub fn host_root(root: &Path, sources: &[String], debs: &[PathBuf]) -> Result<()> {
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "run",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        if !root.join(f).exists() {
            std::fs::write(root.join(f), "")?;
        }
    }
    std::fs::write(root.join("etc/apt/sources.list"), sources.join("\n") + "\n")?;
    if !debs.is_empty() {
        run(
            Command::new("dpkg")
                .arg(format!("--root={}", root.display()))
                .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
                .arg("--force-script-chrootless")
                .arg("-i")
                .args(debs),
            "dpkg -i",
        )?;
    }
    Ok(())
}

/// The `sources.list` line of a flat file repository.
pub fn source_line(dir: &Path) -> String {
    format!("deb [trusted=yes] file:{} ./", dir.display())
}

/// The installed version of `package` below `root`, if any.
pub fn installed_version(root: &Path, package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${db:Status-Abbrev}\t${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, version) = text.split_once('\t')?;
    status.starts_with("ii").then(|| version.to_string())
}
