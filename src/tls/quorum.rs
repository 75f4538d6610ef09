//! TLS on the quorum and election ports (`sslQuorum`), as ZooKeeper's
//! `QuorumX509Util` sets it up: both sides present the quorum key store's
//! certificate and check the other's against the quorum trust store
//! (mutual authentication, `ssl.quorum.clientAuth` defaulting to need), and
//! with `ssl.quorum.hostnameVerification` (on by default) a certificate
//! must name the address it is used from:
//! - the dialling side checks the accepting peer's certificate against the
//!   host in zoo.cfg's `server.N` line (an IP SAN for an address, a DNS
//!   name otherwise), inside the handshake;
//! - the accepting side checks the dialler's certificate against the
//!   dialler's IP address after the handshake (ZooKeeper's `ZKTrustManager`
//!   tries the address first and then a reverse-DNS name; Ferrokeeper does
//!   no reverse lookups, so the certificate needs an IP SAN).
//!
//! The byte streams themselves are the runtimes': `quorum::tls_stream` on
//! the election's threads, `replica::secure` on the pipeline executor.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

use super::context;
use super::quorum_settings::{quorum_key_names, QuorumTlsConfig};
use super::reload::Reloading;
use super::settings::TlsConfig;
use super::v1::{V1Checks, V1TolerantServerVerifier};

/// The first byte of a TLS record carrying a handshake message: what a
/// ClientHello starts with, and what no election or quorum packet does
/// (both start with a 4-byte big-endian length or sid whose top byte is 0
/// for any sane value; ZooKeeper's `UnifiedServerSocket` asks Netty's
/// `SslHandler.isEncrypted`, which looks at the same record header).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Both directions' configurations, rebuilt together when a store changes.
pub struct QuorumConfigs {
    /// Accepting peers on the quorum and election ports.
    pub server: Arc<ServerConfig>,
    /// Dialling peers.
    pub client: Arc<ClientConfig>,
}

/// How an accepted connection is to be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    Tls,
    Plain,
}

/// The quorum's TLS, shared by the election threads and the pipeline.
pub struct QuorumTls {
    settings: QuorumTlsConfig,
    configs: Reloading<QuorumConfigs>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTls")
            .field("dials_tls", &self.settings.enabled)
            .field("port_unification", &self.settings.port_unification)
            .finish()
    }
}

impl QuorumTls {
    /// Loads the quorum stores when quorum TLS is on (`sslQuorum`, or
    /// `portUnification`, which accepts TLS from peers that dial with it);
    /// None otherwise. An error (naming the `ssl.quorum.*` key and the
    /// file) stops startup.
    pub fn load(settings: &QuorumTlsConfig) -> Result<Option<Arc<QuorumTls>>, String> {
        if !settings.enabled && !settings.port_unification {
            return Ok(None);
        }
        let configs = Reloading::load_with(&settings.tls, build_pair)?;
        Ok(Some(Arc::new(QuorumTls {
            settings: settings.clone(),
            configs,
        })))
    }

    /// Whether connections we open are TLS (`sslQuorum`).
    pub fn dials_tls(&self) -> bool {
        self.settings.enabled
    }

    /// Whether accepted connections are told apart by their first byte
    /// (`portUnification`); otherwise every accepted one must be TLS.
    pub fn detects_plaintext(&self) -> bool {
        self.settings.port_unification
    }

    /// What an accepted connection whose first byte is `first` is.
    pub fn inbound(&self, first: u8) -> Inbound {
        if first == TLS_HANDSHAKE_RECORD {
            Inbound::Tls
        } else {
            Inbound::Plain
        }
    }

    /// How long a TLS handshake (or the first byte, with port
    /// unification) may take (`ssl.quorum.handshakeDetectionTimeoutMillis`).
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.tls.handshake_timeout_ms)
    }

    /// The configurations for a new connection (reloaded first if
    /// `sslQuorumReloadCertFiles` is set and a store file changed).
    pub fn configs(&self) -> Arc<QuorumConfigs> {
        self.configs.current()
    }

    /// The accepting side's check of a dialler's certificate chain (as
    /// rustls has verified it against the trust store) against the address
    /// it dialled from. A dialler without a certificate passed the
    /// handshake only under `ssl.quorum.clientAuth` want or none, where
    /// ZooKeeper checks nothing either.
    pub fn check_dialler(
        &self,
        chain: Option<&[CertificateDer<'_>]>,
        from: IpAddr,
    ) -> Result<(), String> {
        if !self.settings.verifies_client_names() {
            return Ok(());
        }
        let Some(leaf) = chain.and_then(|c| c.first()) else {
            return Ok(());
        };
        if names_ip(leaf, from)? {
            Ok(())
        } else {
            Err(format!(
                "the peer's certificate has no IP address SAN {from} \
                 (ssl.quorum.hostnameVerification is on)"
            ))
        }
    }
}

/// The name the dialling side checks the accepting peer's certificate
/// against: the host of its `server.N` line.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("'{host}': {e}"))
}

/// Whether the certificate carries `ip` as a SubjectAltName (what
/// ZooKeeper's `ZKHostnameVerifier` matches an address against).
fn names_ip(der: &CertificateDer<'_>, ip: IpAddr) -> Result<bool, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the peer's certificate does not parse: {e}"))?;
    let want = match ip.to_canonical() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Ok(false);
    };
    Ok(san
        .value
        .general_names
        .iter()
        .any(|name| matches!(name, GeneralName::IPAddress(bytes) if *bytes == want.as_slice())))
}

fn build_pair(settings: &TlsConfig) -> Result<QuorumConfigs, String> {
    let server = context::build(settings).map_err(|e| quorum_key_names(&e))?;
    let client = build_client(settings).map_err(|e| quorum_key_names(&e))?;
    Ok(QuorumConfigs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The dialling side: the same suites, protocols and certificate as the
/// accepting side, the peer checked against the same trust store (an
/// X.509 v1 peer certificate too, as Java accepts one: `tls::v1`).
fn build_client(settings: &TlsConfig) -> Result<ClientConfig, String> {
    let provider = Arc::new(context::provider_for(settings)?);
    let versions = context::protocol_versions(settings)?;
    if settings.trust_store.location.is_none() {
        // Java would fall back to the JVM's cacerts; there is no such store here.
        return Err(
            "ssl.trustStore.location: not set (a quorum peer's certificate \
                    is checked against it)"
                .to_string(),
        );
    }
    let (roots, trusted) = context::trust_roots(settings)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("ssl.trustStore.location: {e}"))?;
    let v3: Arc<dyn ServerCertVerifier> = if settings.hostname_verification {
        webpki
    } else {
        Arc::new(AnyName(webpki))
    };
    let v1 = V1Checks::new(trusted, provider.signature_verification_algorithms);
    let verifier = Arc::new(V1TolerantServerVerifier::new(
        v3,
        v1,
        settings.hostname_verification,
    ));
    let own = context::own_key(settings, &provider)?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("ssl.ciphersuites: none usable with the enabled protocols: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(OwnCert(own))))
}

/// Presents the key store's certificate whenever the peer asks.
#[derive(Debug)]
struct OwnCert(Arc<CertifiedKey>);

impl ResolvesClientCert for OwnCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The trust store's verification without the name check, for
/// `ssl.quorum.hostnameVerification=false`: the chain must still lead to
/// a trusted certificate and be in date.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_server_lines() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("zk1.example.com"),
            Ok(ServerName::DnsName(_))
        ));
    }

    #[test]
    fn off_means_no_stores_are_read() {
        assert!(QuorumTls::load(&QuorumTlsConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn missing_key_store_names_the_quorum_key() {
        let settings = QuorumTlsConfig {
            enabled: true,
            ..QuorumTlsConfig::default()
        };
        let err = QuorumTls::load(&settings).err().unwrap();
        assert!(err.starts_with("ssl.quorum."), "{err}");
    }
}
