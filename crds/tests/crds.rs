//! The committed CRDs match the types, and every field of every kind is documented.

use serde_json::Value;

#[test]
fn committed_crds_match_the_types() {
    for dir in unyo_crds::crdgen::COMMITTED_DIRS {
        committed_crds_in(dir);
    }
}

fn committed_crds_in(dir: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join(dir);
    let rendered = unyo_crds::crdgen::rendered().unwrap_or_else(|e| panic!("{e}"));
    let mut stale = Vec::new();
    for (name, yaml) in &rendered {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(committed) if &committed == yaml => {}
            Ok(_) => stale.push(format!("{name} differs")),
            Err(e) => stale.push(format!("{name}: {e}")),
        }
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    let mut expected: Vec<String> = rendered.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    if files != expected {
        stale.push(format!("files {files:?}, expected {expected:?}"));
    }
    assert!(
        stale.is_empty(),
        "{} is stale; run `cargo run -p unyo-crds --bin crdgen`: {stale:?}",
        dir.display()
    );
}

fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let p = format!("{path}.{name}");
            let described = prop
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            // apiVersion, kind and metadata are documented by Kubernetes itself.
            let builtin =
                path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&name.as_str());
            if !described && !builtin {
                out.push(p.clone());
            }
            undocumented(prop, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_field_has_a_description() {
    let mut missing = Vec::new();
    for crd in unyo_crds::crdgen::all_crds() {
        let kind = crd.spec.names.kind.clone();
        let schema =
            serde_json::to_value(&crd.spec.versions[0].schema).unwrap_or_else(|e| panic!("{e}"));
        undocumented(&schema["openAPIV3Schema"], &kind, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

#[test]
fn every_kind_is_namespaced_in_the_unyo_category() {
    let crds = unyo_crds::crdgen::all_crds();
    let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Server",
            "MonitoringPolicy",
            "PatchBaseline",
            "BackupPlan",
            "VirusScanSchedule",
            "OperationCalendar",
            "ChangeRecord",
            "Incident"
        ]
    );
    for crd in &crds {
        assert_eq!(crd.spec.group, "unyo.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["unyo".to_string()][..])
        );
    }
}

#[test]
fn conditions_merge_by_type_under_server_side_apply() {
    for crd in unyo_crds::crdgen::all_crds() {
        let schema =
            serde_json::to_value(&crd.spec.versions[0].schema).unwrap_or_else(|e| panic!("{e}"));
        let conditions =
            &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(
            conditions["x-kubernetes-list-type"], "map",
            "{}",
            crd.spec.names.kind
        );
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{}",
            crd.spec.names.kind
        );
    }
}
