//! Every list in every status has a limit in its schema; the writers cut an over-long list to it
//! (`unyo_crds::limits::Bounded`), and the real API server refuses the uncut list, naming it,
//! and takes the cut one.
//!
//! The statuses are generated from the CRDs' own schemas: every list one longer than its limit
//! (the first entry's own lists too), so no list is left out and no limit is written twice.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::discovery::ApiResource;
use kube::{CustomResourceExt, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use unyo_crds::limits::Bounded;
use unyo_tests::{ControlPlane, control_plane, repo_root};

/// Values for a schema, strings all distinct (so list-map keys never collide).
struct Generator {
    counter: usize,
}

impl Generator {
    /// A value for `schema`; with `long`, every list is one entry over its `maxItems`.
    fn value(&mut self, schema: &Value, long: bool) -> Value {
        if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
            return first.clone();
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => {
                let mut out = serde_json::Map::new();
                for (k, s) in schema["properties"].as_object().into_iter().flatten() {
                    out.insert(k.clone(), self.value(s, long));
                }
                Value::Object(out)
            }
            Some("array") => {
                let max = schema["maxItems"].as_u64().unwrap_or(0) as usize;
                let n = if long { max + 1 } else { 1 };
                (0..n)
                    .map(|i| self.value(&schema["items"], long && i == 0))
                    .collect()
            }
            Some("string") if schema["format"] == "date-time" => json!("2026-01-01T00:00:00Z"),
            Some("string") if schema.get("pattern").is_some() => json!("2026-01-01"),
            Some("string") => {
                self.counter += 1;
                json!(format!("v{}", self.counter))
            }
            Some("integer") => json!(schema["minimum"].as_f64().unwrap_or(1.0).max(1.0) as u64),
            Some("number") => json!(1.5),
            Some("boolean") => json!(false),
            _ => json!("1"),
        }
    }
}

/// The status schema of the CRD for `K`, as generated in manifests/crds.
fn status_schema<K: CustomResourceExt>() -> Value {
    let path = repo_root().join(format!("manifests/crds/{}.yaml", K::crd_name()));
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"].clone()
}

/// Every list under `schema` in `value`: its path, its length and its limit.
fn lists(schema: &Value, value: &Value, path: &str, out: &mut Vec<(String, usize, Option<u64>)>) {
    match (schema.get("type").and_then(Value::as_str), value) {
        (Some("array"), Value::Array(items)) => {
            out.push((path.into(), items.len(), schema["maxItems"].as_u64()));
            for item in items {
                lists(&schema["items"], item, &format!("{path}[]"), out);
            }
        }
        (Some("object"), Value::Object(map)) => {
            for (k, v) in map {
                lists(&schema["properties"][k], v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// The longest of each list path.
fn longest(schema: &Value, value: &Value) -> BTreeMap<String, (usize, Option<u64>)> {
    let mut all = Vec::new();
    lists(schema, value, "status", &mut all);
    let mut out: BTreeMap<String, (usize, Option<u64>)> = BTreeMap::new();
    for (path, len, max) in all {
        let e = out.entry(path).or_insert((0, max));
        e.0 = e.0.max(len);
    }
    out
}

/// The generated over-long status and the same cut by the status type's `bound()`.
fn long_and_cut<K>() -> (Value, Value, Value)
where
    K: CustomResourceExt + HasStatus,
    K::Status: Bounded + DeserializeOwned + Serialize,
{
    let schema = status_schema::<K>();
    let long = Generator { counter: 0 }.value(&schema, true);
    let mut typed: K::Status = serde_json::from_value(long.clone()).unwrap();
    typed.bound();
    (schema, long, serde_json::to_value(typed).unwrap())
}

/// Each list of the cut status is exactly at its limit (it was one over).
fn assert_cut_to_limits(kind: &str, schema: &Value, long: &Value, cut: &Value) {
    let before = longest(schema, long);
    let after = longest(schema, cut);
    for (path, (len, max)) in &before {
        let max = max.unwrap_or_else(|| panic!("{kind} {path} has no maxItems"));
        assert_eq!(
            *len as u64,
            max + 1,
            "{kind} {path} was generated over-long"
        );
        assert_eq!(
            after.get(path).map(|(l, _)| *l as u64),
            Some(max),
            "{kind} {path}: cut to its limit, not dropped"
        );
    }
    assert!(before.len() > 1, "{kind}: lists were generated");
}

#[test]
fn every_status_list_is_cut_to_the_limit_its_schema_states() {
    fn check<K>()
    where
        K: CustomResourceExt + HasStatus,
        K::Status: Bounded + DeserializeOwned + Serialize,
    {
        let (schema, long, cut) = long_and_cut::<K>();
        assert_cut_to_limits(K::crd_name(), &schema, &long, &cut);
    }
    check::<unyo_crds::Server>();
    check::<unyo_crds::BackupPlan>();
    check::<unyo_crds::ChangeRecord>();
    check::<unyo_crds::Incident>();
    check::<unyo_crds::MonitoringPolicy>();
    check::<unyo_crds::OperationCalendar>();
    check::<unyo_crds::PatchBaseline>();
    check::<unyo_crds::VirusScanSchedule>();
}

#[test]
fn a_cut_list_of_facts_is_an_unknown_fact_so_no_drift_is_judged_on_it() {
    let (_, _, cut) = long_and_cut::<unyo_crds::Server>();
    let status: unyo_crds::ServerStatus = serde_json::from_value(cut).unwrap();
    let observed = status.observed.unwrap();
    let unknown: Vec<&str> = observed.unknown.iter().map(|u| u.fact.as_str()).collect();
    for fact in ["packages", "services", "disks", "filesystems", "nics"] {
        assert!(unknown.contains(&fact), "{fact} in {unknown:?}");
    }
    let packages = observed
        .unknown
        .iter()
        .find(|u| u.fact == "packages")
        .unwrap();
    let found = format!("{} found", unyo_crds::limits::PACKAGES + 1);
    assert!(packages.reason.contains(&found), "{}", packages.reason);
    // A declared package beyond the cut is not reported as removed (it would be, were the
    // cut list taken for the whole).
    let text =
        std::fs::read_to_string(repo_root().join("manifests/samples/servers/db01.yaml")).unwrap();
    let mut spec = serde_saphyr::from_str::<unyo_crds::Server>(&text)
        .unwrap()
        .spec;
    spec.hostname = observed.hostname.clone().unwrap_or_default();
    spec.hardware = None;
    spec.software =
        vec![serde_json::from_value(json!({"name": "beyond-the-cut", "version": "1"})).unwrap()];
    let removed = |facts: &unyo_crds::server::ObservedFacts| {
        unyo_crds::drift::compare(&spec, facts)
            .iter()
            .any(|d| d.path.contains("beyond-the-cut"))
    };
    assert!(!removed(&observed));
    let mut taken_whole = observed.clone();
    taken_whole.unknown.clear();
    assert!(removed(&taken_whole));
}

/// The most a status with every list at its limit may take with the generated (short) names.
const LIMIT: usize = 1 << 20;

/// Creates the sample in `file` in `ns` and returns the name of the first object `api` lists.
async fn sample(cp: &ControlPlane, ns: &str, file: &str, api: &Api<DynamicObject>) -> String {
    let text = std::fs::read_to_string(repo_root().join("manifests/samples").join(file))
        .unwrap()
        .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "-f", "-"], Some(&text)).unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items[0].metadata.name.clone().unwrap()
}

#[tokio::test]
async fn the_api_server_refuses_an_uncut_list_and_takes_the_cut_one() {
    async fn check<K>(cp: &ControlPlane, ns: &str, file: &str)
    where
        K: CustomResourceExt + HasStatus + Resource<DynamicType = ()>,
        K::Status: Bounded + DeserializeOwned + Serialize,
    {
        let kind = K::kind(&()).to_string();
        let api: Api<DynamicObject> = Api::namespaced_with(
            cp.client().await.unwrap(),
            ns,
            &ApiResource::erase::<K>(&()),
        );
        let name = sample(cp, ns, file, &api).await;
        let (schema, long, cut) = long_and_cut::<K>();
        let pp = PatchParams::apply("unyo-bounds-test").force();
        let body = |status: &Value| json!({"apiVersion": K::api_version(&()), "kind": kind, "status": status});
        let refused = api
            .patch_status(&name, &pp, &Patch::Apply(body(&long)))
            .await
            .expect_err("an uncut status is refused");
        let text = refused.to_string();
        assert!(
            text.contains("status.") && text.contains("must have at most"),
            "{kind}: the refusal names the list: {text}"
        );
        let size = serde_json::to_vec(&body(&cut)).unwrap().len();
        let written = api
            .patch_status(&name, &pp, &Patch::Apply(body(&cut)))
            .await
            .unwrap_or_else(|e| panic!("{kind}: the cut status ({size} bytes) is taken: {e}"));
        println!(
            "{kind}: a status with every list at its limit: {size} bytes (limit {LIMIT}), taken"
        );
        // Room under etcd's 1.5 MiB for longer names than generated here and managedFields.
        assert!(size < LIMIT, "{kind}: {size} bytes");
        let stored = &written.data["status"];
        assert_cut_to_limits(&kind, &schema, &long, stored);
    }
    let cp = control_plane().unwrap();
    cp.install_crds().unwrap();
    let ns = cp.namespace("bounds").await.unwrap();
    check::<unyo_crds::Server>(cp, &ns, "servers/db01.yaml").await;
    check::<unyo_crds::BackupPlan>(cp, &ns, "backup.yaml").await;
    check::<unyo_crds::ChangeRecord>(cp, &ns, "planned-change.yaml").await;
    check::<unyo_crds::Incident>(cp, &ns, "inquiry-incident.yaml").await;
    check::<unyo_crds::MonitoringPolicy>(cp, &ns, "monitoring.yaml").await;
    check::<unyo_crds::OperationCalendar>(cp, &ns, "calendar.yaml").await;
    check::<unyo_crds::PatchBaseline>(cp, &ns, "patch-baselines.yaml").await;
    check::<unyo_crds::VirusScanSchedule>(cp, &ns, "virusscan.yaml").await;
}
