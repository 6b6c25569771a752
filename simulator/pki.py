"""A throwaway PKI for loopback TLS: a CA the virtual modem trusts and a
server certificate for the receiver. Made fresh for each run; never a real key.

Every run's certificates have the same length, though their keys and bytes differ.
The device sends the CA certificate to its modem over the UART (AT+CCERTDOWN), which
takes simulated time by its length: a CA a few bytes shorter moved that run's whole
timeline by a step of the firmware's loop (seen in `make simvm` as a frame dated a
second earlier in one runtime than in the other). An ECDSA signature and a random
serial number are DER integers, whose length varies with their value: one CA in 270
came out shorter, so one pair of runs in 135 differed (one `make simvm` in 4 or 5, over
its 32 scenarios). So the serial has its top bit set, and a certificate is signed again
until its signature has its longest encoding (`_sign`)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RECEIVER_NAME = "receiver.sotto.test"


@dataclass
class TestPki:
    ca_pem: str
    cert_file: str
    key_file: str


def self_signed_ca(name: str, *, days_before: int, days_after: int
                   ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A P-256 CA certificate named `name`, valid from days_before ago to days_after ahead."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(serial_number())
               .not_valid_before(now - datetime.timedelta(days=days_before))
               .not_valid_after(now + datetime.timedelta(days=days_after))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                              critical=True))
    return key, _sign(builder, key)


SERIAL_BITS = 159  # as x509.random_serial_number(): 20 DER bytes, the top bit clear (a positive integer)
P256_SIGNATURE_BYTES = 72  # DER of two 33-byte integers: r and s both with their top bit set


def serial_number() -> int:
    """A random serial number of exactly SERIAL_BITS bits: always 20 bytes in DER
    (x509.random_serial_number() is shorter one time in 128)."""
    return x509.random_serial_number() | (1 << (SERIAL_BITS - 1))


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Sign with P-256 until the signature has its longest DER encoding (one try in four
    on average), so that the certificate's length does not depend on chance."""
    for _ in range(1000):
        cert = builder.sign(key, hashes.SHA256())
        if len(cert.signature) == P256_SIGNATURE_BYTES:
            return cert
    raise RuntimeError("no full-length ECDSA signature in 1000 tries")  # (3/4)**1000: never


def make_pki(directory: str, names: tuple[str, ...] = (RECEIVER_NAME, "localhost")) -> TestPki:
    """A CA and a server certificate for `names` and 127.0.0.1, written to directory."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca = self_signed_ca("Sotto test CA", days_before=1, days_after=30)
    ca_name = ca.subject
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = _sign(x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                 .issuer_name(ca_name).public_key(key.public_key())
                 .serial_number(serial_number())
                 .not_valid_before(now - datetime.timedelta(days=1))
                 .not_valid_after(now + datetime.timedelta(days=30))
                 .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                critical=False), ca_key)
    cert_file = os.path.join(directory, "server.pem")
    key_file = os.path.join(directory, "server.key")
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return TestPki(ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file)


