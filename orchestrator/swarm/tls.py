"""TLS for a Docker Engine reached over TCP: a CA, the engine's certificate
(its IP address as subjectAltName) and a client certificate, in the file names
the docker CLI and `DOCKER_CERT_PATH` expect (ca.pem, cert.pem, key.pem).

    ca = Authority.create()
    ca.write_client(folder / "client")          # DOCKER_CERT_PATH for the client
    ca.write_server(folder / "server", "172.17.0.5")  # dockerd --tlsverify --tlscacert ...

Docker's own recipe ("Protect the Docker daemon socket") made with the
`cryptography` library instead of openssl commands.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAYS = 30
CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"
PROBE_API_VERSION = "1.24"  # any: only GET /version (unversioned) is asked with it


@dataclass(frozen=True)
class Authority:
    key: Any  # ec.EllipticCurvePrivateKey
    certificate: Any  # x509.Certificate

    @classmethod
    def create(cls, name: str = "testbed remote lab CA") -> Authority:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(name, key.public_key()).add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        )
        return cls(key, _sign(builder, key))

    def _issue(self, name: str, usage: Any, alt: list[Any]) -> tuple[Any, Any]:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(name, key.public_key(), self.certificate.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return key, _sign(builder, self.key)

    def write_server(self, folder: Path, address: str) -> Path:
        """The engine's files for `address` (an IP address); the key is written
        last, so a reader waiting for it finds the other two in place."""
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID

        alt = [x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName("localhost")]
        key, certificate = self._issue(address, ExtendedKeyUsageOID.SERVER_AUTH, alt)
        return self._write(folder, key, certificate)

    def write_client(self, folder: Path) -> Path:
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key, certificate = self._issue("testbed client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
        return self._write(folder, key, certificate)

    def _write(self, folder: Path, key: Any, certificate: Any) -> Path:
        from cryptography.hazmat.primitives import serialization

        folder.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        (folder / CA_FILE).write_bytes(self.certificate.public_bytes(pem))
        (folder / CERT_FILE).write_bytes(certificate.public_bytes(pem))
        scratch = folder / f".{KEY_FILE}"
        scratch.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        scratch.chmod(0o600)
        os.replace(scratch, folder / KEY_FILE)
        return folder


def _builder(subject: str, public_key: Any, issuer: Any = None) -> Any:
    """A certificate for `subject` (its common name), issued by `issuer` (an
    x509.Name; default: itself)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer if issuer is not None else name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DAYS))
    )


def _sign(builder: Any, key: Any) -> Any:
    from cryptography.hazmat.primitives import hashes

    return builder.sign(key, hashes.SHA256())


def docker_client(url: str, timeout: float, tls: Any = None, max_pool_size: int = 10) -> Any:
    """A docker.DockerClient of the engine at `url` (`tls`: a docker.tls.TLSConfig).

    With TLS, the client's CA must be the one that verifies the engine: requests
    (under the SDK) would otherwise take $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE,
    which many machines set to the system's CAs, over it for every call. So the
    client ignores those variables (trust_env off) and asks the engine for its
    API version itself, which the SDK would do before that could be switched off."""
    import docker

    options: dict[str, Any] = {"base_url": url, "timeout": int(timeout), "use_ssh_client": False}
    if tls is None:
        return docker.DockerClient(max_pool_size=max_pool_size, **options)
    probe = docker.APIClient(tls=tls, version=PROBE_API_VERSION, **options)
    probe.trust_env = False
    try:
        version = str(probe.version(api_version=False)["ApiVersion"])
    finally:
        probe.close()
    client = docker.DockerClient(tls=tls, version=version, max_pool_size=max_pool_size, **options)
    client.api.trust_env = False
    return client
