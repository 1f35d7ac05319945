# The snakepit Ruby worker: serves snakepit.bridge.v1 WorkerService for a tools file.
#
#   # tools.rb
#   Snakepit.tool(:add, description: "Add two numbers", required: %w[a b]) do |args, ctx|
#     args["a"] + args["b"]
#   end
#   Snakepit.stream_tool(:count) do |args, ctx, out|      # out << value sends a chunk
#     args["n"].times { |i| out << { "i" => i } }
#   end
#
# Run by the host as: ruby worker.rb --script tools.rb --worker-id ID --ready-fd N ...
# Needs only Debian's ruby + ruby-grpc: message classes come from the packaged descriptor
# (../proto/bridge.desc) at run time. The process contract is in protos/README.md.
#
# Capacity: Ruby's grpc server answers RESOURCE_EXHAUSTED when more calls arrive than its
# thread pool can take, instead of queueing. The pool is --max-concurrency + CONTROL_THREADS,
# so heartbeats, Describe and telemetry are always served, and the host (whose RubyAdapter
# capacity equals --max-concurrency) never sends more tool calls than there are threads.

require "json"
require "optparse"
require "google/protobuf"
require "grpc"

CONTROL_THREADS = 4
SECRET_HEADER = "x-snakepit-secret"

POOL = Google::Protobuf::DescriptorPool.generated_pool
POOL.add_serialized_file(File.binread(File.join(__dir__, "..", "proto", "bridge.desc")))
module PB; end
%w[Blob ErrorInfo PingRequest PingResponse HeartbeatRequest HeartbeatResponse DescribeRequest
   ParameterSpec ToolSpec DescribeResponse ExecuteRequest ExecuteResponse ToolChunk
   InitSessionRequest InitSessionResponse EndSessionRequest EndSessionResponse TelemetryControl
   TelemetryEvent CallHostToolRequest WorkerHeartbeat HostHeartbeat].each do |name|
  PB.const_set(name, POOL.lookup("snakepit.bridge.v1.#{name}").msgclass)
end

module Snakepit
  Tool = Struct.new(:name, :description, :required, :parameters, :streaming, :block)
  @tools = {}
  class << self
    attr_reader :tools
    def tool(name, description: "", required: [], parameters: nil, &block)
      @tools[name.to_s] = Tool.new(name.to_s, description, required.map(&:to_s),
                                   (parameters || required).map(&:to_s), false, block)
    end

    def stream_tool(name, description: "", required: [], parameters: nil, &block)
      @tools[name.to_s] = Tool.new(name.to_s, description, required.map(&:to_s),
                                   (parameters || required).map(&:to_s), true, block)
    end
  end

  class HostToolError < StandardError
    attr_reader :type, :category, :details
    def initialize(category, type, message, details = {})
      super(message)
      @category, @type, @details = category, type, details
    end
  end

  class WorkerService
    include GRPC::GenericService
    self.marshal_class_method = :encode
    self.unmarshal_class_method = :decode
    self.service_name = "snakepit.bridge.v1.WorkerService"
    rpc :Ping, PB::PingRequest, PB::PingResponse
    rpc :Heartbeat, PB::HeartbeatRequest, PB::HeartbeatResponse
    rpc :Describe, PB::DescribeRequest, PB::DescribeResponse
    rpc :Execute, PB::ExecuteRequest, PB::ExecuteResponse
    rpc :ExecuteStream, PB::ExecuteRequest, stream(PB::ToolChunk)
    rpc :InitSession, PB::InitSessionRequest, PB::InitSessionResponse
    rpc :EndSession, PB::EndSessionRequest, PB::EndSessionResponse
    rpc :StreamTelemetry, stream(PB::TelemetryControl), stream(PB::TelemetryEvent)
  end

  class HostService
    include GRPC::GenericService
    self.marshal_class_method = :encode
    self.unmarshal_class_method = :decode
    self.service_name = "snakepit.bridge.v1.HostService"
    rpc :CallHostTool, PB::CallHostToolRequest, PB::ExecuteResponse
    rpc :Heartbeat, PB::WorkerHeartbeat, PB::HostHeartbeat
  end
  HostStub = HostService.rpc_stub_class

  # -- values ------------------------------------------------------------------------------
  def self.decode_value(json, blobs)
    value = json.nil? || json.empty? ? nil : JSON.parse(json)
    return value if blobs.nil? || blobs.length.zero?
    restore = lambda do |v|
      case v
      when Array then v.map { |x| restore.call(x) }
      when Hash
        if v.size == 1 && v.key?("__blob__")
          blob = blobs[v["__blob__"]] or raise ArgumentError, "JSON refers to blob #{v['__blob__']}, which the message lacks"
          blob.data.dup.force_encoding(Encoding::BINARY)
        else
          v.transform_values { |x| restore.call(x) }
        end
      else v
      end
    end
    restore.call(value)
  end

  def self.encode_value(value)
    blobs = {}
    walk = lambda do |v|
      case v
      when String
        if v.encoding == Encoding::BINARY
          name = "b#{blobs.size}"
          blobs[name] = PB::Blob.new(data: v)
          { "__blob__" => name }
        else v
        end
      when Array then v.map { |x| walk.call(x) }
      when Hash then v.to_h { |k, x| [k.to_s, walk.call(x)] }
      when Symbol then v.to_s
      when Float then v.finite? ? v : nil
      when Integer, TrueClass, FalseClass, NilClass then v
      else
        raise TypeError, "values of type #{v.class} cannot be sent"
      end
    end
    [JSON.generate(walk.call(value)), blobs]
  end

  def self.error_info(category, type, message, details = {}, traceback = "")
    PB::ErrorInfo.new(category: category, type: type, message: message.to_s,
                      details_json: JSON.generate(details), traceback: traceback)
  end

  class Failure < StandardError
    attr_reader :info
    def initialize(info)
      super(info.message)
      @info = info
    end
  end

  # -- per-request context -----------------------------------------------------------------
  class Context
    attr_reader :session_id, :correlation_id, :state
    def initialize(worker, request, state, deadline)
      @worker, @request, @state, @deadline = worker, request, state, deadline
      @session_id = request.session_id.empty? ? nil : request.session_id
      @correlation_id = request.correlation_id
    end

    def cancelled?
      !@deadline.nil? && Time.now > @deadline
    end

    def call_host_tool(name, args = {})
      @worker.call_host_tool(name, args, @request)
    end

    def emit(name, measurements = {}, metadata = {})
      @worker.emit(name, measurements, metadata, @correlation_id)
    end
  end

  # -- the servicer ------------------------------------------------------------------------
  class Worker < WorkerService
    attr_accessor :last_heartbeat

    def initialize(opts, secret)
      @opts, @secret = opts, secret
      @slots = SizedQueue.new(opts[:max_concurrency])
      opts[:max_concurrency].times { @slots << :slot }
      @sessions = {}
      @lock = Mutex.new
      @in_flight = 0
      @last_heartbeat = Time.now
      @events = SizedQueue.new(1000)
      @dropped = 0
      @telemetry = { enabled: true, rate: 1.0, allow: [], deny: [] }
      @host = nil
    end

    def host_stub
      raise HostToolError.new("host", "NoHost", "no host address") if @opts[:host_address].to_s.empty?
      @host ||= HostStub.new(@opts[:host_address], :this_channel_is_insecure)
    end

    def call_host_tool(name, args, request)
      json, blobs = Snakepit.encode_value(args)
      resp = host_stub.call_host_tool(
        PB::CallHostToolRequest.new(tool: name.to_s, args_json: json, blobs: blobs,
                                    session_id: request.session_id,
                                    correlation_id: request.correlation_id,
                                    worker_id: @opts[:worker_id]),
        metadata: { SECRET_HEADER => @secret })
      unless resp.success
        details = resp.error.details_json.empty? ? {} : JSON.parse(resp.error.details_json)
        raise HostToolError.new(resp.error.category, resp.error.type, resp.error.message, details)
      end
      Snakepit.decode_value(resp.result_json, resp.blobs)
    rescue GRPC::BadStatus => e
      raise HostToolError.new("host", e.class.name.split("::").last, e.details)
    end

    def emit(name, measurements, metadata, correlation_id, force: false)
      t = @telemetry
      match = ->(p) { name == p || name.start_with?("#{p}.") }
      unless force
        return unless t[:enabled]
        return if !t[:allow].empty? && t[:allow].none?(&match)
        return if t[:deny].any?(&match)
        return if t[:rate] < 1.0 && rand >= t[:rate]
      end
      ev = PB::TelemetryEvent.new(event: name.split("."), measurements_json: JSON.generate(measurements),
                                  metadata_json: JSON.generate(metadata), timestamp: Time.now.to_f,
                                  correlation_id: correlation_id.to_s, worker_id: @opts[:worker_id])
      begin
        @events.push(ev, true)
      rescue ThreadError
        @dropped += 1
      end
    end

    def ping(req, _call)
      PB::PingResponse.new(message: req.message.empty? ? "pong" : req.message,
                           worker_id: @opts[:worker_id], pid: Process.pid, timestamp: Time.now.to_f)
    end

    def heartbeat(req, _call)
      @last_heartbeat = Time.now
      PB::HeartbeatResponse.new(seq: req.seq, worker_id: @opts[:worker_id], in_flight: @in_flight,
                                rss_bytes: rss, timestamp: Time.now.to_f)
    end

    def rss
      File.read("/proc/self/statm").split[1].to_i * 4096
    rescue StandardError
      0
    end

    def describe(_req, _call)
      tools = Snakepit.tools.values.map do |t|
        PB::ToolSpec.new(name: t.name, description: t.description, streaming: t.streaming,
                         parameters: t.parameters.map { |p| PB::ParameterSpec.new(name: p, type: "any", required: t.required.include?(p)) })
      end
      PB::DescribeResponse.new(adapter: File.basename(@opts[:script]), version: "0.1.0", language: "ruby",
                               capacity: @opts[:max_concurrency], tools: tools,
                               worker_id: @opts[:worker_id], pid: Process.pid, runtime_version: RUBY_VERSION)
    end

    def prepare(req, streaming)
      tool = Snakepit.tools[req.tool]
      if tool.nil?
        names = Snakepit.tools.keys.sort
        raise Failure, Snakepit.error_info("unknown_tool", "UnknownTool",
                                           "no tool named '#{req.tool}'; available: #{names.join(', ')}",
                                           { "tool" => req.tool, "available" => names })
      end
      if tool.streaming && !streaming
        raise Failure, Snakepit.error_info("invalid_arguments", "StreamingTool",
                                           "'#{tool.name}' is a streaming tool: use stream() (ExecuteStream), not execute()",
                                           { "tool" => tool.name })
      end
      begin
        args = Snakepit.decode_value(req.args_json, req.blobs) || {}
      rescue JSON::ParserError, ArgumentError => e
        raise Failure, Snakepit.error_info("invalid_arguments", "InvalidJSON", "arguments of '#{tool.name}' are not valid: #{e.message}", { "tool" => tool.name })
      end
      unless args.is_a?(Hash)
        raise Failure, Snakepit.error_info("invalid_arguments", "InvalidArguments", "arguments of '#{tool.name}' must be a JSON object", { "tool" => tool.name })
      end
      missing = tool.required.reject { |p| args.key?(p) }
      unless missing.empty?
        raise Failure, Snakepit.error_info("invalid_arguments", "InvalidArguments",
                                           "#{tool.name}() missing required argument(s) #{missing.join(', ')}",
                                           { "tool" => tool.name, "missing" => missing })
      end
      deadline = req.timeout.positive? ? Time.now + req.timeout : nil
      state = req.session_id.empty? ? {} : @lock.synchronize { @sessions[req.session_id] ||= {} }
      [tool, args, Context.new(self, req, state, deadline), deadline]
    end

    def with_slot
      @slots.pop
      @lock.synchronize { @in_flight += 1 }
      yield
    ensure
      @lock.synchronize { @in_flight -= 1 }
      @slots << :slot
    end

    def tool_error(name, err)
      Snakepit.error_info("tool", err.class.name, err.message, { "tool" => name },
                          ([err.full_message(highlight: false)] + (err.backtrace || [])).first(40).join("\n"))
    end

    def run_tool(tool, args, ctx, deadline)
      if deadline
        Timeout.timeout([deadline - Time.now, 0.001].max) { tool.block.call(args, ctx) }
      else
        tool.block.call(args, ctx)
      end
    rescue Timeout::Error
      raise Failure, Snakepit.error_info("timeout", "Timeout", "'#{tool.name}' exceeded its deadline", { "tool" => tool.name })
    rescue Failure
      raise
    rescue StandardError => e
      raise Failure, tool_error(tool.name, e)
    end

    def execute(req, _call)
      tool, args, ctx, deadline = prepare(req, false)
      value = with_slot { run_tool(tool, args, ctx, deadline) }
      begin
        json, blobs = Snakepit.encode_value(value)
      rescue TypeError => e
        return PB::ExecuteResponse.new(success: false, error: Snakepit.error_info("unserializable_result", "Unserializable", "'#{tool.name}' returned a value that cannot be sent: #{e.message}", { "tool" => tool.name }))
      end
      PB::ExecuteResponse.new(success: true, result_json: json, blobs: blobs)
    rescue Failure => e
      PB::ExecuteResponse.new(success: false, error: e.info)
    end

    def execute_stream(req, _call)
      Enumerator.new do |out|
        chunk_id = 0
        send_chunk = lambda do |fields|
          chunk_id += 1
          out << PB::ToolChunk.new(chunk_id: chunk_id, **fields)
        end
        begin
          tool, args, ctx, deadline = prepare(req, true)
          if tool.streaming
            with_slot do
              yielder = Object.new
              yielder.define_singleton_method(:<<) do |value|
                json, blobs = Snakepit.encode_value(value)
                send_chunk.call(data_json: json, blobs: blobs)
                self
              end
              run_tool(Snakepit::Tool.new(tool.name, "", [], [], true, ->(a, c) { tool.block.call(a, c, yielder) }), args, ctx, deadline)
            end
            send_chunk.call(is_final: true)
          else
            value = with_slot { run_tool(tool, args, ctx, deadline) }
            json, blobs = Snakepit.encode_value(value)
            send_chunk.call(data_json: json, blobs: blobs, is_final: true)
          end
        rescue Failure => e
          send_chunk.call(is_final: true, error: e.info)
        end
      end
    end

    def init_session(req, _call)
      created = @lock.synchronize { @sessions.key?(req.session_id) ? false : (@sessions[req.session_id] = {}; true) }
      PB::InitSessionResponse.new(created: created)
    end

    def end_session(req, _call)
      PB::EndSessionResponse.new(existed: !@lock.synchronize { @sessions.delete(req.session_id) }.nil?)
    end

    def stream_telemetry(requests, _call)
      Thread.new do
        requests.each do |c|
          @telemetry = { enabled: c.enabled, rate: c.sampling_rate, allow: c.allow.to_a, deny: c.deny.to_a }
          emit("telemetry.configured", { "sampling_rate" => c.sampling_rate }, { "enabled" => c.enabled }, "", force: true)
        end
      rescue StandardError
        nil
      end
      Enumerator.new do |out|
        loop do
          ev = @events.pop
          ev.dropped = @dropped
          @dropped = 0
          out << ev
        end
      end
    end
  end

  class Auth < GRPC::ServerInterceptor
    def initialize(secret)
      @secret = secret
      super()
    end

    def check(call)
      given = call.metadata[SECRET_HEADER].to_s
      ok = given.bytesize == @secret.bytesize &&
           given.bytes.zip(@secret.bytes).map { |a, b| a ^ b }.reduce(0, :|).zero?
      raise GRPC::Unauthenticated, "missing or wrong secret" unless ok
    end

    def request_response(request: nil, call: nil, method: nil)
      check(call)
      yield
    end

    def server_streamer(request: nil, call: nil, method: nil)
      check(call)
      yield
    end

    def bidi_streamer(requests: nil, call: nil, method: nil)
      check(call)
      yield
    end
  end
end

def parse_options(argv)
  opts = { worker_id: "worker-#{Process.pid}", ready_fd: nil, host_address: "", max_concurrency: 1,
           log_level: "info", heartbeat_interval: 2.0, heartbeat_timeout: 10.0, dependent: true,
           shutdown_grace: 5.0, script: nil }
  OptionParser.new do |o|
    o.on("--script PATH") { |v| opts[:script] = v }
    o.on("--worker-id ID") { |v| opts[:worker_id] = v }
    o.on("--ready-fd N", Integer) { |v| opts[:ready_fd] = v }
    o.on("--host-address ADDR") { |v| opts[:host_address] = v }
    o.on("--max-concurrency N", Integer) { |v| opts[:max_concurrency] = v }
    o.on("--log-level L") { |v| opts[:log_level] = v }
    o.on("--heartbeat-interval S", Float) { |v| opts[:heartbeat_interval] = v }
    o.on("--heartbeat-timeout S", Float) { |v| opts[:heartbeat_timeout] = v }
    o.on("--no-dependent") { opts[:dependent] = false }
    o.on("--shutdown-grace S", Float) { |v| opts[:shutdown_grace] = v }
  end.parse!(argv)
  raise OptionParser::MissingArgument, "--script" if opts[:script].nil?
  raise OptionParser::InvalidArgument, "--max-concurrency must be >= 1" if opts[:max_concurrency] < 1
  opts
rescue OptionParser::ParseError => e
  warn "usage: ruby worker.rb --script tools.rb [flags]: #{e.message}"
  exit 2
end

def log(opts, level, message)
  levels = { "debug" => 0, "info" => 1, "warning" => 2, "error" => 3, "none" => 9 }
  return if levels.fetch(level, 1) < levels.fetch(opts[:log_level], 1)
  $stderr.puts "#{Time.now.utc.strftime('%FT%T')} #{level.upcase} [#{opts[:worker_id]}] snakepit_ruby: #{message}"
end

def main
  require "timeout"
  opts = parse_options(ARGV.dup)
  secret = ENV.delete("SNAKEPIT_SECRET").to_s
  if secret.empty?
    warn "SNAKEPIT_SECRET is not set: a worker needs the host's per-run secret"
    exit 2
  end
  begin
    load File.expand_path(opts[:script])
  rescue Exception => e # rubocop:disable Lint/RescueException
    warn "cannot load tools file #{opts[:script]}: #{e.full_message(highlight: false)}"
    exit 3
  end
  worker = Snakepit::Worker.new(opts, secret)
  server = GRPC::RpcServer.new(pool_size: opts[:max_concurrency] + CONTROL_THREADS,
                               max_waiting_requests: opts[:max_concurrency] + CONTROL_THREADS,
                               interceptors: [Snakepit::Auth.new(secret)])
  port = server.add_http2_port("127.0.0.1:0", :this_port_is_insecure)
  server.handle(worker)
  Thread.new { server.run }
  server.wait_till_running

  stop = Queue.new
  %w[TERM INT].each { |sig| Signal.trap(sig) { stop << [0, opts[:shutdown_grace], "signal SIG#{sig}"] } }
  Thread.new do
    begin
      loop { $stdin.readpartial(65_536) }
    rescue EOFError, IOError, Errno::EIO
      nil
    end
    stop << [4, 0.5, "stdin closed: the host is gone"]
  end
  if opts[:heartbeat_timeout].positive?
    Thread.new do
      loop do
        sleep([opts[:heartbeat_interval], opts[:heartbeat_timeout]].min / 2.0)
        next if Time.now - worker.last_heartbeat < opts[:heartbeat_timeout]
        alive = begin
          !opts[:host_address].to_s.empty? &&
            worker.host_stub.heartbeat(PB::WorkerHeartbeat.new(worker_id: opts[:worker_id], sent_at: Time.now.to_f),
                                       metadata: { SECRET_HEADER => secret }, deadline: Time.now + 2)
        rescue StandardError
          false
        end
        if alive || !opts[:dependent]
          worker.last_heartbeat = Time.now
        else
          stop << [4, 0.5, "no host heartbeat for #{opts[:heartbeat_timeout]} s (dependent)"]
          break
        end
      end
    end
  end

  line = JSON.generate({ port: port, pid: Process.pid, worker_id: opts[:worker_id], language: "ruby", protocol: 1 }) + "\n"
  if opts[:ready_fd]
    io = IO.new(opts[:ready_fd], "w")
    io.write(line)
    io.close
  else
    $stdout.write(line)
    $stdout.flush
  end

  code, grace, why = stop.pop
  log(opts, "info", "worker #{opts[:worker_id]} stopping: #{why}")
  stopper = Thread.new { server.stop }
  stopper.join(grace)
  $stdout.flush
  $stderr.flush
  exit!(code)
end

main if $PROGRAM_NAME == __FILE__
