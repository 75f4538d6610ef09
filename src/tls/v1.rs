//! Certificates in X.509 version 1, as Java accepts them: a client's (on
//! `secureClientPort`, and a quorum peer dialling in) and a quorum peer's
//! we dial.
//!
//! webpki (rustls's verifier) refuses any certificate that is not version 3.
//! Java's PKIX validator accepts a v1 end-entity certificate, and v1 is what
//! `openssl x509 -req` without extensions, pyOpenSSL's default and kazoo's
//! own TLS test harness write. So these verifiers hand v3 chains to webpki
//! unchanged and check a v1 leaf themselves, narrowly ([`V1Checks`]): it
//! must be within its validity period and signed by a certificate of the
//! trust store (issued directly by a trusted CA, or itself trusted). A v1
//! certificate carries no extensions, so there are no key usages or
//! constraints to check, and no SubjectAltName: a peer we dial is matched
//! by its CN against a DNS name in its `server.N` line, never against an
//! address (ZooKeeper's `ZKHostnameVerifier` matches addresses to IP SANs
//! only). A v1 leaf under an intermediate CA is refused (webpki cannot
//! check the intermediate on its own), which Java would accept.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Version;

/// The checks of a v1 leaf and of the handshake signature made with its key.
#[derive(Debug)]
pub struct V1Checks {
    /// The trust store's certificates, DER, to find a v1 leaf's issuer in.
    trusted: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl V1Checks {
    pub fn new(
        trusted: Vec<CertificateDer<'static>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> V1Checks {
        V1Checks {
            trusted,
            algorithms,
        }
    }

    /// The leaf's subject public key if it is a v1 certificate; None for any
    /// other version (webpki's to judge) or an unreadable one (likewise, so
    /// its error is the one reported).
    fn v1_key<'a>(cert: &'a CertificateDer<'_>) -> Option<SubjectPublicKeyInfoDer<'a>> {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
        (parsed.version() == X509Version::V1)
            .then(|| SubjectPublicKeyInfoDer::from(parsed.tbs_certificate.subject_pki.raw))
    }

    /// The certificate, parsed, if it is a v1 one.
    fn v1_leaf<'a>(cert: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
        match X509Certificate::from_der(cert.as_ref()) {
            Ok((_, leaf)) if leaf.version() == X509Version::V1 => Some(leaf),
            _ => None,
        }
    }

    fn verify_leaf(&self, leaf: &X509Certificate<'_>, now: UnixTime) -> Result<(), Error> {
        let now = ASN1Time::from_timestamp(now.as_secs() as i64)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if now < leaf.validity().not_before {
            return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
        }
        if now > leaf.validity().not_after {
            return Err(Error::InvalidCertificate(CertificateError::Expired));
        }
        let issuer_raw = leaf.issuer().as_raw();
        let signed_by_trusted = self.trusted.iter().any(|der| {
            X509Certificate::from_der(der.as_ref()).is_ok_and(|(_, ca)| {
                ca.subject().as_raw() == issuer_raw
                    && leaf.verify_signature(Some(ca.public_key())).is_ok()
            })
        });
        if signed_by_trusted {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
    }

    /// None when `cert` is not v1 (the caller asks webpki).
    fn tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Option<Result<HandshakeSignatureValid, Error>> {
        let spki = Self::v1_key(cert)?;
        let Ok(key) = webpki::RawPublicKeyEntity::try_from(&spki) else {
            return Some(Err(Error::InvalidCertificate(
                CertificateError::BadEncoding,
            )));
        };
        // TLS 1.2 names a scheme that may map to several algorithms (as
        // rustls's own verify_tls12_signature does, try each).
        let valid = self
            .algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter())
            .any(|alg| key.verify_signature(*alg, message, dss.signature()).is_ok());
        Some(if valid {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        })
    }

    /// None when `cert` is not v1 (the caller asks webpki).
    fn tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Option<Result<HandshakeSignatureValid, Error>> {
        let spki = Self::v1_key(cert)?;
        Some(rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &spki,
            dss,
            &self.algorithms,
        ))
    }
}

/// webpki for v3 client certificates, [`V1Checks`] for v1 ones.
#[derive(Debug)]
pub struct V1TolerantVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    v1: V1Checks,
}

impl V1TolerantVerifier {
    pub fn new(inner: Arc<dyn ClientCertVerifier>, v1: V1Checks) -> V1TolerantVerifier {
        V1TolerantVerifier { inner, v1 }
    }
}

impl ClientCertVerifier for V1TolerantVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match V1Checks::v1_leaf(end_entity) {
            Some(leaf) => {
                self.v1.verify_leaf(&leaf, now)?;
                Ok(ClientCertVerified::assertion())
            }
            None => self
                .inner
                .verify_client_cert(end_entity, intermediates, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.v1
            .tls12_signature(message, cert, dss)
            .unwrap_or_else(|| self.inner.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.v1
            .tls13_signature(message, cert, dss)
            .unwrap_or_else(|| self.inner.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The dialling side's verifier of a quorum peer: `inner` (webpki, with or
/// without the name check) for v3 chains, [`V1Checks`] for a v1 leaf, whose
/// CN must be the DNS name dialled when `check_name` is set.
#[derive(Debug)]
pub struct V1TolerantServerVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    v1: V1Checks,
    check_name: bool,
}

impl V1TolerantServerVerifier {
    pub fn new(
        inner: Arc<dyn ServerCertVerifier>,
        v1: V1Checks,
        check_name: bool,
    ) -> V1TolerantServerVerifier {
        V1TolerantServerVerifier {
            inner,
            v1,
            check_name,
        }
    }
}

/// Whether a v1 certificate (no SANs) names `server_name`: its CN, for a
/// DNS name only, compared without case as DNS names are.
fn v1_names(leaf: &X509Certificate<'_>, server_name: &ServerName<'_>) -> bool {
    let ServerName::DnsName(dns) = server_name else {
        return false;
    };
    leaf.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .any(|cn| cn.eq_ignore_ascii_case(dns.as_ref()))
}

impl ServerCertVerifier for V1TolerantServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(leaf) = V1Checks::v1_leaf(end_entity) else {
            return self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        };
        self.v1.verify_leaf(&leaf, now)?;
        if self.check_name && !v1_names(&leaf, server_name) {
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.v1
            .tls12_signature(message, cert, dss)
            .unwrap_or_else(|| self.inner.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.v1
            .tls13_signature(message, cert, dss)
            .unwrap_or_else(|| self.inner.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
