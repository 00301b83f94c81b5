//! Who sent a request, checked before the event is read (Knative OIDC sender identity): with
//! `auth_audience` set, every request must carry a bearer token that the Kubernetes API
//! server authenticates for that audience (TokenReview), from a subject `auth_allowed_senders`
//! allows. A verified token is remembered in Spin's key-value store for a while, so that the
//! token a Trigger reuses for up to an hour costs one review, not one per event.

pub mod bearer;
pub mod cache;

use http::HeaderMap;

use crate::config::{Config, SenderAuth};
use crate::host::Host;
use crate::kube::calls::{ApiCalls, CallFailure, retry_later};
use crate::kube::requests::review_token;
use crate::kube::responses::{ApiError, TokenReviewView};

/// The sender of a request, as authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Sender {
    /// The username the API server gave the token, e.g. `system:serviceaccount:ns:name`.
    pub subject: String,
    /// Whether the key-value store remembered it (no API call was made).
    pub remembered: bool,
}

/// Why a request is turned away before its event is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Denial {
    /// No token, or one that does not authenticate for the audience: 401.
    Unauthenticated { reason: String, token_given: bool },
    /// Authenticated, but not an allowed sender: 403.
    NotAllowed { subject: String },
    /// The token could not be verified now: 503.
    Unavailable { message: String, retry_after: Option<u64> },
    /// The deployment is wrong (a variable, the component's permission to review tokens): 500.
    Misconfigured(String),
}

/// The outcome of the check, with what the log line tells of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// `Ok(None)`: authentication is off.
    pub sender: Result<Option<Sender>, Denial>,
    /// The configuration, when the check had to load it.
    pub config: Option<Config>,
    /// The status of the TokenReview answer, when one was asked for.
    pub api_status: Vec<u16>,
    /// What went wrong on the side without changing the outcome (the key-value store).
    pub warnings: Vec<String>,
}

/// Checks the sender of a request with these headers.
pub fn check_sender(headers: &HeaderMap, host: &mut impl Host) -> Checked {
    let mut checked =
        Checked { sender: Ok(None), config: None, api_status: Vec::new(), warnings: Vec::new() };
    match host.variable("auth_audience") {
        Ok(audience) if audience.trim().is_empty() => return checked,
        Ok(_) => {}
        Err(error) => {
            checked.sender = Err(Denial::Misconfigured(format!("Spin variable `auth_audience`: {error}")));
            return checked;
        }
    }
    let config = match Config::load(|name| host.variable(name)) {
        Ok(config) => config,
        Err(error) => {
            checked.sender = Err(Denial::Misconfigured(error.to_string()));
            return checked;
        }
    };
    if let Some(auth) = &config.auth {
        checked.sender =
            authenticate(headers, &config, auth, host, &mut checked.api_status, &mut checked.warnings)
                .and_then(|sender| authorize(sender, auth))
                .map(Some);
    }
    checked.config = Some(config);
    checked
}

/// A review that could not be made: the deployment is wrong, or the API is unavailable now.
impl From<CallFailure> for Denial {
    fn from(failure: CallFailure) -> Self {
        match failure {
            CallFailure::Refused(message) | CallFailure::Misconfigured(message) => {
                Denial::Misconfigured(message)
            }
            CallFailure::Unavailable { message, retry_after } => Denial::Unavailable { message, retry_after },
        }
    }
}

fn unauthenticated(reason: String, token_given: bool) -> Denial {
    Denial::Unauthenticated { reason, token_given }
}

fn authenticate(
    headers: &HeaderMap,
    config: &Config,
    auth: &SenderAuth,
    host: &mut impl Host,
    api_status: &mut Vec<u16>,
    warnings: &mut Vec<String>,
) -> Result<Sender, Denial> {
    let token = bearer::bearer_token(headers).map_err(|reason| unauthenticated(reason, false))?;
    let now = host.unix_seconds();
    let claims = bearer::claims(token).map_err(|reason| unauthenticated(reason, true))?;
    bearer::plausible(&claims, &auth.audience, now).map_err(|reason| unauthenticated(reason, true))?;

    let key = cache::key(token);
    if auth.cache_seconds > 0 {
        match host.stored(&key) {
            Ok(Some(bytes)) => {
                let entry = cache::Entry::from_bytes(&bytes);
                if let Some(subject) = entry.as_ref().and_then(|entry| entry.subject_for(&auth.audience, now))
                {
                    return Ok(Sender { subject: subject.to_owned(), remembered: true });
                }
            }
            Ok(None) => {}
            Err(error) => {
                warnings.push(format!("cannot read the key-value store, verifying the token: {error}"))
            }
        }
    }
    let subject = review(config, token, &auth.audience, host, api_status)?;
    if auth.cache_seconds > 0 {
        let entry =
            cache::Entry::new(subject.clone(), &auth.audience, now, claims.expires, auth.cache_seconds);
        if let Err(error) = host.store(&key, &entry.to_bytes()) {
            warnings.push(format!("cannot remember the verified token in the key-value store: {error}"));
        }
    }
    Ok(Sender { subject, remembered: false })
}

/// Asks the API server whom the token authenticates for the audience.
fn review(
    config: &Config,
    token: &str,
    audience: &str,
    host: &mut impl Host,
    api_status: &mut Vec<u16>,
) -> Result<String, Denial> {
    let mut calls = ApiCalls::new(host, config);
    let action = "review the sender's token";
    let answer = calls.send(review_token(config, token, audience), action);
    api_status.append(&mut calls.statuses);
    let answer = answer?;
    if !answer.status().is_success() {
        let error = ApiError::from_response(&answer);
        if let Some(retry) = retry_later(&error, action) {
            return Err(retry.into());
        }
        return Err(match error.code {
            401 | 403 => Denial::Misconfigured(format!(
                "the Kubernetes API refused to {action}: {error}; the component's ServiceAccount needs `create` on \
                 tokenreviews (authentication.k8s.io): bind the ClusterRole of deploy/rbac.yaml to it, and check k8s_token"
            )),
            _ => Denial::Misconfigured(format!("the Kubernetes API refused to {action}: {error}")),
        });
    }
    let review: TokenReviewView =
        serde_json::from_slice(answer.body()).map_err(|error| Denial::Unavailable {
            message: format!("the token review cannot be read: {error}"),
            retry_after: None,
        })?;
    let status = review.status;
    if !status.authenticated {
        let why = status.error.unwrap_or_else(|| "no reason given".into());
        return Err(unauthenticated(format!("the token was not accepted: {why}"), true));
    }
    if !status.audiences.iter().any(|aud| aud == audience) {
        return Err(unauthenticated(format!("the token is not valid for audience {audience}"), true));
    }
    Ok(status.user.username)
}

/// An authenticated sender may send when `auth_allowed_senders` is empty or allows it.
fn authorize(sender: Sender, auth: &SenderAuth) -> Result<Sender, Denial> {
    if auth.allowed_senders.is_empty()
        || auth.allowed_senders.iter().any(|allowed| allowed.matches(&sender.subject))
    {
        Ok(sender)
    } else {
        Err(Denial::NotAllowed { subject: sender.subject })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::bearer::tests::jwt;
    use crate::cloudevents::tests::header_map;
    use crate::host::tests::FakeHost;
    use crate::kube::TransportError;
    use crate::kube::calls::tests::{answer, status};
    use crate::respond::denied;
    use serde_json::{Value, json};

    const AUDIENCE: &str = "podgateway-client-provisioner";
    const SENDER: &str =
        "system:serviceaccount:podgateway-system:client-provisioner-oidc-eventing.knative.dev-trigger";
    const NOW: u64 = 1_764_583_200;

    fn token(audience: &str, expires: u64) -> String {
        jwt(json!({"aud": [audience], "exp": expires, "iat": expires - 3600, "nbf": expires - 3600,
                   "iss": "https://kubernetes.default.svc.cluster.local", "sub": SENDER}))
    }

    fn reviewed(username: &str) -> Result<http::Response<Vec<u8>>, TransportError> {
        answer(
            201,
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"token": "…", "audiences": [AUDIENCE]},
            "status": {"authenticated": true, "audiences": [AUDIENCE],
                       "user": {"username": username, "uid": "7c1d",
                                "groups": ["system:serviceaccounts", "system:serviceaccounts:podgateway-system", "system:authenticated"]}}}),
        )
    }

    fn auth_host(
        variables: &[(&str, &str)],
        answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>,
    ) -> FakeHost {
        let mut host = FakeHost::new(answers);
        host.set("k8s_api_url", "http://127.0.0.1:8001");
        host.set("k8s_token", "component-token");
        host.set("auth_audience", AUDIENCE);
        for (name, value) in variables {
            host.set(name, value);
        }
        host
    }

    fn check(host: &mut FakeHost, token: &str) -> Checked {
        check_sender(&header_map(&[("authorization", &format!("Bearer {token}"))]), host)
    }

    fn sender(checked: &Checked) -> &Sender {
        checked.sender.as_ref().unwrap().as_ref().unwrap()
    }

    fn unauthenticated(checked: &Checked) -> (String, bool) {
        match &checked.sender {
            Err(Denial::Unauthenticated { reason, token_given }) => (reason.clone(), *token_given),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_an_audience_nothing_is_checked() {
        let mut host = FakeHost::new(vec![]);
        let checked = check_sender(&header_map(&[]), &mut host);
        assert_eq!(checked, Checked { sender: Ok(None), config: None, api_status: vec![], warnings: vec![] });
    }

    #[test]
    fn a_token_is_reviewed_once_then_remembered() {
        let token = token(AUDIENCE, NOW + 3600);
        let mut host = auth_host(&[], vec![reviewed(SENDER)]);
        let checked = check(&mut host, &token);
        assert_eq!(sender(&checked), &Sender { subject: SENDER.into(), remembered: false });
        assert_eq!(checked.api_status, [201]);
        let review = &host.api.sent[0];
        assert_eq!(review.method(), http::Method::POST);
        assert_eq!(review.uri(), "http://127.0.0.1:8001/apis/authentication.k8s.io/v1/tokenreviews?");
        assert_eq!(review.headers()["authorization"], "Bearer component-token");
        assert_eq!(
            serde_json::from_slice::<Value>(review.body()).unwrap(),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                   "spec": {"token": token, "audiences": [AUDIENCE]}})
        );
        // Remembered under the token's digest, never the token, for auth_cache_seconds (300).
        let key = cache::key(&token);
        let entry = cache::Entry::from_bytes(&host.store[&key]).unwrap();
        assert_eq!(
            entry,
            cache::Entry { subject: SENDER.into(), audience: AUDIENCE.into(), until: NOW + 300 }
        );
        assert!(host.store.keys().all(|key| !key.contains(&token)));

        let again = check(&mut host, &token);
        assert_eq!(sender(&again), &Sender { subject: SENDER.into(), remembered: true });
        assert!(again.api_status.is_empty());
        assert_eq!(host.api.sent.len(), 1, "no second review");
        // Once the entry is over, the token is reviewed again.
        host.unix_seconds = NOW + 300;
        host.api = crate::kube::calls::tests::ScriptedApi::new(vec![reviewed(SENDER)]);
        assert!(!sender(&check(&mut host, &token)).remembered);
        assert_eq!(host.api.sent.len(), 1);
    }

    #[test]
    fn without_a_cache_every_request_is_reviewed() {
        let token = token(AUDIENCE, NOW + 3600);
        let mut host = auth_host(&[("auth_cache_seconds", "0")], vec![reviewed(SENDER), reviewed(SENDER)]);
        host.store_error = Some("must not be used".into());
        for _ in 0..2 {
            let checked = check(&mut host, &token);
            assert!(!sender(&checked).remembered);
            assert!(checked.warnings.is_empty());
        }
        assert_eq!(host.api.sent.len(), 2);
    }

    #[test]
    fn a_store_that_fails_means_reviewing_every_time_never_accepting_unverified() {
        let token = token(AUDIENCE, NOW + 3600);
        let mut host = auth_host(
            &[],
            vec![
                reviewed(SENDER),
                answer(201, json!({"status": {"user": {}, "error": "invalid bearer token"}})),
            ],
        );
        host.store_error = Some("no-such-store".into());
        let checked = check(&mut host, &token);
        assert_eq!(sender(&checked).subject, SENDER);
        assert_eq!(
            checked.warnings,
            [
                "cannot read the key-value store, verifying the token: no-such-store",
                "cannot remember the verified token in the key-value store: no-such-store"
            ]
        );
        let refused = check(&mut host, &token);
        assert_eq!(unauthenticated(&refused).0, "the token was not accepted: invalid bearer token");
    }

    #[test]
    fn tokens_that_cannot_be_accepted_are_refused_without_a_review() {
        let mut host = auth_host(&[], vec![]);
        let no_header = check_sender(&header_map(&[]), &mut host);
        assert_eq!(
            unauthenticated(&no_header),
            ("the request has no Authorization header; send Authorization: Bearer <token>".into(), false)
        );
        for (token, reason) in [
            (
                "garbage".to_owned(),
                "the bearer token is not a JWT (header.payload.signature, base64url)".to_owned(),
            ),
            (token(AUDIENCE, NOW - 61), "the token expired 61 s ago".to_owned()),
            (
                token("other", NOW + 3600),
                format!("the token is not for audience {AUDIENCE} (its aud: [\"other\"])"),
            ),
        ] {
            assert_eq!(unauthenticated(&check(&mut host, &token)), (reason, true));
        }
        let huge = format!("Bearer {}", "a".repeat(10_000));
        let checked = check_sender(&header_map(&[("authorization", &huge)]), &mut host);
        assert_eq!(unauthenticated(&checked).0, "the Authorization header is longer than 8192 bytes");
        assert!(host.api.sent.is_empty());
        assert!(host.store.is_empty(), "failures are not remembered");
    }

    #[test]
    fn what_the_review_refuses_is_unauthenticated_and_not_remembered() {
        let token = token(AUDIENCE, NOW + 3600);
        let expired = answer(
            201,
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null}, "spec": {"token": "…", "audiences": [AUDIENCE]},
            "status": {"user": {}, "error": "[invalid bearer token, service account token has expired]"}}),
        );
        let other_audience = answer(
            201,
            json!({"status": {"authenticated": true, "audiences": ["api"], "user": {"username": SENDER}}}),
        );
        let mut host = auth_host(&[], vec![expired, other_audience]);
        assert_eq!(
            unauthenticated(&check(&mut host, &token)),
            (
                "the token was not accepted: [invalid bearer token, service account token has expired]"
                    .into(),
                true
            )
        );
        assert_eq!(
            unauthenticated(&check(&mut host, &token)).0,
            format!("the token is not valid for audience {AUDIENCE}")
        );
        assert!(host.store.is_empty());
    }

    #[test]
    fn only_allowed_senders_pass() {
        let token = token(AUDIENCE, NOW + 3600);
        let allowed = [
            ("system:serviceaccount:podgateway-system:*", true),
            (SENDER, true),
            ("system:serviceaccount:other:*, system:serviceaccount:podgateway-system:client", false),
            ("", true),
        ];
        for (senders, passes) in allowed {
            let mut host = auth_host(&[("auth_allowed_senders", senders)], vec![reviewed(SENDER)]);
            let checked = check(&mut host, &token);
            if passes {
                assert_eq!(sender(&checked).subject, SENDER, "{senders}");
            } else {
                assert_eq!(checked.sender, Err(Denial::NotAllowed { subject: SENDER.into() }), "{senders}");
            }
        }
    }

    #[test]
    fn review_failures_are_retried_or_name_what_to_fix() {
        let token = token(AUDIENCE, NOW + 3600);
        let forbidden = status(
            403,
            "Forbidden",
            "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:podgateway-system:client-provisioner\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope",
        );
        let mut host = auth_host(&[], vec![answer(403, forbidden)]);
        let Err(Denial::Misconfigured(message)) = check(&mut host, &token).sender else { panic!() };
        assert!(
            message.starts_with(
                "the Kubernetes API refused to review the sender's token: 403 Forbidden: tokenreviews"
            ),
            "{message}"
        );
        assert!(
            message.contains("needs `create` on tokenreviews (authentication.k8s.io): bind the ClusterRole"),
            "{message}"
        );

        let mut too_many = http::Response::new(b"Too many requests, please try again later.".to_vec());
        *too_many.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
        too_many.headers_mut().insert("retry-after", "4".parse().unwrap());
        let mut host = auth_host(&[], vec![Ok(too_many), Err(TransportError::TimedOut)]);
        let checked = check(&mut host, &token);
        assert!(
            matches!(&checked.sender, Err(Denial::Unavailable { retry_after: Some(4), .. })),
            "{checked:?}"
        );
        assert_eq!(checked.api_status, [429]);
        assert!(matches!(
            check(&mut host, &token).sender,
            Err(Denial::Unavailable { retry_after: None, .. })
        ));
    }

    #[test]
    fn a_bad_auth_variable_is_a_configuration_error() {
        let mut host = auth_host(&[("auth_cache_seconds", "forever")], vec![]);
        let checked = check(&mut host, "x");
        assert_eq!(
            checked.sender,
            Err(Denial::Misconfigured(
                "Spin variable `auth_cache_seconds`: `forever` is not a whole number of seconds from 0 to 86400".into()
            ))
        );
    }

    #[test]
    fn each_denial_has_its_status_and_challenge() {
        let header = |answer: &crate::respond::HttpAnswer, name: &str| {
            answer.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
        };
        let body =
            |answer: &crate::respond::HttpAnswer| serde_json::from_slice::<Value>(&answer.body).unwrap();
        let (answer, log) = denied(Denial::Unauthenticated { reason: "no token".into(), token_given: false });
        assert_eq!((answer.status, header(&answer, "www-authenticate")), (401, Some("Bearer".into())));
        assert_eq!(body(&answer), json!({"error": "unauthenticated: no token"}));
        assert_eq!(log.outcome, crate::respond::LogOutcome::Rejected);
        let (answer, _) = denied(Denial::Unauthenticated { reason: "expired".into(), token_given: true });
        assert_eq!(header(&answer, "www-authenticate"), Some(r#"Bearer error="invalid_token""#.into()));
        let (answer, _) = denied(Denial::NotAllowed { subject: SENDER.into() });
        assert_eq!(answer.status, 403);
        assert_eq!(
            body(&answer),
            json!({"error": format!("{SENDER} may not send events here (auth_allowed_senders)")})
        );
        let (answer, log) = denied(Denial::Unavailable { message: "later".into(), retry_after: Some(2) });
        assert_eq!((answer.status, header(&answer, "retry-after")), (503, Some("2".into())));
        assert_eq!(log.outcome, crate::respond::LogOutcome::Retry);
        let (answer, log) = denied(Denial::Misconfigured("fix it".into()));
        assert_eq!((answer.status, log.outcome), (500, crate::respond::LogOutcome::ConfigError));
    }
}
