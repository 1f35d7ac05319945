# frozen_string_literal: true

# Why and when the worker stops: stdin EOF (the host is gone), heartbeat loss while dependent,
# SIGTERM/SIGINT.

require_relative "protocol"

module Snakepit
  # The worker's stop requests and heartbeat clock.
  class Lifetime
    Stop = Struct.new(:code, :grace, :why)

    def initialize(log)
      @log = log
      @requests = Queue.new # Queue#push is allowed in a trap handler; a Mutex is not
      @mutex = Mutex.new
      @cv = ConditionVariable.new
      @stopping = false
      @serving = false
      @last_heartbeat = Job.now
    end

    def request_stop(code, grace, why)
      @requests << Stop.new(code, grace, why)
    end

    # Blocks until a stop is requested; from then on #stopping? is true.
    def wait_for_stop
      stop = @requests.pop
      @mutex.synchronize do
        @stopping = true
        @cv.broadcast
      end
      Snakepit.events.wake_all # telemetry streams end now
      stop
    end

    def stopping?
      @stopping
    end

    def serving!
      @mutex.synchronize { @serving = true }
      heartbeat!
    end

    def heartbeat!
      @last_heartbeat = Job.now
    end

    # Reads stdin until EOF (the host closed it or died: even kill -9 closes it).
    def watch_stdin(input)
      Thread.new do
        begin
          loop { input.readpartial(65_536) }
        rescue EOFError, IOError, SystemCallError
          nil
        end
        # Before ready nobody waits on the queue yet (the tools file may still be loading).
        exit!(EXIT_HOST_LOST) unless @mutex.synchronize { @serving }
        request_stop(EXIT_HOST_LOST, HOST_LOST_GRACE, "stdin closed: the host is gone")
      end
    end

    # Host heartbeats (WorkerService.Heartbeat) must keep coming; see the worker contract.
    def watch_heartbeats(timeout:, interval:, dependent:, host:, worker_id:)
      return if timeout <= 0
      check_every = [[interval, timeout].min / 2.0, 0.05].max
      Thread.new do
        until wait_stopping(check_every)
          next if Job.now - @last_heartbeat < timeout
          if host && probe(host, worker_id)
            heartbeat!
          elsif dependent
            request_stop(EXIT_HOST_LOST, HOST_LOST_GRACE, "no host heartbeat for #{timeout} s (dependent)")
            break
          else
            @log.warn("no host heartbeat for #{timeout} s; not dependent, serving on")
            heartbeat!
          end
        end
      end
    end

    private

    # True once stopping; else waits up to `seconds` for it.
    def wait_stopping(seconds)
      @mutex.synchronize do
        @cv.wait(@mutex, seconds) unless @stopping
        @stopping
      end
    end

    def probe(host, worker_id)
      host.call(:heartbeat, PB::WorkerHeartbeat.new(worker_id: worker_id, sent_at: Time.now.to_f),
                deadline: Time.now + 2)
      true
    rescue StandardError # HostToolError included: any failure means the host is gone
      false
    end
  end
end
