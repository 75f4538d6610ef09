//! The zoo.cfg keys of quorum TLS, as ZooKeeper's `QuorumPeerConfig` and
//! `QuorumX509Util` read them: `sslQuorum`, `portUnification`,
//! `sslQuorumReloadCertFiles` and the `ssl.quorum.*` twins of the client
//! `ssl.*` keys. The store, protocol and cipher keys are the client ones
//! under another prefix, so they are kept in a [`TlsConfig`] and parsed by
//! its code; only the defaults that differ for the quorum are set here.

use super::settings::{is_tls_key, parse_bool, TlsConfig};

/// Everything quorum TLS needs from zoo.cfg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumTlsConfig {
    /// `sslQuorum`: dial peers (election and quorum ports) over TLS, and
    /// accept only TLS unless `portUnification` is set.
    pub enabled: bool,
    /// `portUnification`: the quorum and election ports accept TLS and
    /// plaintext both, told apart by the first byte (ZooKeeper's
    /// `UnifiedServerSocket`), so an ensemble can move to TLS one server
    /// at a time.
    pub port_unification: bool,
    /// The `ssl.quorum.*` keys, in the client keys' shape.
    /// `cert_reload` is `sslQuorumReloadCertFiles`.
    pub tls: TlsConfig,
    /// `ssl.quorum.clientHostnameVerification`: the accepting side also
    /// checks the dialling peer's certificate against its address
    /// (ZooKeeper: on for the quorum, and only if `hostnameVerification` is).
    pub client_hostname_verification: bool,
}

impl Default for QuorumTlsConfig {
    fn default() -> Self {
        QuorumTlsConfig {
            enabled: false,
            port_unification: false,
            tls: TlsConfig {
                // ZooKeeper's `sslQuorumReloadCertFiles` defaults to false.
                cert_reload: false,
                ..TlsConfig::default()
            },
            client_hostname_verification: true,
        }
    }
}

const QUORUM_PREFIX: &str = "ssl.quorum.";

/// The quorum TLS keys, without a `zookeeper.` prefix.
pub fn is_quorum_tls_key(key: &str) -> bool {
    matches!(
        key,
        "sslQuorum"
            | "portUnification"
            | "sslQuorumReloadCertFiles"
            | "ssl.quorum.clientHostnameVerification"
    ) || client_twin(key).is_some()
}

/// `ssl.quorum.X` → `ssl.X` for the keys the two share.
fn client_twin(key: &str) -> Option<String> {
    let rest = key.strip_prefix(QUORUM_PREFIX)?;
    let twin = format!("ssl.{rest}");
    let shared = is_tls_key(&twin) && twin != "ssl.authProvider";
    shared.then_some(twin)
}

impl QuorumTlsConfig {
    /// Applies one key; None when it is not a quorum TLS key.
    pub fn apply(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        if !is_quorum_tls_key(key) {
            return None;
        }
        let result = match key {
            "sslQuorum" => parse_bool(value).map(|b| self.enabled = b),
            "portUnification" => parse_bool(value).map(|b| self.port_unification = b),
            "sslQuorumReloadCertFiles" => parse_bool(value).map(|b| self.tls.cert_reload = b),
            "ssl.quorum.clientHostnameVerification" => {
                parse_bool(value).map(|b| self.client_hostname_verification = b)
            }
            _ => {
                let twin = client_twin(key).expect("is_quorum_tls_key checked it");
                self.tls.apply_tls_key(&twin, value)
            }
        };
        Some(result.map_err(|e| format!("{key}: {e}")))
    }

    /// Whether the accepting side checks the dialler's certificate against
    /// the dialler's address (`X509Util.isClientHostnameVerificationEnabled`).
    pub fn verifies_client_names(&self) -> bool {
        self.tls.hostname_verification && self.client_hostname_verification
    }
}

/// The client store code names the client keys in its errors
/// (`ssl.keyStore.password: ...`); for the quorum's stores the same
/// failure is about the `ssl.quorum.*` key, so the names are rewritten.
pub fn quorum_key_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 16);
    let mut rest = message;
    while let Some(at) = rest.find("ssl.") {
        let starts_key = at == 0 || rest[..at].ends_with([' ', '(', ',']);
        out.push_str(&rest[..at]);
        out.push_str(if starts_key { QUORUM_PREFIX } else { "ssl." });
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::settings::StoreType;
    use crate::tls::ClientAuth;
    use std::path::PathBuf;

    fn applied(pairs: &[(&str, &str)]) -> QuorumTlsConfig {
        let mut cfg = QuorumTlsConfig::default();
        for (k, v) in pairs {
            cfg.apply(k, v)
                .expect("a quorum key")
                .expect("a good value");
        }
        cfg
    }

    #[test]
    fn defaults_are_zookeepers() {
        let cfg = QuorumTlsConfig::default();
        assert!(!cfg.enabled && !cfg.port_unification && !cfg.tls.cert_reload);
        assert!(cfg.tls.hostname_verification && cfg.verifies_client_names());
        assert_eq!(cfg.tls.client_auth, ClientAuth::Need);
    }

    #[test]
    fn quorum_keys_are_read() {
        let cfg = applied(&[
            ("sslQuorum", "true"),
            ("portUnification", "true"),
            ("sslQuorumReloadCertFiles", "true"),
            ("ssl.quorum.keyStore.location", "/q/server.jks"),
            ("ssl.quorum.keyStore.password", "kpw"),
            ("ssl.quorum.keyStore.type", "PKCS12"),
            ("ssl.quorum.trustStore.location", "/q/trust.pem"),
            ("ssl.quorum.trustStore.password", "tpw"),
            ("ssl.quorum.trustStore.type", "pem"),
            ("ssl.quorum.protocol", "TLSv1.2"),
            ("ssl.quorum.enabledProtocols", "TLSv1.2,TLSv1.3"),
            ("ssl.quorum.ciphersuites", "TLS_AES_128_GCM_SHA256"),
            ("ssl.quorum.hostnameVerification", "false"),
            ("ssl.quorum.clientAuth", "want"),
            ("ssl.quorum.handshakeDetectionTimeoutMillis", "700"),
        ]);
        assert!(cfg.enabled && cfg.port_unification && cfg.tls.cert_reload);
        assert_eq!(
            cfg.tls.key_store.location,
            Some(PathBuf::from("/q/server.jks"))
        );
        assert_eq!(cfg.tls.key_store.password, "kpw");
        assert_eq!(cfg.tls.key_store.store_type, Some(StoreType::Pkcs12));
        assert_eq!(cfg.tls.trust_store.password, "tpw");
        assert_eq!(cfg.tls.trust_store.store_type, Some(StoreType::Pem));
        assert_eq!(cfg.tls.protocol, "TLSv1.2");
        assert_eq!(cfg.tls.enabled_protocols.as_ref().map(Vec::len), Some(2));
        assert_eq!(cfg.tls.cipher_suites.as_ref().map(Vec::len), Some(1));
        assert!(!cfg.tls.hostname_verification && !cfg.verifies_client_names());
        assert_eq!(cfg.tls.client_auth, ClientAuth::Want);
        assert_eq!(cfg.tls.handshake_timeout_ms, 700);
    }

    #[test]
    fn bad_values_name_the_quorum_key() {
        let mut cfg = QuorumTlsConfig::default();
        let err = cfg.apply("sslQuorum", "maybe").unwrap().unwrap_err();
        assert!(err.starts_with("sslQuorum:"), "{err}");
        let err = cfg
            .apply("ssl.quorum.clientAuth", "sometimes")
            .unwrap()
            .unwrap_err();
        assert!(err.starts_with("ssl.quorum.clientAuth:"), "{err}");
        // Client-only keys are not quorum keys.
        assert!(cfg.apply("ssl.quorum.authProvider", "x509").is_none());
        assert!(cfg.apply("ssl.keyStore.location", "/k").is_none());
    }

    #[test]
    fn store_errors_name_the_quorum_keys() {
        assert_eq!(
            quorum_key_names("ssl.keyStore.password: JKS store /etc/ssl.d/k.jks: bad (ssl.clientAuth=need)"),
            "ssl.quorum.keyStore.password: JKS store /etc/ssl.d/k.jks: bad (ssl.quorum.clientAuth=need)"
        );
    }
}
