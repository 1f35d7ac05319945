# frozen_string_literal: true

require "grpc"
require "openssl"
require_relative "protocol"

module Snakepit
  # Every call must carry the per-run secret (metadata x-snakepit-secret); anything else is
  # answered UNAUTHENTICATED before a handler runs.
  class Auth < GRPC::ServerInterceptor
    def initialize(secret)
      @secret = secret
      super()
    end

    def request_response(request: nil, call: nil, method: nil, &block)
      check(call, &block)
    end

    def server_streamer(request: nil, call: nil, method: nil, &block)
      check(call, &block)
    end

    def client_streamer(call: nil, method: nil, &block)
      check(call, &block)
    end

    def bidi_streamer(requests: nil, call: nil, method: nil, &block)
      check(call, &block)
    end

    private

    def check(call)
      given = call.metadata[SECRET_HEADER]
      # secure_compare hashes both sides first: constant time whatever the lengths.
      unless given.is_a?(String) && OpenSSL.secure_compare(given, @secret)
        raise GRPC::Unauthenticated, "missing or wrong secret"
      end
      yield
    end
  end
end
