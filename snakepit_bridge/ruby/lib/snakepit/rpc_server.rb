# frozen_string_literal: true

# A grpc-ruby server that queues calls instead of refusing them.
#
# grpc-ruby's RpcServer answers RESOURCE_EXHAUSTED when a call arrives while none of its pool
# threads is free. A pool thread is busy for the whole call and also for a moment after the
# reply, until it has rejoined the pool; the host may send its next call as soon as it has the
# reply, so even a host that never exceeds its capacity would be refused now and then (measured
# with capacity 4: 200 quick calls got RESOURCE_EXHAUSTED with a pool of 8 threads). Here the
# accept loop waits for a free thread instead, and the call waits in grpc's own queue, as on
# any other gRPC server. Only RpcServer#available? (public) and the pool's queue of idle
# threads are used.

require "grpc"

module Snakepit
  # GRPC::Pool that can wait for an idle thread.
  class WaitablePool < GRPC::Pool
    # Blocks until a pool thread is idle. Only the server's accept loop takes idle threads
    # (Pool#schedule), and it is the caller, so the thread is still idle when this returns.
    def wait_for_idle_thread
      idle = @ready_workers.pop
      @ready_workers << idle
    end
  end

  # GRPC::RpcServer whose accept loop waits for a free pool thread (see above).
  class QueueingRpcServer < GRPC::RpcServer
    def initialize(pool_size:, pool_keep_alive: GRPC::Pool::DEFAULT_KEEP_ALIVE, **options)
      super
      @pool = WaitablePool.new(pool_size, keep_alive: pool_keep_alive)
    end

    def available?(an_rpc)
      @pool.wait_for_idle_thread unless @pool.ready_for_work?
      super
    end
  end
end
