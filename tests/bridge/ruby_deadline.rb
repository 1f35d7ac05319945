# frozen_string_literal: true

# Drives one Snakepit::Job whose tool makes a host call, with a fake host that forces which
# side notices the request's deadline first; prints the job's outcome kind (one line).
#
#   ruby ruby_deadline.rb LIB_DIR worker_first|host_first

$LOAD_PATH.unshift(ARGV.fetch(0))
require "snakepit"
require "snakepit/context"
require "snakepit/job"

order = ARGV.fetch(1)

# The worker notices first: the job's wait times out and cancels the host call; the tool's
# error (CANCELLED) is recorded before the serving thread reads the outcome — the order a
# loaded machine produced. The host notices first: its deadline fires before the worker's.
class FakeHost
  attr_reader :worker_id
  attr_accessor :job

  def initialize(order)
    @order = order
    @worker_id = "rb-test"
  end

  def call(_method, _request, deadline:, on_cancel:)
    raise "the host call has no deadline" if deadline.nil?
    if @order == "host_first"
      raise Snakepit::HostToolError.new("host", "DEADLINE_EXCEEDED", "Deadline Exceeded")
    end
    cancelled = Queue.new
    on_cancel.call do # in the serving thread, inside Job#cancel(:timeout)
      cancelled << true
      wait_for_outcome(5)
    end
    cancelled.pop
    raise Snakepit::HostToolError.new("host", "CANCELLED", "Cancelled")
  end

  # Until the tool's thread has recorded its outcome (Job#finish broadcasts on the job's cv).
  def wait_for_outcome(seconds)
    mutex, cv = %i[@mutex @cv].map { |name| @job.instance_variable_get(name) }
    until_time = Snakepit::Job.now + seconds
    mutex.synchronize do
      while @job.instance_variable_get(:@outcome).nil?
        left = until_time - Snakepit::Job.now
        raise "the tool did not finish" if left <= 0
        cv.wait(mutex, left)
      end
    end
  end
end

host = FakeHost.new(order)
tool = Snakepit::Tool.new(name: "call_host", description: "", params: nil, extra: true,
                          streaming: false,
                          block: proc { |_args, ctx| ctx.call_host_tool("slow", {}) })
request = Snakepit::PB::ExecuteRequest.new(tool: "call_host", timeout: 0.2)
deadline = Snakepit::Job.now + (order == "host_first" ? 30 : 0.2)
job = Snakepit::Job.new(tool: tool, args: {}, request: request, session: Snakepit::Session.fresh,
                        host: host, slots: Snakepit::Slots.new(1), deadline: deadline)
host.job = job
job.start
kind, value = job.wait_result
puts [kind, value.is_a?(Exception) ? "#{value.class}: #{value.message}" : value].inspect
