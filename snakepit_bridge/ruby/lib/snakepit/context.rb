# frozen_string_literal: true

# What a tool knows about its request (Snakepit::Context), and the worker's line back to the
# host (HostClient).

require "monitor"
require_relative "protocol"

module Snakepit
  # The worker's client for the host's HostService (created on first use).
  class HostClient
    attr_reader :address, :worker_id

    def initialize(address, secret, worker_id)
      @address, @worker_id = address.to_s, worker_id
      @metadata = { SECRET_HEADER => secret }.freeze
      @mutex = Mutex.new
      @stub = nil
    end

    # Calls HostService.`method`; raises HostToolError (category "host") when the RPC fails.
    # on_cancel: a proc that takes a block to run if the caller's request is cancelled.
    def call(method, request, deadline: nil, on_cancel: nil)
      op = stub.public_send(method, request, metadata: @metadata, deadline: deadline,
                                             return_op: true)
      on_cancel&.call { op.cancel }
      op.execute
    rescue GRPC::BadStatus => e
      raise HostToolError.new("host", status_name(e.code), e.details.to_s)
    end

    def stub
      if @address.empty?
        raise HostToolError.new("host", "NoHost", "this worker was started without a host " \
                                                  "address (--host-address)")
      end
      @mutex.synchronize do
        @stub ||= HostStub.new(@address, :this_channel_is_insecure,
                               channel_args: GRPC_MESSAGE_ARGS.dup)
      end
    end

    private

    def status_name(code)
      name = GRPC::Core::StatusCodes.constants.find { |c| GRPC::Core::StatusCodes.const_get(c) == code }
      name ? name.to_s : code.to_s
    end
  end

  # Per-session state kept in the worker between InitSession and EndSession.
  Session = Struct.new(:state, :lock) do
    def self.fresh
      new({}, Monitor.new)
    end
  end

  # Handed to every tool as its second argument.
  class Context
    # nil when the request has no session.
    attr_reader :session_id
    attr_reader :correlation_id
    # The request's metadata (e.g. W3C "traceparent"), a Hash of Strings.
    attr_reader :metadata

    def initialize(job, request, session, host)
      @job, @session, @host = job, session, host
      @session_id = request.session_id.empty? ? nil : request.session_id
      @correlation_id = request.correlation_id
      @metadata = request.metadata.to_h
    end

    # The session's state (a Hash kept in this worker), or a fresh Hash without a session.
    def state
      @session.state
    end

    # Runs the block holding the session's lock (tools of one session may run concurrently).
    def synchronize(&block)
      @session.lock.synchronize(&block)
    end

    # True once the request was cancelled by the host, timed out, or the worker is stopping.
    def cancelled?
      !@job.cancel_reason.nil?
    end

    # :cancelled, :timeout or :shutdown once cancelled?, else nil.
    def cancel_reason
      @job.cancel_reason
    end

    # Sleeps up to `seconds`, returning early (true) if the request is cancelled meanwhile.
    def sleep(seconds)
      @job.wait_cancelled(seconds)
    end
    alias wait_cancelled sleep

    # Seconds left before the request's timeout, or nil when it has none.
    def time_left
      @job.deadline && [@job.deadline - Job.now, 0.0].max
    end

    # Calls a tool registered on the host (app.tools.register) and returns its result.
    # Raises HostToolError when the host tool fails or the host cannot be reached.
    def call_host_tool(name, args = {})
      json, blobs = Values.encode(args)
      resp = host_call(:call_host_tool, PB::CallHostToolRequest.new(
        tool: name.to_s, args_json: json, blobs: blobs, session_id: @session_id.to_s,
        correlation_id: @correlation_id, worker_id: @host&.worker_id.to_s
      ))
      raise_error(resp.error) unless resp.success
      Values.decode(resp.result_json, resp.blobs)
    end

    # The host tools this request may call: [{ "name", "description", "parameters" }].
    def host_tools
      resp = host_call(:list_host_tools, PB::ListHostToolsRequest.new(session_id: @session_id.to_s))
      resp.tools.map do |t|
        { "name" => t.name, "description" => t.description, "parameters" => t.parameters.map(&:name) }
      end
    end

    # A session variable kept by the host.
    def get_variable(name)
      resp = host_call(:get_variable, PB::GetVariableRequest.new(session_id: @session_id.to_s,
                                                                 name: name.to_s))
      raise_error(resp.error) unless resp.success
      Values.decode(resp.value_json, resp.blobs)
    end

    def set_variable(name, value, type: "", constraints: nil)
      json, blobs = Values.encode(value)
      resp = host_call(:set_variable, PB::SetVariableRequest.new(
        session_id: @session_id.to_s, name: name.to_s, value_json: json, blobs: blobs,
        type: type.to_s, constraints_json: constraints ? Values.dumps(constraints) : ""
      ))
      raise_error(resp.error) unless resp.success
      Values.decode(resp.value_json, resp.blobs)
    end

    # A telemetry event tagged with this request's correlation id.
    def emit(name, measurements = {}, metadata = {})
      Snakepit.emit(name, measurements, metadata)
    end

    private

    # One host call, bounded by the request's deadline and cancelled with the request. A call
    # that deadline cuts is the request's timeout whichever side noticed first: the gRPC
    # deadline (DEADLINE_EXCEEDED) or the worker (which cancels the call: CANCELLED). The job
    # is marked timed out before the tool sees the error, so the worker reports category
    # "timeout", never the tool's error.
    def host_call(method, request)
      raise HostToolError.new("host", "NoHost", "no host connection in this worker") if @host.nil?
      deadline = @job.deadline && Time.now + time_left
      begin
        @host.call(method, request, deadline: deadline, on_cancel: ->(&blk) { @job.on_cancel(&blk) })
      rescue HostToolError => e
        raise unless cut_by_deadline?(e)
        @job.cancel(:timeout)
        raise HostToolError.new("timeout", "Timeout", "#{method} was cut by the request's deadline",
                                { "method" => method.to_s })
      end
    end

    def cut_by_deadline?(error)
      return false if @job.deadline.nil?
      error.type == "DEADLINE_EXCEEDED" ||
        (error.type == "CANCELLED" && @job.cancel_reason == :timeout)
    end

    def raise_error(error)
      details = error.details_json.empty? ? {} : Values.decode(error.details_json)
      raise HostToolError.new(error.category, error.type, error.message,
                              details.is_a?(Hash) ? details : { "details" => details })
    end
  end
end
