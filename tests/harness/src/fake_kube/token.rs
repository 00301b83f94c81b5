//! Service-account tokens: issuing them as the TokenRequest API does, and authenticating a
//! bearer token through the kube-apiserver's authenticator chain (what a TokenReview runs, and
//! what authenticates a caller). The facts and their sources are in the module docs of
//! `fake_kube/mod.rs`, "TokenReview and service-account tokens".

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::State;
use super::pod;
use super::status::{aggregate, go_quote};

/// `--service-account-issuer` of a kubeadm or kind cluster; `--api-audiences` defaults to it.
pub(super) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of legacy (Secret-based) tokens (`serviceaccount.LegacyIssuer`).
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// go-jose's `jwt.DefaultLeeway`.
const LEEWAY: Duration = Duration::from_secs(60);
/// kube-apiserver's default `TokenSuccessCacheTTL` (failures are not cached).
pub(super) const SUCCESS_CACHE_TTL: Duration = Duration::from_secs(10);

const INVALID_BEARER_TOKEN: &str = "invalid bearer token";
const ANONYMOUS: &str = "system:anonymous";

/// The claims of a token the fake issued.
#[derive(Debug, Clone)]
pub(super) struct Claims {
    audiences: Vec<String>,
    expiry: i64,
    issued_at: i64,
    not_before: i64,
    id: String,
    namespace: String,
    name: String,
    uid: String,
}

/// `authenticationv1.UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// As JSON, with Go's `omitempty`.
    pub fn to_json(&self) -> Value {
        let mut user = serde_json::Map::new();
        if !self.username.is_empty() {
            user.insert("username".into(), json!(self.username));
        }
        if !self.uid.is_empty() {
            user.insert("uid".into(), json!(self.uid));
        }
        if !self.groups.is_empty() {
            user.insert("groups".into(), json!(self.groups));
        }
        if !self.extra.is_empty() {
            user.insert("extra".into(), json!(self.extra));
        }
        Value::Object(user)
    }
}

/// `authenticator.Response`: who the token is, and the audiences it was accepted for.
#[derive(Debug, Clone)]
pub(super) struct Authenticated {
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

/// A new key id, as long as the real one (`base64url(sha256(DER public key))`).
pub(super) fn new_key_id() -> String {
    let bytes: Vec<u8> = (0..4).flat_map(|_| pod::random().to_be_bytes()).take(32).collect();
    base64url(&bytes)
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Issues a token as `TokenRequest` does: RS256 with the fake's key id; `iat` and `nbf` are
/// `not_before`. The ServiceAccount is created (with a new uid) if it does not exist. Empty
/// `audiences` mean the API server's own, as in `TokenRequest`.
pub(super) fn issue(
    state: &mut State,
    namespace: &str,
    name: &str,
    audiences: &[&str],
    not_before: SystemTime,
    expires: SystemTime,
) -> String {
    let uid = state.service_accounts.entry((namespace.into(), name.into())).or_insert_with(pod::uid).clone();
    let audiences: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_owned()]
    } else {
        audiences.iter().map(|a| (*a).to_owned()).collect()
    };
    let claims = Claims {
        audiences,
        expiry: unix_seconds(expires),
        issued_at: unix_seconds(not_before),
        not_before: unix_seconds(not_before),
        id: pod::uid(),
        namespace: namespace.into(),
        name: name.into(),
        uid,
    };
    // go-jose marshals the header and the merged claims as maps: keys in sorted order.
    let header = json!({"alg": "RS256", "kid": state.signing_key_id});
    let payload = json!({
        "aud": claims.audiences,
        "exp": claims.expiry,
        "iat": claims.issued_at,
        "iss": ISSUER,
        "jti": claims.id,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": claims.uid}},
        "nbf": claims.not_before,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    // An RSA-2048 signature is 256 bytes; these are random, and remembered with the token.
    let signature: Vec<u8> = (0..32).flat_map(|_| pod::random().to_be_bytes()).collect();
    let token = format!(
        "{}.{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(payload.to_string().as_bytes()),
        base64url(&signature)
    );
    state.issued.insert(token.clone(), claims);
    token
}

/// What the kube-apiserver's request authenticator answers for `Authorization: Bearer <token>`
/// with `audiences` in the request context (TokenReview: `spec.audiences`, or the API
/// audiences when empty): the user, or the error text a TokenReview's `status.error` shows.
pub(super) fn review(state: &mut State, token: &str, audiences: &[String]) -> Result<Authenticated, String> {
    let Some(token) = bearer_token(token) else {
        // No usable bearer token: no authenticator answers, and anonymous auth says yes.
        return Ok(Authenticated {
            user: UserInfo {
                username: ANONYMOUS.into(),
                groups: vec!["system:unauthenticated".into()],
                ..Default::default()
            },
            audiences: audiences.to_vec(),
        });
    };
    match authenticate_token(state, token, audiences) {
        Ok(mut authenticated) => {
            // `AuthenticatedGroupAdder`
            let groups = &mut authenticated.user.groups;
            if !groups.iter().any(|g| g == "system:authenticated" || g == "system:unauthenticated") {
                groups.push("system:authenticated".into());
            }
            Ok(authenticated)
        }
        // The loopback authenticator (`AuthorizeClientBearerToken`) comes first and always
        // says "invalid bearer token"; the errors of the union are aggregated.
        Err(error) => Err(aggregate(&[
            INVALID_BEARER_TOKEN.to_owned(),
            error.unwrap_or_else(|| INVALID_BEARER_TOKEN.to_owned()),
        ])),
    }
}

/// The token of `Authorization: Bearer <token>` as `bearertoken.Authenticator` reads it: the
/// header trimmed, split on spaces, the second part; `None` when there is none.
pub(super) fn bearer_token(token: &str) -> Option<&str> {
    // "Bearer " starts the header, so trimming it only trims the token's end.
    let word = token.trim_end().split(' ').next().unwrap_or("");
    (!word.is_empty()).then_some(word)
}

/// The token authenticators behind the success cache: the static tokens (`add_token`, like a
/// token file: audience-agnostic), then service-account JWTs. `Err(None)`: no authenticator
/// recognised the token; `Err(Some(e))`: one failed with `e`.
fn authenticate_token(
    state: &mut State,
    token: &str,
    audiences: &[String],
) -> Result<Authenticated, Option<String>> {
    let key = (token.to_owned(), audiences.to_vec());
    let now = Instant::now();
    state.token_cache.retain(|_, (until, _)| *until > now);
    if let Some((_, cached)) = state.token_cache.get(&key) {
        return Ok(cached.clone());
    }
    let api_audiences = [ISSUER.to_owned()];
    let implicit: Vec<String> = audiences.iter().filter(|a| api_audiences.contains(a)).cloned().collect();
    let result = match state.tokens.get(token) {
        Some(user) if !implicit.is_empty() => Ok(Authenticated {
            user: UserInfo { username: user.clone(), ..Default::default() },
            audiences: implicit,
        }),
        _ => service_account(state, token, audiences, SystemTime::now()),
    };
    if let Ok(authenticated) = &result
        && !state.token_cache_ttl.is_zero()
    {
        state.token_cache.insert(key, (now + state.token_cache_ttl, authenticated.clone()));
    }
    result
}

/// `jwtTokenAuthenticator.AuthenticateToken` with the bound-token validator.
fn service_account(
    state: &State,
    token: &str,
    requested: &[String],
    now: SystemTime,
) -> Result<Authenticated, Option<String>> {
    // hasCorrectIssuer
    if token.trim_start().starts_with('{') {
        return Err(None);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else { return Err(None) };
    let issuer = base64url_decode(payload, false)
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .and_then(|p| p.get("iss").and_then(Value::as_str).map(str::to_owned));
    if !matches!(issuer.as_deref(), Some(ISSUER | LEGACY_ISSUER)) {
        return Err(None);
    }
    // jwt.ParseSigned: the header must be a JSON object, the signature base64url.
    let header = base64url_decode(header, true).and_then(|h| serde_json::from_slice::<Value>(&h).ok());
    let Some(Value::Object(header)) = header else { return Err(None) };
    if base64url_decode(signature, true).is_none() {
        return Err(None);
    }
    // The key named by `kid` (every key when there is none) must verify the signature.
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    if !kid.is_empty() && kid != state.signing_key_id {
        return Err(Some("invalid signature, no keys found".into()));
    }
    let Some(claims) = state.issued.get(token) else {
        return Err(Some("go-jose/go-jose: error in cryptographic primitive".into()));
    };

    let accepted: Vec<String> = requested.iter().filter(|a| claims.audiences.contains(a)).cloned().collect();
    if accepted.is_empty() {
        return Err(Some(format!(
            "token audiences {} is invalid for the target audiences {}",
            go_quote_list(&claims.audiences),
            go_quote_list(requested)
        )));
    }

    // jwt.Claims.ValidateWithLeeway(now, DefaultLeeway): nbf, exp, then iat.
    let nanos = |secs: i64| i128::from(secs) * 1_000_000_000;
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let leeway = LEEWAY.as_nanos() as i128;
    if now + leeway < nanos(claims.not_before) {
        return Err(Some("service account token is not valid yet".into()));
    }
    if now - leeway > nanos(claims.expiry) {
        return Err(Some("service account token has expired".into()));
    }
    if now + leeway < nanos(claims.issued_at) {
        return Err(Some("service account token is issued in the future".into()));
    }

    // The ServiceAccount must still exist with the uid of the claim.
    match state.service_accounts.get(&(claims.namespace.clone(), claims.name.clone())) {
        None => return Err(Some(format!("serviceaccounts {} not found", go_quote(&claims.name)))),
        Some(uid) if *uid != claims.uid => {
            return Err(Some(format!("service account UID ({uid}) does not match claim ({})", claims.uid)));
        }
        Some(_) => {}
    }

    let namespace = &claims.namespace;
    Ok(Authenticated {
        user: UserInfo {
            username: format!("system:serviceaccount:{namespace}:{}", claims.name),
            uid: claims.uid.clone(),
            groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{namespace}")],
            extra: BTreeMap::from([(
                "authentication.kubernetes.io/credential-id".to_owned(),
                vec![format!("JTI={}", claims.id)],
            )]),
        },
        audiences: accepted,
    })
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| go_quote(i)).collect::<Vec<_>>().join(" "))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (`base64.RawURLEncoding`).
pub(super) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url without padding, as `RawURLEncoding.DecodeString` (which skips `\r` and
/// `\n`); go-jose's own decoder first trims trailing `=` (`allow_padding`).
pub(super) fn base64url_decode(text: &str, allow_padding: bool) -> Option<Vec<u8>> {
    let text = if allow_padding { text.trim_end_matches('=') } else { text };
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut symbols = 0usize;
    for c in text.bytes().filter(|c| *c != b'\r' && *c != b'\n') {
        let value = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = bits << 6 | value;
        count += 6;
        symbols += 1;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    // A lone symbol at the end cannot encode a byte.
    (symbols % 4 != 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0xfb, 0xff, 0xfe]] {
            let encoded = base64url(input);
            assert!(!encoded.contains('='), "{encoded}");
            assert_eq!(base64url_decode(&encoded, false).as_deref(), Some(input), "{encoded}");
        }
        assert_eq!(base64url(br#"{"alg":"RS256""#), "eyJhbGciOiJSUzI1NiI");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url_decode("Zg==", false), None, "RawURLEncoding refuses padding");
        assert_eq!(base64url_decode("Zg==", true).as_deref(), Some(&b"f"[..]));
        assert_eq!(base64url_decode("a+b", false), None);
        assert_eq!(base64url_decode("Z", false), None);
    }

    #[test]
    fn the_bearer_token_is_what_the_header_parser_sees() {
        assert_eq!(bearer_token("abc"), Some("abc"));
        assert_eq!(bearer_token("abc "), Some("abc"), "the header is trimmed");
        assert_eq!(bearer_token("abc def"), Some("abc"), "the first word only");
        assert_eq!(bearer_token(" abc"), None, "two spaces after Bearer: no token");
        assert_eq!(bearer_token(" "), None);
        assert_eq!(bearer_token("\tabc"), Some("\tabc"));
    }

    #[test]
    fn go_quotes_a_string_slice() {
        assert_eq!(go_quote_list(&["a".into(), "b\"c".into()]), r#"["a" "b\"c"]"#);
        assert_eq!(go_quote_list(&[]), "[]");
    }
}
