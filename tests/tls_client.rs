//! Client TLS on `secureClientPort` (issue 11), at the process level: our
//! binary with a generated zoo.cfg, a blocking rustls client speaking the
//! ZooKeeper protocol, certificates from rcgen and Java stores from keytool.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::raw::{self, err, op, perms, Acl};
use common::tls::{
    client_config, keytool_server_store, keytool_trust_store, write_atomically, Ca, TempDir,
    TlsSession,
};
use common::Server;
use rcgen::DnType;

/// Starts our server with a TLS port (picked free now) and `extra` keys.
fn start_tls(extra: &[(&str, String)]) -> (Server, SocketAddr) {
    let port = common::free_port();
    let mut cfg: Vec<(&str, String)> = vec![
        ("secureClientPort", port.to_string()),
        ("secureClientPortAddress", "127.0.0.1".to_string()),
        (
            "serverCnxnFactory",
            "org.apache.zookeeper.server.NettyServerCnxnFactory".to_string(),
        ),
    ];
    cfg.extend(extra.iter().cloned());
    let refs: Vec<(&str, &str)> = cfg.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (
        Server::start(&refs),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

/// A PEM key store for `server` and a PEM trust store with `ca`.
fn pem_stores(dir: &TempDir, ca: &Ca) -> Vec<(&'static str, String)> {
    let server = ca.server("server-a");
    server.write_pem_store(&dir.path("server.pem"), ca);
    ca.write_pem(&dir.path("ca.pem"));
    vec![
        (
            "ssl.keyStore.location",
            dir.path("server.pem").display().to_string(),
        ),
        (
            "ssl.trustStore.location",
            dir.path("ca.pem").display().to_string(),
        ),
    ]
}

fn with(
    mut cfg: Vec<(&'static str, String)>,
    key: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    cfg.push((key, value.to_string()));
    cfg
}

fn open_acl() -> Vec<Acl> {
    Acl::world_all()
}

#[test]
fn pem_store_serves_tls_beside_the_plain_port() {
    let dir = TempDir::new("pem");
    let ca = Ca::new("test-ca");
    let cfg = with(pem_stores(&dir, &ca), "ssl.clientAuth", "want");
    let (server, secure) = start_tls(&cfg);

    let mut tls = TlsSession::connect(secure, client_config(&ca.cert, None)).expect("TLS session");
    assert_ne!(tls.resp.session_id, 0, "a session over TLS");
    assert_eq!(
        tls.create("/over-tls", b"hello", &open_acl()).unwrap().err,
        err::OK
    );
    let reply = tls.get_data("/over-tls").unwrap();
    assert_eq!(reply.err, err::OK);
    assert_eq!(reply.data().0.as_deref(), Some(&b"hello"[..]));

    // The plain port serves alongside, and sees the same tree.
    let mut plain = server.raw();
    let (_, reply) = plain.get_data("/over-tls", false);
    assert_eq!(reply.err, err::OK);
    assert_eq!(reply.data().0.as_deref(), Some(&b"hello"[..]));
    assert!(server
        .four_letter("conf")
        .contains(&format!("secureClientPort={}", secure.port())));
}

#[test]
fn jks_and_pkcs12_key_stores_made_by_keytool() {
    for (file, store_type) in [("server.jks", "JKS"), ("server.p12", "PKCS12")] {
        let dir = TempDir::new("keytool");
        let cert = keytool_server_store(&dir, file, store_type, "storepass");
        let (server, secure) = start_tls(&[
            (
                "ssl.keyStore.location",
                dir.path(file).display().to_string(),
            ),
            ("ssl.keyStore.password", "storepass".to_string()),
            ("ssl.clientAuth", "none".to_string()),
        ]);
        let mut tls = TlsSession::connect(secure, client_config(&cert, None))
            .unwrap_or_else(|e| panic!("{store_type}: {e}\n{}", server.log_tail(20)));
        assert_eq!(tls.server_cert(), cert, "{store_type}");
        let path = format!("/{store_type}");
        assert_eq!(tls.create(&path, b"x", &open_acl()).unwrap().err, err::OK);
        assert_eq!(tls.get_data(&path).unwrap().err, err::OK);
    }
}

#[test]
fn client_auth_need_refuses_a_client_without_certificate() {
    let dir = TempDir::new("need");
    let ca = Ca::new("test-ca");
    // ssl.clientAuth unset: ZooKeeper's default is need.
    let (server, secure) = start_tls(&pem_stores(&dir, &ca));
    let refused = TlsSession::connect(secure, client_config(&ca.cert, None));
    assert!(
        refused.is_err(),
        "a client without certificate got a session"
    );

    let client = ca.client(&[(DnType::CommonName, "client")]);
    let mut ok = TlsSession::connect(secure, client_config(&ca.cert, Some(&client)))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail(20)));
    assert_eq!(ok.get_data("/").unwrap().err, err::OK);

    // An expired certificate fails its handshake; the live session is untouched.
    let expired = ca.expired_client("old-client");
    assert!(TlsSession::connect(secure, client_config(&ca.cert, Some(&expired))).is_err());
    assert_eq!(ok.get_data("/").unwrap().err, err::OK);
}

#[test]
fn x509_identity_passes_an_x509_acl() {
    let dir = TempDir::new("x509");
    let ca = Ca::new("test-ca");
    let server_leaf = ca.server("server-a");
    server_leaf.write_pem_store(&dir.path("server.pem"), &ca);
    // A JKS trust store from keytool, as Java deployments have.
    let trust = keytool_trust_store(&dir, "trust.jks", "JKS", &ca);
    let (server, secure) = start_tls(&[
        (
            "ssl.keyStore.location",
            dir.path("server.pem").display().to_string(),
        ),
        ("ssl.trustStore.location", trust.display().to_string()),
        ("ssl.trustStore.password", "trustpass".to_string()),
        ("ssl.clientAuth", "want".to_string()),
    ]);
    let dn = "CN=client,OU=Dev,O=Example,C=US";
    let client = ca.client(&[
        (DnType::CountryName, "US"),
        (DnType::OrganizationName, "Example"),
        (DnType::OrganizationalUnitName, "Dev"),
        (DnType::CommonName, "client"),
    ]);
    let mut owner = TlsSession::connect(secure, client_config(&ca.cert, Some(&client)))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail(20)));

    // whoAmI shows the certificate's subject as Java prints it.
    let reply = owner.call(op::WHO_AM_I, &[]).unwrap();
    assert_eq!(reply.err, err::OK);
    let mut d = reply.dec();
    let ids: Vec<(String, String)> = (0..d.int()).map(|_| (d.string(), d.string())).collect();
    assert!(
        ids.contains(&("x509".to_string(), dn.to_string())),
        "{ids:?}"
    );

    let acl = [Acl::new(perms::ALL, "x509", dn)];
    assert_eq!(
        owner.create("/x509-only", b"secret", &acl).unwrap().err,
        err::OK
    );
    assert_eq!(owner.get_data("/x509-only").unwrap().err, err::OK);

    let other = ca.client(&[(DnType::CommonName, "other")]);
    let mut stranger = TlsSession::connect(secure, client_config(&ca.cert, Some(&other))).unwrap();
    assert_eq!(stranger.get_data("/x509-only").unwrap().err, err::NO_AUTH);
    let mut anonymous = TlsSession::connect(secure, client_config(&ca.cert, None)).unwrap();
    assert_eq!(anonymous.get_data("/x509-only").unwrap().err, err::NO_AUTH);
    let (_, reply) = server.raw().get_data("/x509-only", false);
    assert_eq!(reply.err, err::NO_AUTH);
}

#[test]
fn wrong_protocol_on_either_port_closes_only_that_connection() {
    let dir = TempDir::new("mixup");
    let ca = Ca::new("test-ca");
    let cfg = with(pem_stores(&dir, &ca), "ssl.clientAuth", "none");
    let (server, secure) = start_tls(&cfg);
    let mut live_tls = TlsSession::connect(secure, client_config(&ca.cert, None)).unwrap();
    let mut live_plain = server.raw();

    // A plaintext ZooKeeper handshake on the TLS port.
    let mut plaintext = TcpStream::connect(secure).unwrap();
    plaintext
        .write_all(&raw::ConnectRequest::new(30_000).encode())
        .unwrap();
    assert!(
        raw::wait_closed(&mut plaintext, Duration::from_secs(10)),
        "plaintext on the TLS port was not closed"
    );
    // A TLS handshake on the plain port.
    let tls_on_plain = TlsSession::connect(server.addr(), client_config(&ca.cert, None));
    assert!(tls_on_plain.is_err(), "TLS on the plain port got a session");

    assert_eq!(live_tls.get_data("/").unwrap().err, err::OK);
    assert_eq!(live_plain.get_data("/", false).1.err, err::OK);
}

#[test]
fn silent_connection_on_the_tls_port_is_closed_after_the_handshake_timeout() {
    let dir = TempDir::new("silent");
    let ca = Ca::new("test-ca");
    let cfg = with(
        with(pem_stores(&dir, &ca), "ssl.clientAuth", "none"),
        "ssl.handshakeDetectionTimeoutMillis",
        "300",
    );
    let (_server, secure) = start_tls(&cfg);
    let started = Instant::now();
    let mut silent = TcpStream::connect(secure).unwrap();
    assert!(
        raw::wait_closed(&mut silent, Duration::from_secs(10)),
        "a silent TLS connection stayed open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // The server still completes handshakes.
    let mut ok = TlsSession::connect(secure, client_config(&ca.cert, None)).unwrap();
    assert_eq!(ok.get_data("/").unwrap().err, err::OK);
}

#[test]
fn wrong_key_store_password_stops_startup_naming_key_and_file() {
    for (file, store_type) in [("server.jks", "JKS"), ("server.p12", "PKCS12")] {
        let dir = TempDir::new("badpass");
        keytool_server_store(&dir, file, store_type, "rightpass");
        let store = dir.path(file).display().to_string();
        let text = format!(
            "tickTime=2000\ndataDir=DATA\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             secureClientPort={}\nsecureClientPortAddress=127.0.0.1\n\
             ssl.keyStore.location={store}\nssl.keyStore.password=wrongpass\n\
             ssl.clientAuth=none\nadmin.enableServer=false\n",
            common::free_port(),
            common::free_port()
        );
        let (_, stderr) = common::expect_startup_failure(&text, Duration::from_secs(20));
        assert!(
            stderr.contains("ssl.keyStore.password") && stderr.contains(&store),
            "{store_type}: the error names neither key nor file:\n{stderr}"
        );
    }
}

#[test]
fn replaced_key_store_reaches_new_connections_while_old_ones_continue() {
    let dir = TempDir::new("rotate");
    let ca = Ca::new("test-ca");
    let first = ca.server("server-a");
    first.write_pem_store(&dir.path("server.pem"), &ca);
    let (server, secure) = start_tls(&[
        (
            "ssl.keyStore.location",
            dir.path("server.pem").display().to_string(),
        ),
        ("ssl.clientAuth", "none".to_string()),
    ]);
    let mut old = TlsSession::connect(secure, client_config(&ca.cert, None)).unwrap();
    assert_eq!(old.server_cert(), first.cert);

    let second = ca.server("server-b");
    second.write_pem_store(&dir.path("server.pem"), &ca);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fresh = TlsSession::connect(secure, client_config(&ca.cert, None)).unwrap();
        if fresh.server_cert() == second.cert {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate\n{}",
            server.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        old.get_data("/").unwrap().err,
        err::OK,
        "the old connection broke"
    );
    assert_eq!(old.server_cert(), first.cert);

    // A broken replacement is logged and the last good certificate kept.
    write_atomically(&dir.path("server.pem"), b"not a key store");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.log_tail(50).contains("keeping the previous one") {
        assert!(
            Instant::now() < deadline,
            "no warning about the broken store"
        );
        // Each TLS accept may run the (rate-bounded) check.
        let _ = TlsSession::connect(secure, client_config(&ca.cert, None));
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = TlsSession::connect(secure, client_config(&ca.cert, None)).unwrap();
    assert_eq!(after.server_cert(), second.cert);
}
