//! `unyo report …` and `unyo ledger export`: read a namespace's records once (one LIST per kind),
//! read the operating statistics from Prometheus, and write the documents of unyo-report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use unyo_crds::workcalendar::WorkCalendar;
use unyo_crds::{
    BackupPlan, ChangeRecord, Incident, MonitoringPolicy, OperationCalendar, PatchBaseline, Server,
    VirusScanSchedule,
};
use unyo_report::monthly::{self, Inputs, Period};
use unyo_report::render::{self, Format};
use unyo_report::stats::{self, Statistics};
use unyo_report::{Document, Lang};

/// How and where a document is written.
#[derive(clap::Args, Debug, Clone)]
pub struct Output {
    /// pdf, xlsx, html, markdown or json (incident: pdf, docx, markdown, json; ledger: xlsx, csv).
    #[arg(long, short = 'f', default_value = "markdown")]
    pub format: String,
    /// ja (default) or en.
    #[arg(long, default_value = "ja", value_parser = ["ja", "en"])]
    pub lang: String,
    /// Write to this file, or into this directory as <kind>-<namespace>-<month>.<format> (and
    /// print the path); without it the document goes to standard output.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Font files for a PDF (default: Noto Sans CJK from Debian's fonts-noto-cjk).
    #[arg(long)]
    pub font: Vec<PathBuf>,
    /// Kubeconfig (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl Output {
    fn lang(&self) -> Lang {
        Lang::parse(&self.lang).unwrap_or_default()
    }

    /// Checks the format against those a document allows (json is always one).
    fn format(&self, allowed: &[&str]) -> Result<Option<Format>> {
        if self.format == "json" {
            return Ok(None);
        }
        match Format::parse(&self.format) {
            Some(f) if allowed.contains(&self.format.as_str()) => Ok(Some(f)),
            _ => bail!(
                "--format: {:?} is not one of json, {}",
                self.format,
                allowed.join(", ")
            ),
        }
    }

    /// `out` itself, or `<name>.<format>` in it when it is a directory.
    fn file_in(&self, out: &Path, name: &str) -> PathBuf {
        if out.is_dir() {
            let ext = if self.format == "markdown" {
                "md"
            } else {
                self.format.as_str()
            };
            out.join(format!("{name}.{ext}"))
        } else {
            out.to_path_buf()
        }
    }

    /// The file the document is written to (None: standard output).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.out.as_deref().map(|p| self.file_in(p, name))
    }

    /// Writes the typed report as JSON, or its document in the chosen format; `typed_name`
    /// names the file when `--out` is a directory.
    fn write<T: serde::Serialize>(
        &self,
        typed: &T,
        typed_name: &str,
        doc: impl FnOnce(Lang) -> Document,
        allowed: &[&str],
    ) -> Result<String> {
        let bytes = match self.format(allowed)? {
            None => serde_json::to_vec_pretty(typed)?,
            Some(f) => render::render(&doc(self.lang()), f, &self.font)?,
        };
        match self.out.as_deref().map(|p| self.file_in(p, typed_name)) {
            Some(path) => {
                let path = &path;
                std::fs::write(path, &bytes)
                    .with_context(|| format!("--out {}", path.display()))?;
                Ok(path.display().to_string())
            }
            None => {
                use std::io::Write;
                std::io::stdout().lock().write_all(&bytes)?;
                Ok(String::new())
            }
        }
    }
}

async fn list<K>(client: &Client, ns: &str) -> Result<Vec<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let kind = K::kind(&K::DynamicType::default()).to_string();
    Ok(api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing {kind} in {ns}"))?
        .items)
}

/// Reads every record of a namespace a monthly report needs: one LIST per kind, all at once.
pub async fn gather(client: &Client, ns: &str, calendar: Option<&str>) -> Result<Inputs> {
    let (calendars, servers, incidents, changes, baselines, plans, scans, policies) = tokio::try_join!(
        list::<OperationCalendar>(client, ns),
        list::<Server>(client, ns),
        list::<Incident>(client, ns),
        list::<ChangeRecord>(client, ns),
        list::<PatchBaseline>(client, ns),
        list::<BackupPlan>(client, ns),
        list::<VirusScanSchedule>(client, ns),
        list::<MonitoringPolicy>(client, ns),
    )?;
    let calendar = pick_calendar(calendars, calendar)?;
    Ok(Inputs {
        namespace: ns.to_string(),
        calendar,
        servers,
        incidents,
        changes,
        baselines,
        plans,
        scans,
        policies,
        statistics: Statistics::default(),
    })
}

/// The named calendar, else the only one (or the first by name) of the namespace.
fn pick_calendar(
    mut all: Vec<OperationCalendar>,
    name: Option<&str>,
) -> Result<Option<OperationCalendar>> {
    all.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    match name {
        Some(n) => match all
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(n))
        {
            Some(c) => Ok(Some(c)),
            None => bail!("--calendar: there is no OperationCalendar {n:?} in the namespace"),
        },
        None => Ok(all.into_iter().next()),
    }
}

/// The zone of the namespace's calendar (the only one, or the first by name; Asia/Tokyo
/// without one).
async fn namespace_zone(client: &Client, ns: &str) -> Result<TimeZone> {
    let calendars = list::<OperationCalendar>(client, ns).await?;
    Ok(monthly::zone(pick_calendar(calendars, None)?.as_ref())?)
}

/// The month before the one `now` falls in, as `YYYY-MM`.
pub fn last_month(now: Timestamp, tz: &TimeZone) -> String {
    use unyo_crds::workcalendar::{month_before, month_label};
    let (y, m) = month_before(now.to_zoned(tz.clone()).date());
    month_label(y, m)
}

/// Reads the operating statistics of `ns` over `period` from the Prometheus at `url`: one range
/// query per measurement (all servers at once).
pub async fn statistics(
    url: &str,
    ns: &str,
    from: Timestamp,
    to: Timestamp,
    buckets: usize,
) -> Result<Statistics> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let period = to.as_second().saturating_sub(from.as_second());
    let step = stats::step_for(period);
    let endpoint = format!("{}/api/v1/query_range", url.trim_end_matches('/'));
    // The points end at `to` (the newest data is always read); the first is the earliest step
    // from there that is not before `from`.
    let step_i = i64::try_from(step).unwrap_or(3600).max(1);
    let start = to.as_second().saturating_sub(period / step_i * step_i);
    let mut answers = Vec::new();
    for q in stats::MEASUREMENTS {
        let params = [
            ("query", q.render(ns, step)),
            ("start", start.to_string()),
            ("end", to.as_second().to_string()),
            ("step", step.to_string()),
        ];
        let answer = match http.post(&endpoint).form(&params).send().await {
            Ok(resp) => resp
                .json::<stats::RangeResponse>()
                .await
                .map_err(|e| e.to_string())
                .and_then(stats::points),
            Err(e) => bail!("--prometheus {url}: {}", e.without_url()),
        };
        answers.push((q.key, answer));
    }
    Ok(stats::assemble(
        url,
        step,
        answers,
        (from.as_second() as f64, to.as_second() as f64),
        buckets,
    ))
}

/// What `unyo report monthly` reports on.
pub struct MonthlyArgs<'a> {
    pub month: Option<&'a str>,
    pub calendar: Option<&'a str>,
    pub prometheus: Option<&'a str>,
    /// Record the writing in a ConfigMap (for the controller's metrics).
    pub record: bool,
    /// Write only on the first business day after the month (for a CronJob that runs daily).
    pub if_first_business_day: bool,
    /// The instant the report is made at (default: now).
    pub now: Option<Timestamp>,
}

/// Why today (in the calendar's zone) is not the first business day after `month`, or None when
/// it is.
fn not_first_business_day(
    inputs: &Inputs,
    period: &Period,
    month: &str,
    now: Timestamp,
) -> Result<Option<String>> {
    let cal = inputs
        .calendar
        .as_ref()
        .context("--if-first-business-day needs an OperationCalendar in the namespace")?;
    let work = WorkCalendar::from_spec(&cal.spec)?;
    let last = period.end.to_zoned(period.tz.clone()).date().yesterday()?;
    let first = work.next_business_day(last)?;
    let today = work.local_date(now);
    if first == Some(today) {
        return Ok(None);
    }
    let first = first.map_or_else(|| "none within two years".into(), |d| d.to_string());
    Ok(Some(format!(
        "today ({today}) is not the first business day after {month} ({first}); nothing written"
    )))
}

/// `unyo report monthly`.
pub async fn monthly(
    client: Client,
    ns: &str,
    a: &MonthlyArgs<'_>,
    out: &Output,
) -> Result<String> {
    let now = a.now.unwrap_or_else(Timestamp::now);
    let mut inputs = gather(&client, ns, a.calendar).await?;
    let tz = monthly::zone(inputs.calendar.as_ref())?;
    let month = a
        .month
        .map(str::to_string)
        .unwrap_or_else(|| last_month(now, &tz));
    let period = Period::parse(&month, tz)?;
    if a.if_first_business_day
        && let Some(not_today) = not_first_business_day(&inputs, &period, &month, now)?
    {
        return Ok(not_today);
    }
    if let Some(url) = a.prometheus {
        let days = usize::try_from(
            period
                .end
                .as_second()
                .saturating_sub(period.start.as_second())
                / 86_400,
        )
        .unwrap_or(31)
        .max(1);
        inputs.statistics = statistics(url, ns, period.start, period.end.min(now), days).await?;
    }
    let report = monthly::build(&inputs, &month, now)?;
    let name = format!("monthly-{ns}-{month}");
    let written = out.write(
        &report,
        &name,
        |lang| monthly::document(&report, lang),
        &["pdf", "xlsx", "html", "markdown"],
    )?;
    if a.record {
        let path = out
            .path(&name)
            .context("--record needs --out (the file whose digest is recorded)")?;
        record(&client, ns, &month, &path, Timestamp::now()).await?;
    }
    Ok(written)
}

/// Records that `month`'s report was written: a ConfigMap with the time and the file's digest,
/// applied server-side under the CLI's field manager (a second run updates it).
async fn record(client: &Client, ns: &str, month: &str, path: &Path, now: Timestamp) -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use sha2::Digest;
    use unyo_crds::names::{self, labels};
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let name = names::monthly_report_record_name(month);
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {labels::REPORT: labels::REPORT_MONTHLY, labels::MONTH: month, labels::MANAGED_BY: labels::MANAGED_BY_UNYO}},
        "data": {names::REPORT_WRITTEN_AT_KEY: now.to_string(), names::REPORT_SHA256_KEY: digest},
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pp = kube::api::PatchParams::apply(names::CLI_MANAGER).force();
    api.patch(&name, &pp, &kube::api::Patch::Apply(&cm))
        .await
        .with_context(|| format!("recording ConfigMap {name}"))?;
    Ok(())
}

/// `unyo report incident NAME`.
pub async fn incident(client: Client, ns: &str, name: &str, out: &Output) -> Result<String> {
    let incidents: Api<Incident> = Api::namespaced(client.clone(), ns);
    let inc = incidents
        .get(name)
        .await
        .with_context(|| format!("Incident {name} in {ns}"))?;
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.kind=Incident,involvedObject.name={name}");
    let events = events
        .list(&ListParams::default().fields(&selector))
        .await?
        .items;
    let tz = namespace_zone(&client, ns).await?;
    let r = unyo_report::incident::report(&inc, &events, &tz, Timestamp::now());
    out.write(
        &r,
        &format!("incident-{name}"),
        |lang| unyo_report::incident::document(&r, lang),
        &["pdf", "docx", "markdown", "html"],
    )
}

/// `unyo report incidents --from --to`.
pub async fn incidents(
    client: Client,
    ns: &str,
    from: &str,
    to: &str,
    out: &Output,
) -> Result<String> {
    let tz = namespace_zone(&client, ns).await?;
    let day = |flag: &str, s: &str| -> Result<Timestamp> {
        let d: jiff::civil::Date = s
            .parse()
            .with_context(|| format!("{flag}: {s:?} is not a date such as 2026-04-01"))?;
        Ok(d.to_zoned(tz.clone())?.timestamp())
    };
    let (a, b) = (day("--from", from)?, day("--to", to)?);
    if b <= a {
        bail!("--to must be after --from");
    }
    let all = list::<Incident>(&client, ns).await?;
    let r = unyo_report::incident::analysis(&all, a, b, &tz);
    out.write(
        &r,
        &format!("incidents-{ns}-{from}-{to}"),
        |lang| unyo_report::incident::analysis_document(&r, lang),
        &["pdf", "xlsx", "docx", "markdown", "html"],
    )
}

/// `unyo ledger export`.
pub async fn ledger(client: Client, ns: &str, out: &Output) -> Result<String> {
    let servers = list::<Server>(&client, ns).await?;
    let lang = out.lang();
    let doc = unyo_report::ledger::document(ns, &servers, lang);
    let rows: Vec<_> = doc.sections.iter().flat_map(|s| &s.tables).collect();
    out.write(
        &rows,
        &format!("ledger-{ns}"),
        |_| doc.clone(),
        &["xlsx", "csv", "markdown", "html", "pdf"],
    )
}
