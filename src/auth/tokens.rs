//! API keys as biscuit tokens: minting, and verifying one presented with a request.
//!
//! A key is `fmugw_` + the token in biscuit's standard base64url encoding, signed with the
//! server's root key. Its authority block says `user("usr_…"); key("key_…");` and, for keys
//! that expire, `check if time($t), $t <= <expiry>;`. Holders may append blocks with more
//! checks using any biscuit library or CLI; the authorizer here supplies the facts those
//! checks can use: `operation($op)`, `time($now)`, and where the request has them `fmu($id)`
//! and `cost($credits)`. Revocation is not in the token: the key id is looked up on every
//! request (see `auth::authenticate_key`).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{AuthorizerBuilder, date, fact, int, string};
use biscuit_auth::error::{Logic, Token as TokenError};
use sha2::{Digest, Sha256};

use crate::domain::ids::{KeyId, UserId};

use biscuit_auth::{Algorithm, AuthorizerLimits, Biscuit, KeyPair, PrivateKey};

/// The prefix that makes our keys recognisable (and greppable by secret scanners).
pub const KEY_PREFIX: &str = "fmugw_";

const ROOT_KEY_FILE: &str = "biscuit-root.key";

/// The facts one request offers to the token's checks.
#[derive(Clone, Debug)]
pub struct RequestFacts {
    /// What the request does: `read_usage`, `manage_keys`, `read_account`, `login`,
    /// `simulate`, …
    pub operation: &'static str,
    /// The FMU a run uses, under each name a check may use (its SHA-256 id and, for a
    /// library model, its `lib:` id).
    pub fmu: Vec<String>,
    pub cost: Option<i64>,
}

impl RequestFacts {
    pub fn op(operation: &'static str) -> Self {
        RequestFacts {
            operation,
            fmu: Vec::new(),
            cost: None,
        }
    }
}

/// Why a presented key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("this is not a valid FMU Gateway API key")]
    Invalid,
    #[error("this API key has expired")]
    Expired,
    #[error("this API key's restrictions do not allow this request ({0})")]
    Restricted(String),
}

/// Operations that create credentials, and so are refused to attenuated tokens.
pub const UNATTENUATED_ONLY: [&str; 2] = ["login", "manage_keys"];

/// Who a verified token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    pub user_id: UserId,
    pub key_id: KeyId,
}

/// Signs and verifies keys with the root key pair.
pub struct KeyIssuer {
    root: KeyPair,
    /// Keys as we issued them (one block, no holder checks) that verified once, by SHA-256 of
    /// their text. Their verdict cannot change except through expiry and revocation, which
    /// `auth::authenticate_key` checks in the database on every request; so the signature and
    /// Datalog work is done once per key instead of once per request. Attenuated tokens are
    /// always verified in full, since their checks depend on the request.
    verified: Mutex<HashMap<[u8; 32], TokenClaims>>,
}

/// Entries kept before the cache starts over (a key is ~300 bytes of text; this is a few MiB
/// at most).
const VERIFIED_CACHE_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    #[error("FMU_GATEWAY_ROOT_KEY is not a hex-encoded ed25519 private key")]
    BadEnvKey,
    #[error("{0} does not hold a hex-encoded ed25519 private key")]
    BadKeyFile(String),
    #[error("cannot read or write the root key file {0}: {1}")]
    Io(String, std::io::Error),
}

impl KeyIssuer {
    /// Uses the key from the environment if given, otherwise `biscuit-root.key` in the data
    /// directory, created (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path, env_hex: Option<&str>) -> Result<Self, RootKeyError> {
        if let Some(hex) = env_hex {
            return Self::from_hex(hex.trim()).ok_or(RootKeyError::BadEnvKey);
        }
        let path = data_dir.join(ROOT_KEY_FILE);
        let shown = path.display().to_string();
        match fs::read_to_string(&path) {
            Ok(hex) => Self::from_hex(hex.trim()).ok_or(RootKeyError::BadKeyFile(shown)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let issuer = KeyIssuer::with_root(KeyPair::new());
                write_private(&path, &issuer.root.private().to_bytes_hex())
                    .map_err(|e| RootKeyError::Io(shown.clone(), e))?;
                tracing::info!(path = %shown, "created a new biscuit root key");
                Ok(issuer)
            }
            Err(e) => Err(RootKeyError::Io(shown, e)),
        }
    }

    /// A new root key in the text form `load_or_create` reads: what the first server of a
    /// PostgreSQL deployment stores for the others.
    pub fn generate_hex() -> String {
        KeyPair::new().private().to_bytes_hex()
    }

    /// A root key of this process alone, for a process that mints and checks no keys (a
    /// worker node): it never reads the deployment's.
    pub fn ephemeral() -> Self {
        KeyIssuer::with_root(KeyPair::new())
    }

    fn with_root(root: KeyPair) -> Self {
        KeyIssuer {
            root,
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn from_hex(hex: &str) -> Option<Self> {
        let private = PrivateKey::from_bytes_hex(hex, Algorithm::Ed25519).ok()?;
        Some(KeyIssuer::with_root(KeyPair::from(&private)))
    }

    /// The public key in biscuit's text form (`ed25519/<hex>`), as the biscuit CLI takes it.
    pub fn public_key(&self) -> String {
        self.root.public().to_string()
    }

    pub fn root_public(&self) -> biscuit_auth::PublicKey {
        self.root.public()
    }

    /// A new key naming the user and key id, optionally expiring.
    pub fn mint(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        expires: Option<SystemTime>,
    ) -> Result<String, MintError> {
        let mut builder = Biscuit::builder()
            .fact(fact("user", &[string(user_id.as_str())]))
            .and_then(|b| b.fact(fact("key", &[string(key_id.as_str())])))?;
        if let Some(at) = expires {
            let check = format!("check if time($t), $t <= {}", rfc3339(at));
            builder = builder.check(check.as_str())?;
        }
        let token = builder.build(&self.root)?;
        Ok(format!("{KEY_PREFIX}{}", token.to_base64()?))
    }

    /// Checks the signature and every check in every block against the request's facts, and
    /// returns who the token names. Accepts the token with or without our prefix, so a holder
    /// can send the output of the biscuit CLI as is.
    pub fn verify(
        &self,
        presented: &str,
        facts: &RequestFacts,
    ) -> Result<TokenClaims, TokenRejection> {
        let raw = presented.trim();
        let raw = raw.strip_prefix(KEY_PREFIX).unwrap_or(raw);
        if raw.is_empty() || raw.len() > 16 * 1024 {
            return Err(TokenRejection::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(raw.as_bytes()).into();
        if let Some(claims) = self.cache().get(&digest) {
            return Ok(claims.clone());
        }
        let token =
            Biscuit::from_base64(raw, self.root.public()).map_err(|_| TokenRejection::Invalid)?;
        // A holder attenuates a key to give less than it has. Minting a new key or opening a
        // browser session would hand out a credential without those restrictions, so any
        // token with a block beyond the authority block is refused for both, whatever its
        // checks say (an expiry-only attenuation would otherwise mint a key that never
        // expires).
        if token.block_count() > 1 && UNATTENUATED_ONLY.contains(&facts.operation) {
            return Err(TokenRejection::Restricted(format!(
                "an attenuated key cannot be used for {}: use the key as it was issued",
                facts.operation
            )));
        }
        let mut builder = AuthorizerBuilder::new()
            .fact(fact("operation", &[string(facts.operation)]))
            .and_then(|b| b.fact(fact("time", &[date(&SystemTime::now())])))
            .map_err(|_| TokenRejection::Invalid)?;
        for fmu in &facts.fmu {
            builder = builder
                .fact(fact("fmu", &[string(fmu)]))
                .map_err(|_| TokenRejection::Invalid)?;
        }
        if let Some(cost) = facts.cost {
            builder = builder
                .fact(fact("cost", &[int(cost)]))
                .map_err(|_| TokenRejection::Invalid)?;
        }
        let mut authorizer = builder
            .set_limits(limits())
            .policy("allow if user($u), key($k)")
            .and_then(|b| b.build(&token))
            .map_err(|_| TokenRejection::Invalid)?;
        authorizer.authorize().map_err(rejection)?;
        // Queries see only the authority block and the authorizer: a holder's block cannot
        // add a `user(…)` fact of its own.
        let found: Vec<(String, String)> = authorizer
            .query("data($u, $k) <- user($u), key($k)")
            .map_err(|_| TokenRejection::Invalid)?;
        let claims = match found.as_slice() {
            [(user_id, key_id)] => TokenClaims {
                user_id: UserId::from(user_id.clone()),
                key_id: KeyId::from(key_id.clone()),
            },
            _ => return Err(TokenRejection::Invalid),
        };
        if token.block_count() == 1 {
            let mut cache = self.cache();
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, claims.clone());
        }
        Ok(claims)
    }

    /// The claims of a key verified before, without the cost of verifying it again: a hash
    /// and a lookup, cheap enough for the async runtime. Only keys as issued are cached (an
    /// attenuated token's checks depend on each request's facts), so `None` means: verify.
    pub fn cached(&self, presented: &str) -> Option<TokenClaims> {
        let raw = presented.trim();
        let raw = raw.strip_prefix(KEY_PREFIX).unwrap_or(raw);
        let digest: [u8; 32] = Sha256::digest(raw.as_bytes()).into();
        self.cache().get(&digest).cloned()
    }

    /// Who a token names, from its signature and authority block alone, without the holder's
    /// checks (those need the request's facts, some of which are in its body). Used to refuse
    /// a made-up key before a body is read; [`KeyIssuer::verify`] still runs for the operation.
    pub fn identify(&self, presented: &str) -> Result<TokenClaims, TokenRejection> {
        let raw = presented.trim();
        let raw = raw.strip_prefix(KEY_PREFIX).unwrap_or(raw);
        if raw.is_empty() || raw.len() > 16 * 1024 {
            return Err(TokenRejection::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(raw.as_bytes()).into();
        if let Some(claims) = self.cache().get(&digest) {
            return Ok(claims.clone());
        }
        let token =
            Biscuit::from_base64(raw, self.root.public()).map_err(|_| TokenRejection::Invalid)?;
        let mut authorizer = AuthorizerBuilder::new()
            .set_limits(limits())
            .build(&token)
            .map_err(|_| TokenRejection::Invalid)?;
        let found: Vec<(String, String)> = authorizer
            .query("data($u, $k) <- user($u), key($k)")
            .map_err(|_| TokenRejection::Invalid)?;
        match found.as_slice() {
            [(user_id, key_id)] => Ok(TokenClaims {
                user_id: UserId::from(user_id.clone()),
                key_id: KeyId::from(key_id.clone()),
            }),
            _ => Err(TokenRejection::Invalid),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], TokenClaims>> {
        // A panic while holding the lock cannot leave the map inconsistent: use it anyway.
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Bounds on the work a token's Datalog may cause. The fact and iteration bounds stop hostile
/// tokens; biscuit's default 1 ms wall-clock bound is raised because on a busy 2-core machine a
/// legitimate evaluation can be descheduled for longer than that, which made valid keys fail
/// at random under load (found by the HTTP benchmark).
fn limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_time: Duration::from_millis(250),
        ..AuthorizerLimits::default()
    }
}

/// Turns an authorization failure into what the holder needs to know: our own expiry check
/// (in the authority block) means expired; a failed check of theirs is quoted back.
fn rejection(err: TokenError) -> TokenRejection {
    let TokenError::FailedLogic(Logic::Unauthorized { checks, .. }) = &err else {
        return TokenRejection::Invalid;
    };
    let mut quoted = Vec::new();
    for check in checks {
        match check {
            biscuit_auth::error::FailedCheck::Block(b) if b.block_id == 0 => {
                return TokenRejection::Expired;
            }
            biscuit_auth::error::FailedCheck::Block(b) => quoted.push(b.rule.clone()),
            biscuit_auth::error::FailedCheck::Authorizer(a) => quoted.push(a.rule.clone()),
        }
    }
    if quoted.is_empty() {
        TokenRejection::Invalid
    } else {
        TokenRejection::Restricted(format!("failed: {}", quoted.join("; ")))
    }
}

fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// Writes a secret file readable only by its owner, without a window where it is wider.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Why a key could not be minted (a bug or a broken root key: the message is for the log).
#[derive(Debug, thiserror::Error)]
#[error("minting an API key: {0}")]
pub struct MintError(#[from] biscuit_auth::error::Token);

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::macros::block;

    fn issuer() -> (tempfile::TempDir, KeyIssuer) {
        let dir = tempfile::tempdir().unwrap();
        let issuer = KeyIssuer::load_or_create(dir.path(), None).unwrap();
        (dir, issuer)
    }

    #[test]
    fn a_minted_key_verifies_and_names_its_user_and_key() {
        let (_d, issuer) = issuer();
        let key = issuer.mint(&"usr_1".into(), &"key_1".into(), None).unwrap();
        assert!(key.starts_with(KEY_PREFIX));
        let claims = issuer
            .verify(&key, &RequestFacts::op("read_usage"))
            .unwrap();
        assert_eq!(
            claims,
            TokenClaims {
                user_id: "usr_1".into(),
                key_id: "key_1".into()
            }
        );
        // Without the prefix too.
        issuer
            .verify(&key[KEY_PREFIX.len()..], &RequestFacts::op("read_usage"))
            .unwrap();
    }

    #[test]
    fn the_root_key_persists_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyIssuer::load_or_create(dir.path(), None).unwrap();
        let again = KeyIssuer::load_or_create(dir.path(), None).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(ROOT_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key = first.mint(&"u".into(), &"k".into(), None).unwrap();
        again.verify(&key, &RequestFacts::op("x")).unwrap();
    }

    #[test]
    fn a_key_signed_by_another_root_is_invalid() {
        let (_d1, a) = issuer();
        let (_d2, b) = issuer();
        let key = a.mint(&"u".into(), &"k".into(), None).unwrap();
        assert_eq!(
            b.verify(&key, &RequestFacts::op("x")),
            Err(TokenRejection::Invalid)
        );
        assert_eq!(
            a.verify("fmugw_garbage", &RequestFacts::op("x")),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn a_verified_key_is_cached_but_attenuated_tokens_never_are() {
        let (_d, issuer) = issuer();
        let key = issuer.mint(&"u".into(), &"k".into(), None).unwrap();
        issuer.verify(&key, &RequestFacts::op("x")).unwrap();
        issuer.verify(&key, &RequestFacts::op("y")).unwrap();
        assert_eq!(issuer.cache().len(), 1);
        let token = Biscuit::from_base64(&key[KEY_PREFIX.len()..], issuer.root_public()).unwrap();
        let narrowed = token
            .append(block!(r#"check if operation("x");"#))
            .unwrap()
            .to_base64()
            .unwrap();
        issuer.verify(&narrowed, &RequestFacts::op("x")).unwrap();
        assert!(
            issuer.verify(&narrowed, &RequestFacts::op("y")).is_err(),
            "checked again for each request"
        );
        assert_eq!(issuer.cache().len(), 1);
    }

    #[test]
    fn identify_names_the_key_without_the_holders_checks_and_refuses_forgeries() {
        let (_d, issuer) = issuer();
        let key = issuer.mint(&"usr_1".into(), &"key_1".into(), None).unwrap();
        let token = Biscuit::from_base64(&key[KEY_PREFIX.len()..], issuer.root_public()).unwrap();
        let narrowed = token
            .append(block!(
                r#"check if operation("x"); user("usr_2"); key("key_2");"#
            ))
            .unwrap()
            .to_base64()
            .unwrap();
        for presented in [key.as_str(), narrowed.as_str()] {
            let claims = issuer.identify(presented).unwrap();
            assert_eq!(
                (claims.user_id.as_str(), claims.key_id.as_str()),
                ("usr_1", "key_1")
            );
        }
        let (_d2, other) = super::tests::issuer();
        let foreign = other.mint(&"usr_1".into(), &"key_1".into(), None).unwrap();
        for bad in [foreign.as_str(), "made-up", "fmugw_", ""] {
            assert_eq!(issuer.identify(bad), Err(TokenRejection::Invalid), "{bad}");
        }
    }

    #[test]
    fn an_expired_key_says_so() {
        let (_d, issuer) = issuer();
        let past = SystemTime::now() - Duration::from_secs(60);
        let key = issuer.mint(&"u".into(), &"k".into(), Some(past)).unwrap();
        assert_eq!(
            issuer.verify(&key, &RequestFacts::op("x")),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn an_attenuated_token_can_neither_log_in_nor_manage_keys() {
        let (_d, issuer) = issuer();
        let key = issuer.mint(&"usr_1".into(), &"key_1".into(), None).unwrap();
        let token = Biscuit::from_base64(&key[KEY_PREFIX.len()..], issuer.root_public()).unwrap();
        // Only an expiry, far away: every check passes, yet the token was attenuated.
        let narrowed = token
            .append(block!(r#"check if time($t), $t <= 2100-01-01T00:00:00Z;"#))
            .unwrap()
            .to_base64()
            .unwrap();
        issuer
            .verify(&narrowed, &RequestFacts::op("read_usage"))
            .unwrap();
        for op in UNATTENUATED_ONLY {
            let err = issuer.verify(&narrowed, &RequestFacts::op(op)).unwrap_err();
            assert!(
                matches!(err, TokenRejection::Restricted(ref m) if m.contains("attenuated")),
                "{op}: {err:?}"
            );
            // The key as issued still may.
            issuer.verify(&key, &RequestFacts::op(op)).unwrap();
        }
    }

    #[test]
    fn attenuation_restricts_and_cannot_impersonate() {
        let (_d, issuer) = issuer();
        let key = issuer.mint(&"usr_1".into(), &"key_1".into(), None).unwrap();
        let token = Biscuit::from_base64(&key[KEY_PREFIX.len()..], issuer.root_public()).unwrap();
        let narrowed = token
            .append(block!(
                r#"check if operation("read_usage"); user("usr_evil"); key("key_evil");"#
            ))
            .unwrap()
            .to_base64()
            .unwrap();
        let claims = issuer
            .verify(&narrowed, &RequestFacts::op("read_usage"))
            .unwrap();
        assert_eq!(claims.user_id, "usr_1");
        let err = issuer
            .verify(&narrowed, &RequestFacts::op("simulate"))
            .unwrap_err();
        assert!(
            matches!(err, TokenRejection::Restricted(ref m) if m.contains("read_usage")),
            "{err:?}"
        );
    }
}
