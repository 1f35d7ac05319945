"""The worker protocol's constants, in one place for the host and every Python worker.

    from snakepit_bridge import protocol
    env[protocol.SECRET_ENV] = secret                       # the host, launching a worker
    metadata = ((protocol.SECRET_HEADER, secret),)           # either side, calling the other
    grpc.server(options=[*protocol.GRPC_MESSAGE_OPTIONS])    # both sides' gRPC limits

The host (``snakepit``) imports this module; it imports nothing itself, so a worker environment
with only ``snakepit_bridge`` installed has it too. The Node and Ruby workers repeat the values
they need (protos/README.md is their contract).
"""

from __future__ import annotations

#: Version of the readiness line and of the worker contract (``"protocol"`` in the ready line).
PROTOCOL_VERSION = 1

# -- environment ----------------------------------------------------------------------------
#: The per-run secret, handed to each worker in its environment (never on a command line);
#: the worker removes it from its environment before user code runs.
SECRET_ENV = "SNAKEPIT_SECRET"
#: Prefix of the shared-memory segments of this run (pipe transport; see ``shm``).
SHM_PREFIX_ENV = "SNAKEPIT_SHM_PREFIX"
#: The directory of those segments (a tmpfs; default ``/dev/shm``), read by host and workers.
SHM_DIR_ENV = "SNAKEPIT_SHM_DIR"
#: grpc's fork handlers have deadlocked fork+exec code: always "false" in snakepit processes.
GRPC_FORK_SUPPORT_ENV = "GRPC_ENABLE_FORK_SUPPORT"
#: Native thread pools each worker limits to one thread (read once, when numpy & co load):
#: a pool of N processes would otherwise start N x cores threads.
THREAD_LIMIT_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS")

#: A remote placement (Ray): the address the worker's server binds (the one Ray reports for its
#: node; without it, 127.0.0.1), and the TLS material it serves and calls the host with (PEM
#: text of the per-run CA, this worker's certificate and key). The worker removes them all from
#: its environment before user code runs.
BIND_HOST_ENV = "SNAKEPIT_BIND_HOST"
TLS_CA_ENV = "SNAKEPIT_TLS_CA"
TLS_CERT_ENV = "SNAKEPIT_TLS_CERT"
TLS_KEY_ENV = "SNAKEPIT_TLS_KEY"

# -- authentication -------------------------------------------------------------------------
#: gRPC call metadata key carrying the per-run secret (both services; pipe frames carry none).
SECRET_HEADER = "x-snakepit-secret"
#: The names in the per-run certificates (TLS, remote placements only): a worker's server
#: certificate and the host's. Callers check the peer's certificate against the per-run CA and
#: this name (not the peer's address, which only Ray knows when the certificates are made).
TLS_WORKER_NAME = "snakepit-worker"
TLS_HOST_NAME = "snakepit-host"

# -- size limits ----------------------------------------------------------------------------
#: Largest gRPC message either side sends or accepts.
MAX_MESSAGE = 256 * 1024 * 1024
#: Largest pipe frame (the 4-byte length prefix excluded); a bigger one ends the connection.
MAX_FRAME = MAX_MESSAGE
#: The channel/server options that apply ``MAX_MESSAGE`` to grpcio.
GRPC_MESSAGE_OPTIONS = (("grpc.max_send_message_length", MAX_MESSAGE),
                        ("grpc.max_receive_message_length", MAX_MESSAGE))


class MessageTooLarge(ValueError):
    """A message bigger than its transport's limit, refused before anything was written.
    ``size`` and ``limit`` are in bytes."""

    def __init__(self, what: str, size: int, limit: int, limit_name: str, way_out: str
                 ) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"{what} is {size} bytes, over the {limit}-byte limit "
                         f"({limit_name}): {way_out}")

# -- timeouts (seconds) -----------------------------------------------------------------------
#: Host -> worker calls that have no caller-given timeout.
PING_TIMEOUT = 10.0
DESCRIBE_TIMEOUT = 30.0
SESSION_TIMEOUT = 30.0
#: Added to a request's own timeout for the transport's deadline: the worker reports the
#: request's timeout itself, the transport's deadline only catches a worker that never answers.
DEADLINE_BACKSTOP = 5.0
#: The worker's probe of the host when host heartbeats stop arriving.
HOST_PROBE_TIMEOUT = 2.0
#: What a worker gives in-flight work once it knows the host is gone (stdin EOF, lost pipe).
HOST_LOST_GRACE = 0.5

# -- worker exit codes ------------------------------------------------------------------------
EXIT_OK = 0          # stopped by SIGTERM/SIGINT
EXIT_USAGE = 2       # bad command line or environment
EXIT_INIT = 3        # the adapter failed to load or initialize
EXIT_HOST_LOST = 4   # stdin EOF, pipe closed, or host heartbeats lost while dependent
