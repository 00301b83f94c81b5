//! `POST /apis/authentication.k8s.io/v1/tokenreviews`, after authentication and authorization
//! (`api.rs`), in the order of the create handler and the TokenReview REST storage: media
//! type (415), `CreateOptions` (422), body decoding (400), the object's system metadata wiped
//! and its namespace cleared (cluster scope), the field manager's `managedFields`, then
//! `REST.Create`: an empty `spec.token` is 400, else the token goes through the authenticator
//! chain (`token.rs`) and the review comes back as `201 Created`.

use serde_json::{Map, Value, json};

use super::api::{self, ApiRequest, CreateOptions};
use super::decode::{self, Ty};
use super::status::{Reply, Status};
use super::{State, pod, token};

const API_VERSION: &str = "authentication.k8s.io/v1";

/// How the apiserver decodes a TokenReview: `authentication.k8s.io/v1`, converted to the
/// internal `authentication.TokenReview`; `v1beta1` still decodes but is not this endpoint's.
const TOKEN_REVIEW_KIND: decode::ObjectKind = decode::ObjectKind {
    api_version: API_VERSION,
    kind: "TokenReview",
    internal: "authentication.TokenReview",
    same_version_kinds: &["SelfSubjectReview", "TokenRequest"],
    other_served_versions: &["authentication.k8s.io/v1beta1"],
    ty: &TOKEN_REVIEW,
    typed: |mut review| {
        // Go decodes a missing `spec` as the zero value; k8s-openapi requires the field.
        if let Some(object) = review.as_object_mut() {
            let spec = object.entry("spec").or_insert(Value::Null);
            if spec.is_null() {
                *spec = json!({});
            }
        }
        let typed: k8s_openapi::api::authentication::v1::TokenReview =
            serde_json::from_value(review).map_err(|e| e.to_string())?;
        serde_json::to_value(&typed).map_err(|e| e.to_string())
    },
};

const TOKEN_REVIEW: Ty = Ty::Struct(
    "v1.TokenReview",
    &[
        ("metadata", pod::META),
        (
            "spec",
            Ty::Struct("v1.TokenReviewSpec", &[("token", Ty::Str("string")), ("audiences", Ty::StrList)]),
        ),
        (
            "status",
            Ty::Struct(
                "v1.TokenReviewStatus",
                &[
                    ("authenticated", Ty::Bool),
                    (
                        "user",
                        Ty::Struct(
                            "v1.UserInfo",
                            &[
                                ("username", Ty::Str("string")),
                                ("uid", Ty::Str("string")),
                                ("groups", Ty::StrList),
                            ],
                        ),
                    ),
                    ("audiences", Ty::StrList),
                    ("error", Ty::Str("string")),
                ],
            ),
        ),
    ],
);

pub(super) fn create(state: &mut State, req: &ApiRequest) -> Reply {
    let mut warnings = Vec::new();
    let reply = review(state, req, &mut warnings).unwrap_or_else(|error| error);
    api::with_warnings(reply, warnings)
}

fn review(state: &mut State, req: &ApiRequest, warnings: &mut Vec<String>) -> Result<Reply, Reply> {
    if !api::is_json(req.headers) {
        return Err(Status::unsupported_media_type().reply());
    }
    let options = CreateOptions::parse(req.query)?;
    let decoded = decode::decode(req.body, &TOKEN_REVIEW_KIND).map_err(|m| Status::bad_request(m).reply())?;
    options.unknown_fields(&decoded.unknown_fields, warnings)?;

    // What the Go object holds: the known fields, with `omitempty` applied.
    let mut review = decoded.known;
    omit_empty(&mut review);
    let meta = pod::object_at(&mut review, "metadata");
    // WipeObjectMetaSystemFields; a cluster-scoped object's namespace is cleared.
    for field in [
        "creationTimestamp",
        "uid",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "namespace",
    ] {
        meta.remove(field);
    }
    let fields = pod::fields_v1_of(&review, &[]);
    let meta = pod::object_at(&mut review, "metadata");
    meta.insert("creationTimestamp".into(), Value::Null);
    if fields.as_object().is_some_and(|f| !f.is_empty()) {
        meta.insert(
            "managedFields".into(),
            json!([{"manager": options.manager(req.headers), "operation": "Update", "apiVersion": API_VERSION,
                    "time": pod::rfc3339_now(), "fieldsType": "FieldsV1", "fieldsV1": fields}]),
        );
    }

    let spec = &review["spec"];
    let token = spec["token"].as_str().unwrap_or("").to_owned();
    if token.is_empty() {
        return Err(Status::bad_request("token is required for TokenReview in authentication").reply());
    }
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if audiences.is_empty() {
        audiences.push(token::ISSUER.to_owned());
    }

    let result = token::review(state, &token, &audiences);
    let status = pod::object_at(&mut review, "status");
    match result {
        Ok(authenticated) => {
            status.insert("authenticated".into(), json!(true));
            status.insert("user".into(), authenticated.user.to_json());
            if authenticated.audiences.is_empty() {
                status.remove("audiences");
            } else {
                status.insert("audiences".into(), json!(authenticated.audiences));
            }
        }
        Err(error) => {
            // `Status.Authenticated = false` (omitted); the user is what the request held.
            status.remove("authenticated");
            status.insert("error".into(), json!(error));
            status.entry("user").or_insert_with(|| json!({}));
        }
    }
    Ok(Reply::json(201, &review))
}

/// Go's `omitempty` on the fields of the TokenReview's structs: empty strings, lists, maps
/// and `false` are left out (maps' own entries are kept; `metadata`, `spec`, `status` and
/// `status.user` are structs and always written).
fn omit_empty(review: &mut Value) {
    fn strip(object: &mut Map<String, Value>, keep: &[&str]) {
        object.retain(|key, value| {
            keep.contains(&key.as_str())
                || !matches!(value, Value::Null | Value::Bool(false))
                    && !value.as_str().is_some_and(str::is_empty)
                    && !value.as_array().is_some_and(Vec::is_empty)
                    && !value.as_object().is_some_and(Map::is_empty)
        });
    }
    for (section, keep) in [("metadata", &[][..]), ("spec", &[][..]), ("status", &["user"][..])] {
        let object = pod::object_at(review, section);
        strip(object, keep);
    }
    if let Some(Value::Object(user)) = pod::object_at(review, "status").get_mut("user") {
        strip(user, &[]);
    }
}
