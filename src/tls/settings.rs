//! The zoo.cfg keys of client TLS, as ZooKeeper's `ClientX509Util` and
//! `QuorumPeerConfig` read them: `secureClientPort[Address]`, `ssl.*`, and
//! the x509 provider's `X509AuthenticationProvider.superUser`. Parsing only;
//! `tls::stores` opens the files and `tls::context` builds rustls from them.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::limits;

/// `ssl.clientAuth`: whether the server asks the client for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Do not ask.
    None,
    /// Ask; a client without one still connects (without an x509 id).
    Want,
    /// Ask; a client without one fails the handshake (ZooKeeper's default).
    Need,
}

/// A key or trust store's format (`ssl.*Store.type`, or the file extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreType {
    Jks,
    Pkcs12,
    Pem,
}

impl StoreType {
    /// ZooKeeper's `KeyStoreFileType.fromPropertyValue`: the enum name,
    /// case-insensitive (BCFKS, which it also knows, needs BouncyCastle).
    fn parse(value: &str) -> Result<StoreType, String> {
        match value.to_ascii_uppercase().as_str() {
            "JKS" => Ok(StoreType::Jks),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "PEM" => Ok(StoreType::Pem),
            other => Err(format!(
                "'{other}' is not a store type Ferrokeeper reads (JKS, PKCS12, PEM)"
            )),
        }
    }

    /// ZooKeeper's `KeyStoreFileType.fromFilename`: `.jks`, `.pem`, `.p12`
    /// (and `.pfx`, which Java's PKCS12 files also carry).
    pub fn from_file_name(path: &std::path::Path) -> Option<StoreType> {
        let ext = path.extension()?.to_str()?;
        match ext {
            "jks" => Some(StoreType::Jks),
            "pem" => Some(StoreType::Pem),
            "p12" | "pfx" => Some(StoreType::Pkcs12),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StoreType::Jks => "JKS",
            StoreType::Pkcs12 => "PKCS12",
            StoreType::Pem => "PEM",
        }
    }
}

/// One store's keys: `ssl.keyStore.*` or `ssl.trustStore.*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreKeys {
    pub location: Option<PathBuf>,
    pub password: String,
    /// `*.passwordPath`: a file whose content is the password (it wins over
    /// `*.password`, as in ZooKeeper's `getPasswordFromConfigPropertyOrFile`).
    pub password_path: Option<PathBuf>,
    pub store_type: Option<StoreType>,
}

/// Everything client TLS needs from zoo.cfg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// `secureClientPort`; no TLS listener without it.
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress`; ZooKeeper's default is the wildcard address.
    pub secure_client_address: Option<IpAddr>,
    pub key_store: StoreKeys,
    pub trust_store: StoreKeys,
    pub client_auth: ClientAuth,
    /// `ssl.protocol` (ZooKeeper's default on Java 11+ is TLSv1.3, which
    /// enables TLSv1.3 and TLSv1.2).
    pub protocol: String,
    /// `ssl.enabledProtocols`, comma separated; overrides `ssl.protocol`.
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.ciphersuites`, comma separated Java/IANA names.
    pub cipher_suites: Option<Vec<String>>,
    /// `ssl.hostnameVerification`: ZooKeeper's client-port trust manager
    /// never checks a client's host name, so on the server this only is
    /// accepted (it matters to clients).
    pub hostname_verification: bool,
    /// `ssl.handshakeDetectionTimeoutMillis`: how long a TLS handshake may take.
    pub handshake_timeout_ms: u64,
    /// `ssl.authProvider`: the scheme that turns a client certificate into
    /// an auth id; only ZooKeeper's built-in `x509`.
    pub auth_provider: String,
    /// `X509AuthenticationProvider.superUser`: a certificate with this
    /// subject name is the super user.
    pub x509_super_user: Option<String>,
    /// `client.certReload` (ZooKeeper's `zookeeper.client.certReload`):
    /// replaced store files are picked up for new connections. ZooKeeper
    /// defaults to false; Ferrokeeper to true, since a reload is cheap here
    /// and a restart is not.
    pub cert_reload: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            secure_client_port: None,
            secure_client_address: None,
            key_store: StoreKeys::default(),
            trust_store: StoreKeys::default(),
            client_auth: ClientAuth::Need,
            protocol: "TLSv1.3".to_string(),
            enabled_protocols: None,
            cipher_suites: None,
            hostname_verification: true,
            handshake_timeout_ms: limits::tls::HANDSHAKE_TIMEOUT_MS_DEFAULT,
            auth_provider: X509_SCHEME.to_string(),
            x509_super_user: None,
            cert_reload: true,
        }
    }
}

/// ZooKeeper's built-in certificate auth provider's scheme.
pub const X509_SCHEME: &str = "x509";

/// The TLS keys, without a `zookeeper.` prefix (both spellings are read).
pub fn is_tls_key(key: &str) -> bool {
    matches!(
        key,
        "secureClientPort"
            | "secureClientPortAddress"
            | "serverCnxnFactory"
            | "client.secure"
            | "client.certReload"
            | "X509AuthenticationProvider.superUser"
            | "ssl.keyStore.location"
            | "ssl.keyStore.password"
            | "ssl.keyStore.passwordPath"
            | "ssl.keyStore.type"
            | "ssl.trustStore.location"
            | "ssl.trustStore.password"
            | "ssl.trustStore.passwordPath"
            | "ssl.trustStore.type"
            | "ssl.clientAuth"
            | "ssl.protocol"
            | "ssl.enabledProtocols"
            | "ssl.ciphersuites"
            | "ssl.hostnameVerification"
            | "ssl.handshakeDetectionTimeoutMillis"
            | "ssl.authProvider"
    )
}

impl TlsConfig {
    /// Applies one key; None when it is not a TLS key.
    pub fn apply(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        if !is_tls_key(key) {
            return None;
        }
        Some(
            self.apply_tls_key(key, value)
                .map_err(|e| format!("{key}: {e}")),
        )
    }

    /// Applies a key `is_tls_key` accepts; the error is the reason only.
    pub(super) fn apply_tls_key(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "secureClientPort" => self.secure_client_port = Some(parse_port(value)?),
            "secureClientPortAddress" => {
                self.secure_client_address = Some(
                    value
                        .parse()
                        .map_err(|_| format!("'{value}' is not an IP address"))?,
                )
            }
            // Which Java socket implementation serves clients (TLS needs
            // Netty's there) and the client-side switch: nothing to choose here.
            "serverCnxnFactory" | "client.secure" => {}
            "client.certReload" => self.cert_reload = parse_bool(value)?,
            "X509AuthenticationProvider.superUser" => {
                self.x509_super_user = Some(value.to_string())
            }
            "ssl.keyStore.location" => self.key_store.location = parse_path(value),
            "ssl.keyStore.password" => self.key_store.password = value.to_string(),
            "ssl.keyStore.passwordPath" => self.key_store.password_path = parse_path(value),
            "ssl.keyStore.type" => self.key_store.store_type = parse_store_type(value)?,
            "ssl.trustStore.location" => self.trust_store.location = parse_path(value),
            "ssl.trustStore.password" => self.trust_store.password = value.to_string(),
            "ssl.trustStore.passwordPath" => self.trust_store.password_path = parse_path(value),
            "ssl.trustStore.type" => self.trust_store.store_type = parse_store_type(value)?,
            "ssl.clientAuth" => self.client_auth = parse_client_auth(value)?,
            "ssl.protocol" => self.protocol = value.to_string(),
            "ssl.enabledProtocols" => self.enabled_protocols = Some(parse_list(value)),
            "ssl.ciphersuites" => self.cipher_suites = Some(parse_list(value)),
            "ssl.hostnameVerification" => self.hostname_verification = parse_bool(value)?,
            "ssl.handshakeDetectionTimeoutMillis" => {
                self.handshake_timeout_ms = parse_handshake_timeout(value)?
            }
            "ssl.authProvider" => {
                if value != X509_SCHEME {
                    return Err(format!(
                        "'{value}' is not an x509 auth provider Ferrokeeper has (it has x509)"
                    ));
                }
                self.auth_provider = value.to_string();
            }
            _ => unreachable!("is_tls_key lists exactly the keys matched here"),
        }
        Ok(())
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("'{value}' is not a port (1-65535)")),
    }
}

/// Java's `Boolean.parseBoolean`-like reading, but a typo is an error.
pub(super) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(format!("'{value}' is not true or false")),
    }
}

/// An empty location is ZooKeeper's "not set".
fn parse_path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// An empty type means "from the file name", as in ZooKeeper.
fn parse_store_type(value: &str) -> Result<Option<StoreType>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    StoreType::parse(value).map(Some)
}

/// ZooKeeper's `ClientAuth.fromPropertyValue`: empty is NEED; otherwise the
/// enum name, case-insensitive; anything else fails startup.
fn parse_client_auth(value: &str) -> Result<ClientAuth, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "need" => Ok(ClientAuth::Need),
        "want" => Ok(ClientAuth::Want),
        "none" => Ok(ClientAuth::None),
        _ => Err(format!("'{value}' is not one of none, want, need")),
    }
}

fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// ZooKeeper takes a value <= 0 as its default (with a warning); we do too,
/// and bound the rest so a typo cannot let handshakes hold connections for days.
fn parse_handshake_timeout(value: &str) -> Result<u64, String> {
    let ms: i64 = value
        .parse()
        .map_err(|_| format!("'{value}' is not a whole number"))?;
    if ms <= 0 {
        return Ok(limits::tls::HANDSHAKE_TIMEOUT_MS_DEFAULT);
    }
    if ms as u64 > limits::tls::HANDSHAKE_TIMEOUT_MS_MAX {
        return Err(format!(
            "{ms} is out of range [1, {}]",
            limits::tls::HANDSHAKE_TIMEOUT_MS_MAX
        ));
    }
    Ok(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(pairs: &[(&str, &str)]) -> TlsConfig {
        let mut cfg = TlsConfig::default();
        for (k, v) in pairs {
            cfg.apply(k, v).expect("a TLS key").expect("a good value");
        }
        cfg
    }

    #[test]
    fn defaults_are_zookeepers() {
        let cfg = TlsConfig::default();
        assert_eq!(cfg.client_auth, ClientAuth::Need);
        assert_eq!(cfg.protocol, "TLSv1.3");
        assert_eq!(cfg.handshake_timeout_ms, 5000);
        assert!(cfg.secure_client_port.is_none());
    }

    #[test]
    fn keys_are_read() {
        let cfg = applied(&[
            ("secureClientPort", "2281"),
            ("secureClientPortAddress", "127.0.0.1"),
            ("ssl.keyStore.location", "/k/server.p12"),
            ("ssl.keyStore.password", "pw"),
            ("ssl.trustStore.type", "jks"),
            ("ssl.clientAuth", "WANT"),
            ("ssl.enabledProtocols", "TLSv1.2, TLSv1.3"),
            ("ssl.ciphersuites", "TLS_AES_128_GCM_SHA256"),
            ("ssl.handshakeDetectionTimeoutMillis", "250"),
            (
                "serverCnxnFactory",
                "org.apache.zookeeper.server.NettyServerCnxnFactory",
            ),
        ]);
        assert_eq!(cfg.secure_client_port, Some(2281));
        assert_eq!(cfg.key_store.location, Some(PathBuf::from("/k/server.p12")));
        assert_eq!(cfg.trust_store.store_type, Some(StoreType::Jks));
        assert_eq!(cfg.client_auth, ClientAuth::Want);
        assert_eq!(
            cfg.enabled_protocols,
            Some(vec!["TLSv1.2".to_string(), "TLSv1.3".to_string()])
        );
        assert_eq!(cfg.handshake_timeout_ms, 250);
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut cfg = TlsConfig::default();
        let err = cfg.apply("ssl.clientAuth", "maybe").unwrap().unwrap_err();
        assert!(err.starts_with("ssl.clientAuth:"), "{err}");
        let err = cfg
            .apply("ssl.keyStore.type", "BCFKS")
            .unwrap()
            .unwrap_err();
        assert!(err.contains("BCFKS"), "{err}");
        assert!(cfg.apply("ssl.authProvider", "mine").unwrap().is_err());
        assert!(cfg.apply("secureClientPort", "0").unwrap().is_err());
        assert!(cfg.apply("tickTime", "1").is_none());
    }

    #[test]
    fn non_positive_handshake_timeout_is_the_default() {
        let cfg = applied(&[("ssl.handshakeDetectionTimeoutMillis", "-1")]);
        assert_eq!(cfg.handshake_timeout_ms, 5000);
    }

    #[test]
    fn store_type_from_file_name() {
        use std::path::Path;
        assert_eq!(
            StoreType::from_file_name(Path::new("a/b.jks")),
            Some(StoreType::Jks)
        );
        assert_eq!(
            StoreType::from_file_name(Path::new("b.p12")),
            Some(StoreType::Pkcs12)
        );
        assert_eq!(
            StoreType::from_file_name(Path::new("b.pfx")),
            Some(StoreType::Pkcs12)
        );
        assert_eq!(
            StoreType::from_file_name(Path::new("b.pem")),
            Some(StoreType::Pem)
        );
        assert_eq!(StoreType::from_file_name(Path::new("b.keystore")), None);
    }
}
