//! Static checks of the cluster manifests (`deploy/`, `runtime-class/`) against each other,
//! against `spin.toml` and against the component's code. No cluster is needed: every rule
//! here is about what the files say.
//!
//! - Every YAML document parses (`load.rs` finds, parses and looks up the files).
//! - Core kinds deserialize into their k8s-openapi types and serialize back to the same
//!   JSON: a field the type does not know (a typo, a field of another kind) would be dropped
//!   and is reported. The CRD kinds (SpinApp, SpinAppExecutor, Broker, Trigger, the
//!   Kustomization), the pod-gateway Helm values and Spin's runtime config go through typed
//!   structs with `deny_unknown_fields` that name the fields this project uses, with their
//!   types (`crds.rs`, with the ApiServerSource, the EventType and the EventPolicy; the rule is in
//!   `rules/kinds.rs`, with: no cluster-wide RBAC but the token review, every namespace
//!   used exists).
//! - The set is consistent (`rules/`, one file per concern):
//!   - `spin.rs`: the SpinApp runs on the shim (executor → RuntimeClass → handler) with a
//!     versioned image; every Spin variable is fed to the SpinApp and nothing else is, from
//!     keys that exist; the ConfigMap's values are accepted by the component's own loader;
//!     every key-value store spin.toml uses exists under the shim.
//!   - `identity.rs`: the token comes from the SpinApp's ServiceAccount; the runtime config
//!     trusts the cluster CA for the API host.
//!   - `rbac.rs`: the Role grants what the code calls and nothing more, in the client
//!     namespace, to the SpinApp's ServiceAccount.
//!   - `eventing.rs`: Broker, Triggers, player and Services are wired to each other and to
//!     the SpinApp; the delivery spec fits the component's status codes.
//!   - `routing.rs`: the namespace the component writes to is the one the gateways route,
//!     and the gateways match the annotation and label the component writes.
//!   - `kustomize.rs`: `kubectl apply -k deploy/` applies exactly these manifests.
//!   - `lifecycle.rs`: the ApiServerSource watches exactly the client Pods, in Resource mode,
//!     with a Role of get/list/watch on pods, and sends to the Broker's ingress; the Pod
//!     updates, deletions and release events each reach the component through one Trigger;
//!     every type the component consumes or produces has one EventType naming its data
//!     fields (the contract's list of fields per type is there).
//!   - `auth.rs`: sender authentication (Knative OIDC): every Trigger to the component names
//!     `auth_audience` as its subscriber's audience; `auth_allowed_senders` lists exactly the
//!     OIDC ServiceAccounts Knative makes for those Triggers (names short enough not to be
//!     hashed); a ClusterRole of exactly `create` on tokenreviews is bound to the SpinApp's
//!     ServiceAccount; one EventPolicy on the Broker lets in the ApiServerSource (by ref, in
//!     its namespace), the Triggers' OIDC ServiceAccounts (their replies) and the curl sender,
//!     and no subject outside the Broker's namespace.
//!
//! Each consistency rule is a function that returns the problems it finds (all of them in
//! `rules::RULES`). Next to the test that runs it on the real files, a test breaks a copy
//! of the files in memory and asserts that the rule reports it, so no rule can silently
//! stop checking.

#[path = "../common/contract.rs"]
mod contract;
mod crds;
mod load;
mod rules;

use std::fs;

use serde_json::{Value, json};

use load::{Doc, Manifests, is_helm_values, load, parse_yaml_documents, root, yaml_files};
use rules::eventing::iso8601_seconds;
use rules::identity::url_host;
use rules::routing::ROUTED_LABEL;
use rules::{RULES, Rule, auth, eventing, identity, kinds, kustomize, lifecycle, rbac, routing, spin};

// ---------------------------------------------------------------------------------------
// Running a rule on the real files and on a broken copy
// ---------------------------------------------------------------------------------------

fn assert_holds(rule: Rule) {
    let problems = rule(&load());
    assert!(problems.is_empty(), "problems:\n  {}", problems.join("\n  "));
}

/// Breaks a copy of the manifests and returns what the rule reports.
fn broken(rule: Rule, mutate: impl FnOnce(&mut Manifests)) -> Vec<String> {
    let mut m = load();
    mutate(&mut m);
    rule(&m)
}

/// Asserts that the rule reports the breakage with a message containing `expected`.
fn assert_catches(rule: Rule, expected: &str, mutate: impl FnOnce(&mut Manifests)) {
    let problems = broken(rule, mutate);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem containing {expected:?}, got {problems:#?}"
    );
}

fn doc_mut<'a>(m: &'a mut Manifests, kind: &str, name: &str) -> &'a mut Value {
    &mut m
        .docs
        .iter_mut()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .value
}

fn spin_app_mut(m: &mut Manifests) -> &mut Value {
    &mut m.docs.iter_mut().find(|d| d.kind() == "SpinApp").expect("a SpinApp").value
}

fn config_mut(m: &mut Manifests) -> &mut Value {
    &mut m
        .docs
        .iter_mut()
        .find(|d| d.kind() == "ConfigMap" && d.value["data"].get("client_namespace").is_some())
        .expect("the component's ConfigMap")
        .value["data"]
}

fn variable_mut<'a>(m: &'a mut Manifests, name: &str) -> &'a mut Value {
    spin_app_mut(m)["spec"]["variables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no SpinApp variable {name}"))
}

/// The ClusterRole (and its ClusterRoleBinding) that lets the component review tokens.
const TOKEN_REVIEWER: &str = "podgateway-client-provisioner-token-reviewer";

fn trigger_mut<'a>(m: &'a mut Manifests, name: &str) -> &'a mut Value {
    doc_mut(m, "Trigger", name)
}

fn api_server_source_mut(m: &mut Manifests) -> &mut Value {
    doc_mut(m, "ApiServerSource", "client-pods")
}

/// The ApiServerSource's Role.
fn watcher_role_mut(m: &mut Manifests) -> &mut Value {
    doc_mut(m, "Role", "client-pod-watcher")
}

/// The EventPolicy of the Broker (deploy/eventpolicy.yaml).
fn event_policy_mut(m: &mut Manifests) -> &mut Value {
    doc_mut(m, "EventPolicy", "podgateway-senders")
}

fn ready_event_type_mut(m: &mut Manifests) -> &mut Value {
    doc_mut(m, "EventType", "io-podgateway-client-ready")
}

/// The Helm values of gateway `name` (deploy/pod-gateway-<name>-values.yaml).
fn gateway_mut<'a>(m: &'a mut Manifests, name: &str) -> &'a mut Value {
    m.helm_values
        .get_mut(&format!("deploy/pod-gateway-{name}-values.yaml"))
        .unwrap_or_else(|| panic!("no pod-gateway values for {name}"))
}

/// Replaces `from` by `to` in the runtime-config.toml of the runtime config Secret.
fn edit_runtime_config(m: &mut Manifests, from: &str, to: &str) {
    let rc =
        &mut doc_mut(m, "Secret", "client-provisioner-runtime-config")["stringData"]["runtime-config.toml"];
    *rc = json!(rc.as_str().unwrap().replace(from, to));
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_yaml_document_parses() {
    let files = yaml_files();
    assert!(files.len() >= 10, "manifests missing: {files:?}");
    for file in &files {
        let text = fs::read_to_string(root().join(file)).unwrap();
        let docs = parse_yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!docs.is_empty(), "{file}: no document");
        if !is_helm_values(file) {
            for doc in &docs {
                assert!(doc["apiVersion"].is_string() && doc["kind"].is_string(), "{file}: {doc}");
            }
        }
    }
    assert!(parse_yaml_documents("a: [1, 2\n").is_err(), "a broken document must not parse");
    // The manifests as a whole: what the other tests read.
    let m = load();
    for kind in ["Namespace", "ServiceAccount", "Secret", "Role", "RoleBinding", "ConfigMap", "SpinApp"] {
        assert!(m.of_kind(kind).next().is_some(), "no {kind}");
    }
    for kind in ["SpinAppExecutor", "RuntimeClass", "Broker", "Trigger", "Deployment", "Service"] {
        assert!(m.of_kind(kind).next().is_some(), "no {kind}");
    }
    for kind in ["ApiServerSource", "EventType", "EventPolicy"] {
        assert!(m.of_kind(kind).next().is_some(), "no {kind}");
    }
    assert_eq!(m.helm_values.len(), 2, "two pod-gateway values files (foo, bar)");
}

#[test]
fn core_kinds_are_k8s_openapi_objects_and_crd_kinds_have_the_expected_fields() {
    assert_holds(kinds::check_known_kinds_and_fields);
}

#[test]
fn an_unknown_field_in_a_core_kind_is_caught() {
    assert_catches(kinds::check_known_kinds_and_fields, "spec.replica", |m| {
        doc_mut(m, "Deployment", "cloudevents-player")["spec"]["replica"] = json!(1);
    });
    assert_catches(kinds::check_known_kinds_and_fields, "rules[0].verb", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["verb"] = json!(["list"]);
    });
    assert_catches(kinds::check_known_kinds_and_fields, "metadata.label", |m| {
        doc_mut(m, "Namespace", "podgateway-clients")["metadata"]["label"] = json!({"a": "b"});
    });
}

#[test]
fn an_unknown_or_mistyped_field_in_a_crd_kind_is_caught() {
    assert_catches(kinds::check_known_kinds_and_fields, "serviceAccount", |m| {
        spin_app_mut(m)["spec"]["serviceAccount"] = json!("client-provisioner");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "invalid type: string \"two\"", |m| {
        spin_app_mut(m)["spec"]["replicas"] = json!("two");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "runtimeClass", |m| {
        doc_mut(m, "SpinAppExecutor", "containerd-shim-spin")["spec"]["deploymentConfig"]["runtimeClass"] =
            json!("wasmtime-spin-v2");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "retryAfterMax", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["retryAfterMax"] = json!("PT30S");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "filters", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["filters"] = json!([]);
    });
    assert_catches(kinds::check_known_kinds_and_fields, "owner", |m| {
        doc_mut(m, "ApiServerSource", "client-pods")["spec"]["owner"] =
            json!({"apiVersion": "v1", "kind": "Pod"});
    });
    assert_catches(kinds::check_known_kinds_and_fields, "spec.resources[0].selector.matchLabel", |m| {
        doc_mut(m, "ApiServerSource", "client-pods")["spec"]["resources"][0]["selector"]["matchLabel"] =
            json!({"app.kubernetes.io/managed-by": "podgateway-client-provisioner"});
    });
    assert_catches(kinds::check_known_kinds_and_fields, "unknown field `labelSelector`", |m| {
        doc_mut(m, "ApiServerSource", "client-pods")["spec"]["resources"][0]["labelSelector"] = json!({});
    });
    assert_catches(kinds::check_known_kinds_and_fields, "broker", |m| {
        doc_mut(m, "EventType", "io-podgateway-client-ready")["spec"]["broker"] = json!("podgateway");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "unknown field `namespace`", |m| {
        event_policy_mut(m)["spec"]["to"][0]["ref"]["namespace"] = json!("podgateway-system");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "unknown field `filters`", |m| {
        event_policy_mut(m)["spec"]["filters"] = json!([{"prefix": {"type": "io.podgateway."}}]);
    });
    assert_catches(
        kinds::check_known_kinds_and_fields,
        "unexpected kind EventType (eventing.knative.dev/v1beta3)",
        |m| {
            doc_mut(m, "EventType", "io-podgateway-client-ready")["apiVersion"] =
                json!("eventing.knative.dev/v1beta3");
        },
    );
}

#[test]
fn cluster_rbac_beyond_the_token_review_or_an_unexpected_kind_is_caught() {
    let cluster_role = |m: &mut Manifests| {
        m.docs.push(Doc {
            file: "deploy/rbac.yaml".into(),
            value: json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                          "metadata": {"name": "x"},
                          "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        });
    };
    assert_catches(kinds::check_cluster_rbac, "no cluster-wide RBAC but the token review", cluster_role);
    assert_catches(auth::check_token_review_rbac, "expected exactly one ClusterRole", cluster_role);
    assert_catches(kinds::check_cluster_rbac, "is not a ClusterRole of these manifests", |m| {
        doc_mut(m, "ClusterRoleBinding", TOKEN_REVIEWER)["roleRef"]["name"] = json!("system:auth-delegator");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "cluster-scoped, must not have a namespace", |m| {
        doc_mut(m, "ClusterRole", TOKEN_REVIEWER)["metadata"]["namespace"] = json!("podgateway-system");
    });
    assert_catches(kinds::check_known_kinds_and_fields, "rules[0].verb", |m| {
        doc_mut(m, "ClusterRole", TOKEN_REVIEWER)["rules"][0]["verb"] = json!(["create"]);
    });
    assert_catches(kinds::check_known_kinds_and_fields, "unexpected kind", |m| {
        m.docs.push(Doc {
            file: "deploy/x.yaml".into(),
            value: json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "podgateway-system"}}),
        });
    });
    assert_catches(kinds::check_known_kinds_and_fields, "defined twice", |m| {
        let copy = m.docs.iter().find(|d| d.kind() == "ConfigMap").unwrap().clone();
        m.docs.push(copy);
    });
}

#[test]
fn no_cluster_wide_rbac_but_the_token_review() {
    assert_holds(kinds::check_cluster_rbac);
}

#[test]
fn the_spin_app_runs_on_the_shim_executor_and_its_runtime_class() {
    assert_holds(spin::check_executor_chain);
    assert_holds(spin::check_spin_app_spec);
    assert_holds(kinds::check_namespaces_exist);
}

#[test]
fn a_broken_executor_chain_is_caught() {
    assert_catches(spin::check_executor_chain, "is not a SpinAppExecutor", |m| {
        spin_app_mut(m)["spec"]["executor"] = json!("containerd-shim-spn");
    });
    assert_catches(spin::check_executor_chain, "is not a SpinAppExecutor", |m| {
        doc_mut(m, "SpinAppExecutor", "containerd-shim-spin")["metadata"]["namespace"] = json!("default");
    });
    assert_catches(spin::check_executor_chain, "createDeployment must be true", |m| {
        doc_mut(m, "SpinAppExecutor", "containerd-shim-spin")["spec"]["createDeployment"] = json!(false);
    });
    assert_catches(spin::check_executor_chain, "is not a RuntimeClass", |m| {
        doc_mut(m, "SpinAppExecutor", "containerd-shim-spin")["spec"]["deploymentConfig"]["runtimeClassName"] =
            json!("wasmtime-spin");
    });
    assert_catches(spin::check_executor_chain, "handler", |m| {
        doc_mut(m, "RuntimeClass", "wasmtime-spin-v2")["handler"] = json!("spin-v2");
    });
    assert_catches(spin::check_spin_app_spec, "version tag", |m| {
        spin_app_mut(m)["spec"]["image"] = json!("localhost:5001/podgateway-client-provisioner:latest");
    });
    assert_catches(spin::check_spin_app_spec, "replicas cannot be set with enableAutoscaling", |m| {
        spin_app_mut(m)["spec"]["enableAutoscaling"] = json!(true);
    });
    assert_catches(kinds::check_namespaces_exist, "not in deploy/namespace.yaml", |m| {
        doc_mut(m, "Broker", "podgateway")["metadata"]["namespace"] = json!("podgateway");
    });
}

#[test]
fn every_spin_variable_is_fed_from_the_config_map_or_the_token_secret() {
    assert_holds(spin::check_variables_match_spin_toml);
    assert_holds(spin::check_variable_sources);
    assert_holds(spin::check_config_keys_read);
}

#[test]
fn a_variable_mismatch_with_spin_toml_is_caught() {
    assert_catches(spin::check_variables_match_spin_toml, "is not a variable of spin.toml", |m| {
        variable_mut(m, "dry_run")["name"] = json!("dryrun");
    });
    assert_catches(
        spin::check_variables_match_spin_toml,
        "has no default and the SpinApp does not set it",
        |m| {
            let mut required = toml::Table::new();
            required.insert("required".into(), toml::Value::Boolean(true));
            m.spin["variables"].as_table_mut().unwrap().insert("gateway_namespace".into(), required.into());
        },
    );
    assert_catches(spin::check_variables_match_spin_toml, "is not set by the SpinApp", |m| {
        spin_app_mut(m)["spec"]["variables"].as_array_mut().unwrap().retain(|v| v["name"] != "client_image");
    });
    assert_catches(spin::check_variables_match_spin_toml, "is set twice", |m| {
        let copy = variable_mut(m, "client_image").clone();
        spin_app_mut(m)["spec"]["variables"].as_array_mut().unwrap().push(copy);
    });
    assert_catches(spin::check_variable_sources, "has no key", |m| {
        variable_mut(m, "client_image")["valueFrom"]["configMapKeyRef"]["key"] = json!("client-image");
    });
    assert_catches(spin::check_variable_sources, "no ConfigMap", |m| {
        variable_mut(m, "client_image")["valueFrom"]["configMapKeyRef"]["name"] = json!("other-config");
    });
    assert_catches(spin::check_variable_sources, "is secret in spin.toml but read from ConfigMap", |m| {
        variable_mut(m, "k8s_token")["valueFrom"] =
            json!({"configMapKeyRef": {"name": "client-provisioner-config", "key": "k8s_api_url"}});
    });
    assert_catches(spin::check_variable_sources, "must not be optional", |m| {
        variable_mut(m, "client_image")["valueFrom"]["configMapKeyRef"]["optional"] = json!(true);
    });
    assert_catches(spin::check_variable_sources, "exactly one valueFrom", |m| {
        *variable_mut(m, "client_image") = json!({"name": "client_image", "value": "alpine/curl"});
    });
    assert_catches(spin::check_variable_sources, "no Secret", |m| {
        variable_mut(m, "k8s_token")["valueFrom"]["secretKeyRef"]["name"] = json!("client-provisioner-tokn");
    });
    assert_catches(spin::check_config_keys_read, "is not read by any SpinApp variable", |m| {
        config_mut(m)["client_imagee"] = json!("alpine/curl");
    });
}

#[test]
fn the_configured_values_are_accepted_by_the_component() {
    assert_holds(spin::check_config_values);
}

#[test]
fn a_bad_configured_value_is_caught() {
    assert_catches(spin::check_config_values, "client_command", |m| {
        config_mut(m)["client_command"] = json!("sleep infinity");
    });
    assert_catches(spin::check_config_values, "k8s_timeout_seconds", |m| {
        config_mut(m)["k8s_timeout_seconds"] = json!("10s");
    });
    assert_catches(spin::check_config_values, "dry_run", |m| config_mut(m)["dry_run"] = json!("yes"));
    assert_catches(spin::check_config_values, "k8s_api_url", |m| {
        config_mut(m)["k8s_api_url"] = json!("kubernetes.default.svc");
    });
    assert_catches(spin::check_config_values, "client_active_deadline_seconds", |m| {
        config_mut(m)["client_active_deadline_seconds"] = json!("-1");
    });
    assert_catches(spin::check_config_values, "auth_cache_seconds", |m| {
        config_mut(m)["auth_cache_seconds"] = json!("5m");
    });
    assert_catches(spin::check_config_values, "auth_allowed_senders", |m| {
        config_mut(m)["auth_allowed_senders"] = json!("system:serviceaccount:*:client-release");
    });
}

#[test]
fn the_token_comes_from_the_spin_apps_service_account_and_the_api_ca_is_trusted() {
    assert_holds(identity::check_service_account);
    assert_holds(identity::check_token_secret);
    assert_holds(identity::check_api_host_trusted);
    assert_holds(identity::check_client_tls_entries);
}

#[test]
fn a_broken_identity_or_tls_setup_is_caught() {
    assert_catches(identity::check_service_account, "is not a ServiceAccount", |m| {
        spin_app_mut(m)["spec"]["serviceAccountName"] = json!("default-sa");
    });
    assert_catches(identity::check_token_secret, "service-account.name", |m| {
        doc_mut(m, "Secret", "client-provisioner-token")["metadata"]["annotations"]["kubernetes.io/service-account.name"] =
            json!("default");
    });
    assert_catches(identity::check_token_secret, "kubernetes.io/service-account-token", |m| {
        doc_mut(m, "Secret", "client-provisioner-token")["type"] = json!("Opaque");
    });
    assert_catches(identity::check_token_secret, "must read key `token`", |m| {
        variable_mut(m, "k8s_token")["valueFrom"]["secretKeyRef"]["key"] = json!("ca.crt");
    });
    assert_catches(identity::check_api_host_trusted, "no [[client_tls]] for the API host", |m| {
        config_mut(m)["k8s_api_url"] = json!("https://kubernetes.default.svc.cluster.local");
    });
    let rename_component =
        |m: &mut Manifests| edit_runtime_config(m, "\"client-provisioner\"", "\"provisioner\"");
    assert_catches(identity::check_api_host_trusted, "name none of spin.toml's components", rename_component);
    assert_catches(
        identity::check_client_tls_entries,
        "component id provisioner is not in spin.toml",
        rename_component,
    );
    assert_catches(identity::check_client_tls_entries, "hosts takes host names", |m| {
        edit_runtime_config(m, "\"kubernetes.default.svc\"", "\"https://kubernetes.default.svc\"");
    });
    assert_catches(identity::check_api_host_trusted, "runtime-config.toml", |m| {
        edit_runtime_config(m, "ca_roots_file", "ca_root_file");
    });
    let other_secret = |m: &mut Manifests| {
        spin_app_mut(m)["spec"]["runtimeConfig"]["loadFromSecret"] = json!("runtime-config");
    };
    assert_catches(identity::check_api_host_trusted, "is not a Secret", other_secret);
    assert_catches(identity::check_client_tls_entries, "is not a Secret", other_secret);
}

#[test]
fn the_role_grants_exactly_what_the_component_calls_in_the_client_namespace() {
    assert_holds(rbac::check_role_grants);
    assert_holds(rbac::check_role_binding);
    assert_holds(rbac::check_role_refs);
}

#[test]
fn a_role_granting_more_or_less_or_elsewhere_is_caught() {
    assert_catches(rbac::check_role_grants, "grants verbs", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["verbs"] = json!(["create", "get", "list"]);
    });
    assert_catches(rbac::check_role_grants, "grants verbs", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["verbs"] = json!(["create"]);
    });
    assert_catches(rbac::check_role_grants, "only core pods are needed", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["resources"] = json!(["pods", "secrets"]);
    });
    assert_catches(rbac::check_role_grants, "expected one rule", |m| {
        let rules = doc_mut(m, "Role", "client-provisioner")["rules"].as_array_mut().unwrap();
        rules.push(json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}));
    });
    assert_catches(rbac::check_role_grants, "the component creates pods in", |m| {
        doc_mut(m, "Role", "client-provisioner")["metadata"]["namespace"] = json!("podgateway-system");
    });
    assert_catches(rbac::check_role_binding, "binds Role", |m| {
        doc_mut(m, "RoleBinding", "client-provisioner")["subjects"][0]["namespace"] =
            json!("podgateway-clients");
    });
    assert_catches(rbac::check_role_binding, "binds Role", |m| {
        spin_app_mut(m)["spec"]["serviceAccountName"] = json!("other");
    });
    assert_catches(rbac::check_role_refs, "roleRef is not a Role of these manifests", |m| {
        doc_mut(m, "RoleBinding", "client-provisioner")["roleRef"]["name"] = json!("client-provisionr");
    });
}

#[test]
fn broker_triggers_and_player_are_wired_to_the_component() {
    assert_holds(eventing::check_broker_delivery);
    assert_holds(eventing::check_trigger_wiring);
    assert_holds(eventing::check_component_trigger);
    assert_holds(eventing::check_player_broker_uri);
    assert_holds(eventing::check_service_selectors);
}

#[test]
fn broken_eventing_wiring_is_caught() {
    assert_catches(eventing::check_trigger_wiring, "subscriber", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["subscriber"]["ref"]["name"] =
            json!("provisioner");
    });
    assert_catches(eventing::check_component_trigger, "must filter exactly type", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["filter"]["attributes"]["type"] =
            json!(format!("{}.v1", contract::PENDING));
    });
    assert_catches(eventing::check_trigger_wiring, "broker podgateway-broker does not exist", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["broker"] = json!("podgateway-broker");
    });
    assert_catches(eventing::check_broker_delivery, "deadLetterSink", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] =
            json!("event-display");
    });
    assert_catches(eventing::check_broker_delivery, "delivery.retry", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["retry"] = json!(0);
    });
    assert_catches(eventing::check_broker_delivery, "backoffPolicy", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["backoffPolicy"] = json!("linear");
    });
    assert_catches(eventing::check_broker_delivery, "backoffDelay", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["backoffDelay"] = json!("1s");
    });
    assert_catches(eventing::check_player_broker_uri, "BROKER_URI", |m| {
        let env = &mut doc_mut(m, "Deployment", "cloudevents-player")["spec"]["template"]["spec"]["containers"]
            [0]["env"];
        env[1]["value"] = json!("http://broker-ingress.knative-eventing.svc.cluster.local/default/default");
    });
    assert_catches(eventing::check_service_selectors, "selects no Deployment", |m| {
        doc_mut(m, "Service", "cloudevents-player")["spec"]["selector"] = json!({"app": "player"});
    });
    assert_catches(eventing::check_service_selectors, "targetPort htt is not a container port", |m| {
        doc_mut(m, "Service", "cloudevents-player")["spec"]["ports"][0]["targetPort"] = json!("htt");
    });
    assert_catches(eventing::check_component_trigger, "expected one Trigger", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["subscriber"]["ref"]["name"] =
            json!("cloudevents-player");
    });
}

#[test]
fn the_client_pods_are_watched_and_their_events_reach_the_component() {
    assert_holds(lifecycle::check_api_server_source);
    assert_holds(lifecycle::check_api_server_source_rbac);
    assert_holds(lifecycle::check_lifecycle_triggers);
    assert_holds(lifecycle::check_event_types);
}

#[test]
fn the_lifecycle_contract_lists_every_type_once() {
    let consumed: Vec<&str> = lifecycle::CONSUMED.iter().map(|c| c.event_type).collect();
    let produced: Vec<&str> = lifecycle::PRODUCED.iter().map(|c| c.event_type).collect();
    assert_eq!(
        consumed,
        [contract::PENDING, contract::POD_UPDATED, contract::POD_DELETED, contract::RELEASE]
    );
    assert_eq!(
        produced,
        [
            contract::DONE,
            contract::FAILED,
            contract::READY,
            contract::FINISHED,
            contract::GONE,
            contract::RELEASE_DONE,
            contract::RELEASE_FAILED
        ]
    );
    let all: std::collections::BTreeSet<&str> = consumed.iter().chain(&produced).copied().collect();
    assert_eq!(all.len(), 11, "a type both consumed and produced, or twice");
    for c in lifecycle::CONSUMED.iter().chain(&lifecycle::PRODUCED) {
        assert!(!c.fields.is_empty(), "{}: no data fields", c.event_type);
    }
}

#[test]
fn a_broken_api_server_source_is_caught() {
    assert_catches(lifecycle::check_api_server_source, "mode must be Resource", |m| {
        api_server_source_mut(m)["spec"]["mode"] = json!("Reference");
    });
    assert_catches(lifecycle::check_api_server_source, "must be in the client namespace", |m| {
        api_server_source_mut(m)["metadata"]["namespace"] = json!("podgateway-system");
    });
    assert_catches(lifecycle::check_api_server_source, "must be in the client namespace", |m| {
        config_mut(m)["client_namespace"] = json!("podgateway-pods");
    });
    assert_catches(lifecycle::check_api_server_source, "no namespaceSelector", |m| {
        api_server_source_mut(m)["spec"]["namespaceSelector"] =
            json!({"matchLabels": {"routed-gateway": "true"}});
    });
    assert_catches(lifecycle::check_api_server_source, "must watch v1 Pod", |m| {
        api_server_source_mut(m)["spec"]["resources"][0]["kind"] = json!("Event");
    });
    assert_catches(lifecycle::check_api_server_source, "must watch exactly one resource", |m| {
        let resources = api_server_source_mut(m)["spec"]["resources"].as_array_mut().unwrap();
        resources.push(json!({"apiVersion": "v1", "kind": "Event"}));
    });
    assert_catches(lifecycle::check_api_server_source, "the Pod selector must be exactly matchLabels", |m| {
        api_server_source_mut(m)["spec"]["resources"][0]["selector"]["matchLabels"] =
            json!({"app.kubernetes.io/name": "podgateway-client"});
    });
    assert_catches(lifecycle::check_api_server_source, "the Pod selector must be exactly matchLabels", |m| {
        api_server_source_mut(m)["spec"]["resources"][0].as_object_mut().unwrap().remove("selector");
    });
    assert_catches(lifecycle::check_api_server_source, "the Pod selector must be exactly matchLabels", |m| {
        api_server_source_mut(m)["spec"]["resources"][0]["selector"]["matchExpressions"] =
            json!([{"key": "podgateway.io/gateway", "operator": "Exists"}]);
    });
    assert_catches(lifecycle::check_api_server_source, "is not a ServiceAccount", |m| {
        api_server_source_mut(m)["spec"]["serviceAccountName"] = json!("default");
    });
    assert_catches(lifecycle::check_api_server_source, "serviceAccountName must be set", |m| {
        api_server_source_mut(m)["spec"].as_object_mut().unwrap().remove("serviceAccountName");
    });
    assert_catches(lifecycle::check_api_server_source, "not a ref", |m| {
        api_server_source_mut(m)["spec"]["sink"] = json!({"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                                   "name": "podgateway", "namespace": "podgateway-system"}});
    });
    assert_catches(
        lifecycle::check_api_server_source,
        "is not the ingress of Broker podgateway-system/podgateway",
        |m| {
            api_server_source_mut(m)["spec"]["sink"]["uri"] = json!(
                "http://broker-ingress.knative-eventing.svc.cluster.local/podgateway-clients/podgateway"
            );
        },
    );
    assert_catches(
        lifecycle::check_api_server_source,
        "must be eventing.knative.dev/broker/podgateway-system/podgateway",
        |m| {
            api_server_source_mut(m)["spec"]["sink"].as_object_mut().unwrap().remove("audience");
        },
    );
    assert_catches(
        lifecycle::check_api_server_source,
        "the OIDC audience of Broker podgateway-system/podgateway",
        |m| {
            api_server_source_mut(m)["spec"]["sink"]["audience"] = json!("podgateway-client-provisioner");
        },
    );
    assert_catches(lifecycle::check_api_server_source, "expected exactly one ApiServerSource", |m| {
        m.docs.retain(|d| d.kind() != "ApiServerSource");
    });
}

#[test]
fn an_api_server_source_role_granting_more_or_less_is_caught() {
    assert_catches(lifecycle::check_api_server_source_rbac, "the source needs exactly", |m| {
        watcher_role_mut(m)["rules"][0]["verbs"] = json!(["get", "list"]);
    });
    assert_catches(lifecycle::check_api_server_source_rbac, "the source needs exactly", |m| {
        watcher_role_mut(m)["rules"][0]["verbs"] = json!(["get", "list", "watch", "delete"]);
    });
    assert_catches(lifecycle::check_api_server_source_rbac, "only core pods are needed", |m| {
        watcher_role_mut(m)["rules"][0]["resources"] = json!(["pods", "pods/log"]);
    });
    assert_catches(lifecycle::check_api_server_source_rbac, "expected one rule", |m| {
        let rules = watcher_role_mut(m)["rules"].as_array_mut().unwrap();
        rules.push(json!({"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}));
    });
    assert_catches(
        lifecycle::check_api_server_source_rbac,
        "binds a Role to ServiceAccount client-pod-watcher",
        |m| {
            doc_mut(m, "RoleBinding", "client-pod-watcher")["subjects"][0]["namespace"] =
                json!("podgateway-system");
        },
    );
    assert_catches(
        lifecycle::check_api_server_source_rbac,
        "binds a Role to ServiceAccount client-pod-watcher",
        |m| {
            doc_mut(m, "RoleBinding", "client-pod-watcher")["roleRef"]["kind"] = json!("ClusterRole");
        },
    );
    // The component's Role stays apart: binding it to the source's account too makes the
    // source's grants wrong, and leaves no Role for the component.
    let shared = |m: &mut Manifests| {
        let subjects = doc_mut(m, "RoleBinding", "client-provisioner")["subjects"].as_array_mut().unwrap();
        subjects.push(json!({"kind": "ServiceAccount", "name": "client-pod-watcher", "namespace": "podgateway-clients"}));
    };
    assert_catches(lifecycle::check_api_server_source_rbac, "the source needs exactly", shared);
    assert_catches(rbac::check_role_grants, "expected exactly one Role for the component", shared);
}

#[test]
fn a_lifecycle_event_that_does_not_reach_the_component_is_caught() {
    assert_catches(lifecycle::check_lifecycle_triggers, "must filter exactly", |m| {
        doc_mut(m, "Trigger", "client-pod-updated")["spec"]["filter"]["attributes"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
    });
    assert_catches(lifecycle::check_lifecycle_triggers, "must filter exactly", |m| {
        doc_mut(m, "Trigger", "client-release")["spec"]["filter"]["attributes"]["namespace"] =
            json!("podgateway-clients");
    });
    assert_catches(lifecycle::check_lifecycle_triggers, "must filter exactly", |m| {
        config_mut(m)["client_namespace"] = json!("podgateway-pods");
    });
    assert_catches(lifecycle::check_lifecycle_triggers, "must reach the component's Service", |m| {
        doc_mut(m, "Trigger", "client-release")["spec"]["subscriber"]["ref"]["name"] =
            json!("cloudevents-player");
    });
    assert_catches(
        lifecycle::check_lifecycle_triggers,
        "must be on Broker podgateway-system/podgateway",
        |m| {
            doc_mut(m, "Trigger", "client-pod-deleted")["spec"]["broker"] = json!("default");
        },
    );
    assert_catches(
        lifecycle::check_lifecycle_triggers,
        &format!("expected exactly one Trigger for type {}, found 0", contract::POD_DELETED),
        |m| m.docs.retain(|d| d.name() != "client-pod-deleted"),
    );
    assert_catches(
        lifecycle::check_lifecycle_triggers,
        &format!("expected exactly one Trigger for type {}, found 2", contract::RELEASE),
        |m| {
            let mut copy = doc_mut(m, "Trigger", "client-release").clone();
            copy["metadata"]["name"] = json!("client-release-2");
            m.docs.push(Doc { file: "deploy/trigger.yaml".into(), value: copy });
        },
    );
    assert_catches(eventing::check_component_trigger, "one of the types it consumes", |m| {
        doc_mut(m, "Trigger", "client-release")["spec"]["filter"]["attributes"]["type"] =
            json!("io.podgateway.client.released");
    });
}

#[test]
fn an_event_type_missing_or_wrong_is_caught() {
    assert_catches(lifecycle::check_event_types, "does not name the data field pod_ip", |m| {
        let description = &mut ready_event_type_mut(m)["spec"]["description"];
        *description = json!(description.as_str().unwrap().replace("pod_ip", "ip"));
    });
    assert_catches(lifecycle::check_event_types, "does not name the data field pod_deleted", |m| {
        let description =
            &mut doc_mut(m, "EventType", "io-podgateway-client-finished")["spec"]["description"];
        *description = json!(description.as_str().unwrap().replace("pod_deleted", "reaped"));
    });
    assert_catches(lifecycle::check_event_types, "needs a description", |m| {
        ready_event_type_mut(m)["spec"].as_object_mut().unwrap().remove("description");
    });
    assert_catches(
        lifecycle::check_event_types,
        &format!("expected exactly one EventType of type {}, found 0", contract::GONE),
        |m| m.docs.retain(|d| d.name() != "io-podgateway-client-gone"),
    );
    assert_catches(
        lifecycle::check_event_types,
        &format!("expected exactly one EventType of type {}, found 2", contract::READY),
        |m| {
            let mut copy = ready_event_type_mut(m).clone();
            copy["metadata"]["name"] = json!("client-ready");
            m.docs.push(Doc { file: "deploy/eventtypes.yaml".into(), value: copy });
        },
    );
    assert_catches(lifecycle::check_event_types, "neither consumed nor produced", |m| {
        ready_event_type_mut(m)["spec"]["type"] = json!("io.podgateway.client.started");
    });
    assert_catches(lifecycle::check_event_types, "the EventType says", |m| {
        ready_event_type_mut(m)["spec"]["source"] = json!("podgateway/client-provisioner");
    });
    assert_catches(lifecycle::check_event_types, "must not name one", |m| {
        doc_mut(m, "EventType", "io-podgateway-client-pending")["spec"]["source"] = json!("quickstart");
    });
    assert_catches(
        lifecycle::check_event_types,
        "with a reference to Broker podgateway-system/podgateway",
        |m| {
            ready_event_type_mut(m)["spec"]["reference"]["name"] = json!("default");
        },
    );
    assert_catches(
        lifecycle::check_event_types,
        "with a reference to Broker podgateway-system/podgateway",
        |m| {
            ready_event_type_mut(m)["metadata"]["namespace"] = json!("podgateway-clients");
        },
    );
}

#[test]
fn the_component_writes_to_the_namespace_the_gateways_route() {
    assert_holds(routing::check_routed_namespace);
    assert_holds(routing::check_gateway_webhooks);
    assert_holds(routing::check_gateway_names);
    assert_holds(routing::check_gateway_labels);
    assert_holds(routing::check_gateway_tunnels);
}

#[test]
fn routing_mismatches_are_caught() {
    assert_catches(routing::check_routed_namespace, "must be labelled", |m| {
        config_mut(m)["client_namespace"] = json!("podgateway-system");
    });
    assert_catches(routing::check_routed_namespace, "must be labelled", |m| {
        doc_mut(m, "Namespace", "podgateway-clients")["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(ROUTED_LABEL);
    });
    assert_catches(routing::check_gateway_webhooks, "routed_namespaces", |m| {
        gateway_mut(m, "foo")["routed_namespaces"] = json!(["default"]);
    });
    assert_catches(routing::check_gateway_webhooks, "gatewayAnnotation", |m| {
        config_mut(m)["gateway_annotation"] = json!("podgateway.io/gateway");
    });
    assert_catches(routing::check_gateway_webhooks, "gatewayDefault", |m| {
        gateway_mut(m, "bar")["webhook"]["gatewayDefault"] = json!(true);
    });
    assert_catches(routing::check_gateway_names, "two gateways are named foo", |m| {
        gateway_mut(m, "bar")["webhook"]["gatewayAnnotationValue"] = json!("foo");
    });
    assert_catches(routing::check_gateway_names, "allowed_gateways lists baz", |m| {
        config_mut(m)["allowed_gateways"] = json!("foo,bar,baz");
    });
    assert_catches(routing::check_gateway_labels, "parses the label as a", |m| {
        gateway_mut(m, "foo")["webhook"].as_object_mut().unwrap().remove("gatewayLabel");
    });
    assert_catches(routing::check_gateway_labels, "the component labels pods", |m| {
        config_mut(m)["gateway_label"] = json!("setGateway");
    });
    assert_catches(routing::check_gateway_webhooks, "deploy/pod-gateway-foo-values.yaml", |m| {
        gateway_mut(m, "foo")["routed_namespace"] = json!([]);
    });
    assert_catches(
        routing::check_gateway_address_template,
        "routes through pod-gateway-foo-main.gateway-system",
        |m| {
            config_mut(m)["gateway_address_template"] =
                json!("pod-gateway-{gateway}.gateway-system.svc.cluster.local");
        },
    );
    assert_catches(
        routing::check_gateway_address_template,
        "routes through pod-gateway-bar.gateway-system",
        |m| {
            m.helm_releases.get_mut("deploy/pod-gateway-bar-values.yaml").unwrap().version = "6.6.1".into();
        },
    );
    assert_catches(
        routing::check_gateway_address_template,
        "points the webhook at a Service that does not exist",
        |m| {
            m.helm_releases.get_mut("deploy/pod-gateway-foo-values.yaml").unwrap().version = "7.0.2".into();
        },
    );
    assert_catches(routing::check_gateway_address_template, "go unchecked", |m| {
        config_mut(m)["gateway_address_template"] = json!("");
    });
    assert_catches(routing::check_native_sidecar, "webhook.sidecarAsInit must be true", |m| {
        gateway_mut(m, "foo")["webhook"]["sidecarAsInit"] = json!(false);
    });
    assert_catches(routing::check_native_sidecar, "needs chart 6.6.1 or later", |m| {
        m.helm_releases.get_mut("deploy/pod-gateway-bar-values.yaml").unwrap().version = "6.6.0".into();
    });
    assert_catches(routing::check_gateway_tunnels, "used by another gateway", |m| {
        let bar = gateway_mut(m, "bar");
        bar["settings"]["VXLAN_ID"] = json!(42);
        bar["settings"]["VXLAN_IP_NETWORK"] = json!("172.16.0");
        bar["DNS"] = json!("172.16.0.1");
    });
    assert_catches(routing::check_routed_namespace, "must not run in the routed client namespace", |m| {
        spin_app_mut(m)["metadata"]["namespace"] = json!("podgateway-clients");
        doc_mut(m, "ConfigMap", "client-provisioner-config")["metadata"]["namespace"] =
            json!("podgateway-clients");
    });
}

#[test]
fn kustomize_applies_every_manifest_of_deploy() {
    assert_holds(kustomize::check_kustomization);
}

#[test]
fn a_kustomization_missing_a_file_is_caught() {
    assert_catches(kustomize::check_kustomization, "does not list deploy/trigger.yaml", |m| {
        m.kustomization["resources"].as_array_mut().unwrap().retain(|r| r != "trigger.yaml");
    });
    assert_catches(kustomize::check_kustomization, "lists deploy/service.yaml", |m| {
        m.kustomization["resources"].as_array_mut().unwrap().push(json!("service.yaml"));
    });
    assert_catches(kustomize::check_kustomization, "unknown field `namespace`", |m| {
        m.kustomization["namespace"] = json!("podgateway-system");
    });
}

#[test]
fn every_key_value_store_of_spin_toml_exists_in_the_cluster() {
    assert_holds(spin::check_key_value_stores);
}

#[test]
fn a_key_value_store_the_cluster_lacks_is_caught() {
    let use_cache_store = |m: &mut Manifests| {
        let component = m.spin["component"]["client-provisioner"].as_table_mut().unwrap();
        component
            .insert("key_value_stores".into(), toml::Value::Array(vec!["default".into(), "cache".into()]));
    };
    assert_catches(spin::check_key_value_stores, "uses key-value store cache", use_cache_store);
    assert_catches(spin::check_key_value_stores, "is ignored with loadFromSecret", |m| {
        use_cache_store(m);
        spin_app_mut(m)["spec"]["runtimeConfig"]["keyValueStores"] = json!([{"name": "cache", "type": "redis", "options": [{"name": "url", "value": "redis://redis:6379"}]}]);
    });
    // Declared in the runtime config Secret, the store exists.
    let problems = broken(spin::check_key_value_stores, |m| {
        use_cache_store(m);
        edit_runtime_config(
            m,
            "[[client_tls]]",
            "[key_value_store.cache]\ntype = \"spin\"\n\n[[client_tls]]",
        );
    });
    assert!(problems.is_empty(), "{problems:#?}");
    assert_catches(kinds::check_known_kinds_and_fields, "keyValueStore", |m| {
        spin_app_mut(m)["spec"]["runtimeConfig"]["keyValueStore"] = json!([]);
    });
}

#[test]
fn every_trigger_to_the_component_asks_for_a_token_of_its_audience() {
    assert_holds(auth::check_trigger_audiences);
    assert_holds(auth::check_allowed_senders);
    assert_holds(auth::check_token_review_rbac);
}

#[test]
fn knatives_trigger_service_account_names_are_computed_as_kmeta_child_name_does() {
    assert_eq!(auth::MAX_TRIGGER_NAME, 29);
    assert_eq!(
        auth::trigger_oidc_service_account("client-release").as_deref(),
        Ok("client-release-oidc-eventing.knative.dev-trigger")
    );
    // 29 characters: exactly 63 with the suffix, still plain.
    let longest = "a".repeat(29);
    assert_eq!(auth::trigger_oidc_service_account(&longest).unwrap().len(), 63);
    // 30, the length of the old client-provisioner-pod-updated: hashed by Knative.
    let err = auth::trigger_oidc_service_account("client-provisioner-pod-updated").unwrap_err();
    assert!(err.contains("30 characters") && err.contains("hash"), "{err}");
    assert_eq!(
        auth::service_account_subject("podgateway-system", "x"),
        "system:serviceaccount:podgateway-system:x"
    );
}

#[test]
fn a_trigger_without_the_audience_or_a_wrong_audience_is_caught() {
    assert_catches(auth::check_trigger_audiences, "subscriber.audience is None", |m| {
        trigger_mut(m, "client-pod-deleted")["spec"]["subscriber"]
            .as_object_mut()
            .unwrap()
            .remove("audience");
    });
    assert_catches(
        auth::check_trigger_audiences,
        "must be auth_audience \"podgateway-client-provisioner\"",
        |m| {
            trigger_mut(m, "client-provisioner")["spec"]["subscriber"]["audience"] =
                json!("client-provisioner");
        },
    );
    assert_catches(auth::check_trigger_audiences, "must be auth_audience \"podgateway-provisioner\"", |m| {
        config_mut(m)["auth_audience"] = json!("podgateway-provisioner");
    });
    assert_catches(auth::check_trigger_audiences, "auth_audience is empty", |m| {
        config_mut(m)["auth_audience"] = json!("");
    });
    assert_catches(auth::check_trigger_audiences, "does not deliver to the component", |m| {
        trigger_mut(m, "cloudevents-player")["spec"]["subscriber"]["audience"] =
            json!("podgateway-client-provisioner");
    });
}

#[test]
fn allowed_senders_that_do_not_match_the_triggers_are_caught() {
    let senders = |m: &mut Manifests| config_mut(m)["auth_allowed_senders"].as_str().unwrap().to_owned();
    assert_catches(
        auth::check_allowed_senders,
        "client-release-oidc-eventing.knative.dev-trigger is not in auth_allowed_senders",
        |m| {
            let kept: Vec<String> = senders(m)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.contains("client-release"))
                .map(Into::into)
                .collect();
            config_mut(m)["auth_allowed_senders"] = json!(kept.join(","));
        },
    );
    assert_catches(auth::check_allowed_senders, "the OIDC ServiceAccount of no Trigger", |m| {
        let more = format!("{},system:serviceaccount:podgateway-system:cloudevents-player", senders(m));
        config_mut(m)["auth_allowed_senders"] = json!(more);
    });
    assert_catches(auth::check_allowed_senders, "has the prefix", |m| {
        let more = format!("{},system:serviceaccount:podgateway-system:*", senders(m));
        config_mut(m)["auth_allowed_senders"] = json!(more);
    });
    assert_catches(auth::check_allowed_senders, "twice", |m| {
        let first = senders(m).split(',').next().unwrap().trim().to_owned();
        let more = format!("{},{first}", senders(m));
        config_mut(m)["auth_allowed_senders"] = json!(more);
    });
    assert_catches(auth::check_allowed_senders, "auth_allowed_senders is empty", |m| {
        config_mut(m)["auth_allowed_senders"] = json!("");
    });
    // A renamed Trigger has another sender; a name of 30 characters would be hashed.
    assert_catches(
        auth::check_allowed_senders,
        "client-releases-oidc-eventing.knative.dev-trigger is not in auth_allowed_senders",
        |m| trigger_mut(m, "client-release")["metadata"]["name"] = json!("client-releases"),
    );
    assert_catches(auth::check_allowed_senders, "more than 29: Knative would shorten", |m| {
        trigger_mut(m, "client-pod-updated")["metadata"]["name"] = json!("client-provisioner-pod-updated");
    });
    // A Trigger in another namespace than the one its ServiceAccount is listed in.
    assert_catches(
        auth::check_allowed_senders,
        "system:serviceaccount:podgateway-clients:client-release-oidc-eventing.knative.dev-trigger is not",
        |m| trigger_mut(m, "client-release")["metadata"]["namespace"] = json!("podgateway-clients"),
    );
}

#[test]
fn a_token_review_role_granting_more_or_less_or_bound_elsewhere_is_caught() {
    fn role(m: &mut Manifests) -> &mut Value {
        doc_mut(m, "ClusterRole", TOKEN_REVIEWER)
    }
    assert_catches(
        auth::check_token_review_rbac,
        "the component needs exactly `create` on tokenreviews",
        |m| {
            role(m)["rules"][0]["verbs"] = json!(["create", "get"]);
        },
    );
    assert_catches(
        auth::check_token_review_rbac,
        "the component needs exactly `create` on tokenreviews",
        |m| {
            role(m)["rules"][0]["resources"] = json!(["tokenreviews", "subjectaccessreviews"]);
        },
    );
    assert_catches(
        auth::check_token_review_rbac,
        "the component needs exactly `create` on tokenreviews",
        |m| {
            role(m)["rules"][0]["apiGroups"] = json!(["authorization.k8s.io"]);
        },
    );
    assert_catches(auth::check_token_review_rbac, "expected one rule", |m| {
        let rules = role(m)["rules"].as_array_mut().unwrap();
        rules.push(json!({"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
                          "verbs": ["create"]}));
    });
    assert_catches(auth::check_token_review_rbac, "resourceNames", |m| {
        role(m)["rules"][0]["resourceNames"] = json!(["x"]);
    });
    assert_catches(kinds::check_cluster_rbac, "no cluster-wide RBAC but the token review", |m| {
        role(m)["rules"][0]["verbs"] = json!(["*"]);
    });
    assert_catches(auth::check_token_review_rbac, "no ClusterRoleBinding binds ClusterRole", |m| {
        doc_mut(m, "ClusterRoleBinding", TOKEN_REVIEWER)["subjects"][0]["namespace"] = json!("default");
    });
    assert_catches(auth::check_token_review_rbac, "no ClusterRoleBinding binds ClusterRole", |m| {
        spin_app_mut(m)["spec"]["serviceAccountName"] = json!("other");
    });
    assert_catches(auth::check_token_review_rbac, "no ClusterRoleBinding binds ClusterRole", |m| {
        m.docs.retain(|d| d.kind() != "ClusterRoleBinding");
    });
    assert_catches(
        auth::check_token_review_rbac,
        "only the component's ServiceAccount reviews tokens",
        |m| {
            let subjects =
                doc_mut(m, "ClusterRoleBinding", TOKEN_REVIEWER)["subjects"].as_array_mut().unwrap();
            subjects.push(json!({"kind": "ServiceAccount", "name": "client-pod-watcher", "namespace": "podgateway-clients"}));
        },
    );
    assert_catches(auth::check_token_review_rbac, "expected exactly one ClusterRole", |m| {
        m.docs.retain(|d| d.kind() != "ClusterRole");
    });
}

#[test]
fn the_broker_lets_in_the_api_server_source_the_replies_and_the_curl_sender() {
    assert_holds(auth::check_broker_event_policy);
}

#[test]
fn subjects_are_matched_as_knatives_broker_ingress_does() {
    let allowed = ["system:serviceaccount:podgateway-system:*", "system:serviceaccount:a:B"];
    assert!(auth::subject_allowed("system:serviceaccount:podgateway-system:event-sender", &allowed));
    assert!(auth::subject_allowed("system:serviceaccount:a:b", &allowed), "exact, ignoring case");
    assert!(!auth::subject_allowed("system:serviceaccount:podgateway-clients:x", &allowed));
    assert!(!auth::subject_allowed("system:serviceaccount:a:bc", &allowed));
}

#[test]
fn an_event_policy_that_refuses_a_sender_or_misses_the_broker_is_caught() {
    fn from(m: &mut Manifests) -> &mut Vec<Value> {
        event_policy_mut(m)["spec"]["from"].as_array_mut().unwrap()
    }
    fn source_ref(m: &mut Manifests) -> &mut Value {
        from(m).iter_mut().find(|f| f.get("ref").is_some()).expect("a from ref")
    }
    fn sub(m: &mut Manifests) -> &mut Value {
        &mut from(m).iter_mut().find(|f| f.get("sub").is_some()).expect("a from sub")["sub"]
    }
    let none_for_the_broker = "expected exactly one EventPolicy whose `to` names Broker \
                               podgateway-system/podgateway (deploy/broker.yaml), in its namespace, found 0";
    assert_catches(auth::check_broker_event_policy, none_for_the_broker, |m| {
        event_policy_mut(m)["spec"]["to"][0]["ref"]["name"] = json!("default");
    });
    assert_catches(auth::check_broker_event_policy, none_for_the_broker, |m| {
        event_policy_mut(m)["spec"]["to"][0]["ref"]["kind"] = json!("InMemoryChannel");
    });
    assert_catches(auth::check_broker_event_policy, none_for_the_broker, |m| {
        event_policy_mut(m)["metadata"]["namespace"] = json!("podgateway-clients");
    });
    assert_catches(auth::check_broker_event_policy, none_for_the_broker, |m| {
        m.docs.retain(|d| d.kind() != "EventPolicy");
    });
    assert_catches(auth::check_broker_event_policy, "found 2", |m| {
        let mut copy = event_policy_mut(m).clone();
        copy["metadata"]["name"] = json!("more-senders");
        m.docs.push(Doc { file: "deploy/eventpolicy.yaml".into(), value: copy });
    });
    assert_catches(auth::check_broker_event_policy, "an empty `to` applies to every receiver", |m| {
        event_policy_mut(m)["spec"].as_object_mut().unwrap().remove("to");
    });
    assert_catches(auth::check_broker_event_policy, "`to` must name exactly Broker", |m| {
        let to = event_policy_mut(m)["spec"]["to"].as_array_mut().unwrap();
        to.push(json!({"ref": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "x"}}));
    });
    // The ApiServerSource: by ref, with its namespace.
    assert_catches(
        auth::check_broker_event_policy,
        "`from` does not allow ApiServerSource podgateway-clients/client-pods (deploy/apiserversource.yaml) by ref",
        |m| from(m).retain(|f| f.get("ref").is_none()),
    );
    assert_catches(
        auth::check_broker_event_policy,
        "has namespace none, must have podgateway-clients",
        |m| {
            source_ref(m)["ref"].as_object_mut().unwrap().remove("namespace");
        },
    );
    assert_catches(auth::check_broker_event_policy, "is not an object of these manifests", |m| {
        source_ref(m)["ref"]["name"] = json!("client-pod");
    });
    assert_catches(auth::check_broker_event_policy, "is not an object of these manifests", |m| {
        source_ref(m)["ref"]["apiVersion"] = json!("sources.knative.dev/v1beta1");
    });
    // Knative's own validation.
    assert_catches(auth::check_broker_event_policy, "needs exactly one of ref and sub", |m| {
        source_ref(m)["sub"] = json!("system:serviceaccount:podgateway-clients:x");
    });
    assert_catches(auth::check_broker_event_policy, "`*` is only allowed as the last character", |m| {
        *sub(m) = json!("system:serviceaccount:*:client-provisioner");
    });
    // The Triggers' replies and the curl sender.
    assert_catches(
        auth::check_broker_event_policy,
        "Trigger podgateway-system/client-provisioner (deploy/trigger.yaml): its OIDC ServiceAccount \
         system:serviceaccount:podgateway-system:client-provisioner-oidc-eventing.knative.dev-trigger is not allowed",
        |m| from(m).retain(|f| f.get("sub").is_none()),
    );
    let triggers_only = |m: &mut Manifests| {
        *sub(m) = json!("system:serviceaccount:podgateway-system:*-oidc-eventing.knative.dev-trigger");
    };
    assert_catches(
        auth::check_broker_event_policy,
        "`*` is only allowed as the last character",
        triggers_only,
    );
    assert_catches(
        auth::check_broker_event_policy,
        "ServiceAccount podgateway-system/event-sender (deploy/eventpolicy.yaml): \
         system:serviceaccount:podgateway-system:event-sender is not allowed",
        |m| *sub(m) = json!("system:serviceaccount:podgateway-system:c*"),
    );
    assert_catches(
        auth::check_broker_event_policy,
        "Trigger podgateway-system/cloudevents-player (deploy/cloudevents-player.yaml): its OIDC ServiceAccount",
        |m| *sub(m) = json!("system:serviceaccount:podgateway-system:client-*"),
    );
    // A Trigger whose ServiceAccount name Knative hashes is covered by the namespace pattern only.
    let long_name = |m: &mut Manifests| {
        trigger_mut(m, "cloudevents-player")["metadata"]["name"] =
            json!("cloudevents-player-sees-everything");
    };
    assert!(broken(auth::check_broker_event_policy, long_name).is_empty());
    assert_catches(auth::check_broker_event_policy, "<hashed by kmeta.ChildName> is not allowed", |m| {
        long_name(m);
        *sub(m) = json!("system:serviceaccount:podgateway-system:c*");
    });
    // No wider than the Broker's namespace.
    assert_catches(
        auth::check_broker_event_policy,
        "allows subjects outside the ServiceAccounts of podgateway-system",
        |m| *sub(m) = json!("system:serviceaccount:*"),
    );
    assert_catches(
        auth::check_broker_event_policy,
        "allows subjects outside the ServiceAccounts of podgateway-system",
        |m| *sub(m) = json!("system:serviceaccount:podgateway-*"),
    );
}

#[test]
fn all_rules_hold_together() {
    // Every rule on the real files in one list: the summary to read first when something
    // is off (each rule also has its own test, and a test that breaks it).
    let m = load();
    let problems: Vec<String> = RULES
        .iter()
        .flat_map(|(name, rule)| rule(&m).into_iter().map(move |p| format!("[{name}] {p}")))
        .collect();
    assert!(problems.is_empty(), "problems:\n  {}", problems.join("\n  "));
}

#[test]
fn helpers_read_urls_and_durations() {
    assert_eq!(url_host("https://kubernetes.default.svc").as_deref(), Some("kubernetes.default.svc"));
    assert_eq!(url_host("https://kubernetes.default.svc:443/x").as_deref(), Some("kubernetes.default.svc"));
    assert_eq!(url_host("http://127.0.0.1:8001/").as_deref(), Some("127.0.0.1"));
    assert_eq!(url_host("kubernetes.default.svc"), None);
    assert_eq!(iso8601_seconds("PT1S"), Some(1.0));
    assert_eq!(iso8601_seconds("PT0.5S"), Some(0.5));
    assert_eq!(iso8601_seconds("PT1M30S"), Some(90.0));
    assert_eq!(iso8601_seconds("1s"), None);
    assert_eq!(iso8601_seconds("PT"), None);
}
