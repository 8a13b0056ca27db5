//! Keys: the gateway's Ed25519 signing identity, sensors' Ed25519 production
//! keys, and tenant apps' X25519 keys for end-to-end encryption.
//!
//! Text forms, one line each, so a config can quote a public key and a
//! secret file is easy to inspect and back up:
//! - public: `ed25519:BASE64URL` or `x25519:BASE64URL` (32 bytes, no padding);
//! - secret file: `ed25519-secret:BASE64URL` or `x25519-secret:BASE64URL`,
//!   created 0600 and refused when others may read it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The two kinds of key edgeward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Signatures (sensors, gateway).
    Ed25519,
    /// Key agreement for HPKE (tenant apps).
    X25519,
}

impl KeyKind {
    fn public_prefix(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519:",
            KeyKind::X25519 => "x25519:",
        }
    }

    fn secret_prefix(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519-secret:",
            KeyKind::X25519 => "x25519-secret:",
        }
    }
}

/// Why a key could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: secret key file is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path}: exists already; remove it first or choose another path")]
    Exists { path: PathBuf },
    #[error("{what}: expected `{prefix}` followed by 32 bytes in base64url")]
    Malformed { what: String, prefix: &'static str },
    #[error("{what}: not a valid Ed25519 public key (not a curve point, or a weak one of small order)")]
    BadPoint { what: String },
}

fn decode32(text: &str, prefix: &'static str, what: &str) -> Result<[u8; 32], KeyError> {
    let malformed = || KeyError::Malformed { what: what.to_string(), prefix };
    let body = text.trim().strip_prefix(prefix).ok_or_else(malformed)?;
    B64.decode(body).ok().and_then(|bytes| bytes.try_into().ok()).ok_or_else(malformed)
}

/// `ed25519:…` or `x25519:…` for `bytes`.
pub fn format_public(kind: KeyKind, bytes: &[u8; 32]) -> String {
    format!("{}{}", kind.public_prefix(), B64.encode(bytes))
}

/// Parse a public key as written in a config; `what` names it in errors.
pub fn parse_public(kind: KeyKind, text: &str, what: &str) -> Result<[u8; 32], KeyError> {
    decode32(text, kind.public_prefix(), what)
}

/// Parse an Ed25519 public key as written in a config.
pub fn parse_verifying_key(text: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = parse_public(KeyKind::Ed25519, text, what)?;
    // A small-order ("weak") key would verify signatures nobody made; batch
    // verification relies on this check (see `decode::verify_all`).
    VerifyingKey::from_bytes(&bytes)
        .ok()
        .filter(|key| !key.is_weak())
        .ok_or_else(|| KeyError::BadPoint { what: what.to_string() })
}

/// Refuse a secret file (key, password) that group or others may read.
pub fn check_private(path: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// Read a secret key file, refusing one that others may read.
pub fn read_secret(kind: KeyKind, path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(io)?;
    decode32(&text, kind.secret_prefix(), &path.display().to_string())
}

/// Read the Ed25519 signing key at `path`.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    read_secret(KeyKind::Ed25519, path).map(|bytes| SigningKey::from_bytes(&bytes))
}

/// 32 random bytes from the operating system.
fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes
}

/// The public half of a secret of `kind`.
pub fn public_of(kind: KeyKind, secret: &[u8; 32]) -> [u8; 32] {
    match kind {
        KeyKind::Ed25519 => SigningKey::from_bytes(secret).verifying_key().to_bytes(),
        KeyKind::X25519 => {
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
        }
    }
}

/// Create a new key pair of `kind`: the secret at `path` (0600, never
/// overwriting), the public half at `path.pub`. Returns the public key's
/// text form.
pub fn generate(kind: KeyKind, path: &Path) -> Result<String, KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let secret = random32();
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists { path: path.to_path_buf() },
            _ => io(e),
        },
    )?;
    writeln!(file, "{}{}", kind.secret_prefix(), B64.encode(secret))
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    let public = format_public(kind, &public_of(kind, &secret));
    let pub_path = public_path(path);
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|source| KeyError::Io { path: pub_path, source })?;
    Ok(public)
}

/// Where the public half of the secret at `path` is written: `path.pub`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// What to do with a signing key that may be generated but does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Generate it and keep it (the daemon's first start).
    Generate,
    /// Use a throwaway key and write nothing (`edgeward check`).
    Ephemeral,
}

/// The signing key at `path`; when absent and `may_generate`, made per `missing`.
pub fn signing_key(path: &Path, may_generate: bool, missing: Missing) -> Result<SigningKey, KeyError> {
    if may_generate && !path.exists() {
        match missing {
            Missing::Ephemeral => return Ok(SigningKey::from_bytes(&random32())),
            Missing::Generate => {
                let public = generate(KeyKind::Ed25519, path)?;
                tracing::info!(path = %path.display(), public = %public, "generated a signing key");
            }
        }
    }
    read_signing_key(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sensor key of small order (here the identity point) is refused:
    /// batch verification depends on it.
    #[test]
    fn weak_sensor_key_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let text = format_public(KeyKind::Ed25519, &identity);
        let err = parse_verifying_key(&text, "sensor `w`").unwrap_err();
        assert!(err.to_string().contains("small order"), "{err}");
        let genuine = SigningKey::from_bytes(&[3u8; 32]).verifying_key().to_bytes();
        assert!(parse_verifying_key(&format_public(KeyKind::Ed25519, &genuine), "sensor `w`").is_ok());
    }

    /// A generated key is private to its owner, reads back, and its public half matches.
    #[test]
    fn generate_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/gateway.key");
        let public = generate(KeyKind::Ed25519, &path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = read_signing_key(&path).unwrap();
        assert_eq!(format_public(KeyKind::Ed25519, &key.verifying_key().to_bytes()), public);
        let written = std::fs::read_to_string(public_path(&path)).unwrap();
        assert_eq!(written.trim(), public);
        assert!(parse_verifying_key(&public, "test").is_ok());
    }

    /// An existing key is never overwritten.
    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        generate(KeyKind::X25519, &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(generate(KeyKind::X25519, &path), Err(KeyError::Exists { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    /// A secret file others can read is refused, naming the fix.
    #[test]
    fn refuses_open_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        generate(KeyKind::Ed25519, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_signing_key(&path).unwrap_err().to_string();
        assert!(err.contains("readable by group or others") && err.contains("chmod 600"), "{err}");
    }

    /// Malformed public keys are refused with the expected form.
    #[test]
    fn malformed_public_keys() {
        assert!(parse_public(KeyKind::X25519, "ed25519:AAAA", "k").is_err());
        let err = parse_public(KeyKind::Ed25519, "ed25519:AAAA", "sensor `s`").unwrap_err().to_string();
        assert!(err.contains("sensor `s`: expected `ed25519:`"), "{err}");
        let ok = format_public(KeyKind::X25519, &[9u8; 32]);
        assert_eq!(parse_public(KeyKind::X25519, &ok, "k").unwrap(), [9u8; 32]);
    }
}
