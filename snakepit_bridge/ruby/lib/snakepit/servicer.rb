# frozen_string_literal: true

# The WorkerService handlers: tools looked up, arguments checked, calls run as Jobs, results
# and errors turned into messages (error model: bridge.proto's ErrorInfo).

require "set"
require_relative "call_watch"
require_relative "context"
require_relative "job"

module Snakepit
  # An error answered in-band (ExecuteResponse.error / a final chunk's error).
  class Failure < StandardError
    attr_reader :info

    def initialize(info)
      super(info.message)
      @info = info
    end
  end

  # Implements WorkerService for one registry of tools.
  class Servicer < WorkerServiceBase
    %i[Execute ExecuteStream].each { |rpc| rpc_descs[rpc] = WatchedRpcDesc.new(*rpc_descs[rpc].to_a) }

    MAX_TRACEBACK_LINES = 200
    LIB_DIR = "#{File.expand_path(__dir__)}/"

    def self.error_info(category, type, message, details = {}, traceback = "")
      PB::ErrorInfo.new(category: category, type: type.to_s, message: message.to_s,
                        details_json: Values.dumps(details), traceback: traceback)
    end

    # opts: worker_id, max_concurrency, host (HostClient or nil), lifetime (#heartbeat!,
    # #stopping?).
    def initialize(registry, worker_id:, max_concurrency:, host:, lifetime:)
      super()
      @registry, @worker_id, @host, @lifetime = registry, worker_id, host, lifetime
      @capacity = max_concurrency
      @slots = Slots.new(max_concurrency)
      @sessions = {}
      @jobs = Set.new
      @mutex = Mutex.new
    end

    # Cancels every running call (the worker is stopping and its grace is over).
    def cancel_all(reason)
      @mutex.synchronize { @jobs.to_a }.each { |job| job.cancel(reason) }
    end

    def ping(req, _call)
      PB::PingResponse.new(message: req.message.empty? ? "pong" : req.message,
                           worker_id: @worker_id, pid: Process.pid, timestamp: Time.now.to_f)
    end

    def heartbeat(req, _call)
      @lifetime.heartbeat!
      PB::HeartbeatResponse.new(seq: req.seq, worker_id: @worker_id, in_flight: @slots.in_use,
                                rss_bytes: rss, timestamp: Time.now.to_f,
                                running: Job.live_ids)
    end

    def describe(_req, _call)
      PB::DescribeResponse.new(
        adapter: @registry.name, version: @registry.version, language: "ruby",
        capacity: @capacity, tools: @registry.tools.values.map(&:to_pb), worker_id: @worker_id,
        pid: Process.pid, runtime_version: RUBY_VERSION
      )
    end

    def init_session(req, _call)
      created = @mutex.synchronize do
        next false if @sessions.key?(req.session_id)
        @sessions[req.session_id] = Session.fresh
        true
      end
      PB::InitSessionResponse.new(created: created)
    end

    def end_session(req, _call)
      PB::EndSessionResponse.new(existed: !@mutex.synchronize { @sessions.delete(req.session_id) }.nil?)
    end

    # -- tools -----------------------------------------------------------------------------
    def execute(req, watch)
      tool, args = prepare(req, streaming: false)
      outcome = run_job(tool, args, req, watch, &:wait_result)
      value = result_of(tool, outcome)
      json, blobs = encode(tool, value)
      PB::ExecuteResponse.new(success: true, result_json: json, blobs: blobs)
    rescue Failure => e
      PB::ExecuteResponse.new(success: false, error: e.info)
    end

    # Yields each ToolChunk: chunk_id 1, 2, ...; exactly one is_final, last.
    def execute_stream(req, watch)
      chunk_id = 0
      send_chunk = lambda do |**fields|
        chunk_id += 1
        yield PB::ToolChunk.new(chunk_id: chunk_id, **fields)
      end
      tool, args = prepare(req, streaming: true)
      if tool.streaming
        run_job(tool, args, req, watch) { |job| pump(tool, job, send_chunk) }
      else # a unary tool streamed: one final chunk with its result
        json, blobs = encode(tool, result_of(tool, run_job(tool, args, req, watch, &:wait_result)))
        send_chunk.call(data_json: json, blobs: blobs, is_final: true)
      end
    rescue Failure => e
      send_chunk.call(is_final: true, error: e.info)
    end

    # -- telemetry -------------------------------------------------------------------------
    def stream_telemetry(requests, _call)
      reader_done = false
      stop = -> { reader_done || @lifetime.stopping? }
      # The controls are read in their own thread; it ends when the host closes the stream
      # (or when our status ends the call), which ends the events below.
      Thread.new do
        Thread.current.report_on_exception = false
        requests.each { |control| apply_control(control) }
      rescue StandardError, GRPC::Core::CallError
        nil # the host closed the stream
      ensure
        reader_done = true
        Snakepit.events.wake_all
      end
      telemetry_events(stop)
    end

    private

    def telemetry_events(stop)
      Enumerator.new do |out|
        dropped = 0
        until stop.call
          events, more = Snakepit.events.drain(30.0, stop)
          dropped += more
          events.each do |ev|
            out << PB::TelemetryEvent.new(
              event: ev.name.split("."), measurements_json: Values.dumps(ev.measurements),
              metadata_json: Values.dumps(ev.metadata), timestamp: ev.timestamp,
              correlation_id: ev.correlation_id, worker_id: @worker_id, dropped: dropped
            )
            dropped = 0
          end
        end
      end
    end

    def apply_control(control)
      Snakepit.events.configure(enabled: control.enabled, sampling_rate: control.sampling_rate,
                                allow: control.allow.to_a, deny: control.deny.to_a)
      # Acknowledged past any filter, so the host knows when it applies.
      Snakepit.events.put("telemetry.configured", { "sampling_rate" => control.sampling_rate },
                          { "enabled" => control.enabled, "allow" => control.allow.to_a,
                            "deny" => control.deny.to_a }, force: true)
    end

    def prepare(req, streaming:)
      tool = @registry.tools[req.tool]
      if tool.nil?
        names = @registry.tools.keys.sort
        raise Failure, Servicer.error_info("unknown_tool", "UnknownTool",
                                           "no tool named #{req.tool.inspect}; available: #{names.join(', ')}",
                                           { "tool" => req.tool, "available" => names })
      end
      if tool.streaming && !streaming
        raise Failure, Servicer.error_info("invalid_arguments", "StreamingTool",
                                           "#{tool.name.inspect} is a streaming tool: use stream() " \
                                           "(ExecuteStream), not execute()", { "tool" => tool.name })
      end
      [tool, bind(tool, req)]
    end

    def bind(tool, req)
      args = begin
        Values.decode(req.args_json, req.blobs)
      rescue ArgumentError => e
        raise Failure, Servicer.error_info("invalid_arguments", "InvalidJSON",
                                           "arguments of #{tool.name.inspect} are not valid: #{e.message}",
                                           { "tool" => tool.name })
      end
      tool.bind(args)
    rescue InvalidArguments => e
      raise Failure, Servicer.error_info("invalid_arguments", "InvalidArguments", e.message, e.details)
    end

    # Runs the tool as a Job while the block waits for it; the job is cancelled when the host
    # cancels the call, and when the block is done with it (early close, final chunk).
    def run_job(tool, args, req, watch)
      session = if req.session_id.empty?
                  Session.fresh
                else
                  @mutex.synchronize { @sessions[req.session_id] ||= Session.fresh }
                end
      deadline = req.timeout.positive? ? Job.now + req.timeout : nil
      job = Job.new(tool: tool, args: args, request: req, session: session, host: @host,
                    slots: @slots, deadline: deadline)
      @mutex.synchronize { @jobs << job }
      watch.on_cancel { job.cancel(:cancelled) }
      job.start
      begin
        yield job
      ensure
        job.cancel(:cancelled)
        @mutex.synchronize { @jobs.delete(job) }
      end
    end

    def pump(tool, job, send_chunk)
      loop do
        kind, value = job.next_event
        return finish_stream(tool, [kind, value], send_chunk) unless kind == :item
        chunk = value.is_a?(Chunk) ? value : Chunk.new(value)
        json, blobs = chunk.data.nil? ? ["", {}] : encode(tool, chunk.data)
        send_chunk.call(data_json: json, blobs: blobs, is_final: chunk.final ? true : false,
                        metadata: chunk.metadata.to_h.to_h { |k, v| [k.to_s, v.to_s] })
        return if chunk.final
      end
    end

    def finish_stream(tool, outcome, send_chunk)
      result_of(tool, outcome)
      send_chunk.call(is_final: true) # the tool did not mark a final chunk: an empty one
    end

    # The value of a finished call, or raises its Failure.
    def result_of(tool, outcome)
      kind, value = outcome
      case kind
      when :ok then value
      when :error then raise Failure, error_for(tool, value)
      when :timeout
        raise Failure, Servicer.error_info("timeout", "Timeout",
                                           "#{tool.name.inspect} exceeded its deadline",
                                           { "tool" => tool.name })
      else
        raise Failure, Servicer.error_info("cancelled", "Cancelled",
                                           "#{tool.name.inspect} was cancelled (#{kind})",
                                           { "tool" => tool.name, "reason" => kind.to_s })
      end
    end

    def error_for(tool, error)
      if error.is_a?(InvalidArguments)
        return Servicer.error_info("invalid_arguments", "InvalidArguments", error.message,
                                   { "tool" => tool.name }.merge(error.details))
      end
      name = error.class.name || error.class.inspect
      # type is the bare class name, as the other runtimes report it ("KeyError"); the full
      # name is in details and the traceback.
      Servicer.error_info("tool", name.split("::").last, error.message,
                          { "tool" => tool.name, "class" => name }, traceback(error))
    end

    # The error's full message and backtrace, without the worker's own frames below the tool.
    def traceback(error)
      lines = error.full_message(highlight: false, order: :top).lines
      lines.pop while lines.size > 1 && lines.last.include?(LIB_DIR)
      return lines.join if lines.size <= MAX_TRACEBACK_LINES
      (lines.first(MAX_TRACEBACK_LINES) << "... (#{lines.size - MAX_TRACEBACK_LINES} more lines)\n").join
    end

    def encode(tool, value)
      Values.encode(value)
    rescue Unserializable => e
      raise Failure, Servicer.error_info("unserializable_result", "Unserializable",
                                         "#{tool.name.inspect} returned a value that cannot be sent: #{e.message}",
                                         { "tool" => tool.name, "type" => e.type_name })
    end

    def rss
      File.read("/proc/self/statm").split[1].to_i * 4096
    rescue SystemCallError, IOError
      0
    end
  end
end
