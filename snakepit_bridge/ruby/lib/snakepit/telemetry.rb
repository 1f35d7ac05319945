# frozen_string_literal: true

# Worker-side telemetry: events queued for the host with bounded memory.
#
#   Snakepit.emit("model.loaded", { "seconds" => 1.2 }, { "model" => "small" })
#   Snakepit.span("inference", { "batch" => 8 }) { ... }   # inference.start / inference.stop
#
# The host streams the events (WorkerService.StreamTelemetry) and controls enabling, sampling
# and allow/deny prefixes at run time. When the host is slow, events are dropped and counted
# (TelemetryEvent.dropped), never buffered without bound.

module Snakepit
  # The process's event queue (process-wide, like the Python bridge's telemetry.buffer).
  class EventBuffer
    MAX_NAME = 128
    MAX_QUEUE = 1000
    MAX_RATE = 1000 # events per second, over a one-second window

    Event = Struct.new(:name, :measurements, :metadata, :timestamp, :correlation_id)

    def initialize
      @mutex = Mutex.new
      @cv = ConditionVariable.new
      @events = []
      @dropped = 0
      @enabled = true
      @rate = 1.0
      @allow = []
      @deny = []
      @window_start = 0.0
      @window_count = 0
      @generation = 0
    end

    def configure(enabled:, sampling_rate:, allow:, deny:)
      @mutex.synchronize do
        @enabled = enabled
        @rate = sampling_rate.to_f.clamp(0.0, 1.0)
        @allow, @deny = allow.to_a, deny.to_a
      end
    end

    # Queue one event; force: past the filters (acknowledgements). Never blocks.
    def put(name, measurements = {}, metadata = {}, force: false)
      name = name.to_s
      if name.empty? || name.length > MAX_NAME
        raise ArgumentError, "telemetry event name must be a non-empty string of at most " \
                             "#{MAX_NAME} characters, got #{name.inspect[0, 80]}"
      end
      now = Time.now.to_f
      corr = Thread.current[:snakepit_correlation_id].to_s
      @mutex.synchronize do
        return unless force || wanted?(name)
        @window_start, @window_count = now, 0 if now - @window_start >= 1.0
        @window_count += 1
        if @window_count > MAX_RATE || @events.size >= MAX_QUEUE
          @dropped += 1
        else
          @events << Event.new(name, measurements.to_h, metadata.to_h, now, corr)
          @cv.broadcast
        end
      end
      nil
    end

    # [events, dropped] once there are events, or after `timeout` seconds, or when
    # `stop.call` is true (checked at every wake-up; #wake_all wakes everyone).
    def drain(timeout, stop)
      deadline = monotonic + timeout
      @mutex.synchronize do
        while @events.empty? && !stop.call
          left = deadline - monotonic
          break if left <= 0
          @cv.wait(@mutex, left)
        end
        events, @events = @events, []
        dropped, @dropped = @dropped, 0
        [events, dropped]
      end
    end

    def wake_all
      @mutex.synchronize { @cv.broadcast }
    end

    private

    def wanted?(name)
      return false unless @enabled
      match = ->(prefix) { name == prefix || name.start_with?("#{prefix}.") }
      return false if !@allow.empty? && @allow.none?(&match)
      return false if @deny.any?(&match)
      @rate >= 1.0 || rand < @rate
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
