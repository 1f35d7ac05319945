// The Node.js showcase tools (same names, arguments and result shapes as the Python showcase).
"use strict";

const OPERATIONS = ["upper", "lower", "reverse", "length"];
const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(() => resolve(false), ms);
  if (signal) signal.addEventListener("abort", () => { clearTimeout(t); resolve(true); }, { once: true });
});

class ShowcaseError extends Error { constructor(m) { super(m); this.name = "ShowcaseError"; } }

module.exports = {
  name: "NodeShowcase",
  version: "1.0.0",
  describe: {
    ping: { description: "Liveness check", parameters: ["message"] },
    echo: { description: "Return the arguments unchanged" },
    add: { description: "Add two numbers (integers stay integers)", parameters: ["a", "b"], required: ["a", "b"] },
    process_text: { description: "Transform a text", parameters: ["text", "operation"], required: ["text"] },
    sleep: { description: "Sleep; returns early when cancelled", parameters: ["seconds"], required: ["seconds"] },
    error_demo: { description: "Raise an error of the given type", parameters: ["error_type"] },
    stream_progress: { description: "Stream progress updates", parameters: ["steps", "delay_ms"] },
    stream_data: { description: "Stream count items", parameters: ["count", "delay"] },
    call_host_demo: { description: "Call a host tool", parameters: ["tool_name", "args"] },
    session_counter: { description: "Per-session counter kept in the worker" },
  },
  tools: {
    ping: ({ message = "pong" } = {}) => ({ status: "pong", message, pid: process.pid, timestamp: Date.now() / 1000 }),
    echo: (args) => args,
    add: ({ a, b }) => {
      if (typeof a !== "number" || typeof b !== "number") throw new TypeError("a and b must be numbers");
      return a + b;
    },
    process_text: ({ text, operation = "upper" }) => {
      if (!OPERATIONS.includes(operation)) throw new RangeError(`unknown operation '${operation}'; valid: ${OPERATIONS.join(", ")}`);
      if (operation === "upper") return text.toUpperCase();
      if (operation === "lower") return text.toLowerCase();
      if (operation === "reverse") return [...text].reverse().join("");
      return text.length;
    },
    sleep: async ({ seconds }, ctx) => {
      const t0 = Date.now();
      const cancelled = await sleep(seconds * 1000, ctx.signal);
      return { slept: (Date.now() - t0) / 1000, cancelled };
    },
    error_demo: ({ error_type = "value" } = {}) => {
      const errors = { value: RangeError, runtime: Error, key: ReferenceError, zero_division: RangeError, type: TypeError };
      if (error_type === "custom") throw new ShowcaseError("a custom error from the showcase");
      const E = errors[error_type];
      if (!E) throw new RangeError(`unknown error_type '${error_type}'`);
      throw new E(`${error_type} error raised on purpose`);
    },
    stream_progress: async function* ({ steps = 10, delay_ms = 100 } = {}, ctx) {
      for (let step = 1; step <= steps; step++) {
        if (delay_ms) await sleep(delay_ms, ctx.signal);
        yield { step, total: steps, progress: step / steps };
      }
    },
    stream_data: async function* ({ count = 5, delay = 0 } = {}, ctx) {
      for (let index = 0; index < count; index++) {
        yield { index, value: index * index };
        if (delay) await sleep(delay * 1000, ctx.signal);
      }
    },
    call_host_demo: async ({ tool_name = "host_echo", args = {} } = {}, ctx) => ({ host_result: await ctx.callHostTool(tool_name, args) }),
    session_counter: (args, ctx) => { ctx.state.counter = (ctx.state.counter || 0) + 1; return ctx.state.counter; },
  },
};
