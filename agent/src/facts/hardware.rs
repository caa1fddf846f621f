//! Processors, memory, disks, filesystems and boot time, from procfs and sysfs files.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use procfs::{CpuInfo, FromBufRead, FromBufReadSI, KernelStats, Meminfo};
use unyo_crds::server::{CpuLedger, ObservedDisk, ObservedFilesystem};

use super::Collector;
use super::usage::coarse_used;

/// Filesystem types that hold no data of the host (kernel interfaces and memory filesystems).
const VIRTUAL_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "autofs",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "nsfs",
    "ramfs",
    "rpc_pipefs",
    "efivarfs",
    "selinuxfs",
    "fuse.gvfsd-fuse",
];

/// Block devices that are not physical disks.
const VIRTUAL_BLOCK: &[&str] = &["loop", "ram", "zram", "dm-", "sr", "nbd"];

/// CPU model, sockets, cores and threads from `/proc/cpuinfo`.
pub fn cpu(c: &Collector) -> Result<CpuLedger, String> {
    let info = CpuInfo::from_buf_read(c.open("/proc/cpuinfo")?)
        .map_err(|e| format!("/proc/cpuinfo: {e}"))?;
    let threads = info.num_cores();
    if threads == 0 {
        return Err("/proc/cpuinfo lists no processor".into());
    }
    let sockets: BTreeSet<u32> = (0..threads).filter_map(|i| info.physical_id(i)).collect();
    let cores_per_socket: Option<u32> = info
        .get_field(0, "cpu cores")
        .and_then(|v| v.trim().parse().ok());
    let socket_count = sockets.len().max(1) as u32;
    Ok(CpuLedger {
        model: info
            .model_name(0)
            .or_else(|| info.get_field(0, "Model"))
            .map(|m| m.trim().to_string()),
        sockets: Some(socket_count),
        cores: Some(cores_per_socket.map_or(threads as u32, |c| c * socket_count)),
        threads: Some(threads as u32),
    })
}

/// Total memory from `/proc/meminfo`, in bytes.
pub fn memory_bytes(c: &Collector) -> Result<u64, String> {
    let info = Meminfo::from_buf_read(c.open("/proc/meminfo")?)
        .map_err(|e| format!("/proc/meminfo: {e}"))?;
    Ok(info.mem_total)
}

/// Physical disks from `/sys/block` (size in 512-byte sectors, model from the device).
pub fn disks(c: &Collector) -> Result<Vec<ObservedDisk>, String> {
    let dir = c.path("/sys/block");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("/sys/block: {e}"))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if VIRTUAL_BLOCK.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let size_bytes = c
            .read(&format!("/sys/block/{name}/size"))
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(|sectors| sectors.saturating_mul(512));
        let model = c
            .read(&format!("/sys/block/{name}/device/model"))
            .ok()
            .filter(|m| !m.is_empty());
        out.push(ObservedDisk {
            name,
            size_bytes,
            model,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Mounted filesystems from `/proc/mounts`, with size and usage from statvfs(3) of the mount
/// point beneath the root.
pub fn filesystems(c: &Collector) -> Result<Vec<ObservedFilesystem>, String> {
    let mounts = Vec::<procfs::MountEntry>::from_buf_read(c.open("/proc/mounts")?)
        .map_err(|e| format!("/proc/mounts: {e}"))?;
    let mut out: Vec<ObservedFilesystem> = Vec::new();
    for m in mounts {
        if VIRTUAL_FS.contains(&m.fs_vfstype.as_str()) {
            continue;
        }
        let local = c.path(&m.fs_file);
        // Bind-mounted single files (e.g. /etc/hosts in a container) are not filesystems.
        if !local.is_dir() || out.iter().any(|f| f.mount_point == m.fs_file) {
            continue;
        }
        let (size_bytes, used_bytes) = match rustix::fs::statvfs(&local) {
            Ok(st) => {
                let frag = st.f_frsize;
                let size = st.f_blocks * frag;
                let used = st.f_blocks.saturating_sub(st.f_bfree) * frag;
                (Some(size), Some(coarse_used(used, size)))
            }
            Err(_) => (None, None),
        };
        out.push(ObservedFilesystem {
            mount_point: m.fs_file,
            device: Some(m.fs_spec),
            fs_type: Some(m.fs_vfstype),
            size_bytes,
            used_bytes,
        });
    }
    out.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    Ok(out)
}

/// Boot time from `btime` in `/proc/stat`.
pub fn boot_time(c: &Collector) -> Result<Time, String> {
    let stats = KernelStats::from_buf_read(c.open("/proc/stat")?, procfs::current_system_info())
        .map_err(|e| format!("/proc/stat: {e}"))?;
    let secs = i64::try_from(stats.btime).map_err(|e| format!("/proc/stat btime: {e}"))?;
    jiff::Timestamp::from_second(secs)
        .map(Time)
        .map_err(|e| format!("/proc/stat btime: {e}"))
}
