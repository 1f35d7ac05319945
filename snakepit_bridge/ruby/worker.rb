# frozen_string_literal: true

# The snakepit Ruby worker: serves snakepit.bridge.v1 WorkerService for a tools file.
#
#   ruby worker.rb --script my_tools.rb --worker-id w1 --ready-fd 3 [--max-concurrency N] ...
#
# How to write the tools file: lib/snakepit.rb (`Snakepit.tool :add, params: {...} do ... end`);
# an example with every kind of tool: showcase.rb. The process contract (flags, readiness line,
# secret, exit codes, heartbeats, SIGTERM) is the one every snakepit worker follows
# (protos/README.md, docs/writing-a-worker.md). Needs only Debian's `ruby` and `ruby-grpc`
# packages: the message and service classes are built from ../proto/bridge.desc at run time.
#
# Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad usage, 3 the tools file failed to load or
# initialize, 4 the host is gone (stdin EOF, or heartbeats lost while dependent).
#
# Capacity. grpc-ruby's own server answers RESOURCE_EXHAUSTED when a call arrives while all
# of its pool threads are busy, instead of queueing it; and a thread stays busy a moment after
# its reply, so even a host that keeps within its capacity gets refused now and then. The
# worker runs QueueingRpcServer (lib/snakepit/rpc_server.rb), whose accept loop waits for a
# free thread instead: a call never gets RESOURCE_EXHAUSTED, whatever the load. The pool is
#
#   pool_size = max_concurrency + CONTROL_CALLS            (CONTROL_CALLS = 8)
#
# so that the host's tool calls (at most its capacity for this worker, = --max-concurrency,
# reported by Describe) never make its other calls wait: the telemetry stream (open for the
# worker's life), heartbeats, Describe/Ping, InitSession/EndSession, with room to spare. A
# pool thread is busy only while its call is open (tools run in their own threads; a timed-out
# or cancelled call frees its thread at once), and at most max_concurrency tools run at once
# whatever the pool size (Slots): extra calls wait for a slot.

require "json"
require "logger"
require "optparse"
require_relative "lib/snakepit"
require_relative "lib/snakepit/auth"
require_relative "lib/snakepit/lifetime"
require_relative "lib/snakepit/rpc_server"
require_relative "lib/snakepit/servicer"
# A tools file may `require "snakepit"` (for its editor or its own tests): that is this one.
$LOAD_PATH.unshift(File.join(__dir__, "lib"))

module Snakepit
  # Runs one worker process.
  module Worker
    CONTROL_CALLS = 8
    LEVELS = { "debug" => Logger::DEBUG, "info" => Logger::INFO, "warning" => Logger::WARN,
               "warn" => Logger::WARN, "error" => Logger::ERROR,
               "none" => Logger::UNKNOWN + 1 }.freeze
    USAGE = "usage: ruby worker.rb --script TOOLS.rb [--worker-id ID] [--ready-fd N] " \
            "[--host-address HOST:PORT] [--max-concurrency N] [--log-level LEVEL] " \
            "[--heartbeat-interval S] [--heartbeat-timeout S] [--no-dependent] " \
            "[--shutdown-grace S]"

    Options = Struct.new(:script, :worker_id, :ready_fd, :host_address, :max_concurrency,
                         :log_level, :heartbeat_interval, :heartbeat_timeout, :dependent,
                         :shutdown_grace, keyword_init: true)

    module_function

    # The grpc-ruby thread pool size for a worker serving max_concurrency tool calls.
    def pool_size(max_concurrency)
      max_concurrency + CONTROL_CALLS
    end

    def parse(argv)
      o = Options.new(script: nil, worker_id: "worker-#{Process.pid}", ready_fd: nil,
                      host_address: "", max_concurrency: 1, log_level: "info",
                      heartbeat_interval: 2.0, heartbeat_timeout: 10.0, dependent: true,
                      shutdown_grace: 5.0)
      OptionParser.new(USAGE) do |p|
        p.on("--script PATH", String) { |v| o.script = v }
        p.on("--worker-id ID", String) { |v| o.worker_id = v }
        p.on("--ready-fd N", Integer) { |v| o.ready_fd = v }
        p.on("--host-address ADDR", String) { |v| o.host_address = v }
        p.on("--max-concurrency N", Integer) { |v| o.max_concurrency = v }
        p.on("--log-level LEVEL", LEVELS.keys) { |v| o.log_level = v }
        p.on("--heartbeat-interval S", Float) { |v| o.heartbeat_interval = v }
        p.on("--heartbeat-timeout S", Float) { |v| o.heartbeat_timeout = v }
        p.on("--no-dependent") { o.dependent = false }
        p.on("--shutdown-grace S", Float) { |v| o.shutdown_grace = v }
      end.parse!(argv)
      check(o, argv)
      o
    rescue OptionParser::ParseError => e
      usage(e.message)
    end

    def check(opts, rest)
      usage("unexpected argument(s) #{rest.join(' ')}") unless rest.empty?
      usage("--script PATH (the tools file) is required") if opts.script.nil?
      usage("--max-concurrency must be >= 1, got #{opts.max_concurrency}") if opts.max_concurrency < 1
      { heartbeat_interval: opts.heartbeat_interval, heartbeat_timeout: opts.heartbeat_timeout,
        shutdown_grace: opts.shutdown_grace }.each do |name, value|
        usage("--#{name.to_s.tr('_', '-')} must be >= 0, got #{value}") if value.negative?
      end
      usage("--heartbeat-interval must be > 0") if opts.heartbeat_interval.zero?
    end

    def usage(message)
      warn "#{USAGE}\nsnakepit ruby worker: #{message}"
      exit!(EXIT_USAGE)
    end

    def logger(opts)
      Logger.new($stderr, level: LEVELS.fetch(opts.log_level)).tap do |log|
        log.formatter = proc do |severity, time, _prog, message|
          corr = Thread.current[:snakepit_correlation_id]
          corr = corr.to_s.empty? ? "" : " correlation_id=#{corr}"
          "#{time.utc.strftime('%FT%T.%3N')} #{severity} [#{opts.worker_id}] snakepit_ruby: " \
            "#{message}#{corr}\n"
        end
      end
    end

    def ready_io(opts)
      return $stdout if opts.ready_fd.nil?
      IO.new(opts.ready_fd, "w")
    rescue SystemCallError, ArgumentError => e
      usage("--ready-fd #{opts.ready_fd} is not an open file descriptor (#{e.message})")
    end

    # Loads the tools file and runs its on_initialize hooks; exits 3 on any failure.
    def load_tools(opts, log)
      registry = Registry.new(File.basename(opts.script, ".rb"))
      Snakepit.registry = registry
      path = File.expand_path(opts.script)
      begin
        raise LoadError, "tools file #{path} does not exist" unless File.file?(path)
        load path
        registry.hooks[:initialize].each(&:call)
      rescue Exception => e # rubocop:disable Lint/RescueException -- anything the user's file raises
        log.error("cannot load tools file #{path}: #{e.full_message(highlight: false)}")
        exit!(EXIT_INIT)
      ensure
        Snakepit.registry = nil # tools are defined while the file loads, not later
      end
      registry
    end

    def start_server(opts, secret, servicer)
      server = QueueingRpcServer.new(
        pool_size: pool_size(opts.max_concurrency), poll_period: opts.shutdown_grace,
        interceptors: [Auth.new(secret)],
        server_args: GRPC_MESSAGE_ARGS.merge("grpc.so_reuseport" => 0)
      )
      port = server.add_http2_port("127.0.0.1:0", :this_port_is_insecure)
      server.handle(servicer)
      Thread.new { server.run }
      server.wait_till_running(30) or raise "the gRPC server did not start"
      [server, port]
    end

    def report_ready(io, opts, port)
      io.write(JSON.generate({ port: port, pid: Process.pid, worker_id: opts.worker_id,
                               language: "ruby", protocol: 1 }) + "\n")
      io.flush
      io.close unless io == $stdout
    end

    def run(argv)
      opts = parse(argv.dup)
      secret = ENV.delete("SNAKEPIT_SECRET").to_s # user code and its children must not see it
      usage("SNAKEPIT_SECRET is not set: a worker needs the host's per-run secret") if secret.empty?
      log = logger(opts)
      Snakepit.logger = log
      io = ready_io(opts)
      lifetime = Lifetime.new(log)
      %w[TERM INT].each do |sig|
        Signal.trap(sig) { lifetime.request_stop(EXIT_OK, opts.shutdown_grace, "signal SIG#{sig}") }
      end
      lifetime.watch_stdin($stdin)
      registry = load_tools(opts, log)
      host = opts.host_address.empty? ? nil : HostClient.new(opts.host_address, secret, opts.worker_id)
      servicer = Servicer.new(registry, worker_id: opts.worker_id,
                                        max_concurrency: opts.max_concurrency, host: host,
                                        lifetime: lifetime)
      server, port = start_server(opts, secret, servicer)
      report_ready(io, opts, port)
      lifetime.serving!
      log.info("serving #{registry.tools.size} tools of #{opts.script} on 127.0.0.1:#{port} " \
               "(capacity #{opts.max_concurrency}, grpc pool #{pool_size(opts.max_concurrency)})")
      lifetime.watch_heartbeats(timeout: opts.heartbeat_timeout, interval: opts.heartbeat_interval,
                                dependent: opts.dependent, host: host, worker_id: opts.worker_id)
      stop = lifetime.wait_for_stop
      log.info("stopping: #{stop.why}")
      shut_down(server, servicer, registry, stop, log)
    end

    # Graceful for a signal (in-flight calls get the grace, then are cancelled); quick when the
    # host is gone (nobody is waiting for answers). Always ends the process.
    def shut_down(server, servicer, registry, stop, log)
      if stop.code == EXIT_OK
        # Refuses new calls, waits up to poll_period (the grace) for open ones, cancels the rest.
        Thread.new { server.stop }.join(stop.grace + 3)
      end
      servicer.cancel_all(:shutdown)
      Job.join_all(1.0)   # cancelled tools get a moment to see it (and finish their writes)
      hooks = Thread.new do
        registry.hooks[:shutdown].each(&:call)
      rescue Exception => e # rubocop:disable Lint/RescueException
        log.error("on_shutdown failed: #{e.full_message(highlight: false)}")
      end
      log.warn("on_shutdown did not finish in time") unless hooks.join([stop.grace, 1.0].max)
    ensure
      $stdout.flush
      $stderr.flush
      # exit! skips finalizers: grpc's completion queues must not be torn down under calls
      # that tool threads may still hold.
      exit!(stop&.code || EXIT_OK)
    end
  end
end

Snakepit::Worker.run(ARGV) if $PROGRAM_NAME == __FILE__
