//! The operating statistics of spec 4.1(4) on /metrics, read when Prometheus scrapes: CPU time,
//! memory, filesystem usage, disk I/O, network, service state, web access counts from access
//! logs and hardware temperatures where the host exposes them. Every series carries the
//! `namespace` and `server` labels, so `unyo report monthly --prometheus` selects one union's
//! servers whatever the scrape configuration. docs/agent.md lists the names; they are stable.
//!
//! Where the numbers come from is behind [`StatsSource`] (one per platform); this module only
//! encodes them.

#[cfg(unix)]
mod linux;
mod weblog;

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[cfg(unix)]
pub use linux::Procfs;
pub use weblog::WebLogs;

/// One reading of the host; what could not be read is left empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    /// (cpu, mode, seconds) since boot.
    pub cpu: Vec<(String, &'static str, f64)>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    /// (mount point, size, available bytes).
    pub filesystems: Vec<(String, u64, u64)>,
    /// (device, bytes read, bytes written) since boot.
    pub disks: Vec<(String, u64, u64)>,
    /// (interface, bytes received, bytes sent) since boot.
    pub network: Vec<(String, u64, u64)>,
    /// (sensor, degrees Celsius).
    pub temperatures: Vec<(String, f64)>,
}

/// Where a platform's readings come from.
pub trait StatsSource: Send + Sync + std::fmt::Debug + 'static {
    /// Reads the host now (called on every scrape; it must be quick).
    fn read(&self) -> Readings;
}

/// The host statistics collector registered with the agent's metrics.
#[derive(Debug)]
pub struct HostStats {
    namespace: String,
    server: String,
    source: Box<dyn StatsSource>,
    web: WebLogs,
    services: Mutex<Vec<(String, bool)>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct L {
    namespace: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LNamed {
    namespace: String,
    server: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LCpu {
    namespace: String,
    server: String,
    cpu: String,
    mode: String,
}

impl HostStats {
    /// Statistics of `server` in `namespace` from `source`, with web access counted in `web`.
    pub fn new(
        namespace: &str,
        server: &str,
        source: Box<dyn StatsSource>,
        web: WebLogs,
    ) -> Arc<HostStats> {
        Arc::new(HostStats {
            namespace: namespace.into(),
            server: server.into(),
            source,
            web,
            services: Mutex::new(Vec::new()),
        })
    }

    /// The service units' states as the facts last read them (`active` is up).
    pub fn set_services(&self, services: &[unyo_crds::server::ObservedService]) {
        let v = services
            .iter()
            .map(|s| (s.name.clone(), s.state == "active"))
            .collect();
        if let Ok(mut g) = self.services.lock() {
            *g = v;
        }
    }

    fn named(&self, name: &str) -> LNamed {
        LNamed {
            namespace: self.namespace.clone(),
            server: self.server.clone(),
            name: name.to_string(),
        }
    }
}

/// Encodes one family: `name` with `help`, one value per label set.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: impl IntoIterator<Item = (S, M)>,
) -> Result<(), std::fmt::Error> {
    let mut values = values.into_iter().peekable();
    if values.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in values {
        v.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for HostStats {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = self.source.read();
        let base = L {
            namespace: self.namespace.clone(),
            server: self.server.clone(),
        };
        let cpu = r.cpu.iter().map(|(cpu, mode, s)| {
            (
                LCpu {
                    namespace: self.namespace.clone(),
                    server: self.server.clone(),
                    cpu: cpu.clone(),
                    mode: mode.to_string(),
                },
                ConstCounter::new(*s),
            )
        });
        family(
            &mut enc,
            "unyo_host_cpu_seconds",
            "CPU time per CPU and mode since boot",
            MetricType::Counter,
            cpu,
        )?;
        let mem = |v: Option<u64>| v.map(|v| (base.clone(), ConstGauge::new(v as f64)));
        family(
            &mut enc,
            "unyo_host_memory_total_bytes",
            "Memory installed",
            MetricType::Gauge,
            mem(r.memory_total_bytes),
        )?;
        family(
            &mut enc,
            "unyo_host_memory_available_bytes",
            "Memory available without swapping",
            MetricType::Gauge,
            mem(r.memory_available_bytes),
        )?;
        let fs = |pick: fn(&(String, u64, u64)) -> u64| {
            r.filesystems
                .iter()
                .map(move |f| (self.named(&f.0), ConstGauge::new(pick(f) as f64)))
        };
        family(
            &mut enc,
            "unyo_host_filesystem_size_bytes",
            "Size of each mounted filesystem (name: mount point)",
            MetricType::Gauge,
            fs(|f| f.1),
        )?;
        family(
            &mut enc,
            "unyo_host_filesystem_avail_bytes",
            "Space available in each mounted filesystem",
            MetricType::Gauge,
            fs(|f| f.2),
        )?;
        let io = |pick: fn(&(String, u64, u64)) -> u64, v: &'_ [(String, u64, u64)]| {
            v.iter()
                .map(move |d| (self.named(&d.0), ConstCounter::new(pick(d) as f64)))
                .collect::<Vec<_>>()
        };
        family(
            &mut enc,
            "unyo_host_disk_read_bytes",
            "Bytes read from each disk since boot",
            MetricType::Counter,
            io(|d| d.1, &r.disks),
        )?;
        family(
            &mut enc,
            "unyo_host_disk_written_bytes",
            "Bytes written to each disk since boot",
            MetricType::Counter,
            io(|d| d.2, &r.disks),
        )?;
        family(
            &mut enc,
            "unyo_host_network_receive_bytes",
            "Bytes received on each interface since boot",
            MetricType::Counter,
            io(|d| d.1, &r.network),
        )?;
        family(
            &mut enc,
            "unyo_host_network_transmit_bytes",
            "Bytes sent on each interface since boot",
            MetricType::Counter,
            io(|d| d.2, &r.network),
        )?;
        let services = self.services.lock().map(|g| g.clone()).unwrap_or_default();
        family(
            &mut enc,
            "unyo_host_service_up",
            "1 when the service unit is active",
            MetricType::Gauge,
            services
                .iter()
                .map(|(n, up)| (self.named(n), ConstGauge::new(i64::from(*up)))),
        )?;
        let temps = r
            .temperatures
            .iter()
            .map(|(n, c)| (self.named(n), ConstGauge::new(*c)));
        family(
            &mut enc,
            "unyo_host_hardware_temperature_celsius",
            "Temperature of each hardware sensor",
            MetricType::Gauge,
            temps,
        )?;
        let web = self.web.counts();
        family(
            &mut enc,
            "unyo_host_web_requests",
            "Requests (lines) written to each configured access log since the agent started",
            MetricType::Counter,
            web.iter()
                .map(|(n, c)| (self.named(n), ConstCounter::new(*c as f64))),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl StatsSource for Fixed {
        fn read(&self) -> Readings {
            Readings {
                cpu: vec![("0".into(), "idle", 12.5)],
                memory_total_bytes: Some(1000),
                memory_available_bytes: Some(250),
                filesystems: vec![("/".into(), 100, 40)],
                disks: vec![("sda".into(), 512, 1024)],
                network: vec![],
                temperatures: vec![("coretemp/temp1".into(), 41.0)],
            }
        }
    }

    #[test]
    fn the_documented_names_with_namespace_and_server_on_every_series() {
        let stats = HostStats::new("mie", "web01", Box::new(Fixed), WebLogs::default());
        stats.set_services(&[unyo_crds::server::ObservedService {
            name: "apache2.service".into(),
            state: "active".into(),
            sub_state: None,
        }]);
        let mut m = crate::metrics::Metrics::default();
        m.register_host(stats);
        let text = m.encode();
        for line in [
            r#"unyo_host_cpu_seconds_total{namespace="mie",server="web01",cpu="0",mode="idle"} 12.5"#,
            r#"unyo_host_memory_available_bytes{namespace="mie",server="web01"} 250.0"#,
            r#"unyo_host_filesystem_avail_bytes{namespace="mie",server="web01",name="/"} 40.0"#,
            r#"unyo_host_disk_written_bytes_total{namespace="mie",server="web01",name="sda"} 1024.0"#,
            r#"unyo_host_service_up{namespace="mie",server="web01",name="apache2.service"} 1"#,
            r#"unyo_host_hardware_temperature_celsius{namespace="mie",server="web01",name="coretemp/temp1"} 41.0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(
            !text.contains("unyo_host_network"),
            "nothing read, no family: {text}"
        );
    }
}
