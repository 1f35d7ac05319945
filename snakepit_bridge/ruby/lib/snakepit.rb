# frozen_string_literal: true

# snakepit for Ruby: define tools in a plain Ruby file; the worker (../worker.rb) serves them.
#
#   # my_tools.rb — run with RubyAdapter(script="my_tools.rb")
#   Snakepit.adapter name: "MyTools", version: "1.2.0"
#
#   Snakepit.tool :add, description: "Add two numbers",
#                       params: { a: :number, b: :number } do |args, _ctx|
#     args["a"] + args["b"]                      # integers stay integers
#   end
#
#   Snakepit.tool :greet, params: { name: { type: :str, default: "world" } } do |args, ctx|
#     ctx.call_host_tool("log", { "text" => "greeting #{args['name']}" })   # a host tool
#     "hello #{args['name']}"
#   end
#
#   Snakepit.stream_tool :count, params: { n: :int } do |args, ctx, out|
#     args["n"].times { |i| out << { "i" => i } }  # each << is one chunk, sent when the
#   end                                            # host has taken the previous ones
#
#   Snakepit.on_initialize { LOADED_MODEL = load_model }   # before the worker reports ready
#   Snakepit.on_shutdown { close_files }                  # once, at exit
#
# Tools get `args` (a Hash with String keys, decoded from JSON; binary blobs are binary
# Strings) and `ctx` (Snakepit::Context: session_id, correlation_id, state,
# call_host_tool, cancelled?, sleep, emit). They return any JSON value; binary Strings
# (String#b) travel as blobs. `params:` declares the parameters: `name: :type` (required) or
# `name: { type:, default:, description: }`, types int, float, number, str, bool, list,
# dict, bytes, any; missing, unexpected or mistyped arguments are refused with an
# invalid_arguments error before the tool runs (`extra: true` lets unknown ones through;
# without `params:` the tool takes anything). Raise Snakepit::InvalidArguments for arguments
# you check yourself; any other exception reaches the host as a tool error with its class
# name and backtrace. A streaming tool may also return an Enumerator (|args, ctx| with no
# `out`); `out << Snakepit::Chunk.new(data, final: true)` ends the stream early.
#
# Tools run in threads, up to --max-concurrency at a time: guard shared state with a Mutex
# (ctx.synchronize does it for the session's state). Cancellation (timeout, host cancel,
# early close of a stream) is cooperative: ctx.cancelled? turns true, ctx.sleep returns early,
# and a streaming tool's next `out <<` raises Snakepit::Cancelled (so its `ensure` runs).

require "logger"
require_relative "snakepit/proto"
require_relative "snakepit/values"
require_relative "snakepit/registry"
require_relative "snakepit/telemetry"

module Snakepit
  # Raised in a streaming tool by `out <<` once its request is over (cancelled, timed out or
  # closed by the host). Not a StandardError, so `rescue => e` in a tool does not swallow it.
  class Cancelled < Exception; end # rubocop:disable Lint/InheritException

  # A host tool call failed: category, type, message and details from the host.
  class HostToolError < StandardError
    attr_reader :category, :type, :details

    def initialize(category, type, message, details = {})
      super("#{type.to_s.empty? ? category : type}: #{message}")
      @category, @type, @details = category, type, details
    end
  end

  # An item of a stream with chunk metadata, or the final one (`final: true` ends the stream).
  Chunk = Struct.new(:data, :final, :metadata) do
    def initialize(data = nil, final: false, metadata: {})
      super(data, final, metadata)
    end
  end

  @events = EventBuffer.new
  @registry = nil
  @logger = Logger.new($stderr)

  class << self
    # The registry being filled: the worker sets it before it loads the tools file.
    attr_accessor :registry
    # The worker's Logger (stderr, the worker's --log-level; lines carry the correlation id).
    attr_accessor :logger
    # The process's telemetry queue.
    attr_reader :events

    # Define a unary tool; see the top of this file.
    def tool(name, description: "", params: nil, extra: false, &block)
      current.add(name, description: description, params: params, extra: extra,
                        streaming: false, block: block)
    end

    # Define a streaming tool: |args, ctx, out| writing `out << item`, or returning items.
    def stream_tool(name, description: "", params: nil, extra: false, &block)
      current.add(name, description: description, params: params, extra: extra,
                        streaming: true, block: block)
    end

    # The name and version reported by Describe (default: the file's name, "0.1.0").
    def adapter(name: nil, version: nil)
      current.adapter(name: name, version: version)
    end

    # Run before the worker reports ready; an exception fails the start (exit code 3).
    def on_initialize(&block)
      current.hook(:initialize, block)
    end

    # Run once when the worker stops (SIGTERM, host gone); errors are logged.
    def on_shutdown(&block)
      current.hook(:shutdown, block)
    end

    # Queue a telemetry event for the host; never blocks.
    def emit(name, measurements = {}, metadata = {})
      @events.put(name, measurements, metadata)
    end

    # Emit name.start, run the block, emit name.stop with its duration (or name.exception).
    def span(name, metadata = {})
      emit("#{name}.start", {}, metadata)
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      begin
        result = yield
      rescue Exception => e # rubocop:disable Lint/RescueException
        emit("#{name}.exception", { "duration" => elapsed(t0) },
             metadata.merge("error" => e.class.name))
        raise
      end
      emit("#{name}.stop", { "duration" => elapsed(t0) }, metadata)
      result
    end

    private

    def elapsed(t0)
      Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    end

    def current
      @registry or raise "Snakepit.tool and friends are for tools files loaded by the " \
                         "snakepit Ruby worker (worker.rb --script FILE)"
    end
  end
end
