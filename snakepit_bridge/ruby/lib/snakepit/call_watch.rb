# frozen_string_literal: true

# Noticing that the host cancelled a call, which grpc-ruby's server API does not offer.
#
# grpc-ruby only learns that a call was cancelled (or hit its deadline) when it next writes to
# it, and its unary handler sends the reply together with RECV_CLOSE_ON_SERVER, the one
# operation that completes when the client goes away. WatchedRpcDesc serves Execute and
# ExecuteStream instead: a watcher thread holds RECV_CLOSE_ON_SERVER for the whole call, so a
# cancel reaches the tool at once (Context#cancelled?, `out <<` raising Cancelled), and the
# replies are sent without it. This uses grpc-ruby's RpcDesc/ActiveCall internals (stable
# since 1.x; checked on Debian's 1.51); the Ruby worker tests cover it.

require "grpc"

module Snakepit
  # One server call and the thread watching for its end.
  class CallWatch
    include GRPC::Core::CallOps

    # Raised by #send_message when the call is already over (the host cancelled it).
    class Closed < StandardError; end

    # How long to wait for the watcher once our status is sent (it returns at once then).
    JOIN_TIMEOUT = 5

    def initialize(active_call)
      @active = active_call
      @core = active_call.instance_variable_get(:@call) # the GRPC::Core::Call
      @mutex = Mutex.new
      @closed = false
      @finishing = false
      @status_sent = false
      @on_close = []
      @watcher = Thread.new { watch }
    end

    # True once the call is over for the client (cancelled, deadline, or we finished it).
    def closed?
      @mutex.synchronize { @closed }
    end

    # Runs the block when the client cancels the call (at once if it already has).
    def on_cancel(&block)
      now = @mutex.synchronize do
        @on_close << block unless @closed
        @closed && !@finishing
      end
      block.call if now
    end

    # Sends one message; raises Closed if the client is gone. Blocks on flow control (this is
    # the stream's backpressure).
    def send_message(message)
      raise Closed, "the call was cancelled" if closed?
      @active.remote_send(message)
    rescue GRPC::Core::CallError => e
      raise Closed, "the call was cancelled (#{e.message})"
    end

    # Ends the call with status OK (after the reply was sent).
    def finish
      send_status(GRPC::Core::StatusCodes::OK, "OK")
    end

    # Ends the call with an error status (a bug in the servicer: never a tool's error).
    def fail_call(code, details)
      send_status(code, details)
    end

    # Releases the call: waits for the watcher, then closes it. Always called, last.
    def release
      @mutex.synchronize { @finishing = true }
      @core.cancel unless @status_sent || closed? # unanswered: end it for the client
      return unless @watcher.join(JOIN_TIMEOUT)
      # Closing destroys the call's completion queue: only once nothing waits on it.
      @active.send(:set_output_stream_done)
    rescue GRPC::Core::CallError
      nil
    end

    private

    def send_status(code, details)
      @mutex.synchronize { @finishing = true }
      return if closed?
      @core.run_batch(SEND_STATUS_FROM_SERVER => Struct::Status.new(code, details, {}))
      @status_sent = true
    rescue GRPC::Core::CallError
      nil # the client went away meanwhile: nothing left to tell it
    end

    def watch
      Thread.current.report_on_exception = false
      begin
        @core.run_batch(RECV_CLOSE_ON_SERVER => nil)
      rescue GRPC::Core::CallError
        nil
      end
      callbacks = @mutex.synchronize do
        @closed = true
        @finishing ? [] : @on_close.slice!(0..)
      end
      callbacks.each(&:call)
    end
  end

  # The RpcDesc of Execute and ExecuteStream: the handler gets a CallWatch instead of the
  # call view. Execute's handler returns the reply; ExecuteStream's yields each message.
  class WatchedRpcDesc < GRPC::RpcDesc
    def handle_request_response(active_call, mth, inter_ctx)
      req = active_call.read_unary_request
      inter_ctx.intercept!(:request_response, method: mth, call: active_call.single_req_view,
                                              request: req) do
        serve(active_call) do |watch|
          reply = mth.call(req, watch)
          watch.send_message(reply) unless watch.closed?
        end
      end
    end

    def handle_server_streamer(active_call, mth, inter_ctx)
      req = active_call.read_unary_request
      inter_ctx.intercept!(:server_streamer, method: mth, call: active_call.single_req_view,
                                             request: req) do
        serve(active_call) do |watch|
          mth.call(req, watch) { |message| watch.send_message(message) }
        end
      end
    end

    private

    def serve(active_call)
      watch = CallWatch.new(active_call)
      begin
        yield watch
        watch.finish
      rescue CallWatch::Closed
        nil # cancelled by the client: nobody to answer
      rescue StandardError => e
        warn "snakepit: #{name} failed: #{e.full_message(highlight: false)}"
        watch.fail_call(GRPC::Core::StatusCodes::INTERNAL, "#{e.class}: #{e.message}")
      ensure
        watch.release
      end
    end
  end
end
