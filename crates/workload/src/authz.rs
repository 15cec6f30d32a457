//! Caller identity and the `authz` signals that read it.
//!
//! The identity comes from one of two places, resolved once per request:
//! - a bearer token in `Authorization`, verified as a JWT (HS256 with a secret from an
//!   environment variable; RS256 with a PEM public key or a JWKS file, the key chosen
//!   by `kid`), with expiry, and issuer and audience when configured;
//! - headers set by an upstream proxy (`x-user-id`, `x-user-roles`), believed only
//!   when the connection comes from a trusted network; from anywhere else they are
//!   ignored.
//!
//! Roles are the token's (a claim, default `roles`, a list or a space/comma separated
//! string; dotted paths such as `realm_access.roles` reach into objects) or the
//! header's, plus those bound to the subject in `bindings`.

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use ipnet::IpNet;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// Where caller identities come from.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Verified bearer tokens.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Headers from a trusted proxy.
    #[serde(default)]
    pub trusted_headers: Option<TrustedHeadersConfig>,
    /// Roles granted to subjects, on top of what the token or header says.
    #[serde(default)]
    pub bindings: Vec<RoleBinding>,
}

/// How bearer tokens are verified.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Environment variable holding the HS256 secret (secrets stay out of the config).
    #[serde(default)]
    pub hs256_secret_env: Option<String>,
    /// File holding the HS256 secret (a mounted secret; trailing whitespace dropped).
    #[serde(default)]
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM file with the RS256 public key.
    #[serde(default)]
    pub rs256_public_key: Option<PathBuf>,
    /// JWKS file with RS256 keys, chosen by the token's `kid`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` (default: not checked).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` (default: not checked).
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim with the roles (default `roles`; dotted paths reach into objects).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The claim with the subject (default `sub`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Seconds of clock skew allowed on `exp` and `nbf` (default 30).
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

fn default_leeway() -> u64 {
    30
}

/// Identity headers set by a proxy in front of the router.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrustedHeadersConfig {
    /// The header with the subject (e.g. `x-user-id`).
    pub subject: String,
    /// The header with comma-separated roles (optional).
    #[serde(default)]
    pub roles: Option<String>,
    /// Networks the proxy connects from (CIDR, e.g. `10.0.0.0/8`, `127.0.0.1/32`).
    pub trusted_proxies: Vec<String>,
}

/// Roles granted to one subject.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleBinding {
    /// The subject (`sub` of a token, or the subject header).
    pub subject: String,
    /// Its roles.
    pub roles: Vec<String>,
}

/// A caller, as far as it could be established.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The subject, when verified.
    pub subject: Option<String>,
    /// Its roles.
    pub roles: Vec<String>,
    /// How it was established (`jwt`, `header`), or why not.
    pub source: String,
}

/// A key that verifies tokens: its `kid` (if any), algorithm and key.
type VerifyingKey = (Option<String>, Algorithm, DecodingKey);

/// Verifies callers: built once from [`IdentityConfig`].
#[derive(Debug)]
pub struct Authenticator {
    jwt: Option<(JwtConfig, Vec<VerifyingKey>)>,
    headers: Option<(TrustedHeadersConfig, Vec<IpNet>)>,
    bindings: Vec<RoleBinding>,
}

impl Authenticator {
    /// Loads keys and parses networks; errors name the field.
    pub fn new(config: &IdentityConfig) -> Result<Authenticator, String> {
        let jwt = match &config.jwt {
            None => None,
            Some(j) => {
                let mut keys = Vec::new();
                let mut secrets = Vec::new();
                if let Some(var) = &j.hs256_secret_env {
                    let secret = std::env::var(var).map_err(|_| {
                        format!("jwt.hs256_secret_env: the variable `{var}` is not set")
                    })?;
                    secrets.push((format!("jwt.hs256_secret_env: `{var}`"), secret));
                }
                if let Some(path) = &j.hs256_secret_file {
                    let secret = std::fs::read_to_string(path)
                        .map_err(|e| format!("jwt.hs256_secret_file: {}: {e}", path.display()))?;
                    let secret = secret.trim_end().to_owned();
                    secrets.push((format!("jwt.hs256_secret_file: {}", path.display()), secret));
                }
                for (origin, secret) in secrets {
                    if secret.len() < 32 {
                        return Err(format!(
                            "{origin} holds {} bytes; HS256 needs at least 32",
                            secret.len()
                        ));
                    }
                    keys.push((
                        None,
                        Algorithm::HS256,
                        DecodingKey::from_secret(secret.as_bytes()),
                    ));
                }
                if let Some(path) = &j.rs256_public_key {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("jwt.rs256_public_key: {}: {e}", path.display()))?;
                    let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                        format!(
                            "jwt.rs256_public_key: {}: not an RSA public key: {e}",
                            path.display()
                        )
                    })?;
                    keys.push((None, Algorithm::RS256, key));
                }
                if let Some(path) = &j.jwks_file {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("jwt.jwks_file: {}: {e}", path.display()))?;
                    let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
                        format!("jwt.jwks_file: {}: not a JWKS: {e}", path.display())
                    })?;
                    for jwk in &set.keys {
                        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                            format!("jwt.jwks_file: {}: a key is unusable: {e}", path.display())
                        })?;
                        keys.push((jwk.common.key_id.clone(), Algorithm::RS256, key));
                    }
                }
                if keys.is_empty() {
                    return Err(
                        "jwt: set hs256_secret_env, hs256_secret_file, rs256_public_key or jwks_file"
                            .to_owned()
                    );
                }
                Some((j.clone(), keys))
            }
        };
        let headers = match &config.trusted_headers {
            None => None,
            Some(h) => {
                if h.trusted_proxies.is_empty() {
                    return Err("trusted_headers.trusted_proxies: list the proxy networks; headers from anywhere else are ignored".to_owned());
                }
                let nets = h
                    .trusted_proxies
                    .iter()
                    .map(|n| {
                        n.parse::<IpNet>()
                            .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                            .map_err(|_| {
                                format!("trusted_headers.trusted_proxies: `{n}` is not a network such as 10.0.0.0/8")
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some((h.clone(), nets))
            }
        };
        Ok(Authenticator {
            jwt,
            headers,
            bindings: config.bindings.clone(),
        })
    }

    /// Whether proxy headers are configured (they need the peer address).
    pub fn reads_peer(&self) -> bool {
        self.headers.is_some()
    }

    /// The request headers identity reads (lower-case).
    pub fn header_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.jwt.is_some() {
            names.push("authorization".to_owned());
        }
        if let Some((h, _)) = &self.headers {
            names.push(h.subject.to_ascii_lowercase());
            names.extend(h.roles.iter().map(|r| r.to_ascii_lowercase()));
        }
        names
    }

    /// Establishes the caller from the request's headers and peer address
    /// (conversation attributes `header:NAME` and `peer`).
    pub fn identify(&self, attribute: impl Fn(&str) -> Option<String>) -> Identity {
        let mut identity = self.by_token(&attribute).unwrap_or_else(|why| Identity {
            source: why,
            ..Identity::default()
        });
        if identity.subject.is_none()
            && let Some(from_headers) = self.by_headers(&attribute)
        {
            identity = from_headers;
        }
        if let Some(subject) = &identity.subject {
            for b in self.bindings.iter().filter(|b| &b.subject == subject) {
                for r in &b.roles {
                    if !identity.roles.contains(r) {
                        identity.roles.push(r.clone());
                    }
                }
            }
        }
        identity
    }

    fn by_token(&self, attribute: &impl Fn(&str) -> Option<String>) -> Result<Identity, String> {
        let Some((config, keys)) = &self.jwt else {
            return Err("no identity".to_owned());
        };
        let Some(header) = attribute("header:authorization") else {
            return Err("no bearer token".to_owned());
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or("the authorization header is not a bearer token")?
            .trim();
        let head = jsonwebtoken::decode_header(token).map_err(|e| format!("bad token: {e}"))?;
        let candidates = keys.iter().filter(|(kid, alg, _)| {
            *alg == head.alg && (kid.is_none() || head.kid.is_none() || *kid == head.kid)
        });
        let mut last = format!("no key for {:?}", head.alg);
        for (_, alg, key) in candidates {
            let mut validation = Validation::new(*alg);
            validation.leeway = config.leeway_s;
            validation.validate_nbf = true;
            validation.validate_aud = config.audience.is_some();
            if let Some(aud) = &config.audience {
                validation.set_audience(&[aud]);
            }
            if let Some(iss) = &config.issuer {
                validation.set_issuer(&[iss]);
            }
            match jsonwebtoken::decode::<serde_json::Value>(token, key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    let subject = lookup(&claims, &config.subject_claim)
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .ok_or_else(|| {
                            format!("the token has no `{}` claim", config.subject_claim)
                        })?;
                    let roles = lookup(&claims, &config.roles_claim)
                        .map(roles_of)
                        .unwrap_or_default();
                    return Ok(Identity {
                        subject: Some(subject),
                        roles,
                        source: "jwt".to_owned(),
                    });
                }
                Err(e) => last = format!("invalid token: {e}"),
            }
        }
        Err(last)
    }

    fn by_headers(&self, attribute: &impl Fn(&str) -> Option<String>) -> Option<Identity> {
        let (config, nets) = self.headers.as_ref()?;
        let subject = attribute(&format!("header:{}", config.subject.to_ascii_lowercase()))?;
        let peer: Option<IpAddr> = attribute("peer").and_then(|p| p.parse().ok());
        if !peer.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))) {
            return Some(Identity {
                source: "identity headers from an untrusted address were ignored".to_owned(),
                ..Identity::default()
            });
        }
        let roles = config
            .roles
            .as_ref()
            .and_then(|h| attribute(&format!("header:{}", h.to_ascii_lowercase())))
            .map(|v| roles_of(&serde_json::Value::String(v)))
            .unwrap_or_default();
        Some(Identity {
            subject: Some(subject),
            roles,
            source: "header".to_owned(),
        })
    }
}

/// A claim by dotted path.
fn lookup<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(claims, |v, part| v.get(part))
}

/// Roles from a list or a space/comma separated string.
fn roles_of(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        serde_json::Value::String(s) => s
            .split([',', ' '])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// An authz signal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthzSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Roles any of which the caller must have (default: none; any verified caller).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Holds when the caller is verified and has one of the roles.
#[derive(Debug)]
pub struct AuthzSignal {
    key: SignalKey,
    roles: Vec<String>,
}

impl AuthzSignal {
    /// Builds the signal.
    pub fn new(config: &AuthzSignalConfig) -> Result<Self, String> {
        Ok(AuthzSignal {
            key: SignalKey {
                family: SignalFamily::Authz,
                name: config.name.clone(),
            },
            roles: config.roles.clone(),
        })
    }
}

impl Signal for AuthzSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let identity = request.identity();
        let matched = identity.subject.is_some()
            && (self.roles.is_empty() || self.roles.iter().any(|r| identity.roles.contains(r)));
        let evidence = match &identity.subject {
            Some(s) => format!(
                "{s} via {} with roles [{}]",
                identity.source,
                identity.roles.join(", ")
            ),
            None => identity.source.clone(),
        };
        SignalValue {
            matched,
            value: if matched { 1.0 } else { 0.0 },
            confidence: 1.0,
            evidence: Some(evidence),
            label: None,
            cost_ns: 0,
            error: None,
        }
    }
}

impl FamilyConfig for AuthzSignalConfig {
    type Signal = AuthzSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<AuthzSignal, String> {
        if !context.has_identity() {
            return Err("authz signals need signals.identity (jwt or trusted_headers)".to_owned());
        }
        AuthzSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{SignalEngine, SignalsConfig};
    use jsonwebtoken::{EncodingKey, Header, encode};
    use switchyard_wire::Conversation;

    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

    fn fixtures() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn rs(claims: serde_json::Value, kid: Option<&str>) -> String {
        let pem = std::fs::read(fixtures().join("jwt-test-rsa.pem")).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
    }

    fn engine(dir: &std::path::Path) -> SignalEngine {
        std::fs::create_dir_all(dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let config: SignalsConfig = serde_json::from_value(serde_json::json!({
            "identity": {
                "jwt": {
                    "hs256_secret_file": secret,
                    "jwks_file": fixtures().join("jwt-test-jwks.json"),
                    "audience": "switchyard",
                    "roles_claim": "realm.roles"
                },
                "trusted_headers": {
                    "subject": "X-User-Id",
                    "roles": "x-user-roles",
                    "trusted_proxies": ["10.0.0.0/8", "127.0.0.1"]
                },
                "bindings": [{"subject": "carol", "roles": ["admin"]}]
            },
            "authz": [{"name": "admin", "roles": ["admin"]}, {"name": "anyone"}]
        }))
        .unwrap();
        SignalEngine::build(&config).unwrap()
    }

    fn ask(engine: &SignalEngine, attributes: &[(&str, &str)]) -> (bool, bool, String) {
        let mut conversation = Conversation::from_prompt("auto", "hi");
        for (k, v) in attributes {
            conversation
                .attributes
                .push(((*k).to_owned(), (*v).to_owned()));
        }
        let admin = engine.lookup(SignalFamily::Authz, "admin").unwrap();
        let anyone = engine.lookup(SignalFamily::Authz, "anyone").unwrap();
        let s = engine.characterize(&conversation, &[admin, anyone]);
        let evidence = s.get(anyone).unwrap().evidence.clone().unwrap();
        (s.matched(admin), s.matched(anyone), evidence)
    }

    #[test]
    fn tokens_headers_and_bindings() {
        let dir = std::env::temp_dir().join(format!("sy-authz-{}", std::process::id()));
        let engine = engine(&dir);
        let mut names = engine.header_names().to_vec();
        names.sort();
        assert_eq!(names, ["authorization", "x-user-id", "x-user-roles"]);
        let claims = |sub: &str, roles: &[&str], exp: u64| serde_json::json!({"sub": sub, "aud": "switchyard", "exp": exp, "realm": {"roles": roles}});
        let bearer = |t: String| format!("Bearer {t}");
        let later = now() + 600;

        // HS256 with the role in a nested claim.
        let t = bearer(hs(claims("alice", &["admin"], later)));
        assert!(ask(&engine, &[("header:authorization", &t)]).0);
        // RS256 through the JWKS, chosen by kid; a plain user is someone but not admin.
        let t = bearer(rs(claims("bob", &["user"], later), Some("test-1")));
        let (admin, anyone, evidence) = ask(&engine, &[("header:authorization", &t)]);
        assert!(!admin && anyone, "{evidence}");
        assert!(evidence.contains("bob via jwt"), "{evidence}");
        // A binding grants roles the token does not carry.
        let t = bearer(hs(claims("carol", &[], later)));
        assert!(ask(&engine, &[("header:authorization", &t)]).0);

        // Refused: expired, wrong audience, wrong key, garbage, not bearer.
        let expired = bearer(hs(claims("alice", &["admin"], now() - 3600)));
        let (_, anyone, why) = ask(&engine, &[("header:authorization", &expired)]);
        assert!(!anyone && why.contains("Expired"), "{why}");
        let wrong_aud = bearer(hs(
            serde_json::json!({"sub": "a", "aud": "other", "exp": later}),
        ));
        assert!(!ask(&engine, &[("header:authorization", &wrong_aud)]).1);
        let forged = encode(
            &Header::default(),
            &claims("alice", &["admin"], later),
            &EncodingKey::from_secret(b"another-secret-that-is-also-long-enough"),
        )
        .unwrap();
        assert!(!ask(&engine, &[("header:authorization", &bearer(forged))]).1);
        assert!(!ask(&engine, &[("header:authorization", "Bearer not.a.jwt")]).1);
        assert!(
            !ask(
                &engine,
                &[("header:authorization", "Basic YWxhZGRpbjpvcGVu")]
            )
            .1
        );

        // Proxy headers count only from the trusted networks.
        let headers = [
            ("header:x-user-id", "dave"),
            ("header:x-user-roles", "admin, ops"),
        ];
        let mut trusted = headers.to_vec();
        trusted.push(("peer", "10.1.2.3"));
        assert!(ask(&engine, &trusted).0);
        let mut untrusted = headers.to_vec();
        untrusted.push(("peer", "203.0.113.9"));
        let (admin, anyone, why) = ask(&engine, &untrusted);
        assert!(!admin && !anyone && why.contains("untrusted"), "{why}");
        assert!(!ask(&engine, &headers).1, "no peer address: not trusted");
        assert!(!ask(&engine, &[]).1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_identity_configurations_are_refused() {
        let no_identity: SignalsConfig =
            serde_json::from_value(serde_json::json!({"authz": [{"name": "a"}]})).unwrap();
        let err = SignalEngine::build(&no_identity).unwrap_err();
        assert!(err.reason.contains("signals.identity"), "{err}");
        for (identity, why) in [
            (serde_json::json!({"jwt": {}}), "set hs256_secret_env"),
            (
                serde_json::json!({"jwt": {"hs256_secret_env": "SWITCHYARD_NO_SUCH_VAR"}}),
                "not set",
            ),
            (
                serde_json::json!({"jwt": {"rs256_public_key": "/no/such.pem"}}),
                "/no/such.pem",
            ),
            (
                serde_json::json!({"jwt": {"rs256_public_key": fixtures().join("jwt-test-jwks.json")}}),
                "not an RSA public key",
            ),
            (
                serde_json::json!({"trusted_headers": {"subject": "x-u", "trusted_proxies": []}}),
                "list the proxy networks",
            ),
            (
                serde_json::json!({"trusted_headers": {"subject": "x-u", "trusted_proxies": ["everywhere"]}}),
                "`everywhere` is not a network",
            ),
        ] {
            let config: IdentityConfig = serde_json::from_value(identity).unwrap();
            let err = Authenticator::new(&config).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let short = std::env::temp_dir().join(format!("sy-authz-short-{}", std::process::id()));
        std::fs::write(&short, "too short").unwrap();
        let config: IdentityConfig =
            serde_json::from_value(serde_json::json!({"jwt": {"hs256_secret_file": short}}))
                .unwrap();
        assert!(
            Authenticator::new(&config)
                .unwrap_err()
                .contains("at least 32")
        );
        let _ = std::fs::remove_file(&short);
        // The RS256 PEM key alone verifies tokens without a kid.
        let config: IdentityConfig = serde_json::from_value(serde_json::json!({
            "jwt": {"rs256_public_key": fixtures().join("jwt-test-rsa.pub.pem")}
        }))
        .unwrap();
        let auth = Authenticator::new(&config).unwrap();
        let token = rs(
            serde_json::json!({"sub": "eve", "exp": now() + 60, "roles": "a b"}),
            None,
        );
        let id =
            auth.identify(|k| (k == "header:authorization").then(|| format!("Bearer {token}")));
        assert_eq!(id.subject.as_deref(), Some("eve"));
        assert_eq!(id.roles, ["a", "b"]);
    }
}
