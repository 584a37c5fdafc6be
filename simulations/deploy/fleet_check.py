"""Why a SuperNode cannot reach its SuperLink, in one line, before Flower retries forever.

flower-supernode reports every failure to reach the Fleet API (nothing listening,
a firewall, a certificate that does not name the host it dialled, the wrong CA)
as the same endless "Connection attempt failed, retrying". `fedvault node` asks
first, with Python's own socket and ssl modules (no crypto of ours):

- TCP: does anything accept a connection on HOST:PORT within a few seconds?
- TLS: does the server's certificate chain to the given CA, and does it name HOST
  (the same checks gRPC makes)? If not, which names it does carry.

An unregistered node key is refused only after the TLS handshake, inside Flower's
own protocol; the SuperNode then exits with Flower's own message (docs/multihost.md,
Troubleshooting).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

# OpenSSL's X509_V_ERR_* codes that Python's ssl module reports in verify_code.
_EXPIRED, _NOT_YET_VALID = 10, 9
_UNKNOWN_ISSUER = {2, 18, 19, 20, 21}
_NAME_MISMATCH = {62, 64}  # hostname mismatch, IP address mismatch


@dataclass(frozen=True)
class Problem:
    """What is wrong; `fatal` when retrying cannot help until an operator changes something."""

    message: str
    fatal: bool


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT (or [IPv6]:PORT) as (host, port); ValueError for anything else."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--superlink expects HOST:PORT (the Fleet API), got {address!r}")
    return host, int(port)


def check_fleet(address: str, ca_cert: Path | None, *, timeout: float = 5.0) -> Problem | None:
    """None when HOST:PORT accepts TCP and (with `ca_cert`) passes TLS verification for HOST."""
    host, port = split_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        return Problem(f"cannot resolve {host!r}: {exc.strerror}", fatal=False)
    except ConnectionRefusedError:
        return Problem(f"nothing listens on {host}:{port} (connection refused): is the SuperLink "
                       f"running with --fleet-api-address reachable as {host}:{port}?", fatal=False)
    except TimeoutError:
        return Problem(f"{host}:{port} did not answer within {timeout:.0f} s (a firewall dropping "
                       "the port, or the wrong address)", fatal=False)
    except OSError as exc:
        return Problem(f"cannot reach {host}:{port}: {exc.strerror or exc}", fatal=False)
    with sock:
        return None if ca_cert is None else _check_tls(sock, host, port, ca_cert)


def _check_tls(sock: socket.socket, host: str, port: int, ca_cert: Path) -> Problem | None:
    context = ssl.create_default_context(cafile=str(ca_cert))
    context.set_alpn_protocols(["h2"])  # what gRPC offers
    try:
        with context.wrap_socket(sock, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as exc:
        return Problem(_verification_message(exc, host, port, ca_cert), fatal=True)
    except ssl.SSLError as exc:
        return Problem(f"{host}:{port} does not complete a TLS handshake ({exc.reason or exc}): "
                       "an --insecure SuperLink, or not the Fleet API port?", fatal=True)
    except (OSError, TimeoutError) as exc:
        return Problem(f"{host}:{port} closed the TLS handshake: {exc}", fatal=False)


def _verification_message(exc: ssl.SSLCertVerificationError, host: str, port: int,
                          ca_cert: Path) -> str:
    code = exc.verify_code
    if code in _NAME_MISMATCH:
        names = ", ".join(server_certificate_names(host, port)) or "no host names"
        return (f"the SuperLink's certificate does not name {host} (it names {names}); make it "
                f"with `fedvault certs --san {host}` and restart the SuperLink, or dial a name "
                "it carries")
    if code in _UNKNOWN_ISSUER:
        return (f"the SuperLink's certificate on {host}:{port} is not signed by the CA in "
                f"{ca_cert} (copy ca.crt from the SuperLink host again)")
    if code in (_EXPIRED, _NOT_YET_VALID):
        return f"the SuperLink's certificate on {host}:{port}: {exc.verify_message}"
    return f"TLS verification of {host}:{port} failed: {exc.verify_message or exc}"


def server_certificate_names(host: str, port: int, *, timeout: float = 5.0) -> list[str]:
    """The names in the certificate HOST:PORT presents, fetched without verifying it
    (only to say what it names; nothing is sent over this connection)."""
    from simulations.deploy.tls import certificate_names

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return []
    return certificate_names(x509.load_der_x509_certificate(der)) if der else []
