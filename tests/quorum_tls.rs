//! Quorum TLS (`sslQuorum=true`) between Ferrokeeper processes: a three-server
//! ensemble whose election and quorum-port links are all TLS (mutual, with
//! hostname verification against 127.0.0.1) elects and replicates; a
//! plaintext peer on its TLS-only election and quorum ports is refused
//! without harming it; a wrong key store password stops startup with a
//! message naming the key and the file.
//!
//! Every wait is bounded; the harness stops the processes on drop.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::ensemble::Ensemble;
use common::ensemble_client::{assert_converged, ensure_node, write_acked};
use common::tls::{client_config, tls_connect, Ca, TempDir};
use ferrokeeper::zab::election_wire::{encode_initial_message, ElectionAddr};

const ELECTION: Duration = Duration::from_secs(60);
const WRITES: Duration = Duration::from_secs(30);

/// One CA; one certificate (IP SAN 127.0.0.1) shared by the servers, in
/// a PEM key store; the CA as the PEM trust store.
struct QuorumCerts {
    dir: TempDir,
    ca: Ca,
}

impl QuorumCerts {
    fn new() -> QuorumCerts {
        let dir = TempDir::new("quorum-tls");
        let ca = Ca::new("Quorum Test CA");
        ca.server("quorum-peer")
            .write_pem_store(&dir.path("peer.pem"), &ca);
        ca.write_pem(&dir.path("ca.pem"));
        QuorumCerts { dir, ca }
    }

    fn keys(&self) -> Vec<(String, String)> {
        let path = |f: &str| self.dir.path(f).display().to_string();
        vec![
            ("sslQuorum".into(), "true".into()),
            ("ssl.quorum.keyStore.location".into(), path("peer.pem")),
            ("ssl.quorum.keyStore.type".into(), "PEM".into()),
            ("ssl.quorum.trustStore.location".into(), path("ca.pem")),
            ("ssl.quorum.trustStore.type".into(), "PEM".into()),
            // A plaintext or silent peer is dropped after this.
            (
                "ssl.quorum.handshakeDetectionTimeoutMillis".into(),
                "2000".into(),
            ),
        ]
    }
}

fn start_tls_ensemble(certs: &QuorumCerts) -> Ensemble {
    let keys = certs.keys();
    let extra: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ens = Ensemble::start_unchecked(3, 0, &extra);
    ens.wait_settled(ELECTION);
    ens
}

#[test]
fn a_tls_quorum_elects_and_replicates() {
    let certs = QuorumCerts::new();
    let ens = start_tls_ensemble(&certs);
    let sids: Vec<usize> = ens.sids().collect();
    ensure_node(&ens, &sids, "/tls");
    let acked = write_acked(&ens, &sids, "/tls", "w", 20, WRITES);
    assert_converged(&ens, &sids, "/tls", &acked, WRITES);
    // The ports speak TLS: a peer with a certificate from the quorum CA
    // (IP SAN 127.0.0.1, as the acceptor checks) completes a handshake on
    // every election port and on the leader's quorum port.
    let probe = certs.ca.server("probe");
    let leader = ens.wait_for_leader(ELECTION);
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    for sid in ens.sids() {
        let (quorum, election) = ens.peer_ports(sid);
        let mut ports = vec![election];
        if sid == leader {
            ports.push(quorum);
        }
        for port in ports {
            let config = client_config(&certs.ca.cert, Some(&probe));
            if let Err(e) = tls_connect(local(port), config) {
                panic!("server {sid} port {port}: no TLS handshake: {e}");
            }
        }
    }
    for sid in ens.sids() {
        let log = ens.log_tail(sid, 400);
        assert!(
            !log.contains("TLS handshake failed"),
            "server {sid} had a failed quorum handshake:\n{log}"
        );
    }
}

/// Sends `bytes` in plaintext to `addr` and waits (bounded) for the server
/// to close the connection: true if it did.
fn closed_on_plaintext(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let _ = sock.write_all(bytes);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            // A TLS alert may come before the close.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true, // reset
        }
    }
    false
}

#[test]
fn a_plaintext_peer_is_refused_and_the_quorum_carries_on() {
    let certs = QuorumCerts::new();
    let ens = start_tls_ensemble(&certs);
    let sids: Vec<usize> = ens.sids().collect();
    let leader = ens.wait_for_leader(ELECTION);
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    for sid in ens.sids() {
        let (quorum, election) = ens.peer_ports(sid);
        // A plaintext election handshake from a member's sid, as a server
        // without sslQuorum would send it.
        // Sid 3: servers 1 and 2 would keep a plaintext connection from it.
        let hello = encode_initial_message(
            3,
            &ElectionAddr {
                host: "127.0.0.1".into(),
                port: 1,
            },
        )
        .expect("handshake");
        assert!(
            closed_on_plaintext(local(election), &hello),
            "server {sid}: a plaintext election handshake was not refused\n{}",
            ens.report()
        );
        if sid == leader {
            // A learner's first packet would be a jute record: not a ClientHello.
            assert!(
                closed_on_plaintext(local(quorum), &[0, 0, 0, 11, 0, 0, 0, 0]),
                "leader {sid}: a plaintext quorum connection was not refused"
            );
        }
    }
    // A silent peer holds only its own connection, until the handshake timeout.
    let (_, election) = ens.peer_ports(leader);
    let silent = TcpStream::connect(local(election)).expect("connect");
    assert_eq!(ens.wait_for_leader(ELECTION), leader);
    ensure_node(&ens, &sids, "/after");
    let acked = write_acked(&ens, &sids, "/after", "w", 10, WRITES);
    assert_converged(&ens, &sids, "/after", &acked, WRITES);
    assert_eq!(
        ens.leader(),
        Some(leader),
        "the leader changed\n{}",
        ens.report()
    );
    drop(silent);
    for sid in ens.sids() {
        let log = ens.log_tail(sid, 2000);
        assert!(
            log.contains("closing an election connection: TLS"),
            "server {sid} logged no refused plaintext election connection:\n{log}"
        );
    }
}

#[test]
fn a_wrong_key_store_password_stops_startup_naming_key_and_file() {
    let dir = TempDir::new("quorum-tls-badpw");
    let ca = Ca::new("Quorum Test CA");
    ca.write_pem(&dir.path("ca.pem"));
    let store = common::tls::keytool_trust_store(&dir, "peer.p12", "PKCS12", &ca);
    let data = dir.path("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("myid"), "1\n").expect("myid");
    let port = common::free_port();
    let cfg = dir.path("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nsslQuorum=true\n\
             ssl.quorum.keyStore.location={}\nssl.quorum.keyStore.password=wrong\n\
             ssl.quorum.trustStore.location={}\n\
             server.1=127.0.0.1:{}:{}\nserver.2=127.0.0.1:{}:{}\n",
            data.display(),
            store.display(),
            dir.path("ca.pem").display(),
            common::free_port(),
            common::free_port(),
            common::free_port(),
            common::free_port(),
        ),
    )
    .expect("zoo.cfg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
        .arg(&cfg)
        .current_dir(&dir.0)
        .output()
        .expect("run ferrokeeper");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "started with a wrong password:\n{text}"
    );
    assert!(
        text.contains("ssl.quorum.keyStore.password") && text.contains("peer.p12"),
        "the error names neither the key nor the file:\n{text}"
    );
}

#[test]
fn port_unification_accepts_plaintext_and_tls_peers() {
    let certs = QuorumCerts::new();
    let mut keys = certs.keys();
    keys.push(("portUnification".into(), "true".into()));
    let extra: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ens = Ensemble::start_unchecked(3, 0, &extra);
    ens.wait_settled(ELECTION);
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let (_, election) = ens.peer_ports(1);
    // TLS is still served...
    let probe = certs.ca.server("probe");
    tls_connect(local(election), client_config(&certs.ca.cert, Some(&probe)))
        .expect("a TLS handshake on a unified port");
    // ...and a plaintext handshake from sid 3 is kept by server 1 (the
    // larger sid's connection) and answered in plaintext, where a TLS-only
    // port closes it at its first bytes.
    let hello = encode_initial_message(
        3,
        &ElectionAddr {
            host: "127.0.0.1".into(),
            port: 1,
        },
    )
    .expect("handshake");
    let mut sock = TcpStream::connect(local(election)).expect("connect");
    sock.write_all(&hello).expect("send the handshake");
    sock.set_read_timeout(Some(Duration::from_millis(2500)))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    match sock.read(&mut buf) {
        // Kept and idle, or kept and sent our vote as a plaintext election
        // frame (a length; not a TLS record such as an alert, 0x15).
        Ok(n) if n >= 4 && buf[0] != 0x15 && buf[0] != 0x16 => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!(
            "the plaintext peer was not kept: {other:?}\n{}",
            ens.report()
        ),
    }
    drop(sock);
    // The ensemble carries on.
    let sids: Vec<usize> = ens.sids().collect();
    ensure_node(&ens, &sids, "/unified");
}

/// Runs the openssl CLI (as tests/compat/test_tls.py does) and returns its stdout.
fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// X.509 v1 peer certificates (openssl signing a request without
/// extensions, as Java's tools accept): both the accepting and the dialling
/// side take them. A v1 certificate has no SubjectAltName for the
/// 127.0.0.1 of the server lines, so hostname verification is off (Java
/// matches addresses to IP SANs only).
#[test]
fn v1_peer_certificates_elect_and_replicate_without_hostname_verification() {
    let dir = TempDir::new("quorum-v1");
    let path = |f: &str| dir.path(f).display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Quorum V1 CA",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=quorum-peer",
        "-keyout",
        &path("peer.key"),
        "-out",
        &path("peer.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("peer.csr"),
        "-CA",
        &path("ca.pem"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &path("peer.crt"),
    ]);
    let text = openssl(&["x509", "-in", &path("peer.crt"), "-noout", "-text"]);
    assert!(text.contains("Version: 1 (0x0)"), "{text}");
    let read = |f: &str| std::fs::read_to_string(dir.path(f)).unwrap();
    let store = format!("{}{}{}", read("peer.key"), read("peer.crt"), read("ca.pem"));
    std::fs::write(dir.path("peer.pem"), store).unwrap();
    let extra = [
        ("sslQuorum", "true".to_string()),
        ("ssl.quorum.keyStore.location", path("peer.pem")),
        ("ssl.quorum.keyStore.type", "PEM".into()),
        ("ssl.quorum.trustStore.location", path("ca.pem")),
        ("ssl.quorum.trustStore.type", "PEM".into()),
        ("ssl.quorum.hostnameVerification", "false".into()),
        ("ssl.quorum.handshakeDetectionTimeoutMillis", "2000".into()),
    ];
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ens = Ensemble::start_unchecked(3, 0, &extra);
    ens.wait_settled(ELECTION);
    let sids: Vec<usize> = ens.sids().collect();
    ensure_node(&ens, &sids, "/v1");
    let acked = write_acked(&ens, &sids, "/v1", "w", 10, WRITES);
    assert_converged(&ens, &sids, "/v1", &acked, WRITES);
}
