//! Client TLS on `secureClientPort`, alongside the plain port, as ZooKeeper
//! serves both (its NettyServerCnxnFactory with `ClientX509Util`), and TLS
//! between quorum peers (`sslQuorum`, its `QuorumX509Util`).
//!
//! - [`settings`] the zoo.cfg keys (`secureClientPort`, `ssl.*`).
//! - [`stores`]   JKS, PKCS12 and PEM key and trust stores.
//! - [`context`]  the rustls `ServerConfig` built from them (ring provider).
//! - [`v1`]       X.509 v1 certificates (clients', quorum peers'), which Java accepts and webpki refuses.
//! - [`reload`]   picking up replaced store files for new connections.
//! - [`x500`]     a certificate subject as Java prints it, the `x509` auth id.
//! - [`quorum_settings`] the quorum's keys (`sslQuorum`, `ssl.quorum.*`, `portUnification`).
//! - [`quorum`]   the quorum's two rustls configurations and its peer-name checks.
//!
//! The handshake itself runs on the shard that accepted the socket
//! (`server::conn::serve`), bounded by `ssl.handshakeDetectionTimeoutMillis`;
//! after it the connection is served exactly like a plain one.

pub mod context;
pub mod quorum;
pub mod quorum_settings;
pub mod reload;
pub mod settings;
pub mod stores;
pub mod v1;
pub mod x500;

pub use quorum::QuorumTls;
pub use quorum_settings::QuorumTlsConfig;
pub use reload::ReloadingConfig;
pub use settings::{ClientAuth, TlsConfig, X509_SCHEME};

/// Who a TLS client proved to be with its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The leaf certificate's subject, RFC 2253 as Java prints it.
    pub subject: String,
    /// The subject is `X509AuthenticationProvider.superUser`.
    pub is_super: bool,
}

/// The identity in a verified client chain (rustls has checked it against
/// the trust store before the handshake completes); None without one.
pub fn peer_identity(
    settings: &TlsConfig,
    chain: Option<&[rustls_pki_types::CertificateDer<'static>]>,
) -> Result<Option<PeerIdentity>, String> {
    let Some(leaf) = chain.and_then(|c| c.first()) else {
        return Ok(None);
    };
    let subject = x500::subject_name(leaf)?;
    let is_super = settings.x509_super_user.as_deref() == Some(subject.as_str());
    Ok(Some(PeerIdentity { subject, is_super }))
}
