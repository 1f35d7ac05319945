# frozen_string_literal: true

# Running one tool call: Slots (at most --max-concurrency tools at once) and Job (the call in
# its own thread, its outcome, its stream items, its cancellation).
#
# Why a thread per call: the grpc thread serving the RPC must be free as soon as the RPC is
# over (answered, timed out, or cancelled by the host), whatever the tool does. Ruby cannot
# safely kill a thread, so cancellation is cooperative (Context#cancelled?, Context#sleep,
# `out <<` raising Cancelled); a tool that ignores it keeps its slot until it returns, and the
# next calls wait for a slot rather than run beyond --max-concurrency.

module Snakepit
  # A counting semaphore whose waiters also wake when their job is cancelled.
  class Slots
    attr_reader :size

    def initialize(size)
      @size = size
      @free = size
      @mutex = Mutex.new
      @cv = ConditionVariable.new
    end

    # Takes a slot, waiting as long as needed; false (no slot) if `job` is cancelled first.
    def acquire(job)
      @mutex.synchronize do
        @cv.wait(@mutex) while @free.zero? && job.cancel_reason.nil?
        return false unless job.cancel_reason.nil?
        @free -= 1
        true
      end
    end

    def release
      @mutex.synchronize do
        @free += 1
        @cv.broadcast
      end
    end

    # Wakes the waiters so that cancelled ones give up.
    def wake
      @mutex.synchronize { @cv.broadcast }
    end

    def in_use
      @mutex.synchronize { @size - @free }
    end
  end

  # One tool call. The serving (grpc) thread calls #wait_result or #next_event; the tool runs
  # in the job's own thread.
  class Job
    # Jobs whose thread still runs, whether or not their call is over: the heartbeat lists
    # their request ids (the host keeps a worker whose cancelled call still runs out of
    # rotation), and a stopping worker gives them a moment to finish before it exits.
    @live = Set.new
    @live_mutex = Mutex.new

    class << self
      def track(job) = @live_mutex.synchronize { @live << job }
      def untrack(job) = @live_mutex.synchronize { @live.delete(job) }
      def live_ids = @live_mutex.synchronize { @live.map(&:request_id) }

      # Waits up to `timeout` seconds in all for the live jobs' threads to end.
      def join_all(timeout)
        deadline = now + timeout
        @live_mutex.synchronize { @live.to_a }.each do |job|
          job.join([deadline - now, 0].max)
        end
      end
    end

    attr_reader :request_id

    # Stream items a tool may produce ahead of the transport (backpressure).
    BUFFER = 2

    # What `out` is in |args, ctx, out|.
    class Output
      def initialize(job)
        @job = job
      end

      # Sends `item` as one chunk (a Snakepit::Chunk for metadata or `final: true`). Blocks
      # while the transport is behind; raises Cancelled once the request is over.
      def <<(item)
        @job.push(item)
        self
      end
      alias push <<

      # Sends `item` as the final chunk; the stream ends here.
      def final(item = nil, metadata: {})
        @job.push(Chunk.new(item, final: true, metadata: metadata))
        nil
      end
    end

    def self.now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    attr_reader :tool, :ctx, :deadline, :cancel_reason

    # deadline: a Job.now value or nil.
    def initialize(tool:, args:, request:, session:, host:, slots:, deadline:)
      @tool, @args, @slots, @deadline = tool, args, slots, deadline
      @request_id = request.request_id
      @ctx = Context.new(self, request, session, host)
      @mutex = Mutex.new
      @cv = ConditionVariable.new
      @items = []
      @outcome = nil
      @cancel_reason = nil
      @on_cancel = []
    end

    def start
      Job.track(self)
      @thread = Thread.new do
        run
      ensure
        Job.untrack(self)
      end
      self
    end

    def join(timeout) = @thread&.join(timeout)

    # Ends the request for the tool: first reason wins (:cancelled, :timeout, :shutdown).
    def cancel(reason)
      callbacks = @mutex.synchronize do
        return unless @cancel_reason.nil?
        @cancel_reason = reason
        @cv.broadcast
        @on_cancel.slice!(0..)
      end
      @slots.wake
      callbacks.each do |cb|
        cb.call
      rescue StandardError
        nil # a failing cancel action (e.g. an already finished host call) changes nothing
      end
    end

    # Runs the block when the job is cancelled (at once if it already is).
    def on_cancel(&block)
      now = @mutex.synchronize do
        @on_cancel << block if @cancel_reason.nil?
        !@cancel_reason.nil?
      end
      block.call if now
    end

    # Waits up to `seconds`; true if the job was cancelled meanwhile.
    def wait_cancelled(seconds)
      until_time = Job.now + seconds.to_f
      @mutex.synchronize do
        while @cancel_reason.nil?
          left = until_time - Job.now
          break if left <= 0
          @cv.wait(@mutex, left)
        end
        !@cancel_reason.nil?
      end
    end

    # The outcome of a unary call: [:ok, value], [:error, exception], or [reason] when the
    # request ended first ([:timeout] once the deadline passes: the job is cancelled then).
    def wait_result
      wait_for { @outcome } || [@cancel_reason]
    end

    # The next thing a streaming call has for the transport: [:item, item], then its outcome
    # ([:ok, nil] or [:error, exception]), or [reason] when the request ended first.
    def next_event
      item = wait_for do
        if !@items.empty?
          @cv.broadcast # room for the producer
          [:item, @items.shift]
        else
          @outcome
        end
      end
      item || [@cancel_reason]
    end

    # From Output#<<, in the tool's thread.
    def push(item)
      @mutex.synchronize do
        @cv.wait(@mutex) while @items.size >= BUFFER && @cancel_reason.nil?
        raise Cancelled, "the request is over (#{@cancel_reason})" unless @cancel_reason.nil?
        @items << item
        @cv.broadcast
      end
    end

    private

    # Waits until the block returns something (under the lock), the job is cancelled, or the
    # deadline passes (which cancels it with :timeout). Once the job timed out, only a success
    # or an item counts: a failure is the timeout's doing (a host call it cut, a tool giving
    # up), whichever thread noticed the deadline first; nil then, so the caller reports the
    # cancel reason.
    def wait_for
      timed_out = false
      found = @mutex.synchronize do
        loop do
          value = yield
          break value if value || !@cancel_reason.nil?
          left = @deadline && @deadline - Job.now
          if left && left <= 0
            timed_out = true
            break nil
          end
          @cv.wait(@mutex, left)
        end
      end
      cancel(:timeout) if timed_out
      return found unless @mutex.synchronize { @cancel_reason == :timeout }
      found if found && %i[ok item].include?(found.first)
    end

    def run
      Thread.current.report_on_exception = false
      Thread.current[:snakepit_correlation_id] = @ctx.correlation_id
      outcome = [:cancelled]
      if @slots.acquire(self)
        begin
          outcome = [:ok, @tool.streaming ? produce : @tool.call(@args, @ctx)]
        rescue Cancelled
          outcome = [:cancelled]
        rescue Exception => e # rubocop:disable Lint/RescueException -- a tool error never stops the worker
          outcome = [:error, e]
        ensure
          @slots.release
        end
      end
      finish(outcome)
    end

    def produce
      out = Output.new(self)
      if @tool.writes_to_out?
        @tool.call(@args, @ctx, out)
      else
        items = @tool.call(@args, @ctx)
        unless items.respond_to?(:each)
          raise TypeError, "streaming tool #{@tool.name.inspect} must take |args, ctx, out| " \
                           "or return an Enumerable; it returned #{items.class}"
        end
        items.each { |item| out << item }
      end
      nil
    end

    def finish(outcome)
      @mutex.synchronize do
        @outcome = outcome
        @cv.broadcast
      end
    end
  end
end
