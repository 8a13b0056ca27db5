//! TLS for MQTT connections: a rustls client configuration (ring provider)
//! from PEM files, and plain words for the handshake failures an operator
//! meets (unknown CA, wrong name, client certificate refused).

use super::config::MqttError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// A client configuration trusting `ca_file` (or the system's roots) and,
/// for mutual TLS, presenting `identity` (certificate chain, private key).
pub fn client_config(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, MqttError> {
    let roots = match ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(read_certs(path)?);
            if added == 0 {
                return Err(pem(path, "no usable CA certificate"));
            }
            roots
        }
        None => system_roots()?,
    };
    // The provider is named here rather than installed process-wide: nothing
    // else in the process then depends on which one was installed first.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Versions { source: Box::new(e) })?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let private = read_key(key)?;
            builder.with_client_auth_cert(chain, private).map_err(|e| MqttError::Identity {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                source: Box::new(e),
            })?
        }
    };
    Ok(Arc::new(config))
}

fn pem(path: &Path, reason: impl Into<String>) -> MqttError {
    MqttError::Pem { path: path.to_path_buf(), reason: reason.into() }
}

fn read(path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|source| MqttError::Read { path: path.to_path_buf(), source })
}

/// Every certificate in a PEM file; none is an error.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttError> {
    let bytes = read(path)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(path, format!("not a PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(pem(path, "no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
    }
    Ok(certs)
}

/// The private key of a PEM file, which must not be readable by group or others.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, MqttError> {
    crate::trust::keys::check_private(path)?;
    let bytes = read(path)?;
    match rustls_pemfile::private_key(&mut bytes.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(pem(path, "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")),
        Err(e) => Err(pem(path, format!("not a PEM file: {e}"))),
    }
}

/// The operating system's trusted roots.
fn system_roots() -> Result<RootCertStore, MqttError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let reason = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "none found".to_string(),
        };
        return Err(MqttError::NoSystemRoots { reason });
    }
    Ok(roots)
}

/// What a TLS failure in `error`'s chain means for an operator, if it is one.
pub fn explain(error: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    let rustls_error = find_rustls_error(error)?;
    let text = match rustls_error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                "the broker's certificate is not signed by a CA this gateway trusts (`ca-file`)".to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the broker's certificate is not valid for the name `{host}` in the URL")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the broker's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet (is this gateway's clock right?)".to_string()
            }
            other => format!("the broker's certificate was refused: {other:?}"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::HandshakeFailure
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied),
        ) => format!(
            "the broker refused the TLS handshake ({alert:?}): it wants a client certificate it trusts (`client-cert`, `client-key`)"
        ),
        rustls::Error::AlertReceived(alert) => format!("the broker ended the TLS handshake ({alert:?})"),
        _ => return None,
    };
    Some(text)
}

/// The rustls error somewhere in `error`'s chain. An `io::Error` hides the
/// error it wraps from `source()`, so each one is opened explicitly.
fn find_rustls_error<'a>(mut error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(found) = inner.downcast_ref::<rustls::Error>() {
                return Some(found);
            }
            error = inner;
            continue;
        }
        error = error.source()?;
    }
}
