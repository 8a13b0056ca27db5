//! `[uplink]`, `[alarm]`, `[actuator]` with `type = "mqtt"`: where and how
//! to connect (URL, protocol version, TLS files, credentials), checked once
//! by the config loader and turned into client settings at start-up.

use super::tls;
use crate::trust::keys::KeyError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MqttConfig {
    /// `mqtt://HOST[:PORT]` (port 1883) or, over TLS, `mqtts://HOST[:PORT]`
    /// (port 8883). The host is also the name the broker's certificate must carry.
    pub url: String,
    /// MQTT protocol version: 3 (3.1.1, the default) or 5. With 5, uplink
    /// messages carry their id as the user property `msg-id` and their
    /// content type as the content-type property.
    #[serde(default = "MqttConfig::default_protocol")]
    pub protocol: u8,
    /// Default: the gateway id (plus `-alarm` / `-actuator` for the local sinks).
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// The password in the config itself; `password-file` keeps it out of it.
    pub password: Option<String>,
    /// A file holding the password (one line; mode 0600: it is a secret).
    pub password_file: Option<PathBuf>,
    /// `mqtts://`: the CA certificates (PEM) the broker's certificate must
    /// chain to; absent: the system's roots (`/etc/ssl/certs`).
    pub ca_file: Option<PathBuf>,
    /// `mqtts://`: this gateway's certificate chain (PEM), for brokers that
    /// require client certificates (mutual TLS); needs `client-key`.
    pub client_cert: Option<PathBuf>,
    /// The private key of `client-cert` (PEM: PKCS#8, PKCS#1 or SEC1; mode 0600).
    pub client_key: Option<PathBuf>,
    /// Seconds between keep-alive pings.
    #[serde(default = "MqttConfig::default_keep_alive")]
    pub keep_alive_s: u64,
    /// Uplink: messages sent but not yet acknowledged, at most.
    #[serde(default = "MqttConfig::default_inflight")]
    pub max_inflight: usize,
    /// Alarm and actuator sinks: the topic; `{gateway}`, `{sensor}`,
    /// `{code}` (alarms) and `{actuator}` (commands) are replaced.
    pub topic: Option<String>,
}

/// The MQTT protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1.1.
    V311,
    /// MQTT 5.
    V5,
}

/// The broker's address, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Why an MQTT connection cannot be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("`{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("protocol = {found}: only 3 (MQTT 3.1.1) and 5 are supported")]
    Protocol { found: u8 },
    #[error("`{key}` is only for mqtts:// URLs (TLS); `{url}` is plain MQTT")]
    NotTls { key: &'static str, url: String },
    #[error("`client-cert` and `client-key` go together; `{missing}` is missing")]
    HalfIdentity { missing: &'static str },
    #[error("`password` and `password-file` exclude each other")]
    TwoPasswords { key: &'static str },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error(transparent)]
    KeyFile(#[from] KeyError),
    #[error("no usable system CA certificates ({reason}); set `ca-file`")]
    NoSystemRoots { reason: String },
    #[error("{cert} with {key}: not a usable client certificate and key: {source}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        // Boxed: it would make every `MqttError` twice as large.
        #[source]
        source: Box<rustls::Error>,
    },
    #[error("TLS protocol versions: {source}")]
    Versions {
        #[source]
        source: Box<rustls::Error>,
    },
}

/// What a client needs to connect, read and checked.
#[derive(Clone)]
pub(crate) struct Settings {
    pub url: String,
    pub endpoint: Endpoint,
    pub protocol: Protocol,
    pub client_id: String,
    pub keep_alive: Duration,
    pub credentials: Option<(String, String)>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl MqttConfig {
    /// Defaults for everything but the broker's address.
    pub fn for_url(url: &str) -> Self {
        MqttConfig {
            url: url.to_string(),
            protocol: Self::default_protocol(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive_s: Self::default_keep_alive(),
            max_inflight: Self::default_inflight(),
            topic: None,
        }
    }

    fn default_protocol() -> u8 {
        3
    }
    fn default_keep_alive() -> u64 {
        30
    }
    fn default_inflight() -> usize {
        64
    }

    /// The broker URL as written.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same configuration with its file paths resolved by `resolve`
    /// (against the configuration file's folder).
    pub fn resolved(&self, resolve: impl Fn(&Path) -> PathBuf) -> Self {
        let mut out = self.clone();
        for path in [&mut out.password_file, &mut out.ca_file, &mut out.client_cert, &mut out.client_key]
            .into_iter()
            .flatten()
        {
            *path = resolve(path);
        }
        out
    }

    /// Host, port and TLS from `url`.
    pub fn endpoint(&self) -> Result<Endpoint, MqttError> {
        let url = self.url();
        let bad = |reason: String| MqttError::Url { url: url.to_string(), reason };
        let (rest, tls) = match url.split_once("://") {
            Some(("mqtt", rest)) => (rest, false),
            Some(("mqtts", rest)) => (rest, true),
            _ => return Err(bad("expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]".into())),
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal without a port: `[::1]`.
            Some((_, tail)) if tail.ends_with(']') => (rest, default_port),
            Some((host, port)) => (host, port.parse().map_err(|_| bad(format!("bad port `{port}`")))?),
            None => (rest, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad("no host".into()));
        }
        Ok(Endpoint { host: host.to_string(), port, tls })
    }

    /// Host and port from `url`.
    pub fn host_port(&self) -> Result<(String, u16), MqttError> {
        self.endpoint().map(|e| (e.host, e.port))
    }

    /// The protocol version.
    pub fn protocol(&self) -> Result<Protocol, MqttError> {
        match self.protocol {
            3 => Ok(Protocol::V311),
            5 => Ok(Protocol::V5),
            found => Err(MqttError::Protocol { found }),
        }
    }

    /// Check every key that can be checked before connecting, reading the
    /// files. An error comes with the key it is about, for the config loader
    /// to point at.
    pub fn check(&self) -> Result<(), (MqttError, &'static str)> {
        let endpoint = self.endpoint().map_err(|e| (e, "url"))?;
        self.protocol().map_err(|e| (e, "protocol"))?;
        if !endpoint.tls {
            for (key, value) in [
                ("ca-file", &self.ca_file),
                ("client-cert", &self.client_cert),
                ("client-key", &self.client_key),
            ] {
                if value.is_some() {
                    return Err((MqttError::NotTls { key, url: self.url.clone() }, key));
                }
            }
        }
        if let (Some(_), Some(_)) = (&self.password, &self.password_file) {
            return Err((MqttError::TwoPasswords { key: "password-file" }, "password-file"));
        }
        if let Some(file) = &self.password_file {
            read_password(file).map_err(|e| (e, "password-file"))?;
        }
        if endpoint.tls {
            self.tls_config().map_err(|e| {
                let key = match &e {
                    MqttError::HalfIdentity { missing: "client-key" } => "client-cert",
                    MqttError::HalfIdentity { .. } => "client-key",
                    MqttError::KeyFile(_) | MqttError::Identity { .. } => "client-key",
                    MqttError::Read { path, .. } | MqttError::Pem { path, .. } => [
                        ("ca-file", &self.ca_file),
                        ("client-cert", &self.client_cert),
                        ("client-key", &self.client_key),
                    ]
                    .into_iter()
                    .find(|(_, p)| p.as_ref() == Some(path))
                    .map_or("url", |(key, _)| key),
                    _ => "url",
                };
                (e, key)
            })?;
        }
        Ok(())
    }

    /// The rustls client configuration for an `mqtts://` URL.
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, MqttError> {
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            (Some(_), None) => return Err(MqttError::HalfIdentity { missing: "client-key" }),
            (None, Some(_)) => return Err(MqttError::HalfIdentity { missing: "client-cert" }),
        };
        let ca_file = self.ca_file.as_deref();
        tls::client_config(ca_file, identity)
    }

    /// Everything a client needs, with files read.
    pub(crate) fn settings(&self, client_id: String) -> Result<Settings, MqttError> {
        let endpoint = self.endpoint()?;
        let tls = if endpoint.tls { Some(self.tls_config()?) } else { None };
        let password = match (&self.password, &self.password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(file)) => Some(read_password(file)?),
            (None, None) => None,
        };
        Ok(Settings {
            url: self.url().to_string(),
            endpoint,
            protocol: self.protocol()?,
            client_id,
            keep_alive: Duration::from_secs(self.keep_alive_s.max(5)),
            credentials: self.username.clone().zip(password),
            tls,
        })
    }
}

/// The password in `path`: its first line. The file must not be readable
/// by group or others.
fn read_password(path: &Path) -> Result<String, MqttError> {
    crate::trust::keys::check_private(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|source| MqttError::Read { path: path.to_path_buf(), source })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Result<Endpoint, MqttError> {
        MqttConfig::for_url(url).endpoint()
    }

    /// URLs: scheme picks TLS and the default port; anything else is refused.
    #[test]
    fn url_parsing() {
        let e = endpoint("mqtt://broker.local").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("broker.local", 1883, false));
        let e = endpoint("mqtts://broker.local").unwrap();
        assert_eq!((e.port, e.tls), (8883, true));
        let e = endpoint("mqtts://127.0.0.1:9000/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 9000));
        let e = endpoint("mqtts://[::1]").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 8883));
        assert!(endpoint("tcp://broker").unwrap_err().to_string().contains("expected mqtt://"));
        assert!(endpoint("mqtt://broker:x").unwrap_err().to_string().contains("bad port `x`"));
        assert!(endpoint("mqtt://:1883").is_err());
    }
}
