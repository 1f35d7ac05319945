"""TLS for workers of a remote placement: the per-run CA's material and grpcio credentials.

    tls = Tls.pop_env(os.environ)       # None unless the host handed TLS material over
    server.add_secure_port("10.0.0.7:0", tls.server_credentials())
    channel = grpc.secure_channel(address, tls.channel_credentials(),
                                  options=tls.channel_options(protocol.TLS_HOST_NAME))

Both directions are mutual TLS: each side shows a certificate of the per-run CA, and the
caller checks the peer's name (``protocol.TLS_WORKER_NAME`` / ``TLS_HOST_NAME``). The per-run
secret is sent on every call as well.
"""

from __future__ import annotations

import dataclasses
from typing import Any, MutableMapping


from snakepit_bridge.protocol import TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Tls:
    """PEM bytes: the CA certificate, this side's certificate and its private key."""

    ca: bytes
    cert: bytes
    key: bytes

    def __repr__(self) -> str:   # never the key in a log
        return "Tls(<per-run CA>)"

    @classmethod
    def pop_env(cls, environ: MutableMapping[str, str]) -> "Tls | None":
        """Take the material out of ``environ`` (it must not reach user code); None if
        absent. Half of it present is an error naming what is missing."""
        values = {name: environ.pop(name, "") for name in (TLS_CA_ENV, TLS_CERT_ENV,
                                                           TLS_KEY_ENV)}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ValueError(f"incomplete TLS material in the environment: {missing} unset")
        return cls(ca=values[TLS_CA_ENV].encode(), cert=values[TLS_CERT_ENV].encode(),
                   key=values[TLS_KEY_ENV].encode())

    def env(self) -> dict[str, str]:
        """The environment that hands this material to a worker."""
        return {TLS_CA_ENV: self.ca.decode(), TLS_CERT_ENV: self.cert.decode(),
                TLS_KEY_ENV: self.key.decode()}

    def server_credentials(self) -> Any:
        import grpc
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca,
                                           require_client_auth=True)

    def channel_credentials(self) -> Any:
        import grpc
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)

    @staticmethod
    def channel_options(peer_name: str) -> list[tuple[str, Any]]:
        """Check the peer's certificate for ``peer_name`` rather than its address."""
        return [("grpc.ssl_target_name_override", peer_name),
                ("grpc.default_authority", peer_name)]


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
