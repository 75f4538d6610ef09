//! TLS test helpers: a throwaway CA and certificates (rcgen), Java stores made
//! by the JDK's own `keytool`, and a blocking rustls client that speaks the
//! ZooKeeper wire protocol over TLS (reusing `raw`'s encoders).

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::raw::{self, ConnectRequest, ConnectResponse, Reply};

/// Bound on a single blocking read/write of a TLS test connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory for one test's certificates and stores, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrokeeper-tls-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create tls temp dir");
        TempDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its key.
pub struct Leaf {
    pub cert: CertificateDer<'static>,
    pub key_pem: String,
    pub cert_pem: String,
    key_der: Vec<u8>,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
    /// Key then certificate in one PEM file: ZooKeeper's PEM key store.
    pub fn write_pem_store(&self, path: &Path, ca: &Ca) {
        let text = format!("{}{}{}", self.key_pem, self.cert_pem, ca.cert_pem);
        write_atomically(path, text.as_bytes());
    }
}

/// A test certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, cn: &str) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        params.distinguished_name.push(DnType::CommonName, cn);
        self.sign(params)
    }

    /// A client certificate whose subject is `dn` (RDNs in encoding order).
    pub fn client(&self, dn: &[(DnType, &str)]) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in dn {
            params.distinguished_name.push(ty.clone(), *value);
        }
        self.sign(params)
    }

    /// A client certificate that expired in 2001.
    pub fn expired_client(&self, cn: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    pub fn write_pem(&self, path: &Path) {
        write_atomically(path, self.cert_pem.as_bytes());
    }
}

/// Writes via a temporary file and a rename, as a certificate rotation
/// should, so the server never reads a half-written store.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write store");
    std::fs::rename(&tmp, path).expect("rename store");
}

/// Runs the JDK's keytool; panics with its output on failure.
pub fn keytool(args: &[&str]) {
    let out = Command::new("keytool")
        .args(args)
        .output()
        .expect("run keytool (the JDK is a test dependency; tests/run-all.sh installs it)");
    assert!(
        out.status.success(),
        "keytool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed server key store of `store_type` (JKS or PKCS12) made by
/// keytool; returns its certificate, for the client to trust.
pub fn keytool_server_store(
    dir: &TempDir,
    file: &str,
    store_type: &str,
    password: &str,
) -> CertificateDer<'static> {
    let store = dir.path(file);
    let store_s = store.display().to_string();
    keytool(&[
        "-genkeypair",
        "-alias",
        "server",
        "-keyalg",
        "RSA",
        "-keysize",
        "2048",
        "-dname",
        "CN=keytool-server,O=Ferrokeeper Tests",
        "-ext",
        "SAN=ip:127.0.0.1,dns:localhost",
        "-validity",
        "2",
        "-storetype",
        store_type,
        "-keystore",
        &store_s,
        "-storepass",
        password,
        "-keypass",
        password,
    ]);
    let pem = dir.path(&format!("{file}.crt.pem"));
    keytool(&[
        "-exportcert",
        "-rfc",
        "-alias",
        "server",
        "-keystore",
        &store_s,
        "-storepass",
        password,
        "-file",
        &pem.display().to_string(),
    ]);
    let cert_pem = std::fs::read_to_string(&pem).expect("read exported cert");
    rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
        .expect("parse exported cert")
}

/// A JKS/PKCS12 trust store holding `ca`, made by keytool.
pub fn keytool_trust_store(dir: &TempDir, file: &str, store_type: &str, ca: &Ca) -> PathBuf {
    let pem = dir.path(&format!("{file}.ca.pem"));
    ca.write_pem(&pem);
    let store = dir.path(file);
    keytool(&[
        "-importcert",
        "-noprompt",
        "-alias",
        "ca",
        "-file",
        &pem.display().to_string(),
        "-storetype",
        store_type,
        "-keystore",
        &store.display().to_string(),
        "-storepass",
        "trustpass",
    ]);
    store
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `server_ca`, optionally with a client certificate.
pub fn client_config(server_ca: &CertificateDer<'static>, client: Option<&Leaf>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(server_ca.clone()).expect("trust server ca");
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.cert.clone()], leaf.key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    }
}

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the TLS handshake (bounded by socket timeouts).
pub fn tls_connect(addr: SocketAddr, config: ClientConfig) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// One length-prefixed frame from any stream.
pub fn read_frame<S: Read>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&n) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {n}"),
        ));
    }
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

/// A ZooKeeper session over TLS.
pub struct TlsSession {
    pub stream: TlsStream,
    pub resp: ConnectResponse,
    next_xid: i32,
}

impl TlsSession {
    /// TLS handshake, then the ZooKeeper ConnectRequest/Response.
    pub fn connect(addr: SocketAddr, config: ClientConfig) -> io::Result<TlsSession> {
        let mut stream = tls_connect(addr, config)?;
        stream.write_all(&ConnectRequest::new(30_000).encode())?;
        stream.flush()?;
        let body = read_frame(&mut stream)?;
        Ok(TlsSession {
            stream,
            resp: raw::parse_connect_response(&body),
            next_xid: 1,
        })
    }

    /// The server's leaf certificate, as this connection saw it.
    pub fn server_cert(&self) -> CertificateDer<'static> {
        self.stream
            .conn
            .peer_certificates()
            .expect("server certificate")[0]
            .clone()
    }

    /// Sends one request and reads its reply (pings and events skipped).
    pub fn call(&mut self, op: i32, body: &[u8]) -> io::Result<Reply> {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.stream.write_all(&raw::request_frame(xid, op, body))?;
        self.stream.flush()?;
        loop {
            let reply = Reply::parse(&read_frame(&mut self.stream)?);
            if reply.xid == xid {
                return Ok(reply);
            }
        }
    }

    pub fn create(&mut self, path: &str, data: &[u8], acl: &[raw::Acl]) -> io::Result<Reply> {
        self.call(raw::op::CREATE, &raw::create_body(path, data, acl, 0))
    }

    pub fn get_data(&mut self, path: &str) -> io::Result<Reply> {
        self.call(raw::op::GET_DATA, &raw::path_watch(path, false))
    }
}
