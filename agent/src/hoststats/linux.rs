//! Linux: /proc/stat, /proc/meminfo, /proc/diskstats, /proc/net/dev and /sys/class/hwmon of the
//! host beneath the agent's root, and the filesystems the facts read.

use procfs::{FromBufRead, FromBufReadSI, KernelStats, Meminfo};

use super::{Readings, StatsSource};
use crate::facts::Collector;

/// Reads the statistics the kernel keeps.
#[derive(Debug)]
pub struct Procfs {
    host: Collector,
}

impl Procfs {
    /// Statistics of the host whose files `host` reads.
    pub fn new(host: Collector) -> Procfs {
        Procfs { host }
    }

    fn open(&self, path: &str) -> Option<std::io::BufReader<std::fs::File>> {
        self.host.open(path).ok()
    }

    fn cpu(&self) -> Vec<(String, &'static str, f64)> {
        let Some(stats) = self
            .open("/proc/stat")
            .and_then(|f| KernelStats::from_buf_read(f, procfs::current_system_info()).ok())
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, t) in stats.cpu_time.iter().enumerate() {
            let s = |ms: u64| ms as f64 / 1000.0;
            for (mode, ms) in [
                ("user", t.user_ms()),
                ("nice", t.nice_ms()),
                ("system", t.system_ms()),
                ("idle", t.idle_ms()),
                ("iowait", t.iowait_ms().unwrap_or(0)),
                ("irq", t.irq_ms().unwrap_or(0)),
                ("softirq", t.softirq_ms().unwrap_or(0)),
                ("steal", t.steal_ms().unwrap_or(0)),
            ] {
                out.push((i.to_string(), mode, s(ms)));
            }
        }
        out
    }

    fn disks(&self) -> Vec<(String, u64, u64)> {
        let Some(stats) = self
            .open("/proc/diskstats")
            .and_then(|f| procfs::DiskStats::from_buf_read(f).ok())
        else {
            return Vec::new();
        };
        // Whole disks only (partitions would count twice): those listed in /sys/block.
        let whole = |name: &str| self.host.path(&format!("/sys/block/{name}")).exists();
        stats
            .0
            .into_iter()
            .filter(|d| whole(&d.name) && !d.name.starts_with("loop") && !d.name.starts_with("ram"))
            .map(|d| {
                (
                    d.name,
                    d.sectors_read.saturating_mul(512),
                    d.sectors_written.saturating_mul(512),
                )
            })
            .collect()
    }

    fn network(&self) -> Vec<(String, u64, u64)> {
        let Some(dev) = self
            .open("/proc/net/dev")
            .and_then(|f| procfs::net::InterfaceDeviceStatus::from_buf_read(f).ok())
        else {
            return Vec::new();
        };
        let mut v: Vec<_> = dev
            .0
            .into_values()
            .filter(|d| d.name != "lo")
            .map(|d| (d.name, d.recv_bytes, d.sent_bytes))
            .collect();
        v.sort();
        v
    }

    fn temperatures(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.host.path("/sys/class/hwmon")) else {
            return out;
        };
        for d in dirs.flatten() {
            let chip = std::fs::read_to_string(d.path().join("name"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| d.file_name().to_string_lossy().into_owned());
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if !(name.starts_with("temp") && name.ends_with("_input")) {
                    continue;
                }
                if let Some(milli) = std::fs::read_to_string(f.path())
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                {
                    out.push((
                        format!("{chip}/{}", name.trim_end_matches("_input")),
                        milli as f64 / 1000.0,
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl StatsSource for Procfs {
    fn read(&self) -> Readings {
        let mem = self
            .open("/proc/meminfo")
            .and_then(|f| Meminfo::from_buf_read(f).ok());
        let filesystems = crate::facts::filesystems(&self.host)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| {
                Some((
                    f.mount_point,
                    f.size_bytes?,
                    f.size_bytes?.saturating_sub(f.used_bytes?),
                ))
            })
            .collect();
        Readings {
            cpu: self.cpu(),
            memory_total_bytes: mem.as_ref().map(|m| m.mem_total),
            memory_available_bytes: mem.as_ref().and_then(|m| m.mem_available),
            filesystems,
            disks: self.disks(),
            network: self.network(),
            temperatures: self.temperatures(),
        }
    }
}
