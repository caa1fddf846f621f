//! Every heading, label and enum value of the reports, in Japanese and English: one table, so a
//! report in either language is the same code.

use serde::Serialize;

/// The language of a document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Japanese, the default (what the union receives).
    #[default]
    Ja,
    /// English.
    En,
}

impl Lang {
    /// `ja` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The text of `key` in this language; the key itself when the table lacks it (a test checks
    /// that no Japanese document shows a bare key).
    pub fn t(self, key: &str) -> &'static str {
        self.lookup(key).unwrap_or("?")
    }

    /// The text of `key` in this language, if the table has it.
    fn lookup(self, key: &str) -> Option<&'static str> {
        let i = TABLE.binary_search_by(|(k, _, _)| (*k).cmp(key)).ok()?;
        Some(match self {
            Lang::Ja => TABLE[i].1,
            Lang::En => TABLE[i].2,
        })
    }

    /// An enum value (or any key) in this language; a value the table lacks (a name, a
    /// check's title) is shown as it is.
    pub fn value(self, value: &str) -> String {
        self.lookup(value).unwrap_or(value).to_string()
    }

    /// "Yes"/"No" in this language.
    pub fn yes_no(self, b: bool) -> &'static str {
        self.t(if b { "yes" } else { "no" })
    }
}

/// (key, Japanese, English), sorted by key (a test checks the order).
pub const TABLE: &[(&str, &str, &str)] = &[
    ("Apply", "適用", "Apply"),
    ("ChangeRequest", "変更要求", "Change request"),
    ("Closed", "完了", "Closed"),
    ("Configuration", "設定", "Configuration"),
    ("Critical", "重大", "Critical"),
    ("Delete", "削除", "Delete"),
    ("Drift", "差異検知", "Drift"),
    ("Emergency", "緊急", "Emergency"),
    ("Failed", "失敗", "Failed"),
    ("Firing", "発生中", "Firing"),
    ("Hardware", "ハードウェア", "Hardware"),
    ("Hold", "保留", "Hold"),
    ("HostReverted", "ホストを台帳に戻した", "Host reverted"),
    ("Implemented", "実施済", "Implemented"),
    ("InProgress", "対応中", "In progress"),
    ("Info", "情報", "Info"),
    ("Inquiry", "問い合わせ", "Inquiry"),
    ("Interrupted", "中断", "Interrupted"),
    ("LedgerUpdated", "台帳を更新した", "Ledger updated"),
    ("Line", "回線", "Line"),
    ("Major", "重要", "Major"),
    ("Minor", "軽微", "Minor"),
    ("Monitoring", "監視検知", "Monitoring"),
    ("Network", "ネットワーク", "Network"),
    ("New", "新規", "New"),
    ("OS", "OS", "OS"),
    ("Open", "未対応", "Open"),
    ("Other", "その他", "Other"),
    ("Patch", "パッチ", "Patch"),
    ("Pending", "未実施", "Pending"),
    ("Planned", "計画変更", "Planned"),
    ("Production", "本番", "Production"),
    ("Quarantine", "隔離", "Quarantine"),
    ("Recovered", "復旧", "Recovered"),
    ("Rejected", "却下", "Rejected"),
    ("Release", "リリース", "Release"),
    ("Rename", "拡張子変更", "Rename"),
    ("Resolved", "解決", "Resolved"),
    ("Software", "ソフトウェア", "Software"),
    ("Staging", "検証", "Staging"),
    ("Succeeded", "成功", "Succeeded"),
    ("Warning", "警告", "Warning"),
    ("actions", "対応内容", "Actions"),
    ("address", "IPアドレス", "Addresses"),
    ("affected_sites", "影響拠点", "Affected sites"),
    ("age_hours", "経過時間(時間)", "Age (hours)"),
    ("approved", "承認", "Approved"),
    ("architecture", "アーキテクチャ", "Architecture"),
    (
        "availability",
        "稼働率(業務時間)",
        "Availability (business hours)",
    ),
    ("average", "平均", "Average"),
    ("backups", "バックアップ状況", "Backups"),
    ("backups_failed", "失敗した取得", "Failed runs"),
    ("backups_runs", "当月の取得", "Runs in the month"),
    ("baseline", "パッチ基準", "Baseline"),
    ("build", "ビルド", "Build"),
    ("business_days", "営業日数", "Business days"),
    (
        "business_downtime",
        "業務時間内の停止(分)",
        "Downtime in business hours (min)",
    ),
    ("by_cause", "原因別", "By cause"),
    ("by_month", "月別", "By month"),
    ("by_resolution", "解決方法別", "By resolution"),
    ("by_server", "サーバ別", "By server"),
    ("by_severity", "重要度別", "By severity"),
    ("by_type", "種別別", "By type"),
    ("calendar", "運用カレンダー", "Operation calendar"),
    ("category", "分類", "Category"),
    ("cause", "原因", "Cause"),
    ("changes", "変更管理状況", "Change management"),
    ("changes_implemented", "実施した変更", "Changes implemented"),
    (
        "chart_note",
        "日ごとの平均(横軸:日、縦軸:値)",
        "Daily averages (x: day, y: value)",
    ),
    ("check", "監視項目", "Check"),
    (
        "checks_not_ok",
        "正常でない監視項目(報告時点)",
        "Checks not OK (at report time)",
    ),
    ("classification", "変更区分", "Classification"),
    ("compliance", "サーバ別適用状況", "Compliance per server"),
    ("compliant", "準拠", "Compliant"),
    ("count", "件数", "Count"),
    ("cpu", "CPU", "CPU"),
    ("cpu_cores", "CPUコア数", "CPU cores"),
    ("cpu_usage", "CPU使用率(%)", "CPU usage (%)"),
    ("detections", "検知", "Detections"),
    ("device", "機器", "Device"),
    ("devices", "接続機器", "Devices"),
    ("disk_io", "ディスクI/O(バイト/秒)", "Disk I/O (bytes/s)"),
    ("disk_usage", "ディスク使用率(%)", "Disk usage (%)"),
    ("disks", "ディスク", "Disks"),
    ("downtime", "停止時間(分)", "Downtime (min)"),
    ("drift", "現在の差異", "Current drift"),
    ("drift_opened", "差異検知(起票)", "Drift records opened"),
    ("drift_resolved", "差異検知(解決)", "Drift records resolved"),
    (
        "due_date",
        "提出期限(月末から7営業日)",
        "Due date (7th business day after month end)",
    ),
    ("engine", "エンジン", "Engine"),
    ("environment", "環境", "Environment"),
    ("failed", "失敗", "Failed"),
    ("failed_device", "障害機器", "Failed device"),
    ("files_scanned", "検査ファイル数", "Files scanned"),
    ("finished_at", "終了日時", "Finished"),
    ("firing_time", "発生時間(分)", "Firing time (min)"),
    ("fleet", "管理対象サーバ", "Servers"),
    ("generated_at", "作成日時", "Generated"),
    ("generations", "世代数", "Generations"),
    ("hardware_health", "ハードウェア状態", "Hardware health"),
    ("hold_reason", "判断理由", "Reason"),
    ("hostname", "ホスト名", "Hostname"),
    ("id", "ID", "ID"),
    ("incident", "インシデント", "Incident"),
    (
        "incident_analysis",
        "インシデント内容・集計分析書",
        "Incident analysis",
    ),
    ("incident_report", "インシデント報告書", "Incident report"),
    (
        "incidents",
        "インシデント管理・障害窓口運用状況",
        "Incident management",
    ),
    ("incidents_list", "インシデント一覧", "Incidents"),
    ("installed", "適用済", "Installed"),
    ("installed_at", "適用日時", "Installed at"),
    ("installed_on", "適用日", "Installed on"),
    ("judgement", "判断", "Judgement"),
    ("kernel", "カーネル", "Kernel"),
    ("kind", "種類", "Kind"),
    ("known_error", "既知のエラー", "Known error"),
    ("last_full", "最終フルバックアップ", "Last full backup"),
    ("last_scan", "最終スキャン", "Last scan"),
    ("last_verification", "最終検証", "Last verification"),
    (
        "lead_time_violated",
        "リードタイム違反",
        "Lead time violated",
    ),
    ("ledger", "構成管理台帳", "Configuration ledger"),
    ("location", "設置場所", "Location"),
    ("mac", "MACアドレス", "MAC"),
    ("maintenance", "保守作業実施状況", "Maintenance done"),
    ("maximum", "最大", "Maximum"),
    ("memory", "メモリ", "Memory"),
    ("memory_usage", "メモリ使用率(%)", "Memory usage (%)"),
    ("message", "メッセージ", "Message"),
    ("metric", "項目", "Measurement"),
    ("missed_hosts", "未実施ホスト", "Missed hosts"),
    ("missing", "未適用", "Missing"),
    ("model", "型番", "Model"),
    ("monitoring", "監視状況", "Monitoring"),
    ("month", "対象月", "Month"),
    (
        "monthly_title",
        "運用・保守管理業務報告書(月次)",
        "Monthly operations and maintenance report",
    ),
    ("mount_point", "マウントポイント", "Mount point"),
    ("mttr", "平均復旧時間(分)", "Mean time to recover (min)"),
    ("name", "名称", "Name"),
    ("namespace", "名前空間", "Namespace"),
    ("network", "ネットワーク(バイト/秒)", "Network (bytes/s)"),
    ("nics", "NIC", "NICs"),
    ("no", "いいえ", "no"),
    (
        "no_statistics",
        "稼働統計の取得元(Prometheus)が指定されていないため、稼働統計はありません。",
        "No source of operating statistics (Prometheus) was given, so there are none.",
    ),
    ("non_compliant", "非準拠", "Non-compliant"),
    ("none", "なし", "none"),
    ("occurred_at", "発生日時", "Occurred"),
    (
        "offsite_age",
        "遠隔地コピー経過(時間)",
        "Off-site copy age (hours)",
    ),
    ("open_at_end", "月末時点で未復旧", "Open at month end"),
    ("opened", "発生件数", "Opened"),
    ("os", "OS", "OS"),
    ("owner", "担当者", "Owner"),
    ("p95", "95パーセンタイル", "95th percentile"),
    ("package", "パッケージ", "Package"),
    ("patches", "パッチ適用状況", "Patches"),
    (
        "patches_failed",
        "当月の適用失敗",
        "Failed installs in the month",
    ),
    (
        "patches_installed",
        "当月に適用したパッチ",
        "Patches installed in the month",
    ),
    ("path", "パス", "Path"),
    ("period", "対象期間", "Period"),
    ("phase", "状態", "Phase"),
    ("plan", "バックアップ計画", "Plan"),
    (
        "planned_changes",
        "計画変更・リリース",
        "Planned changes and releases",
    ),
    ("policy", "監視ポリシー", "Policy"),
    ("prevention", "再発防止策", "Prevention"),
    ("problem", "問題", "Problem"),
    ("problems", "問題管理状況", "Problem management"),
    ("recovered", "復旧件数", "Recovered"),
    ("recovered_at", "復旧日時", "Recovered"),
    ("result", "結果", "Result"),
    ("reviews", "レビュー", "Reviews"),
    ("role", "役割", "Role"),
    ("serial", "シリアル番号", "Serial number"),
    ("server", "サーバ", "Server"),
    ("servers", "サーバ", "Servers"),
    ("service", "サービス全体", "Service"),
    ("service_up", "サービス稼働率(%)", "Services up (%)"),
    ("severity", "重要度", "Severity"),
    ("signature", "シグネチャ", "Signature"),
    (
        "signature_age",
        "定義ファイル経過(時間)",
        "Signature age (hours)",
    ),
    ("size", "容量", "Size"),
    ("software", "ソフトウェア", "Software"),
    ("stale_hosts", "定義ファイルが古いホスト", "Stale hosts"),
    ("started_at", "開始日時", "Started"),
    ("state", "対応状況", "State"),
    ("statistics", "稼働統計", "Operating statistics"),
    ("statistics_source", "取得元", "Source"),
    ("summary", "概要", "Summary"),
    ("timeline", "経緯", "Timeline"),
    ("title", "件名", "Title"),
    ("total", "合計", "Total"),
    ("type", "種別", "Type"),
    ("vendor", "メーカー", "Vendor"),
    ("verification", "検証結果", "Verification"),
    ("version", "バージョン", "Version"),
    ("virus", "ウイルス対策状況", "Antivirus"),
    (
        "web_requests",
        "Webアクセス数(件/秒)",
        "Web requests (per s)",
    ),
    ("window", "作業日時", "Window"),
    ("workaround", "回避策", "Workaround"),
    ("yes", "はい", "yes"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_entry_has_both_languages() {
        for w in TABLE.windows(2) {
            assert!(w[0].0 < w[1].0, "{} must come before {}", w[1].0, w[0].0);
        }
        for (k, ja, en) in TABLE {
            assert!(!ja.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(
            Lang::Ja.t("incidents"),
            "インシデント管理・障害窓口運用状況"
        );
        assert_eq!(Lang::En.t("Critical"), "Critical");
        assert_eq!(Lang::Ja.t("not-a-key"), "?");
    }
}
