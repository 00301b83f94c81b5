//! The consistency rules, one file per concern. Each rule returns the problems it finds;
//! an empty list means the rule holds.

pub mod auth;
pub mod eventing;
pub mod identity;
pub mod kinds;
pub mod kustomize;
pub mod lifecycle;
pub mod rbac;
pub mod routing;
pub mod spin;

use crate::load::Manifests;

pub type Rule = fn(&Manifests) -> Vec<String>;

/// Every consistency rule, run together by `all_rules_hold_together`.
pub const RULES: &[(&str, Rule)] = &[
    ("known kinds and fields", kinds::check_known_kinds_and_fields),
    ("cluster-wide RBAC: the token review only", kinds::check_cluster_rbac),
    ("namespaces exist", kinds::check_namespaces_exist),
    ("executor chain", spin::check_executor_chain),
    ("SpinApp spec", spin::check_spin_app_spec),
    ("variables match spin.toml", spin::check_variables_match_spin_toml),
    ("variable sources", spin::check_variable_sources),
    ("config keys read", spin::check_config_keys_read),
    ("config values", spin::check_config_values),
    ("service account", identity::check_service_account),
    ("token secret", identity::check_token_secret),
    ("API host trusted", identity::check_api_host_trusted),
    ("client TLS entries", identity::check_client_tls_entries),
    ("Role grants", rbac::check_role_grants),
    ("RoleBinding", rbac::check_role_binding),
    ("roleRefs", rbac::check_role_refs),
    ("broker delivery", eventing::check_broker_delivery),
    ("trigger wiring", eventing::check_trigger_wiring),
    ("component trigger", eventing::check_component_trigger),
    ("player broker URI", eventing::check_player_broker_uri),
    ("service selectors", eventing::check_service_selectors),
    ("routed namespace", routing::check_routed_namespace),
    ("gateway webhooks", routing::check_gateway_webhooks),
    ("gateway names", routing::check_gateway_names),
    ("gateway labels", routing::check_gateway_labels),
    ("gateway tunnels", routing::check_gateway_tunnels),
    ("gateway address template", routing::check_gateway_address_template),
    ("native sidecar", routing::check_native_sidecar),
    ("kustomization", kustomize::check_kustomization),
    ("ApiServerSource", lifecycle::check_api_server_source),
    ("ApiServerSource RBAC", lifecycle::check_api_server_source_rbac),
    ("lifecycle triggers", lifecycle::check_lifecycle_triggers),
    ("event types", lifecycle::check_event_types),
    ("key-value stores", spin::check_key_value_stores),
    ("Trigger audiences", auth::check_trigger_audiences),
    ("allowed senders", auth::check_allowed_senders),
    ("token review RBAC", auth::check_token_review_rbac),
    ("Broker EventPolicy", auth::check_broker_event_policy),
];
