"""The per-run CA of a remote placement: made by the host at start, gone when it stops.

    ca = RunCA.create()                 # needs `cryptography` (the snakepit[ray] extra)
    host_tls = ca.host                  # snakepit_bridge.tls.Tls the host serves and calls with
    worker_tls = ca.worker              # what each worker gets in its environment

The CA key never leaves the host process; it signs two leaf certificates at start (one for the
host's service, one shared by the run's workers), each good for both TLS roles and for one
day. Peers check names (``protocol.TLS_HOST_NAME`` / ``TLS_WORKER_NAME``), not addresses: the
nodes' addresses are only known once Ray has placed the workers.
"""

from __future__ import annotations

import datetime

import attrs

from snakepit_bridge.protocol import TLS_HOST_NAME, TLS_WORKER_NAME
from snakepit_bridge.tls import Tls

VALIDITY = datetime.timedelta(days=1)


@attrs.frozen
class RunCA:
    host: Tls
    worker: Tls

    @classmethod
    def create(cls) -> "RunCA":
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snakepit per-run CA")])
        ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=False, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                       decipher_only=False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)

        def leaf(name: str) -> Tls:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                    .issuer_name(ca_name).public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - datetime.timedelta(minutes=5))
                    .not_valid_after(now + VALIDITY)
                    .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                   critical=False)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                   critical=True)
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                          ExtendedKeyUsageOID.CLIENT_AUTH]),
                                   critical=False)
                    .sign(ca_key, hashes.SHA256()))
            return Tls(ca=ca_pem, cert=cert.public_bytes(serialization.Encoding.PEM),
                       key=key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))

        return cls(host=leaf(TLS_HOST_NAME), worker=leaf(TLS_WORKER_NAME))
