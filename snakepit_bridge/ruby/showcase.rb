# The Ruby showcase tools (same names, arguments and result shapes as the Python showcase).

OPERATIONS = %w[upper lower reverse length].freeze
class ShowcaseError < StandardError; end

Snakepit.tool(:ping, description: "Liveness check", parameters: %w[message]) do |args, _ctx|
  { "status" => "pong", "message" => args.fetch("message", "pong"), "pid" => Process.pid,
    "timestamp" => Time.now.to_f }
end

Snakepit.tool(:echo, description: "Return the arguments unchanged") { |args, _ctx| args }

Snakepit.tool(:add, description: "Add two numbers (integers stay integers)", required: %w[a b]) do |args, _ctx|
  a, b = args["a"], args["b"]
  raise TypeError, "a and b must be numbers" unless a.is_a?(Numeric) && b.is_a?(Numeric)
  a + b
end

Snakepit.tool(:process_text, description: "Transform a text", required: %w[text],
                             parameters: %w[text operation]) do |args, _ctx|
  text, op = args["text"], args.fetch("operation", "upper")
  raise ArgumentError, "unknown operation '#{op}'; valid: #{OPERATIONS.join(', ')}" unless OPERATIONS.include?(op)
  case op
  when "upper" then text.upcase
  when "lower" then text.downcase
  when "reverse" then text.reverse
  else text.length
  end
end

Snakepit.tool(:sleep, description: "Sleep", required: %w[seconds]) do |args, _ctx|
  t0 = Time.now
  sleep(args["seconds"])
  { "slept" => Time.now - t0, "cancelled" => false }
end

Snakepit.tool(:error_demo, description: "Raise an error of the given type", parameters: %w[error_type]) do |args, _ctx|
  kind = args.fetch("error_type", "value")
  errors = { "value" => ArgumentError, "runtime" => RuntimeError, "key" => KeyError,
             "zero_division" => ZeroDivisionError }
  raise ShowcaseError, "a custom error from the showcase" if kind == "custom"
  raise errors.fetch(kind) { ArgumentError }, "#{kind} error raised on purpose"
end

Snakepit.stream_tool(:stream_progress, description: "Stream progress updates",
                                       parameters: %w[steps delay_ms]) do |args, _ctx, out|
  steps = args.fetch("steps", 10)
  delay = args.fetch("delay_ms", 100) / 1000.0
  (1..steps).each do |step|
    sleep(delay) if delay.positive?
    out << { "step" => step, "total" => steps, "progress" => step.to_f / steps }
  end
end

Snakepit.stream_tool(:stream_data, description: "Stream count items", parameters: %w[count delay]) do |args, _ctx, out|
  args.fetch("count", 5).times do |i|
    out << { "index" => i, "value" => i * i }
    sleep(args["delay"]) if args["delay"].to_f.positive?
  end
end

Snakepit.tool(:call_host_demo, description: "Call a host tool", parameters: %w[tool_name args]) do |args, ctx|
  { "host_result" => ctx.call_host_tool(args.fetch("tool_name", "host_echo"), args.fetch("args", {})) }
end

Snakepit.tool(:session_counter, description: "Per-session counter kept in the worker") do |_args, ctx|
  ctx.state["counter"] = ctx.state.fetch("counter", 0) + 1
end
