# frozen_string_literal: true

# The Ruby showcase tools: the names, arguments and result shapes of the Python showcase
# (snakepit_bridge/adapters/showcase.py), so one test suite runs against every runtime.
#
#   RubyAdapter(script=".../snakepit_bridge/ruby/showcase.rb")

require "digest"

Snakepit.adapter name: "ShowcaseAdapter", version: "1.0.0"

module Showcase
  ERRORS = { "value" => ArgumentError, "runtime" => RuntimeError, "key" => KeyError,
             "zero_division" => ZeroDivisionError }.freeze
  OPERATIONS = %w[upper lower reverse length].freeze
  STARTED = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  COUNTER_LOCK = Mutex.new

  # The custom exception class of error_demo(error_type: "custom").
  class ShowcaseError < StandardError; end
end

Snakepit.tool :ping, description: "Liveness check",
                     params: { message: { type: :str, default: "pong" } } do |args, _ctx|
  { "status" => "pong", "message" => args["message"], "pid" => Process.pid,
    "timestamp" => Time.now.to_f }
end

Snakepit.tool(:echo, description: "Return the arguments unchanged") { |args, _ctx| args }

Snakepit.tool :add, description: "Add two numbers (integers stay integers)",
                    params: { a: :number, b: :number } do |args, _ctx|
  args["a"] + args["b"]
end

Snakepit.tool :adapter_info, description: "What this adapter is", params: {} do |_args, _ctx|
  { "adapter" => "ShowcaseAdapter", "version" => "1.0.0", "language" => "ruby",
    "ruby" => RUBY_VERSION, "grpc" => GRPC::VERSION, "pid" => Process.pid }
end

Snakepit.tool :process_text, description: "Transform a text: upper, lower, reverse or length",
                             params: { text: :str,
                                       operation: { type: :str, default: "upper" } } do |args, _ctx|
  text, op = args["text"], args["operation"]
  unless Showcase::OPERATIONS.include?(op)
    raise Snakepit::InvalidArguments.new(
      "unknown operation #{op.inspect}; valid: #{Showcase::OPERATIONS.join(', ')}",
      { "parameter" => "operation", "valid" => Showcase::OPERATIONS }
    )
  end
  case op
  when "upper" then text.upcase
  when "lower" then text.downcase
  when "reverse" then text.reverse
  else text.length
  end
end

Snakepit.tool :get_stats, description: "Process statistics of this worker", params: {} do |_args, _ctx|
  statm = File.read("/proc/self/statm").split.map(&:to_i)
  page = 4096
  { "pid" => Process.pid, "rss" => statm[1] * page, "vms" => statm[0] * page,
    "cpu_percent" => nil, "threads" => Thread.list.size,
    "uptime" => Process.clock_gettime(Process::CLOCK_MONOTONIC) - Showcase::STARTED }
end

Snakepit.tool :sleep, description: "Sleep; returns early when the request is cancelled",
                      params: { seconds: :float } do |args, ctx|
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  cancelled = ctx.sleep(args["seconds"])
  { "slept" => Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0, "cancelled" => cancelled }
end

Snakepit.tool :cpu_burn, description: "Burn CPU for about `ms` milliseconds",
                         params: { ms: :float } do |args, _ctx|
  stop = Process.clock_gettime(Process::CLOCK_MONOTONIC) + args["ms"] / 1000.0
  n = 0
  n += 1 while Process.clock_gettime(Process::CLOCK_MONOTONIC) < stop
  { "iterations" => n }
end

Snakepit.tool :error_demo, description: "Raise an error of the given type",
                           params: { error_type: { type: :str, default: "value" } } do |args, _ctx|
  kind = args["error_type"]
  raise Showcase::ShowcaseError, "a custom error from the showcase" if kind == "custom"
  error = Showcase::ERRORS.fetch(kind) do
    raise ArgumentError, "unknown error_type #{kind.inspect}; valid: #{[*Showcase::ERRORS.keys, 'custom'].join(', ')}"
  end
  raise error, "#{kind} error raised on purpose"
end

Snakepit.stream_tool :stream_data, description: "Stream `count` items, `delay` seconds apart",
                                   params: { count: { type: :int, default: 5 },
                                             delay: { type: :float, default: 0.0 } } do |args, ctx, out|
  args["count"].times do |i|
    out << { "index" => i, "value" => i * i }
    ctx.sleep(args["delay"]) if args["delay"].positive?
  end
end

Snakepit.stream_tool :stream_progress, description: "Stream progress updates {step, total, progress}",
                                       params: { steps: { type: :int, default: 10 },
                                                 delay_ms: { type: :float, default: 100.0 } } do |args, ctx, out|
  steps = args["steps"]
  (1..steps).each do |step|
    ctx.sleep(args["delay_ms"] / 1000.0) if args["delay_ms"].positive?
    out << { "step" => step, "total" => steps, "progress" => step.to_f / steps }
  end
end

# A streaming tool written as an Enumerator instead of writing to `out`.
Snakepit.stream_tool :ping_stream, description: "Stream `count` pongs",
                                   params: { count: { type: :int, default: 5 } } do |args, _ctx|
  Enumerator.new do |y|
    args["count"].times { |i| y << { "ping" => i + 1, "timestamp" => Time.now.to_f } }
  end
end

Snakepit.tool :process_binary, description: "Checksum, length or reverse of a binary blob",
                               params: { data: :bytes,
                                         operation: { type: :str, default: "checksum" } } do |args, _ctx|
  data = args["data"]
  case args["operation"]
  when "checksum" then { "sha256" => Digest::SHA256.hexdigest(data), "length" => data.bytesize }
  when "length" then data.bytesize
  when "reverse" then data.reverse # still binary: goes back as a blob
  else
    raise Snakepit::InvalidArguments.new(
      "unknown operation #{args['operation'].inspect}; valid: checksum, length, reverse",
      { "parameter" => "operation" }
    )
  end
end

Snakepit.tool :call_host_demo, description: "Call a host tool through the context",
                               params: { tool_name: { type: :str, default: "host_echo" },
                                         args: { type: :dict, default: nil } } do |args, ctx|
  result = Snakepit.span("showcase.call_host_demo", { "tool" => args["tool_name"] }) do
    ctx.call_host_tool(args["tool_name"], args["args"] || {})
  end
  { "host_result" => result }
end

Snakepit.tool :session_counter, description: "Increment a counter kept in this worker for the session",
                                params: {} do |_args, ctx|
  ctx.synchronize { ctx.state["counter"] = ctx.state.fetch("counter", 0) + 1 }
end

Snakepit.tool :emit_event, description: "Emit a telemetry event (for tests and demos)",
                           params: { name: { type: :str, default: "showcase.event" },
                                     value: { type: :number, default: 1 } } do |args, ctx|
  ctx.emit(args["name"], { "value" => args["value"] }, { "tool" => "emit_event" })
  true
end

# numpy arrays arrive as Snakepit::Blob (raw bytes + dtype + shape); these dtypes are read.
module Showcase
  UNPACK = { "<f8" => "E*", "<f4" => "e*", "<i8" => "q<*", "<i4" => "l<*", "|u1" => "C*" }.freeze
end

Snakepit.tool :numpy_stats, description: "Mean, std and shape of an array (a numpy array blob)",
                            params: { array: :any } do |args, _ctx|
  blob = args["array"]
  unless blob.is_a?(Snakepit::Blob) && Showcase::UNPACK.key?(blob.dtype)
    raise Snakepit::InvalidArguments.new(
      "array must be a numpy array of dtype #{Showcase::UNPACK.keys.join(', ')}",
      { "parameter" => "array" }
    )
  end
  values = blob.data.unpack(Showcase::UNPACK.fetch(blob.dtype))
  mean = values.sum.to_f / values.size
  std = Math.sqrt(values.sum { |v| (v - mean)**2 } / values.size)
  doubled = values.map { |v| v * 2 }.pack(Showcase::UNPACK.fetch(blob.dtype))
  { "mean" => mean, "std" => std, "shape" => blob.shape, "dtype" => blob.dtype,
    "doubled" => Snakepit::Blob.new(data: doubled, dtype: blob.dtype, shape: blob.shape) }
end
