//! `io.podgateway.client.pending`: a client pod routed through the gateway the event names.
//! The data is checked before any API call; the reply says what became of the pod.

use serde_json::{Value, json};

use crate::cloudevents::{ReceivedEvent, Reply};
use crate::config::Config;
use crate::handlers::failure_outcome;
use crate::identity::EventKey;
use crate::json;
use crate::kube::KubeApi;
use crate::kube::calls::CallFailure;
use crate::names;
use crate::pod::name::pod_name;
use crate::pod::shape::ClientRequest;
use crate::provision::provision;
use crate::respond::{Handled, Outcome};

pub const TYPE: &str = "io.podgateway.client.pending";
pub const DONE_TYPE: &str = "io.podgateway.client.scheduling.done";
pub const FAILED_TYPE: &str = "io.podgateway.client.scheduling.failed";

const DONE_MESSAGE: &str = "A pod-gateway client has been scheduled.";
const DRY_RUN_MESSAGE: &str =
    "A pod-gateway client would have been scheduled (dry run: nothing was created).";

/// At most this many `args`, of at most this many bytes in all.
pub const MAX_ARGS: usize = 64;
pub const MAX_ARGS_BYTES: usize = 8 * 1024;

/// What a pending event asks for, as sent; checked against the configuration later.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PendingData {
    pub gateway_name: Option<String>,
    pub message: Option<String>,
    pub args: Option<Vec<String>>,
}

/// Why a pending event's data cannot be used, and the gateway it named if it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct DataProblem {
    pub problem: String,
    pub gateway_name: Option<String>,
}

pub fn handle(event: &ReceivedEvent, config: &Config, api: &mut impl KubeApi) -> Handled {
    let failed =
        |message: String, gateway_name: Option<String>| failed_reply(&event.key, message, gateway_name);
    let checked = pending_data(event)
        .map_err(|problem| failed(problem.problem, problem.gateway_name))
        .and_then(|data| {
            let gateway_name = data.gateway_name.clone();
            client_request(event, data, config).map_err(|problem| failed(problem, gateway_name))
        });
    let mut handled = Handled::new(Outcome::Ignored(None));
    handled.namespace = Some(config.client_namespace.clone());
    let request = match checked {
        Ok(request) => request,
        Err(reply) => {
            handled.outcome = Outcome::Failed(reply);
            return handled;
        }
    };

    let provisioning = provision(config, &request, api);
    handled.api_status = provisioning.api_statuses;
    handled.outcome = match provisioning.pod {
        Ok(pod) => {
            handled.pod = Some(pod.name.clone());
            let message = if config.dry_run { DRY_RUN_MESSAGE } else { DONE_MESSAGE };
            Outcome::Done(Reply::to(
                &event.key,
                DONE_TYPE,
                Some(pod.name.clone()),
                json!({
                    "pod_name": pod.name,
                    "namespace": config.client_namespace,
                    "gateway_name": request.gateway,
                    "gateway_address": pod.gateway_address,
                    "message": message,
                    "request_id": event.key.id,
                    "request_source": event.key.source,
                }),
            ))
        }
        Err(failure) => {
            if matches!(failure, CallFailure::Refused(_)) {
                handled.pod = Some(pod_name(&config.client_name_prefix, &event.key));
            }
            failure_outcome(failure, |message| failed(message, Some(request.gateway.clone())))
        }
    };
    handled
}

fn failed_reply(request: &EventKey, message: String, gateway_name: Option<String>) -> Reply {
    Reply::to(
        request,
        FAILED_TYPE,
        None,
        json!({
            "message": message,
            "gateway_name": gateway_name,
            "request_id": request.id,
            "request_source": request.source,
        }),
    )
}

/// The data of a pending event: a JSON object with a string `gateway_name` and an optional
/// string `message`; other fields are ignored.
fn pending_data(event: &ReceivedEvent) -> Result<PendingData, DataProblem> {
    let problem = |problem: String| DataProblem { problem, gateway_name: None };
    let fields = event.object_data(r#"{"gateway_name": "foo"}"#).map_err(problem)?;
    let string_field = |name: &str| json::string_field(&fields, name);
    let gateway_name = string_field("gateway_name").map_err(problem)?;
    let named = |problem| DataProblem { problem, gateway_name: gateway_name.clone() };
    let message = string_field("message").map_err(named)?;
    let args = match fields.get("args") {
        None | Some(Value::Null) => None,
        Some(args) => Some(event_args(args).map_err(named)?),
    };
    Ok(PendingData { gateway_name, message, args })
}

/// `args`: a JSON array of at most [`MAX_ARGS`] strings of at most [`MAX_ARGS_BYTES`] in all.
fn event_args(args: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = args else {
        return Err(format!("`args` must be an array of strings, not {}", json::kind(args)));
    };
    if items.len() > MAX_ARGS {
        return Err(format!("`args` has {} items; at most {MAX_ARGS} are taken", items.len()));
    }
    let args: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .map(str::to_owned)
                .ok_or(format!("`args[{i}]` must be a string, not {}", json::kind(item)))
        })
        .collect::<Result<_, _>>()?;
    let bytes: usize = args.iter().map(String::len).sum();
    if bytes > MAX_ARGS_BYTES {
        return Err(format!("`args` are {bytes} bytes; at most {MAX_ARGS_BYTES} are taken"));
    }
    Ok(args)
}

/// Checks the requested gateway against the Kubernetes label-value rule and the allowlist, and
/// that args come only where they are allowed.
fn client_request(
    event: &ReceivedEvent,
    data: PendingData,
    config: &Config,
) -> Result<ClientRequest, String> {
    let gateway = match data.gateway_name {
        None => return Err(r#"the event data has no `gateway_name`; expected {"gateway_name": "…"}"#.into()),
        Some(gateway) if gateway.is_empty() => return Err("`gateway_name` is empty".into()),
        Some(gateway) => gateway,
    };
    if !names::is_label_value(&gateway) {
        return Err(format!(
            "`gateway_name` {gateway:?} is not a valid gateway name: at most 63 letters, digits, \
             `-`, `_` or `.`, starting and ending with a letter or digit"
        ));
    }
    if let Some(allowed) = &config.allowed_gateways
        && !allowed.contains(&gateway)
    {
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        return Err(format!(
            "gateway `{gateway}` is not allowed here; allowed gateways: {}",
            allowed.join(", ")
        ));
    }
    if data.args.is_some() && !config.allow_event_args {
        return Err("this provisioner takes no `args` from events (allow_event_args is false)".into());
    }
    Ok(ClientRequest {
        event: event.key.clone(),
        gateway,
        message: data.message,
        args: data.args,
        event_json: event.structured_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::tests::event_with;
    use crate::config::tests::load_with;
    use crate::contract;
    use cloudevents::Data;

    /// The reference event (`urn:test`, `42`) in binary mode, with `data`.
    fn pending(data: &str) -> ReceivedEvent {
        let headers =
            crate::cloudevents::tests::header_map(&contract::binary_headers(contract::ID, contract::PENDING));
        crate::cloudevents::read(&headers, data.as_bytes().to_vec()).unwrap()
    }

    fn data(gateway: Option<&str>) -> PendingData {
        PendingData { gateway_name: gateway.map(String::from), ..PendingData::default() }
    }

    #[test]
    fn the_types_are_the_contracts() {
        assert_eq!((TYPE, DONE_TYPE, FAILED_TYPE), (contract::PENDING, contract::DONE, contract::FAILED));
    }

    #[test]
    fn pending_data_problems() {
        let bytes = |text: &str| Some(Data::Binary(text.as_bytes().to_vec()));
        let cases = [
            (event_with(Some("application/json"), None), "the event has no data"),
            (event_with(Some("application/json"), bytes("gateway foo")), "data is not valid JSON"),
            (
                event_with(Some("text/plain"), bytes("{}")),
                "data must be JSON (datacontenttype application/json), not `text/plain`",
            ),
            (
                event_with(None, bytes(r#"["foo"]"#)),
                "data must be a JSON object such as {\"gateway_name\": \"foo\"}, not an array",
            ),
            (
                event_with(None, bytes(r#"{"gateway_name": 7}"#)),
                "`gateway_name` must be a string, not a number",
            ),
        ];
        for (event, expected) in cases {
            let problem = pending_data(&event).unwrap_err();
            assert!(problem.problem.starts_with(expected), "{} / {expected}", problem.problem);
            assert_eq!(problem.gateway_name, None);
        }
        let problem =
            pending_data(&event_with(None, bytes(r#"{"gateway_name": "foo", "message": {}}"#))).unwrap_err();
        assert_eq!(problem.problem, "`message` must be a string, not an object");
        assert_eq!(problem.gateway_name.as_deref(), Some("foo"));
    }

    #[test]
    fn pending_data_accepts_json_types_and_absent_gateway() {
        let event = event_with(Some("application/vnd.x+json"), Some(Data::Json(json!({"message": "m"}))));
        assert_eq!(
            pending_data(&event).unwrap(),
            PendingData { gateway_name: None, message: Some("m".into()), args: None }
        );
    }

    #[test]
    fn gateway_checks() {
        let config = load_with(&[]).unwrap();
        let event = pending(r#"{"gateway_name":"foo"}"#);
        let request = client_request(&event, data(Some("foo")), &config).unwrap();
        assert_eq!((request.event, request.gateway.as_str(), request.args), (event.key.clone(), "foo", None));
        let problem = |gateway: Option<&str>, config: &Config| {
            client_request(&event, data(gateway), config).unwrap_err()
        };
        assert_eq!(
            problem(None, &config),
            r#"the event data has no `gateway_name`; expected {"gateway_name": "…"}"#
        );
        assert_eq!(problem(Some(""), &config), "`gateway_name` is empty");
        assert!(
            problem(Some("foo bar"), &config)
                .starts_with("`gateway_name` \"foo bar\" is not a valid gateway name")
        );
        assert!(problem(Some(&"g".repeat(64)), &config).contains("is not a valid gateway name"));
        let allowlist = load_with(&[("allowed_gateways", "foo,bar")]).unwrap();
        assert!(client_request(&event, data(Some("bar")), &allowlist).is_ok());
        assert_eq!(
            problem(Some("baz"), &allowlist),
            "gateway `baz` is not allowed here; allowed gateways: bar, foo"
        );
    }

    #[test]
    fn the_request_carries_the_whole_event_as_structured_json() {
        let event = pending(r#"{"gateway_name":"foo","message":"m"}"#);
        let request =
            client_request(&event, pending_data(&event).unwrap(), &load_with(&[]).unwrap()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&request.event_json).unwrap(),
            json!({"specversion": "1.0", "id": "42", "source": "urn:test", "type": contract::PENDING,
                   "datacontenttype": "application/json", "data": {"gateway_name": "foo", "message": "m"}})
        );
        assert_eq!(request.message.as_deref(), Some("m"));
    }

    #[test]
    fn args_only_when_allowed_and_within_the_limits() {
        let event = pending(r#"{"gateway_name":"foo","args":["https://example.com","--depth=2"]}"#);
        let data = pending_data(&event).unwrap();
        assert_eq!(data.args, Some(vec!["https://example.com".into(), "--depth=2".into()]));
        assert_eq!(
            client_request(&event, data.clone(), &load_with(&[]).unwrap()).unwrap_err(),
            "this provisioner takes no `args` from events (allow_event_args is false)"
        );
        let allowed = load_with(&[("allow_event_args", "true")]).unwrap();
        assert_eq!(client_request(&event, data, &allowed).unwrap().args.unwrap().len(), 2);

        let problem = |args: Value| {
            pending_data(&pending(&json!({"gateway_name": "foo", "args": args}).to_string())).unwrap_err()
        };
        assert_eq!(problem(json!("x")).problem, "`args` must be an array of strings, not a string");
        assert_eq!(problem(json!(["a", 1])).problem, "`args[1]` must be a string, not a number");
        assert_eq!(problem(json!(vec!["a"; 65])).problem, "`args` has 65 items; at most 64 are taken");
        assert_eq!(
            problem(json!(["a".repeat(8193)])).problem,
            "`args` are 8193 bytes; at most 8192 are taken"
        );
        assert_eq!(
            problem(json!([1])).gateway_name.as_deref(),
            Some("foo"),
            "the reply still names the gateway"
        );
        assert!(
            pending_data(&pending(
                &json!({"gateway_name": "foo", "args": vec!["a".repeat(128); 64]}).to_string()
            ))
            .is_ok()
        );
    }
}
