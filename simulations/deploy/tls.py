"""Certificates and SuperNode keys for a local TLS + SuperNode-auth federation.

Everything is generated in-process with `cryptography` so tests and
`fedvault deploy` need no openssl or ssh-keygen binary on PATH.

- `generate_tls(dir, san=[...])`: a self-signed CA and a server certificate it
  signs, valid for `localhost` and `127.0.0.1` (where fedvault's local
  federation listens, and what the SuperLink's own SuperExec dials) plus the
  extra host names and IP addresses in `san` (the SuperLink host as the nodes
  reach it: `fedvault certs --san HOST`). One set of files serves the
  SuperLink's HTTPS (Control/Runtime) and gRPC Fleet APIs.
- `generate_node_keypair(path)`: an ECDSA P-384 key pair in OpenSSH format,
  which is what `flower-supernode --auth-supernode-private-key` loads
  (`load_ssh_private_key`) and what `flwr supernode register` accepts
  (Flower only allows NIST EC curves).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Always in the server certificate: the SuperLink's SuperExec dials 127.0.0.1.
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

# Backdate certificates a little so a clock that differs by a few seconds
# between processes (or a VM whose clock just jumped) does not reject them.
_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for `flower-superlink --ssl-*` and clients' root certificates."""

    ca_cert: Path  # --ssl-ca-certfile, --root-certificates, config.toml root-certificates
    server_cert: Path  # --ssl-certfile
    server_key: Path  # --ssl-keyfile (mode 600)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write `data`; private files are created 0600 so no reader ever sees them wider."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # O_CREAT keeps an old file's mode; start fresh
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # os.open's mode is filtered by the umask


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedvault local federation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name("fedvault local CA"))
        .issuer_name(_name("fedvault local CA"))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        # path_length=0: this CA may sign the server certificate, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def san_entry(name: str) -> x509.GeneralName:
    """One subjectAltName entry: an IP address if `name` parses as one, else a DNS name.

    Raises ValueError (with what to pass instead) for anything else, e.g. HOST:PORT."""
    text = name.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    wildcard = labels[0] == "*" and len(labels) > 2
    if text and len(text) <= 253 and all(_DNS_LABEL.match(lab) for lab in labels[wildcard:]):
        return x509.DNSName(text.rstrip(".").lower())
    hint = " (no port: the certificate names a host, not HOST:PORT)" if ":" in text else ""
    raise ValueError(f"--san {name!r} is neither an IP address nor a DNS host name{hint}")


def san_entries(extra: Iterable[str] = ()) -> list[x509.GeneralName]:
    """localhost and 127.0.0.1, then each extra name once, in the order given."""
    entries: list[x509.GeneralName] = []
    for name in (*LOOPBACK_NAMES, *extra):
        entry = san_entry(name)
        if entry not in entries:
            entries.append(entry)
    return entries


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The host names and IP addresses a certificate is valid for (its SAN), as text."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)] + [
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    ]


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    days: int,
    names: list[x509.GeneralName],
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    # gRPC and the flwr CLI verify the SAN, not the CN: every name a client may dial.
    san = x509.SubjectAlternativeName(names)
    extra = names[len(LOOPBACK_NAMES):]
    common_name = str(extra[0].value) if extra else "localhost"
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def generate_tls(
    directory: str | os.PathLike[str], *, days: int = 30, san: Iterable[str] = ()
) -> TlsFiles:
    """Write `ca.crt`, `server.pem` and `server.key` into `directory`.

    The server certificate names localhost, 127.0.0.1 and every host name or IP
    address in `san` (ValueError for one that is neither, before anything is written).

    The CA's private key is never written: once the server certificate is
    signed nothing else needs it, and not keeping it means a leaked work
    directory cannot be used to mint more certificates this CA vouches for.
    """
    out = Path(directory)
    names = san_entries(san)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, days)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _server_certificate(server_key, ca_key, ca_cert, days, names)

    files = TlsFiles(out / "ca.crt", out / "server.pem", out / "server.key")
    _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(
        files.server_cert, server_cert.public_bytes(serialization.Encoding.PEM), private=False
    )
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(files.server_key, key_pem, private=True)
    return files


def generate_node_keypair(path_without_ext: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write an ECDSA P-384 SuperNode key pair: `<path>` (0600) and `<path>.pub`.

    Returns `(private_path, public_path)`. The private key is unencrypted
    because flower-supernode has no way to ask for a passphrase.
    """
    private_path = Path(path_without_ext)
    public_path = private_path.with_name(private_path.name + ".pub")
    key = ec.generate_private_key(ec.SECP384R1())
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public_bytes = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write(private_path, private_bytes, private=True)
    _write(public_path, public_bytes + b"\n", private=False)
    return private_path, public_path
