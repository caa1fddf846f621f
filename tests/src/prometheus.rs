//! A real Prometheus (built from its Go module by hack/prometheus/build.sh, cached) scraping
//! targets on 127.0.0.1, for the operating-statistics tests. It is stopped when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{Running, repo_root};

/// The directory with `prometheus` and `promtool` ($UNYO_PROMETHEUS_BIN, else built or found
/// in the cache by hack/prometheus/build.sh).
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("UNYO_PROMETHEUS_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let out = Command::new(repo_root().join("hack/prometheus/build.sh"))
        .output()
        .context("running hack/prometheus/build.sh")?;
    if !out.status.success() {
        bail!(
            "hack/prometheus/build.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// A running Prometheus.
pub struct Prometheus {
    pub url: String,
    pub dir: PathBuf,
    _process: Running,
}

impl Prometheus {
    /// Starts Prometheus on a free port, scraping `targets` (host:port) every `interval`.
    pub fn start(targets: &[String], interval: Duration) -> Result<Prometheus> {
        Prometheus::start_with_rules(targets, interval, None)
    }

    /// The same, evaluating the rule file `rules` as well.
    pub fn start_with_rules(
        targets: &[String],
        interval: Duration,
        rules: Option<&std::path::Path>,
    ) -> Result<Prometheus> {
        let dir = std::env::temp_dir().join(format!(
            "unyo-prometheus-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir)?;
        let secs = interval.as_secs().max(1);
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let rule_files = match rules {
            Some(r) => format!("rule_files: ['{}']\n", r.display()),
            None => String::new(),
        };
        let config = format!(
            "global:\n  scrape_interval: {secs}s\n  evaluation_interval: {secs}s\n{rule_files}scrape_configs:\n  - job_name: unyo\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let port = crate::free_port()?;
        let mut cmd = Command::new(bin_dir()?.join("prometheus"));
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
        let process = Running::spawn(cmd, &format!("prometheus-{port}"))?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new("curl")
                .args(["-fs", "-o", "/dev/null", "--max-time", "2"])
                .arg(format!("{url}/-/ready"))
                .status()?
                .success();
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("Prometheus did not become ready: {}", process.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(Prometheus {
            url,
            dir,
            _process: process,
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
