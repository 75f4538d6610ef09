//! Client certificates in X.509 version 1, as Java accepts them.
//!
//! webpki (rustls's verifier) refuses any certificate that is not version 3.
//! Java's PKIX validator accepts a v1 end-entity certificate, and v1 is what
//! `openssl x509 -req` without extensions, pyOpenSSL's default and kazoo's
//! own TLS test harness write. So this verifier hands v3 chains to webpki
//! unchanged and checks a v1 leaf itself, narrowly: it must be within its
//! validity period and signed by a certificate of the trust store (issued
//! directly by a trusted CA, or itself trusted). A v1 certificate carries no
//! extensions, so there are no key usages or constraints to check; a v1 leaf
//! under an intermediate CA is refused (webpki cannot check the intermediate
//! on its own), which Java would accept.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Version;

/// webpki for v3 client certificates, the checks above for v1 ones.
#[derive(Debug)]
pub struct V1TolerantVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// The trust store's certificates, DER, to find a v1 leaf's issuer in.
    trusted: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl V1TolerantVerifier {
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        trusted: Vec<CertificateDer<'static>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> V1TolerantVerifier {
        V1TolerantVerifier {
            inner,
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

    fn verify_v1_leaf(&self, leaf: &X509Certificate<'_>, now: UnixTime) -> Result<(), Error> {
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
        match X509Certificate::from_der(end_entity.as_ref()) {
            Ok((_, leaf)) if leaf.version() == X509Version::V1 => {
                self.verify_v1_leaf(&leaf, now)?;
                Ok(ClientCertVerified::assertion())
            }
            _ => self
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
        let Some(spki) = Self::v1_key(cert) else {
            return self.inner.verify_tls12_signature(message, cert, dss);
        };
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        // TLS 1.2 names a scheme that may map to several algorithms (as
        // rustls's own verify_tls12_signature does, try each).
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter());
        for alg in candidates {
            if key.verify_signature(*alg, message, dss.signature()).is_ok() {
                return Ok(HandshakeSignatureValid::assertion());
            }
        }
        Err(Error::InvalidCertificate(CertificateError::BadSignature))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match Self::v1_key(cert) {
            Some(spki) => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &spki,
                dss,
                &self.algorithms,
            ),
            None => self.inner.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
