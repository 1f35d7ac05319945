# frozen_string_literal: true

# The worker protocol's constants for the Ruby worker, in one place (the Python host and
# worker share snakepit_bridge/protocol.py; protos/README.md is the contract both follow).

module Snakepit
  # gRPC call metadata key carrying the per-run secret.
  SECRET_HEADER = "x-snakepit-secret"
  # Largest gRPC message either side sends or accepts.
  MAX_MESSAGE = 256 * 1024 * 1024
  # The channel/server arguments that apply MAX_MESSAGE.
  GRPC_MESSAGE_ARGS = { "grpc.max_send_message_length" => MAX_MESSAGE,
                        "grpc.max_receive_message_length" => MAX_MESSAGE }.freeze
  # What in-flight work gets once the host is known to be gone.
  HOST_LOST_GRACE = 0.5

  EXIT_OK = 0          # stopped by SIGTERM/SIGINT
  EXIT_USAGE = 2       # bad command line or environment
  EXIT_INIT = 3        # the tools file failed to load or initialize
  EXIT_HOST_LOST = 4   # stdin EOF, or host heartbeats lost while dependent
end
