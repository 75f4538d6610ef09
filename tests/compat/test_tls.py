"""Client TLS on secureClientPort, with kazoo, against Ferrokeeper and Apache ZooKeeper.

This is kazoo's own ``TestSSLClient.test_create`` (kazoo/tests/test_client.py) made
differential: the same PKI as kazoo's harness (a CA, a server certificate in a Java key
store, the CA in a Java trust store, a client certificate; ZooKeeper's default
``ssl.clientAuth=need``) and the same zoo.cfg keys (``secureClientPort``, Netty's
``serverCnxnFactory``, ``ssl.keyStore.*``, ``ssl.trustStore.*``), run against both
servers, which must answer alike.  kazoo's harness builds its stores with pyOpenSSL and
pyjks; here the openssl CLI and the JDK's keytool make them (JKS, and PKCS12 as openssl
writes it).  A second check puts an ``x509`` ACL on a node: the certificate's subject as
Java prints it lets the TLS client in and keeps a plain client out.

zkCli.sh over TLS (Netty client socket, ``zookeeper.client.secure``) runs a short
scripted session against both, too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from servers import JAVA, apache_classpath, free_port

PASSWORD = "apassword"
KINDS = ["ferrokeeper", "apache"]


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {' '.join(cmd)}\n{done.stdout}{done.stderr}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    """kazoo's test PKI: CA 'ca.kazoo.org', server 'localhost', client 'client'."""
    d: Path = tmp_path_factory.mktemp("pki")
    p = {name: str(d / name) for name in (
        "ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "client.key",
        "client.csr", "client.crt", "client-v1.crt", "server.p12", "keystore.jks",
        "truststore.jks", "server.cnf", "client.cnf", "rogue-ca.key", "rogue-ca.crt",
        "rogue-v1.crt",
    )}
    # Extensions make these X.509 v3 certificates (test_v1_client_certificate has a v1 one).
    (d / "server.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.cnf").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=ca.kazoo.org", "-keyout", p["ca.key"], "-out", p["ca.crt"],
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    for who, subject in (("server", "/CN=localhost"), ("client", "/CN=client")):
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
             "-keyout", p[f"{who}.key"], "-out", p[f"{who}.csr"]])
        sign = ["openssl", "x509", "-req", "-in", p[f"{who}.csr"], "-CA", p["ca.crt"],
                "-CAkey", p["ca.key"], "-CAcreateserial", "-days", "1",
                "-out", p[f"{who}.crt"]]
        run(sign + ["-extfile", p[f"{who}.cnf"]])
        if who == "client":
            # Without extensions openssl writes X.509 v1, as kazoo's harness does.
            run(sign[:-1] + [p["client-v1.crt"]])
    # The same names from a CA the trust store does not hold.
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=ca.kazoo.org", "-keyout", p["rogue-ca.key"], "-out", p["rogue-ca.crt"]])
    run(["openssl", "x509", "-req", "-in", p["client.csr"], "-CA", p["rogue-ca.crt"],
         "-CAkey", p["rogue-ca.key"], "-CAcreateserial", "-days", "1",
         "-out", p["rogue-v1.crt"]])
    run(["openssl", "pkcs12", "-export", "-in", p["server.crt"], "-inkey", p["server.key"],
         "-certfile", p["ca.crt"], "-name", "server cert", "-out", p["server.p12"],
         "-passout", f"pass:{PASSWORD}"])
    run(["keytool", "-importkeystore", "-noprompt", "-srckeystore", p["server.p12"],
         "-srcstoretype", "PKCS12", "-srcstorepass", PASSWORD,
         "-destkeystore", p["keystore.jks"], "-deststoretype", "JKS",
         "-deststorepass", PASSWORD, "-destkeypass", PASSWORD])
    run(["keytool", "-importcert", "-noprompt", "-alias", "kazoo ca", "-file", p["ca.crt"],
         "-keystore", p["truststore.jks"], "-storetype", "JKS", "-storepass", PASSWORD])
    return p


def tls_config(pki: dict, key_store: str) -> tuple[int, dict]:
    port = free_port()
    return port, {
        "secureClientPort": port,
        "secureClientPortAddress": "127.0.0.1",
        "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
        "ssl.keyStore.location": pki[key_store],
        "ssl.keyStore.password": PASSWORD,
        "ssl.trustStore.location": pki["truststore.jks"],
        "ssl.trustStore.password": PASSWORD,
    }


def kazoo_tls(port: int, pki: dict, certfile: str = "client.crt", **kwargs):
    from kazoo.client import KazooClient

    client = KazooClient(
        hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
        keyfile=pki["client.key"], certfile=pki[certfile], ca=pki["ca.crt"],
        timeout=kwargs.pop("timeout", 10.0), **kwargs,
    )
    try:
        client.start(timeout=kwargs.pop("start_timeout", 30))
    except Exception:
        client.close()
        raise
    return client


def stop(client) -> None:
    try:
        client.stop()
    finally:
        client.close()


def kazoo_session_over_tls(server_factory, kind: str, pki: dict, key_store: str) -> dict:
    """kazoo's TestSSLClient.test_create, plus an x509 ACL; returns what was seen."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_acl

    port, cfg = tls_config(pki, key_store)
    server = server_factory(kind, cfg)
    seen = {}
    client = kazoo_tls(port, pki)
    plain = KazooClient(hosts=server.hosts, timeout=10.0)
    plain.start(timeout=30)
    try:
        seen["create"] = client.create("/1")
        seen["exists"] = client.exists("/1") is not None
        client.create("/tls", b"over tls")
        seen["get"] = client.get("/tls")[0]
        seen["plain get"] = plain.get("/tls")[0]
        acl = make_acl("x509", "CN=client", all=True)
        client.create("/x509-only", b"secret", acl=[acl])
        seen["x509 get"] = client.get("/x509-only")[0]
        try:
            plain.get("/x509-only")
            seen["plain x509 get"] = "allowed"
        except NoAuthError:
            seen["plain x509 get"] = "NoAuthError"
        seen["acl"] = [(a.id.scheme, a.id.id, a.perms) for a in client.get_acls("/x509-only")[0]]
    finally:
        stop(client)
        stop(plain)
    return seen


EXPECTED = {
    "create": "/1",
    "exists": True,
    "get": b"over tls",
    "plain get": b"over tls",
    "x509 get": b"secret",
    "plain x509 get": "NoAuthError",
    "acl": [("x509", "CN=client", 31)],
}


@pytest.mark.parametrize("key_store", ["keystore.jks", "server.p12"])
@pytest.mark.parametrize("kind", KINDS)
def test_kazoo_ssl_client_create(server_factory, pki, kind, key_store):
    assert kazoo_session_over_tls(server_factory, kind, pki, key_store) == EXPECTED


def test_kazoo_without_client_certificate_is_refused(server_factory, pki):
    """ssl.clientAuth defaults to need: no client certificate, no session."""
    from kazoo.client import KazooClient

    for kind in KINDS:
        port, cfg = tls_config(pki, "keystore.jks")
        server_factory(kind, cfg)
        client = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                             ca=pki["ca.crt"], timeout=3.0,
                             connection_retry={"max_tries": 1})
        try:
            with pytest.raises(Exception):
                client.start(timeout=8)
        finally:
            stop(client)


@pytest.mark.parametrize("kind", KINDS)
def test_v1_client_certificate(server_factory, pki, kind):
    """An X.509 v1 client certificate (no extensions, as kazoo's harness and pyOpenSSL
    make them) is accepted, and its subject is the session's x509 id."""
    from kazoo.security import make_acl

    port, cfg = tls_config(pki, "keystore.jks")
    server_factory(kind, cfg)
    client = kazoo_tls(port, pki, "client-v1.crt", timeout=3.0,
                       connection_retry={"max_tries": 1})
    try:
        assert client.create("/v1") == "/v1"
        client.create("/v1-x509", b"v1", acl=[make_acl("x509", "CN=client", all=True)])
        assert client.get("/v1-x509")[0] == b"v1"
    finally:
        stop(client)


@pytest.mark.parametrize("kind", KINDS)
def test_v1_client_certificate_from_another_ca_is_refused(server_factory, pki, kind):
    """A v1 certificate is still checked: one signed by a CA outside the trust store
    (with the same subject name as the trusted one) gets no session."""
    port, cfg = tls_config(pki, "keystore.jks")
    server_factory(kind, cfg)
    with pytest.raises(Exception):
        client = kazoo_tls(port, pki, "rogue-v1.crt", timeout=3.0, start_timeout=8,
                           connection_retry={"max_tries": 1})
        stop(client)


ZKCLI_SCRIPT = "create /zkcli-tls hello\nget /zkcli-tls\nls /\nquit\n"


def zkcli_over_tls(port: int, pki: dict) -> str:
    """A scripted zkCli session with the Netty client socket and TLS."""
    cmd = [
        JAVA, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        "-Dzookeeper.client.secure=true",
        f"-Dzookeeper.ssl.keyStore.location={pki['keystore.jks']}",
        f"-Dzookeeper.ssl.keyStore.password={PASSWORD}",
        f"-Dzookeeper.ssl.trustStore.location={pki['truststore.jks']}",
        f"-Dzookeeper.ssl.trustStore.password={PASSWORD}",
        # The server certificate names localhost and 127.0.0.1 (SAN).
        "-cp", apache_classpath("nop"), "org.apache.zookeeper.ZooKeeperMain",
        "-server", f"127.0.0.1:{port}",
    ]
    done = subprocess.run(cmd, input=ZKCLI_SCRIPT, capture_output=True, text=True,
                          timeout=120)
    return done.stdout + done.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_zkcli_over_tls(server_factory, pki, kind):
    port, cfg = tls_config(pki, "keystore.jks")
    server_factory(kind, cfg)
    out = zkcli_over_tls(port, pki)
    assert "Created /zkcli-tls" in out, out
    lines = [line.strip() for line in out.splitlines()]
    assert "hello" in lines, out
    assert any(line.startswith("[") and "zkcli-tls" in line for line in lines), out
