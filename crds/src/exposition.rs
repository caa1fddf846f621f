//! The two exposition formats of /metrics. The binaries encode OpenMetrics (prometheus-client);
//! a scraper that does not ask for it (`Accept` without `application/openmetrics-text`, e.g.
//! curl, promtool or an older Prometheus) gets the classic Prometheus text format 0.0.4, where a
//! counter's HELP and TYPE name its `_total` series and there is no `# EOF` or `# UNIT`.

/// The content type of OpenMetrics 1.0.0.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic text format.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// The content type and body that answer a scrape with `accept`, from the OpenMetrics text.
pub fn respond(accept: Option<&str>, openmetrics: String) -> (&'static str, String) {
    if wants_openmetrics(accept) {
        (OPENMETRICS, openmetrics)
    } else {
        (CLASSIC, classic(&openmetrics))
    }
}

/// OpenMetrics text as the classic format.
pub fn classic(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_named_by_their_total_series_and_the_end_marker_goes() {
        let om = "# HELP a_writes Writes.\n# TYPE a_writes counter\na_writes_total{result=\"ok\"} 3\n# HELP a_up Up.\n# TYPE a_up gauge\na_up 1\n# EOF\n";
        assert_eq!(
            super::classic(om),
            "# HELP a_writes_total Writes.\n# TYPE a_writes_total counter\na_writes_total{result=\"ok\"} 3\n# HELP a_up Up.\n# TYPE a_up gauge\na_up 1\n"
        );
        assert!(super::wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!super::wants_openmetrics(Some("*/*")) && !super::wants_openmetrics(None));
    }
}
