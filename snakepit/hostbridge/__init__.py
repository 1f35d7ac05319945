"""The host's gRPC server that workers call back into (HostService)."""
