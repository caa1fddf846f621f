//! 稼働統計 (spec 4.1(4)): the operating statistics of every server, read from Prometheus with
//! range queries over the agents' host metrics (docs/agent.md lists them). This module holds the
//! queries and turns Prometheus' answers into averages, 95th percentiles, maxima and daily
//! series; the command line does the HTTP.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The operating statistics of a period, or why there are none.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// The Prometheus they were read from; None when no source was given.
    pub source: Option<String>,
    /// Seconds between the points of the range queries.
    pub step_seconds: u64,
    /// Measurements that could not be read, with Prometheus' answer.
    pub errors: Vec<String>,
    pub servers: Vec<ServerStatistics>,
}

/// The measurements of one server.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatistics {
    pub server: String,
    pub measurements: Vec<Measurement>,
}

/// One measurement of one server over the period.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// One of [`MEASUREMENTS`]' keys (its label in the report's language is in `i18n`).
    pub key: String,
    pub samples: u32,
    pub average: f64,
    pub p95: f64,
    pub maximum: f64,
    /// Averages per bucket (a day in a month's report), for the chart; None where no sample.
    pub series: Vec<Option<f64>>,
}

/// A measurement and its PromQL, with `{ns}` for the namespace and `{w}` for the rate window.
pub struct Query {
    pub key: &'static str,
    pub promql: &'static str,
}

/// The spec's 4.1(4) measurements, each one PromQL giving one series per server.
pub const MEASUREMENTS: &[Query] = &[
    Query {
        key: "cpu_usage",
        promql: r#"100 * (1 - avg by (server) (rate(unyo_host_cpu_seconds_total{namespace="{ns}",mode="idle"}[{w}])))"#,
    },
    Query {
        key: "memory_usage",
        promql: r#"100 * (1 - max by (server) (unyo_host_memory_available_bytes{namespace="{ns}"}) / max by (server) (unyo_host_memory_total_bytes{namespace="{ns}"}))"#,
    },
    Query {
        key: "disk_usage",
        promql: r#"100 * max by (server) (1 - unyo_host_filesystem_avail_bytes{namespace="{ns}"} / unyo_host_filesystem_size_bytes{namespace="{ns}"})"#,
    },
    Query {
        key: "disk_io",
        promql: r#"sum by (server) (rate(unyo_host_disk_read_bytes_total{namespace="{ns}"}[{w}]) + rate(unyo_host_disk_written_bytes_total{namespace="{ns}"}[{w}]))"#,
    },
    Query {
        key: "network",
        promql: r#"sum by (server) (rate(unyo_host_network_receive_bytes_total{namespace="{ns}"}[{w}]) + rate(unyo_host_network_transmit_bytes_total{namespace="{ns}"}[{w}]))"#,
    },
    Query {
        key: "web_requests",
        promql: r#"sum by (server) (rate(unyo_host_web_requests_total{namespace="{ns}"}[{w}]))"#,
    },
    Query {
        key: "service_up",
        promql: r#"100 * avg by (server) (unyo_host_service_up{namespace="{ns}"})"#,
    },
    Query {
        key: "hardware_health",
        promql: r#"max by (server) (unyo_host_hardware_temperature_celsius{namespace="{ns}"})"#,
    },
];

impl Query {
    /// The PromQL for a namespace and a step: the rate window is two steps, at least 30 s.
    pub fn render(&self, namespace: &str, step_seconds: u64) -> String {
        let w = format!("{}s", step_seconds.saturating_mul(2).max(30));
        self.promql
            .replace("{ns}", &namespace.replace(['"', '\\'], ""))
            .replace("{w}", &w)
    }
}

/// The step of a month's queries: one point an hour (720 a month, far under Prometheus' limit of
/// 11,000 per series); shorter periods get at least 120 points, no finer than 5 s.
pub fn step_for(period_seconds: i64) -> u64 {
    let secs = u64::try_from(period_seconds).unwrap_or(0);
    (secs / 720).clamp(5, 3600).min((secs / 120).max(5))
}

/// Prometheus' answer to a range query.
#[derive(Deserialize)]
pub struct RangeResponse {
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub data: Option<RangeData>,
}

#[derive(Deserialize)]
pub struct RangeData {
    #[serde(default)]
    pub result: Vec<RangeSeries>,
}

#[derive(Deserialize)]
pub struct RangeSeries {
    pub metric: BTreeMap<String, String>,
    pub values: Vec<(f64, String)>,
}

/// The points (unix seconds, value) of each server in an answer.
pub type ServerPoints = BTreeMap<String, Vec<(f64, f64)>>;

/// The points of each server in an answer (NaN and infinite values left out).
pub fn points(resp: RangeResponse) -> Result<ServerPoints, String> {
    if resp.status != "success" {
        return Err(resp.error.unwrap_or_else(|| resp.status.clone()));
    }
    let mut out = BTreeMap::new();
    for s in resp.data.map(|d| d.result).unwrap_or_default() {
        let Some(server) = s.metric.get("server") else {
            continue;
        };
        let pts: Vec<(f64, f64)> = s
            .values
            .iter()
            .filter_map(|(t, v)| {
                v.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(|v| (*t, v))
            })
            .collect();
        out.insert(server.clone(), pts);
    }
    Ok(out)
}

/// Average, 95th percentile (nearest rank), maximum and bucket averages of points; `buckets`
/// splits [from, to) into equal parts (days of a month).
pub fn measure(
    key: &str,
    pts: &[(f64, f64)],
    from: f64,
    to: f64,
    buckets: usize,
) -> Option<Measurement> {
    if pts.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = pts.iter().map(|p| p.1).collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    let mut sums = vec![(0.0, 0u32); buckets.max(1)];
    let width = (to - from) / sums.len() as f64;
    for (t, v) in pts {
        if width > 0.0 && *t >= from && *t < to {
            let i = (((t - from) / width) as usize).min(sums.len() - 1);
            sums[i].0 += v;
            sums[i].1 += 1;
        }
    }
    Some(Measurement {
        key: key.to_string(),
        samples: u32::try_from(n).unwrap_or(u32::MAX),
        average: round2(values.iter().sum::<f64>() / n as f64),
        p95: round2(values[rank - 1]),
        maximum: round2(values[n - 1]),
        series: sums
            .iter()
            .map(|(s, c)| (*c > 0).then(|| round2(s / f64::from(*c))))
            .collect(),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Collects the measurements of every query into per-server statistics.
pub fn assemble(
    source: &str,
    step_seconds: u64,
    answers: Vec<(&'static str, Result<ServerPoints, String>)>,
    window: (f64, f64),
    buckets: usize,
) -> Statistics {
    let mut by_server: BTreeMap<String, Vec<Measurement>> = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, answer) in answers {
        match answer {
            Ok(series) => {
                for (server, pts) in series {
                    if let Some(m) = measure(key, &pts, window.0, window.1, buckets) {
                        by_server.entry(server).or_default().push(m);
                    }
                }
            }
            Err(e) => errors.push(format!("{key}: {e}")),
        }
    }
    Statistics {
        source: Some(source.to_string()),
        step_seconds,
        errors,
        servers: by_server
            .into_iter()
            .map(|(server, measurements)| ServerStatistics {
                server,
                measurements,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_average_and_buckets() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (f64::from(i), f64::from(i + 1))).collect();
        let m = measure("cpu_usage", &pts, 0.0, 100.0, 4).unwrap();
        assert_eq!(
            (m.samples, m.average, m.p95, m.maximum),
            (100, 50.5, 95.0, 100.0)
        );
        assert_eq!(
            m.series,
            vec![Some(13.0), Some(38.0), Some(63.0), Some(88.0)]
        );
        assert!(measure("x", &[], 0.0, 1.0, 1).is_none());
    }

    #[test]
    fn an_answer_is_read_per_server_and_nan_is_left_out() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"server":"web01"},"values":[[10,"1.5"],[20,"NaN"],[30,"2.5"]]},
            {"metric":{},"values":[[10,"9"]]}]}}"#;
        let got = points(serde_json::from_str(body).unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["web01"], vec![(10.0, 1.5), (30.0, 2.5)]);
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(
            points(serde_json::from_str(err).unwrap()).unwrap_err(),
            "parse error"
        );
    }

    #[test]
    fn queries_name_the_namespace_and_a_window_of_two_steps() {
        let q = MEASUREMENTS[0].render("union\"x", 3600);
        assert!(
            q.contains(r#"namespace="unionx""#) && q.contains("[7200s]"),
            "{q}"
        );
        assert_eq!(step_for(30 * 86400), 3600);
        assert_eq!(step_for(600), 5);
    }
}
