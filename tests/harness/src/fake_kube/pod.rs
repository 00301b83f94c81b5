//! Decoding a Pod body as the apiserver does (type errors, unknown fields), and what it
//! fills in on create (scheme defaults, admission, metadata).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use super::decode::{self, Ty};

/// A decoded Pod and the unknown fields found in it (`spec.foo`, `spec.containers[0].bar`).
pub(super) type Decoded = decode::Decoded;

/// How the apiserver decodes a Pod: core `v1`, converted to `core.Pod`.
const POD_KIND: decode::ObjectKind = decode::ObjectKind {
    api_version: "v1",
    kind: "Pod",
    internal: "core.Pod",
    same_version_kinds: CORE_V1_KINDS,
    other_served_versions: &[],
    ty: &POD,
    typed: |pod| {
        let typed: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(pod).map_err(|e| e.to_string())?;
        serde_json::to_value(&typed).map_err(|e| e.to_string())
    },
};

/// Decodes a create body; `Err` is the message of a 400 BadRequest.
pub(super) fn decode(body: &[u8]) -> Result<Decoded, String> {
    decode::decode(body, &POD_KIND)
}

const CORE_V1_KINDS: &[&str] = &[
    "Binding",
    "ConfigMap",
    "Endpoints",
    "Event",
    "LimitRange",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "PodTemplate",
    "ReplicationController",
    "ResourceQuota",
    "Secret",
    "Service",
    "ServiceAccount",
];

const POD: Ty = Ty::Struct("v1.Pod", &[("metadata", META), ("spec", SPEC)]);
pub(super) const META: Ty = Ty::Struct(
    "v1.ObjectMeta",
    &[
        ("name", Ty::Str("string")),
        ("generateName", Ty::Str("string")),
        ("namespace", Ty::Str("string")),
        ("labels", Ty::StrMap),
        ("annotations", Ty::StrMap),
    ],
);
const SPEC: Ty = Ty::Struct(
    "v1.PodSpec",
    &[
        ("containers", Ty::StructList("v1.Container", CONTAINER)),
        ("restartPolicy", Ty::Str("v1.RestartPolicy")),
        ("dnsPolicy", Ty::Str("v1.DNSPolicy")),
        ("activeDeadlineSeconds", Ty::Int64),
        ("terminationGracePeriodSeconds", Ty::Int64),
        ("serviceAccountName", Ty::Str("string")),
        ("automountServiceAccountToken", Ty::Bool),
        ("nodeSelector", Ty::StrMap),
    ],
);
const CONTAINER: &[(&str, Ty)] = &[
    ("name", Ty::Str("string")),
    ("image", Ty::Str("string")),
    ("imagePullPolicy", Ty::Str("v1.PullPolicy")),
    ("command", Ty::StrList),
    ("args", Ty::StrList),
    ("workingDir", Ty::Str("string")),
    ("env", Ty::StructList("v1.EnvVar", &[("name", Ty::Str("string")), ("value", Ty::Str("string"))])),
];

/// What decoding defaults (`SetObjectDefaults_Pod`) for the fields the fake knows.
pub(super) fn apply_scheme_defaults(pod: &mut Value) {
    let spec = object_at(pod, "spec");
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    // SetDefaults_*VolumeSource: file modes 0644; SetDefaults_ObjectFieldSelector: apiVersion v1.
    for volume in spec.get_mut("volumes").and_then(Value::as_array_mut).into_iter().flatten() {
        for source in ["configMap", "secret", "downwardAPI", "projected"] {
            if let Some(source) = volume.get_mut(source).and_then(Value::as_object_mut) {
                default(source, "defaultMode", json!(420));
            }
        }
        let items = volume.pointer_mut("/downwardAPI/items").and_then(Value::as_array_mut);
        let field_refs = items.into_iter().flatten().filter_map(|item| item.get_mut("fieldRef"));
        for field_ref in field_refs.filter_map(Value::as_object_mut) {
            default(field_ref, "apiVersion", json!("v1"));
        }
    }
    for c in containers_mut(spec) {
        let policy = image_pull_policy(c.get("image").and_then(Value::as_str).unwrap_or(""));
        default(c, "imagePullPolicy", json!(policy));
        default(c, "terminationMessagePath", json!("/dev/termination-log"));
        default(c, "terminationMessagePolicy", json!("File"));
        default(c, "resources", json!({}));
    }
}

/// Every container of a pod's spec, init containers included.
fn containers_mut(spec: &mut Map<String, Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    spec.iter_mut()
        .filter(|(key, _)| key.as_str() == "initContainers" || key.as_str() == "containers")
        .flat_map(|(_, list)| list.as_array_mut().into_iter().flatten())
        .filter_map(Value::as_object_mut)
}

/// `Always` for `:latest` or no tag (and no digest), else `IfNotPresent`.
fn image_pull_policy(image: &str) -> &'static str {
    let (name, digest) = image.split_once('@').map_or((image, None), |(n, d)| (n, Some(d)));
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.split_once(':'), digest) {
        (Some((_, "latest")), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// What the ServiceAccount, DefaultTolerationSeconds and Priority admission plugins add.
pub(super) fn admit(pod: &mut Value) {
    let spec = object_at(pod, "spec");
    default(spec, "serviceAccountName", json!("default"));
    let account = spec["serviceAccountName"].clone();
    spec.insert("serviceAccount".into(), account);
    default(spec, "priority", json!(0));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            if !list.iter().any(|t| t["key"] == key) {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    if spec.get("automountServiceAccountToken") == Some(&json!(false)) {
        return;
    }
    let volume = format!("kube-api-access-{}", random_suffix());
    if let Some(volumes) = spec.entry("volumes").or_insert_with(|| json!([])).as_array_mut() {
        volumes.push(json!({
            "name": volume,
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ],
                "defaultMode": 420
            }
        }));
    }
    for c in containers_mut(spec) {
        if let Some(mounts) = c.entry("volumeMounts").or_insert_with(|| json!([])).as_array_mut() {
            mounts.push(json!({"name": volume, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}));
        }
    }
}

/// Server-set metadata and status of a created Pod.
pub(super) fn finish_create(pod: &mut Value, manager: &str, resource_version: Option<u64>) {
    let now = rfc3339_now();
    let fields = fields_v1(pod);
    let meta = object_at(pod, "metadata");
    meta.insert("uid".into(), json!(uid()));
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    meta.insert("creationTimestamp".into(), json!(now));
    meta.insert(
        "managedFields".into(),
        json!([{"manager": manager, "operation": "Update", "apiVersion": "v1", "time": now, "fieldsType": "FieldsV1", "fieldsV1": fields}]),
    );
    admit(pod);
    let qos = qos_class(pod);
    let gated = pod["spec"]["schedulingGates"].as_array().is_some_and(|gates| !gates.is_empty());
    let status = object_at(pod, "status");
    status.extend([("phase".to_owned(), json!("Pending")), ("qosClass".to_owned(), json!(qos))]);
    // The apiserver itself marks a gated pod on create (`applySchedulingGatedCondition`).
    if gated {
        status.insert(
            "conditions".into(),
            json!([{"type": "PodScheduled", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
                    "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}]),
        );
    }
}

/// `BestEffort` without requests or limits; `Guaranteed` when every container limits cpu and
/// memory with requests equal to them; else `Burstable`.
fn qos_class(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let resources =
        |c: &Value, kind: &str| c["resources"][kind].as_object().filter(|m| !m.is_empty()).cloned();
    if containers.iter().all(|c| resources(c, "requests").is_none() && resources(c, "limits").is_none()) {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = resources(c, "limits").unwrap_or_default();
        let requests = resources(c, "requests").unwrap_or_default();
        ["cpu", "memory"]
            .iter()
            .all(|r| limits.contains_key(*r) && requests.get(*r).is_none_or(|q| Some(q) == limits.get(*r)))
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

/// `FieldsV1` of what the request set (after scheme defaults), as the field manager records.
fn fields_v1(pod: &Value) -> Value {
    fields_v1_of(pod, &["status"])
}

/// `FieldsV1` of an object's fields but `skip` (the field manager strips `apiVersion`, `kind`
/// and the system fields of `metadata`).
pub(super) fn fields_v1_of(object: &Value, skip: &[&str]) -> Value {
    let mut fields = Map::new();
    for (key, value) in object.as_object().into_iter().flatten() {
        if skip.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                let mut meta = Map::new();
                for map in ["labels", "annotations"] {
                    if let Some(m) = value.get(map).and_then(Value::as_object) {
                        meta.insert(format!("f:{map}"), map_fields(m));
                    }
                }
                if !meta.is_empty() {
                    fields.insert("f:metadata".into(), Value::Object(meta));
                }
            }
            // An empty struct (a TokenReview's zero `status`) sets no field.
            _ if value.as_object().is_some_and(Map::is_empty) => {}
            _ => {
                fields.insert(format!("f:{key}"), struct_fields(value));
            }
        }
    }
    Value::Object(fields)
}

fn map_fields(m: &Map<String, Value>) -> Value {
    let mut out = Map::from_iter([(".".to_owned(), json!({}))]);
    out.extend(m.keys().map(|k| (format!("f:{k}"), json!({}))));
    Value::Object(out)
}

fn struct_fields(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let child = match (k.as_str(), v) {
                        ("containers" | "initContainers", Value::Array(items)) => keyed_list(items),
                        ("labels" | "annotations" | "nodeSelector", Value::Object(m)) => map_fields(m),
                        (_, Value::Object(_)) => struct_fields(v),
                        _ => json!({}),
                    };
                    (format!("f:{k}"), child)
                })
                .collect(),
        ),
        _ => json!({}),
    }
}

fn keyed_list(items: &[Value]) -> Value {
    let mut out = Map::new();
    for item in items {
        let name = item["name"].as_str().unwrap_or("");
        let mut fields = Map::from_iter([(".".to_owned(), json!({}))]);
        if let Value::Object(f) = struct_fields(item) {
            fields.extend(f);
        }
        out.insert(format!("k:{{\"name\":{}}}", json!(name)), Value::Object(fields));
    }
    Value::Object(out)
}

pub(super) fn object_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let slot = ensure_object(v).entry(key).or_insert_with(|| json!({}));
    ensure_object(slot)
}

fn ensure_object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    let slot = m.entry(key).or_insert(Value::Null);
    if slot.is_null() || slot.as_str() == Some("") {
        *slot = value;
    }
}

/// A random-enough u64 without a `rand` dependency.
pub(super) fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// `utilrand.String(5)`, as used for `generateName` and volume names.
pub(super) fn random_suffix() -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random();
    (0..5)
        .map(|_| {
            let c = ALPHANUMS[(r % ALPHANUMS.len() as u64) as usize] as char;
            r /= ALPHANUMS.len() as u64;
            c
        })
        .collect()
}

pub(super) fn uid() -> String {
    let (a, b) = (random(), random());
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        8 | (b & 3),
        &hex[17..20],
        &hex[20..32]
    )
}

/// UTC now as RFC 3339 with seconds, like `metav1.Time`.
pub(super) fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_by_tag() {
        assert_eq!(image_pull_policy("alpine/curl"), "Always");
        assert_eq!(image_pull_policy("alpine/curl:latest"), "Always");
        assert_eq!(image_pull_policy("alpine/curl:8.5.0"), "IfNotPresent");
        assert_eq!(image_pull_policy("localhost:5000/curl"), "Always");
        assert_eq!(image_pull_policy("curl@sha256:abcd"), "IfNotPresent");
    }

    #[test]
    fn timestamps_and_uids_look_right() {
        let ts = rfc3339_now();
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        let uid = uid();
        assert_eq!(uid.len(), 36, "{uid}");
        assert_eq!(&uid[14..15], "4");
    }

    #[test]
    fn type_errors_read_like_go() {
        let err = decode(br#"{"metadata":{"labels":"x"}}"#).err().unwrap();
        assert_eq!(
            err,
            r#"Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"#
        );
        let err = decode(br#"{"spec":{"containers":[{"command":[1]}]}}"#).err().unwrap();
        assert!(err.ends_with("Go struct field Container.spec.containers.command of type string"), "{err}");
    }

    #[test]
    fn unknown_fields_are_found() {
        let d = decode(br#"{"metadata":{"name":"p"},"spec":{"containerz":[],"containers":[{"name":"c","image":"i","imagePolicy":"x"}]}}"#)
            .ok()
            .unwrap();
        assert_eq!(d.unknown_fields, ["spec.containers[0].imagePolicy", "spec.containerz"]);
    }
}
