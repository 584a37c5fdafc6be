"""Claims about certificates for other hosts and about naming why a node cannot connect
(simulations/deploy/tls.py, simulations/deploy/fleet_check.py, `fedvault certs`, `fedvault node`)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from simulations.deploy import tls
from simulations.cli.app import cli
from simulations.deploy.fleet_check import check_fleet, split_address
from simulations.cli.node import NodeArgumentError, NodeOptions, precheck
from simulations.deploy.processes import free_port

pytestmark = pytest.mark.unit


def _names(files: tls.TlsFiles) -> list[str]:
    return tls.certificate_names(x509.load_pem_x509_certificate(files.server_cert.read_bytes()))


def test_the_certificate_names_the_superlink_host_and_keeps_loopback(tmp_path):
    files = tls.generate_tls(tmp_path, san=["10.1.2.3", "superlink.example.org", "127.0.0.1"])
    assert sorted(_names(files)) == sorted(["localhost", "127.0.0.1", "10.1.2.3",
                                            "superlink.example.org"])
    assert oct(files.server_key.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob("ca.key*"))  # the CA key is never written


@pytest.mark.parametrize("bad", ["host:9092", "two words", "-lead.example", "", "a..b"])
def test_a_san_that_is_no_host_name_or_address_is_refused(bad):
    with pytest.raises(ValueError, match="neither an IP address nor a DNS host name"):
        tls.san_entry(bad)


def test_fedvault_certs_writes_the_files_and_never_overwrites_a_ca(tmp_path):
    runner, out = CliRunner(), tmp_path / "certs"
    done = runner.invoke(cli, ["certs", "--out", str(out), "--san", "10.1.2.3"])
    assert done.exit_code == 0, done.output
    assert "10.1.2.3" in done.output and {p.name for p in out.iterdir()} == {
        "ca.crt", "server.pem", "server.key"}
    again = runner.invoke(cli, ["certs", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(cli, ["certs", "--out", str(tmp_path / "x"), "--san", "h:1"])
    assert bad.exit_code == 2 and "not HOST:PORT" in bad.output


class _TlsServer:
    """Accepts TLS handshakes on 127.0.0.1 with a certificate for `names` only."""

    def __init__(self, tmp: Path, names: list[str]) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = tls._ca_certificate(ca_key, 1)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = tls._server_certificate(key, ca_key, ca_cert, 1, [tls.san_entry(n) for n in names])
        self.ca = tmp / "ca.crt"
        self.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (tmp / "s.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp / "s.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tmp / "s.pem", tmp / "s.key")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(tmp_path):
    made = []

    def make(names):
        directory = tmp_path / f"server{len(made)}"
        directory.mkdir()
        made.append(_TlsServer(directory, names))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_a_certificate_that_does_not_name_the_host_is_named_as_the_cause(server):
    srv = server(["superlink.example.org", "10.9.9.9"])
    problem = check_fleet(f"127.0.0.1:{srv.port}", srv.ca)
    assert problem is not None and problem.fatal
    assert "does not name 127.0.0.1 (it names superlink.example.org, 10.9.9.9)" in problem.message
    assert "fedvault certs --san 127.0.0.1" in problem.message


def test_a_certificate_from_another_ca_is_named_as_the_cause(server):
    srv, other = server(["127.0.0.1"]), server(["127.0.0.1"])
    problem = check_fleet(f"127.0.0.1:{srv.port}", other.ca)
    assert problem is not None and problem.fatal and "is not signed by the CA in" in problem.message
    assert check_fleet(f"127.0.0.1:{srv.port}", srv.ca) is None


def test_a_closed_port_is_reported_but_lets_the_node_keep_retrying(capsys):
    port = free_port()
    problem = check_fleet(f"127.0.0.1:{port}", None)
    assert problem is not None and not problem.fatal
    assert problem.message.startswith(f"nothing listens on 127.0.0.1:{port}")
    precheck(NodeOptions(f"127.0.0.1:{port}", insecure=True, partition="0/1"))
    assert "the node keeps retrying" in capsys.readouterr().err


def test_fedvault_node_stops_on_a_certificate_problem_before_flower_starts(server):
    srv, other = server(["127.0.0.1"]), server(["127.0.0.1"])
    with pytest.raises(NodeArgumentError, match="not signed by the CA"):
        precheck(NodeOptions(f"127.0.0.1:{srv.port}", root_certificates=other.ca, partition="0/1"))


@pytest.mark.parametrize("bad", ["9092", "host:", ":9092", "host:99999", "host:x"])
def test_a_superlink_address_without_host_and_port_is_refused(bad):
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_address(bad)
