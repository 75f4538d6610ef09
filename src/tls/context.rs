//! A rustls `ServerConfig` from the `ssl.*` keys, as ZooKeeper's
//! `X509Util.createSSLContextAndOptions` builds its SSLContext: the key
//! store's certificate, client certificates checked against the trust store
//! per `ssl.clientAuth`, protocols and cipher suites as configured.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use tracing::warn;

use super::settings::{ClientAuth, TlsConfig};
use super::stores;
use super::v1::{V1Checks, V1TolerantVerifier};

/// ZooKeeper's default cipher suites on Java 9+ (`DEFAULT_CIPHERS_JAVA9`)
/// that rustls has: its CBC suites are left out, as rustls has none.
const ZOOKEEPER_DEFAULT_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Builds the server's TLS configuration; errors name the key to fix.
pub fn build(settings: &TlsConfig) -> Result<ServerConfig, String> {
    let provider = Arc::new(provider_for(settings)?);
    let versions = protocol_versions(settings)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("ssl.ciphersuites: none usable with the enabled protocols: {e}"))?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth @ (ClientAuth::Want | ClientAuth::Need) => {
            let verifier = client_verifier(settings, auth, provider.clone())?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certified = own_key(settings, &provider)?;
    Ok(builder.with_cert_resolver(Arc::new(OneCert(certified))))
}

/// The key store's chain and key, ready to be served (or, by the quorum's
/// dialling side, presented as a client certificate).
pub(super) fn own_key(
    settings: &TlsConfig,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let material = stores::load_key_store(&settings.key_store)?;
    let file = settings
        .key_store
        .location
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let certified = certified_key(material.chain, material.key, provider)
        .map_err(|e| format!("ssl.keyStore.location: {file}: unusable key or certificate: {e}"))?;
    Ok(Arc::new(certified))
}

/// The server's own chain and key, checked to belong together. rustls's
/// `with_single_cert` makes the same check by parsing the certificate with
/// webpki, which refuses X.509 v1 certificates — what Java's and pyOpenSSL's
/// defaults write (kazoo's own test harness makes them). A server never has
/// to validate its own certificate, so for a v1 one the key is compared with
/// the certificate's SubjectPublicKeyInfo here and the chain served as is.
fn certified_key(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| e.to_string())?;
    let certified = CertifiedKey::new(chain, signing);
    let end_entity = certified.end_entity_cert().map_err(|e| e.to_string())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if parsed.version() != x509_parser::x509::X509Version::V1 {
        return match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(certified)
            }
            Err(e) => Err(e.to_string()),
        };
    }
    let spki = parsed.tbs_certificate.subject_pki.raw;
    match certified.key.public_key() {
        Some(key_spki) if key_spki.as_ref() != spki => {
            Err("the private key does not match the certificate".into())
        }
        _ => Ok(certified),
    }
}

/// Serves the key store's one certificate to every client.
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// ring's suites, narrowed to `ssl.ciphersuites` (Java names: TLS 1.3
/// suites are `TLS_AES_...`, where rustls says `TLS13_AES_...`).
pub(super) fn provider_for(settings: &TlsConfig) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    let wanted: Vec<&str> = match &settings.cipher_suites {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => ZOOKEEPER_DEFAULT_SUITES.to_vec(),
    };
    let mut chosen = Vec::new();
    for name in &wanted {
        let found = provider
            .cipher_suites
            .iter()
            .find(|s| java_suite_name(s).as_deref() == Some(*name));
        match found {
            Some(suite) => chosen.push(*suite),
            None if settings.cipher_suites.is_some() => {
                warn!("ssl.ciphersuites: '{name}' is not a suite Ferrokeeper has; skipped")
            }
            None => {}
        }
    }
    if chosen.is_empty() {
        return Err(format!(
            "ssl.ciphersuites: none of '{}' is a suite Ferrokeeper has",
            wanted.join(",")
        ));
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

fn java_suite_name(suite: &rustls::SupportedCipherSuite) -> Option<String> {
    let name = suite.suite().as_str()?;
    Some(match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    })
}

/// `ssl.enabledProtocols` if set, else what Java enables for `ssl.protocol`
/// (TLSv1.3 enables TLSv1.3 and TLSv1.2; TLSv1.2 only itself).
pub(super) fn protocol_versions(
    settings: &TlsConfig,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let Some(list) = &settings.enabled_protocols else {
        return match settings.protocol.as_str() {
            "TLSv1.3" | "TLS" => Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]),
            "TLSv1.2" => Ok(vec![&rustls::version::TLS12]),
            other => Err(format!(
                "ssl.protocol: '{other}' is not a protocol Ferrokeeper has (TLSv1.2, TLSv1.3)"
            )),
        };
    };
    let mut versions = Vec::new();
    for name in list {
        match name.as_str() {
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            other => warn!("ssl.enabledProtocols: '{other}' is not supported; skipped"),
        }
    }
    if versions.is_empty() {
        return Err(format!(
            "ssl.enabledProtocols: none of '{}' is supported (TLSv1.2, TLSv1.3)",
            list.join(",")
        ));
    }
    Ok(versions)
}

fn client_verifier(
    settings: &TlsConfig,
    auth: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    if settings.trust_store.location.is_none() {
        // Java would fall back to the JVM's cacerts; there is no such store here.
        return Err(format!(
            "ssl.trustStore.location: not set, but ssl.clientAuth={} asks clients for \
             certificates (set a trust store, or ssl.clientAuth=none)",
            if auth == ClientAuth::Need {
                "need"
            } else {
                "want"
            }
        ));
    }
    let file = trust_file(settings);
    let trusted = stores::load_trust_store(&settings.trust_store)?;
    let roots = root_store(trusted.clone(), &file)?;
    let algorithms = provider.signature_verification_algorithms;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if auth == ClientAuth::Want {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let webpki = builder
        .build()
        .map_err(|e| format!("ssl.trustStore.location: {file}: {e}"))?;
    let v1 = V1Checks::new(trusted, algorithms);
    Ok(Arc::new(V1TolerantVerifier::new(webpki, v1)))
}

fn trust_file(settings: &TlsConfig) -> String {
    settings
        .trust_store
        .location
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The trust store's certificates as rustls trust anchors, and as DER (for
/// a v1 leaf's issuer, see `tls::v1`).
pub(super) fn trust_roots(
    settings: &TlsConfig,
) -> Result<
    (
        RootCertStore,
        Vec<rustls_pki_types::CertificateDer<'static>>,
    ),
    String,
> {
    let file = trust_file(settings);
    let trusted = stores::load_trust_store(&settings.trust_store)?;
    Ok((root_store(trusted.clone(), &file)?, trusted))
}

fn root_store(
    certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    file: &str,
) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("ssl.trustStore.location: {file}: unusable certificate: {e}"))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_suites_are_zookeepers_that_ring_has() {
        let provider = provider_for(&TlsConfig::default()).unwrap();
        let names: Vec<String> = provider
            .cipher_suites
            .iter()
            .filter_map(java_suite_name)
            .collect();
        assert_eq!(names.len(), ZOOKEEPER_DEFAULT_SUITES.len(), "{names:?}");
        assert!(names.contains(&"TLS_AES_128_GCM_SHA256".to_string()));
    }

    #[test]
    fn unknown_suites_only_is_an_error() {
        let settings = TlsConfig {
            cipher_suites: Some(vec!["TLS_RSA_WITH_RC4_128_MD5".to_string()]),
            ..TlsConfig::default()
        };
        let err = provider_for(&settings).err().unwrap();
        assert!(err.starts_with("ssl.ciphersuites:"), "{err}");
    }

    #[test]
    fn protocols_follow_java() {
        let mut settings = TlsConfig::default();
        assert_eq!(protocol_versions(&settings).unwrap().len(), 2);
        settings.protocol = "TLSv1.2".to_string();
        assert_eq!(protocol_versions(&settings).unwrap().len(), 1);
        settings.protocol = "SSLv3".to_string();
        assert!(protocol_versions(&settings).is_err());
        settings.enabled_protocols = Some(vec!["TLSv1.1".to_string(), "TLSv1.3".to_string()]);
        assert_eq!(protocol_versions(&settings).unwrap().len(), 1);
    }

    #[test]
    fn client_auth_without_trust_store_is_refused() {
        let err = client_verifier(
            &TlsConfig::default(),
            ClientAuth::Need,
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .err()
        .unwrap();
        assert!(err.starts_with("ssl.trustStore.location:"), "{err}");
    }
}
