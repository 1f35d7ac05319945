# frozen_string_literal: true

# The wire contract for Ruby, built at run time from the packaged descriptor: message classes
# (Snakepit::PB::ExecuteRequest, ...) and the gRPC service classes (WorkerServiceBase,
# HostStub).
#
# Debian's ruby-grpc comes without a code generator we can count on, so nothing is generated
# or hand-copied: ../proto/bridge.desc is the serialized FileDescriptorProto of bridge.proto
# (written by `make proto`, checked against the .proto by tests/bridge/test_protocol.py), and
# both the messages and every RPC (names, types, streaming) are read from it.

require "google/protobuf"
require "google/protobuf/descriptor_pb"
require "grpc"

module Snakepit
  # The message classes of snakepit.bridge.v1, one constant per message.
  module PB
    DESCRIPTOR_PATH = File.expand_path("../../../proto/bridge.desc", __dir__)
    PACKAGE = "snakepit.bridge.v1"

    bytes = File.binread(DESCRIPTOR_PATH)
    FILE = Google::Protobuf::FileDescriptorProto.decode(bytes)
    unless FILE.package == PACKAGE
      raise LoadError, "#{DESCRIPTOR_PATH} describes package #{FILE.package.inspect}, " \
                       "expected #{PACKAGE}"
    end
    Google::Protobuf::DescriptorPool.generated_pool.add_serialized_file(bytes)
    FILE.message_type.each do |message|
      const_set(message.name, Google::Protobuf::DescriptorPool.generated_pool
                                .lookup("#{PACKAGE}.#{message.name}").msgclass)
    end

    # The message class of a fully qualified type name such as ".snakepit.bridge.v1.Blob".
    def self.message(type_name)
      prefix = ".#{PACKAGE}."
      unless type_name.start_with?(prefix) && const_defined?(type_name.delete_prefix(prefix))
        raise LoadError, "#{DESCRIPTOR_PATH}: unknown message type #{type_name}"
      end
      const_get(type_name.delete_prefix(prefix))
    end

    # A GRPC::GenericService class with every RPC of the service `name` in the descriptor.
    def self.service(name)
      spec = FILE.service.find { |s| s.name == name } or
        raise LoadError, "#{DESCRIPTOR_PATH} has no service #{name}"
      Class.new do
        include GRPC::GenericService
        self.marshal_class_method = :encode
        self.unmarshal_class_method = :decode
        self.service_name = "#{PACKAGE}.#{name}"
        spec["method"].each do |m|
          input, output = PB.message(m.input_type), PB.message(m.output_type)
          rpc m.name.to_sym, m.client_streaming ? stream(input) : input,
              m.server_streaming ? stream(output) : output
        end
      end
    end
  end

  # Served by the worker; Servicer (servicer.rb) implements it.
  WorkerServiceBase = PB.service("WorkerService")
  # The worker's client for the host's HostService.
  HostStub = PB.service("HostService").rpc_stub_class
end
