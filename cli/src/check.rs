//! `unyo check`: offline validation of unyo.dev manifests.
//!
//! Each YAML document whose apiVersion is `unyo.dev/...` is deserialized as its kind (which names
//! the first field that has the wrong type or enum value, or is missing, and every field the kind
//! does not declare, such as a misspelt key) and then evaluated
//! against the CEL rules of the kind's generated CRD schema. Bounds and patterns of the OpenAPI
//! schema are checked by the API server (`kubectl apply --dry-run=server`), not here.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use unyo_crds::*;

/// Outcome of one document.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a unyo.dev document (or empty); the reason.
    Skipped(String),
    /// A valid unyo.dev object, `Kind/name`.
    Valid(String),
    /// An invalid unyo.dev object, `Kind/name`, with each problem.
    Invalid(String, Vec<String>),
}

/// Checks one parsed document.
pub fn check_document(doc: &Value, crds: &[CustomResourceDefinition]) -> Outcome {
    let Some(obj) = doc.as_object() else {
        return Outcome::Skipped("not a mapping".into());
    };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if group != GROUP {
        return Outcome::Skipped(format!("{api_version} {kind}"));
    }
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    let label = format!("{kind}/{name}");
    let mut problems = Vec::new();
    if version != VERSION {
        problems.push(format!(
            "apiVersion: {api_version} is not served; use {GROUP}/{VERSION}"
        ));
        return Outcome::Invalid(label, problems);
    }
    if name == "<no name>" {
        problems.push("metadata.name: Required value".into());
    }
    let typed = match kind {
        "Server" => parse_as::<Server>(doc),
        "MonitoringPolicy" => parse_as::<MonitoringPolicy>(doc),
        "PatchBaseline" => parse_as::<PatchBaseline>(doc),
        "BackupPlan" => parse_as::<BackupPlan>(doc),
        "VirusScanSchedule" => parse_as::<VirusScanSchedule>(doc),
        "OperationCalendar" => parse_as::<OperationCalendar>(doc),
        "ChangeRecord" => parse_as::<ChangeRecord>(doc),
        "Incident" => parse_as::<Incident>(doc),
        other => Err(format!("kind: Unsupported value: {other:?}")),
    };
    match typed {
        Ok(unknown) => problems.extend(unknown),
        Err(p) => {
            problems.push(p);
            return Outcome::Invalid(label, problems);
        }
    }
    let schema = crds
        .iter()
        .find(|c| c.spec.names.kind == kind)
        .and_then(|c| c.spec.versions.first())
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok());
    match schema {
        Some(schema) => {
            if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, doc, None) {
                problems.extend(errors.as_slice().iter().map(ToString::to_string));
            }
        }
        None => problems.push(format!("no schema for kind {kind}")),
    }
    if problems.is_empty() {
        Outcome::Valid(label)
    } else {
        Outcome::Invalid(label, problems)
    }
}

/// Parses `doc` as `K`; returns the fields of `doc` that `K` does not declare (the API server
/// refuses those too), or the first field that does not parse.
fn parse_as<K: DeserializeOwned + Serialize>(doc: &Value) -> Result<Vec<String>, String> {
    let typed: K = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    undeclared_fields(doc, &back, "", &mut unknown);
    Ok(unknown
        .into_iter()
        .map(|p| format!("{p}: field not declared in schema"))
        .collect())
}

/// Collects the paths of keys in `input` that the typed round trip `typed` dropped. Empty values
/// (null, [], {}) are not reported: the types leave them out when serializing.
fn undeclared_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (key, value) in i {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match t.get(key) {
                    Some(tv) => undeclared_fields(value, tv, &p, out),
                    None if is_empty(value) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                undeclared_fields(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Parses every YAML document of `text`.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| e.to_string())
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                collect(&entry, out)?;
            } else if matches!(
                entry.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(entry);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Reads a file, or standard input for `-`.
pub fn read_source(path: &Path) -> std::io::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}

/// Runs `unyo check` over `paths`, printing one line per document.
pub fn run(paths: &[PathBuf], quiet: bool) -> ExitCode {
    let crds = crdgen::all_crds();
    let mut files = Vec::new();
    for p in paths {
        if let Err(e) = collect(p, &mut files) {
            eprintln!("{}: {e}", p.display());
            return ExitCode::from(2);
        }
    }
    let (mut valid, mut invalid, mut skipped) = (0usize, 0usize, 0usize);
    for file in &files {
        let text = match read_source(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        let docs = match parse_documents(&text) {
            Ok(d) => d,
            Err(e) => {
                println!("{}: invalid YAML: {e}", file.display());
                invalid += 1;
                continue;
            }
        };
        for (i, doc) in docs.iter().enumerate() {
            let at = format!("{}#{}", file.display(), i + 1);
            match check_document(doc, &crds) {
                Outcome::Skipped(_) => skipped += 1,
                Outcome::Valid(label) => {
                    valid += 1;
                    if !quiet {
                        println!("{at}: {label}: ok");
                    }
                }
                Outcome::Invalid(label, problems) => {
                    invalid += 1;
                    for p in problems {
                        println!("{at}: {label}: {p}");
                    }
                }
            }
        }
    }
    println!("{valid} valid, {invalid} invalid, {skipped} skipped (not unyo.dev)");
    if invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn calendar() -> Value {
        json!({
            "apiVersion": "unyo.dev/v1alpha1",
            "kind": "OperationCalendar",
            "metadata": {"name": "ops", "namespace": "mie"},
            "spec": {"timeZone": "Asia/Tokyo", "businessHours": {"start": "08:00", "end": "19:00"}}
        })
    }

    #[test]
    fn valid_document_passes() {
        let crds = crdgen::all_crds();
        assert_eq!(
            check_document(&calendar(), &crds),
            Outcome::Valid("OperationCalendar/ops".into())
        );
    }

    #[test]
    fn other_groups_are_skipped() {
        let crds = crdgen::all_crds();
        let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mie"}});
        assert!(matches!(check_document(&doc, &crds), Outcome::Skipped(_)));
    }

    #[test]
    fn cel_rule_failure_names_the_field() {
        let crds = crdgen::all_crds();
        let mut doc = calendar();
        doc["spec"]["businessHours"]["end"] = json!("07:00");
        match check_document(&doc, &crds) {
            Outcome::Invalid(label, problems) => {
                assert_eq!(label, "OperationCalendar/ops");
                assert!(
                    problems
                        .iter()
                        .any(|p| p.contains("businessHours") && p.contains("end must be after")),
                    "{problems:?}"
                );
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn wrong_enum_value_names_the_path() {
        let crds = crdgen::all_crds();
        let mut doc = calendar();
        doc["spec"]["nationalHolidays"] = json!("France");
        match check_document(&doc, &crds) {
            Outcome::Invalid(_, problems) => {
                assert!(
                    problems[0].starts_with("spec.nationalHolidays: unknown variant `France`"),
                    "{problems:?}"
                );
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn missing_required_field_and_unknown_kind() {
        let crds = crdgen::all_crds();
        let mut doc = calendar();
        doc["spec"]
            .as_object_mut()
            .map(|s| s.remove("businessHours"));
        match check_document(&doc, &crds) {
            Outcome::Invalid(_, problems) => {
                assert!(problems[0].contains("businessHours"), "{problems:?}")
            }
            other => panic!("expected invalid, got {other:?}"),
        }
        let mut doc = calendar();
        doc["kind"] = json!("Widget");
        assert!(matches!(
            check_document(&doc, &crds),
            Outcome::Invalid(_, _)
        ));
        let mut doc = calendar();
        doc["apiVersion"] = json!("unyo.dev/v1");
        assert!(matches!(
            check_document(&doc, &crds),
            Outcome::Invalid(_, _)
        ));
    }

    #[test]
    fn undeclared_fields_are_reported_by_path() {
        let crds = crdgen::all_crds();
        let mut doc = calendar();
        doc["spec"]["windows"] =
            json!([{"name": "w", "on": "BusinessDays", "start": "09:00", "end": "19:00"}]);
        doc["spec"]["timezone"] = json!("Asia/Tokyo");
        doc["spec"]["closures"] = json!([]);
        match check_document(&doc, &crds) {
            Outcome::Invalid(_, problems) => assert_eq!(
                problems,
                [
                    "spec.timezone: field not declared in schema",
                    "spec.windows[0].on: field not declared in schema"
                ]
            ),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn multi_document_yaml_parses() {
        let docs = parse_documents("a: 1\n---\nb: 2\n").unwrap_or_default();
        assert_eq!(docs.len(), 2);
        assert!(parse_documents("a: [1,\n").is_err());
    }
}
