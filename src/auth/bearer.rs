//! The sender's bearer token, read from the request before anything else, and the claims it
//! states about itself. The claims are not trusted here (the API server verifies the token);
//! they only turn away, without an API call, what no verification could accept: no token,
//! not a JWT, expired, not yet valid, or made for another audience.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

/// A longer `Authorization` header is refused unread. Kubernetes service-account tokens are
/// about 1 KiB.
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;
/// Clock skew allowed on `exp` and `nbf`, as the API server allows (`jwt.DefaultLeeway`).
const LEEWAY_SECONDS: u64 = 60;

/// The token of the request's `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, String> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(http::header::AUTHORIZATION) {
            "the request has more than one Authorization header".into()
        } else {
            "the request has no Authorization header; send Authorization: Bearer <token>".into()
        });
    };
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(format!("the Authorization header is longer than {MAX_AUTHORIZATION_BYTES} bytes"));
    }
    let value = value.to_str().map_err(|_| "the Authorization header is not ASCII".to_owned())?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim())
        }
        _ => Err("the Authorization header is not Bearer <token>".into()),
    }
}

/// What a token says about itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    pub audiences: Vec<String>,
    /// Unix seconds.
    pub expires: u64,
    pub not_before: Option<u64>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    aud: Audience,
    exp: Option<u64>,
    nbf: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

/// The claims of a JWT (`header.payload.signature`, base64url), unverified.
pub fn claims(token: &str) -> Result<Claims, String> {
    let not_a_jwt = "the bearer token is not a JWT (header.payload.signature, base64url)";
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else { return Err(not_a_jwt.into()) };
    if signature.is_empty() {
        return Err(not_a_jwt.into());
    }
    let json = |part: &str, what: &str| -> Result<Value, String> {
        let bytes =
            URL_SAFE_NO_PAD.decode(part).map_err(|_| format!("the token's {what} is not base64url"))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(format!("the token's {what} is not a JSON object")),
        }
    };
    json(header, "header")?;
    let payload: Payload = serde_json::from_value(json(payload, "payload")?)
        .map_err(|error| format!("the token's claims cannot be read: {error}"))?;
    let audiences = match payload.aud {
        Audience::One(audience) => vec![audience],
        Audience::Many(audiences) => audiences,
        Audience::None => Vec::new(),
    };
    let expires = payload.exp.ok_or("the token has no exp (expiry) claim")?;
    Ok(Claims { audiences, expires, not_before: payload.nbf })
}

/// Whether the claims could be accepted `now` (unix seconds) for `audience`.
pub fn plausible(claims: &Claims, audience: &str, now: u64) -> Result<(), String> {
    if claims.expires.saturating_add(LEEWAY_SECONDS) < now {
        return Err(format!("the token expired {} s ago", now - claims.expires));
    }
    if let Some(not_before) = claims.not_before
        && not_before > now.saturating_add(LEEWAY_SECONDS)
    {
        return Err(format!("the token is not valid for another {} s", not_before - now));
    }
    if !claims.audiences.iter().any(|aud| aud == audience) {
        return Err(format!("the token is not for audience {audience} (its aud: {:?})", claims.audiences));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cloudevents::tests::header_map;
    use serde_json::json;

    /// A JWT with these claims (the signature is not checked here).
    pub(crate) fn jwt(claims: Value) -> String {
        let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
        format!("{}.{}.c2lnbmF0dXJl", part(json!({"alg": "RS256", "kid": "k1"})), part(claims))
    }

    #[test]
    fn the_token_comes_from_one_bearer_header() {
        assert_eq!(bearer_token(&header_map(&[("authorization", "Bearer abc.def.ghi")])), Ok("abc.def.ghi"));
        assert_eq!(bearer_token(&header_map(&[("authorization", "bearer  abc ")])), Ok("abc"));
        let refused = |pairs: &[(&str, &str)]| bearer_token(&header_map(pairs)).unwrap_err();
        assert_eq!(
            refused(&[]),
            "the request has no Authorization header; send Authorization: Bearer <token>"
        );
        assert_eq!(
            refused(&[("authorization", "Basic dXNlcjpwYXNz")]),
            "the Authorization header is not Bearer <token>"
        );
        assert_eq!(
            refused(&[("authorization", "Bearer ")]),
            "the Authorization header is not Bearer <token>"
        );
        assert_eq!(
            refused(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
            "the request has more than one Authorization header"
        );
        let huge = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_BYTES));
        assert_eq!(
            refused(&[("authorization", &huge)]),
            "the Authorization header is longer than 8192 bytes"
        );
    }

    #[test]
    fn the_claims_of_a_service_account_token() {
        let token = jwt(json!({
            "aud": ["podgateway-client-provisioner"], "exp": 1_764_590_400u64, "iat": 1_764_586_800u64,
            "nbf": 1_764_586_800u64, "iss": "https://kubernetes.default.svc.cluster.local", "jti": "3f1e",
            "kubernetes.io": {"namespace": "podgateway-system",
                              "serviceaccount": {"name": "client-release-oidc-eventing.knative.dev-trigger", "uid": "7c1d"}},
            "sub": "system:serviceaccount:podgateway-system:client-release-oidc-eventing.knative.dev-trigger"
        }));
        assert_eq!(
            claims(&token),
            Ok(Claims {
                audiences: vec!["podgateway-client-provisioner".into()],
                expires: 1_764_590_400,
                not_before: Some(1_764_586_800)
            })
        );
        assert_eq!(claims(&jwt(json!({"aud": "a", "exp": 5}))).unwrap().audiences, ["a"]);
    }

    #[test]
    fn what_is_not_a_jwt_is_named() {
        let not_a_jwt = "the bearer token is not a JWT (header.payload.signature, base64url)";
        assert_eq!(claims("opaque-token"), Err(not_a_jwt.into()));
        assert_eq!(claims("a.b.c.d"), Err(not_a_jwt.into()));
        assert_eq!(claims("a.b."), Err(not_a_jwt.into()));
        assert_eq!(claims("%%%.e30.c2ln"), Err("the token's header is not base64url".into()));
        let header = URL_SAFE_NO_PAD.encode("{}");
        assert_eq!(
            claims(&format!("{header}.WzFd.c2ln")),
            Err("the token's payload is not a JSON object".into())
        );
        assert_eq!(claims(&jwt(json!({"aud": "a"}))), Err("the token has no exp (expiry) claim".into()));
        assert!(
            claims(&jwt(json!({"aud": 7, "exp": 1})))
                .unwrap_err()
                .starts_with("the token's claims cannot be read")
        );
    }

    #[test]
    fn expired_early_or_foreign_tokens_are_not_plausible() {
        let claims = Claims { audiences: vec!["aud-1".into()], expires: 1_000, not_before: Some(400) };
        assert_eq!(plausible(&claims, "aud-1", 1_000), Ok(()));
        assert_eq!(plausible(&claims, "aud-1", 1_060), Ok(()), "within the leeway");
        assert_eq!(plausible(&claims, "aud-1", 1_061), Err("the token expired 61 s ago".into()));
        assert_eq!(plausible(&claims, "aud-1", 300), Err("the token is not valid for another 100 s".into()));
        assert_eq!(
            plausible(&claims, "aud-2", 500),
            Err("the token is not for audience aud-2 (its aud: [\"aud-1\"])".into())
        );
    }
}
