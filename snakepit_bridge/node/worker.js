#!/usr/bin/env node
// The snakepit Node.js worker: serves snakepit.bridge.v1 WorkerService for a tools module.
//
//   // tools.js
//   module.exports = {
//     tools: {
//       add: async ({ a, b }) => a + b,                    // unary: (args, ctx) => value
//       count: async function* ({ n }, ctx) { for (let i = 0; i < n; i++) yield { i }; },
//     },
//     describe: { add: { description: "Add two numbers", parameters: ["a", "b"] } },
//     initialize: async () => {},   shutdown: async () => {},
//   };
//
// Run by the host as: node worker.js --script tools.js --worker-id ID --ready-fd N ...
// The process contract (flags, readiness line, secret, exit on stdin EOF) is protos/README.md.
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const SECRET_HEADER = "x-snakepit-secret";
const EXIT_OK = 0, EXIT_USAGE = 2, EXIT_INIT = 3, EXIT_HOST_LOST = 4;
const MAX_MESSAGE = 256 * 1024 * 1024;

function parseArgs(argv) {
  const opts = { workerId: `worker-${process.pid}`, readyFd: null, hostAddress: "",
    maxConcurrency: 1, logLevel: "info", heartbeatInterval: 2, heartbeatTimeout: 10,
    dependent: true, shutdownGrace: 5, script: null };
  const flags = { "--worker-id": ["workerId", String], "--ready-fd": ["readyFd", Number],
    "--host-address": ["hostAddress", String], "--max-concurrency": ["maxConcurrency", Number],
    "--log-level": ["logLevel", String], "--heartbeat-interval": ["heartbeatInterval", Number],
    "--heartbeat-timeout": ["heartbeatTimeout", Number], "--shutdown-grace": ["shutdownGrace", Number],
    "--script": ["script", String] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--no-dependent") { opts.dependent = false; continue; }
    const spec = flags[argv[i]];
    if (!spec || i + 1 >= argv.length) usage(`unknown or incomplete flag ${argv[i]}`);
    const value = spec[1](argv[++i]);
    if (spec[1] === Number && Number.isNaN(value)) usage(`${argv[i - 1]} needs a number`);
    opts[spec[0]] = value;
  }
  if (!opts.script) usage("--script path/to/tools.js is required");
  if (!(opts.maxConcurrency >= 1)) usage("--max-concurrency must be >= 1");
  return opts;
}

function usage(message) {
  process.stderr.write(`usage: node worker.js --script tools.js [flags]: ${message}\n`);
  process.exit(EXIT_USAGE);
}

const LEVELS = { debug: 10, info: 20, warning: 30, error: 40, none: 99 };
let logLevel = 20, workerId = "";
function log(level, message) {
  if (LEVELS[level] >= logLevel) {
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} [${workerId}] snakepit_node: ${message}\n`);
  }
}

// -- values: JSON + blobs ------------------------------------------------------------------
const DTYPES = { "<f8": Float64Array, "<f4": Float32Array, "<i4": Int32Array, "<i8": BigInt64Array,
  "<i2": Int16Array, "|i1": Int8Array, "|u1": Uint8Array, "<u2": Uint16Array, "<u4": Uint32Array };

function decode(json, blobs) {
  const text = json && json.length ? json.toString("utf8") : "";
  const value = text ? JSON.parse(text) : null;
  if (!blobs || Object.keys(blobs).length === 0) return value;
  const restore = (v) => {
    if (Array.isArray(v)) return v.map(restore);
    if (v && typeof v === "object") {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === "__blob__") {
        const blob = blobs[v.__blob__];
        if (!blob) throw new ArgError(`JSON refers to blob ${v.__blob__}, which the message lacks`);
        const Typed = DTYPES[blob.dtype];
        if (!blob.dtype || !Typed) return Buffer.from(blob.data);
        const bytes = Buffer.from(blob.data);
        return new Typed(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
      }
      const out = {};
      for (const k of keys) out[k] = restore(v[k]);
      return out;
    }
    return v;
  };
  return restore(value);
}

function encode(value) {
  const blobs = {};
  const json = JSON.stringify(value === undefined ? null : value, (key, v) => {
    if (v && v.type === "Buffer" && Array.isArray(v.data)) v = Buffer.from(v.data);
    if (Buffer.isBuffer(v)) { const name = `b${Object.keys(blobs).length}`; blobs[name] = { data: v, dtype: "", shape: [] }; return { __blob__: name }; }
    if (typeof v === "bigint") return Number(v);
    return v;
  });
  return { json: Buffer.from(json === undefined ? "null" : json, "utf8"), blobs };
}

class ArgError extends Error {}

function errorInfo(category, type, message, details, traceback) {
  return { category, type, message: String(message), details_json: Buffer.from(JSON.stringify(details || {})), traceback: traceback || "" };
}

function toolError(name, err) {
  const type = (err && err.constructor && err.constructor.name) || "Error";
  return errorInfo("tool", type, err && err.message !== undefined ? err.message : String(err), { tool: name }, (err && err.stack) || "");
}

// -- the worker ----------------------------------------------------------------------------
class Semaphore {
  constructor(n) { this.n = n; this.waiting = []; }
  async acquire() { if (this.n > 0) { this.n--; return; } await new Promise((r) => this.waiting.push(r)); }
  release() { const next = this.waiting.shift(); if (next) next(); else this.n++; }
}

function isGeneratorFunction(fn) {
  const name = fn && fn.constructor && fn.constructor.name;
  return name === "AsyncGeneratorFunction" || name === "GeneratorFunction";
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  workerId = opts.workerId;
  logLevel = LEVELS[opts.logLevel] || 20;
  const secret = process.env.SNAKEPIT_SECRET || "";
  delete process.env.SNAKEPIT_SECRET;
  if (!secret) usage("SNAKEPIT_SECRET is not set: a worker needs the host's per-run secret");

  const protoPath = path.join(__dirname, "..", "proto", "bridge.proto");
  const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const proto = grpc.loadPackageDefinition(def).snakepit.bridge.v1;

  let mod;
  try {
    mod = require(path.resolve(opts.script));
    if (!mod || typeof mod.tools !== "object") throw new Error(`${opts.script} must export { tools: { name: fn, ... } }`);
    if (typeof mod.initialize === "function") await mod.initialize();
  } catch (err) {
    process.stderr.write(`cannot load tools module ${opts.script}: ${err && err.stack || err}\n`);
    process.exit(EXIT_INIT);
  }
  const tools = mod.tools;
  const meta = mod.describe || {};
  const slots = new Semaphore(opts.maxConcurrency);
  const sessions = new Map();
  let inFlight = 0;
  let lastHeartbeat = Date.now();
  const secretBuf = Buffer.from(secret);

  const hostMeta = new grpc.Metadata();
  hostMeta.set(SECRET_HEADER, secret);
  let hostClient = null;
  function host() {
    if (!opts.hostAddress) throw Object.assign(new Error("no host address"), { hostType: "NoHost", category: "host" });
    if (!hostClient) hostClient = new proto.HostService(opts.hostAddress, grpc.credentials.createInsecure(),
      { "grpc.max_send_message_length": MAX_MESSAGE, "grpc.max_receive_message_length": MAX_MESSAGE });
    return hostClient;
  }

  class HostToolError extends Error {
    constructor(info) { super(info.message); this.name = "HostToolError"; this.type = info.type; this.category = info.category; this.details = JSON.parse((info.details_json && info.details_json.toString()) || "{}"); }
  }

  const telemetry = { enabled: true, rate: 1, allow: [], deny: [], queue: [], dropped: 0, wake: null };
  function wanted(name) {
    const match = (p) => name === p || name.startsWith(p + ".");
    if (!telemetry.enabled) return false;
    if (telemetry.allow.length && !telemetry.allow.some(match)) return false;
    if (telemetry.deny.some(match)) return false;
    return telemetry.rate >= 1 || Math.random() < telemetry.rate;
  }
  function emit(name, measurements, metadata, correlationId, force) {
    if (!force && !wanted(name)) return;
    if (telemetry.queue.length >= 1000) { telemetry.dropped++; return; }
    telemetry.queue.push({ name, measurements: measurements || {}, metadata: metadata || {}, correlationId: correlationId || "", ts: Date.now() / 1000 });
    if (telemetry.wake) telemetry.wake();
  }

  function makeCtx(req, abort) {
    const ctx = {
      sessionId: req.session_id || null, correlationId: req.correlation_id, metadata: req.metadata || {},
      signal: abort.signal,
      get cancelled() { return abort.signal.aborted; },
      state: req.session_id ? (sessions.get(req.session_id) || sessions.set(req.session_id, {}).get(req.session_id)) : {},
      emit: (name, m, md) => emit(name, m, md, req.correlation_id),
      callHostTool: (name, args) => new Promise((resolve, reject) => {
        let client;
        try { client = host(); } catch (err) { return reject(new HostToolError({ category: "host", type: "NoHost", message: err.message })); }
        const { json, blobs } = encode(args || {});
        client.CallHostTool({ tool: name, args_json: json, blobs, session_id: req.session_id, correlation_id: req.correlation_id, worker_id: workerId }, hostMeta, (err, resp) => {
          if (err) return reject(new HostToolError({ category: "host", type: grpc.status[err.code] || "Error", message: err.details || err.message }));
          if (!resp.success) return reject(new HostToolError(resp.error));
          try { resolve(decode(resp.result_json, resp.blobs)); } catch (e) { reject(e); }
        });
      }),
    };
    return ctx;
  }

  function prepare(req, streaming) {
    const fn = Object.prototype.hasOwnProperty.call(tools, req.tool) ? tools[req.tool] : undefined;
    if (typeof fn !== "function") {
      throw errorInfo("unknown_tool", "UnknownTool", `no tool named '${req.tool}'; available: ${Object.keys(tools).sort().join(", ")}`, { tool: req.tool, available: Object.keys(tools).sort() });
    }
    const isStream = isGeneratorFunction(fn) || (meta[req.tool] && meta[req.tool].streaming === true);
    if (isStream && !streaming) {
      throw errorInfo("invalid_arguments", "StreamingTool", `'${req.tool}' is a streaming tool: use stream() (ExecuteStream), not execute()`, { tool: req.tool });
    }
    let args;
    try { args = decode(req.args_json, req.blobs); } catch (err) {
      throw errorInfo("invalid_arguments", err instanceof ArgError ? "InvalidArguments" : "InvalidJSON", `arguments of '${req.tool}' are not valid: ${err.message}`, { tool: req.tool });
    }
    if (args === null) args = {};
    if (typeof args !== "object" || Array.isArray(args)) {
      throw errorInfo("invalid_arguments", "InvalidArguments", `arguments of '${req.tool}' must be a JSON object`, { tool: req.tool });
    }
    const required = (meta[req.tool] && meta[req.tool].required) || [];
    const missing = required.filter((p) => !(p in args));
    if (missing.length) throw errorInfo("invalid_arguments", "InvalidArguments", `${req.tool}() missing required argument(s) ${missing.join(", ")}`, { tool: req.tool, missing });
    return { fn, args, isStream };
  }

  function withTimeout(promise, seconds, name, abort) {
    if (!(seconds > 0)) return promise;
    let timer;
    const t = new Promise((_, reject) => { timer = setTimeout(() => { abort.abort(); reject(errorInfo("timeout", "Timeout", `'${name}' exceeded its ${seconds} s deadline`, { tool: name, timeout: seconds })); }, seconds * 1000); });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
  }

  function authed(handler, streaming) {
    return (call, callback) => {
      const given = Buffer.from(String((call.metadata.get(SECRET_HEADER) || [""])[0]));
      if (given.length !== secretBuf.length || !crypto.timingSafeEqual(given, secretBuf)) {
        const err = { code: grpc.status.UNAUTHENTICATED, details: "missing or wrong secret" };
        if (streaming) { call.emit("error", err); return; }
        return callback(err);
      }
      return handler(call, callback);
    };
  }

  // request_id -> tools of that request still running (the heartbeat lists them: the host
  // keeps a worker whose cancelled or timed-out call still runs out of rotation).
  const running = new Map();
  function started(id) { running.set(id, (running.get(id) || 0) + 1); }
  function ended(id) {
    const n = (running.get(id) || 1) - 1;
    if (n > 0) running.set(id, n); else running.delete(id);
  }

  async function runUnary(req, call, streaming) {
    const { fn, args } = prepare(req, streaming);
    const abort = new AbortController();
    if (call) call.on("cancelled", () => abort.abort());
    await slots.acquire();
    inFlight++;
    started(req.request_id);
    const work = Promise.resolve().then(() => fn(args, makeCtx(req, abort)));
    // A promise cannot be stopped: the slot is the tool's until it settles, not until the
    // caller stops waiting (a timed-out call must not let the next one run beside it).
    const release = () => { inFlight--; slots.release(); ended(req.request_id); };
    work.then(release, release);
    try {
      return await withTimeout(work, req.timeout, req.tool, abort);
    } catch (err) {
      if (err && err.category && err.details_json) throw err;
      throw toolError(req.tool, err);
    }
  }

  const handlers = {
    Ping: (call, cb) => cb(null, { message: call.request.message || "pong", worker_id: workerId, pid: process.pid, timestamp: Date.now() / 1000 }),
    Heartbeat: (call, cb) => { lastHeartbeat = Date.now(); cb(null, { seq: call.request.seq, worker_id: workerId, in_flight: inFlight, rss_bytes: process.memoryUsage().rss, timestamp: Date.now() / 1000, running: [...running.keys()] }); },
    Describe: (call, cb) => cb(null, {
      adapter: mod.name || path.basename(opts.script), version: mod.version || "0.1.0", language: "node",
      capacity: opts.maxConcurrency, worker_id: workerId, pid: process.pid, runtime_version: process.versions.node,
      tools: Object.keys(tools).map((name) => {
        const m = meta[name] || {};
        const required = m.required || [];
        const params = (m.parameters || []).map((p) => (typeof p === "string" ? { name: p, type: "any", required: required.includes(p) } : { type: "any", required: false, ...p }));
        return { name, description: m.description || "", streaming: isGeneratorFunction(tools[name]) || m.streaming === true, parameters: params };
      }),
    }),
    Execute: async (call, cb) => {
      try {
        const value = await runUnary(call.request, call, false);
        let enc;
        try { enc = encode(value); } catch (err) { return cb(null, { success: false, error: errorInfo("unserializable_result", "Unserializable", `'${call.request.tool}' returned a value that cannot be sent: ${err.message}`, { tool: call.request.tool }) }); }
        cb(null, { success: true, result_json: enc.json, blobs: enc.blobs });
      } catch (info) { cb(null, { success: false, error: info }); }
    },
    ExecuteStream: async (call) => {
      const req = call.request;
      let chunkId = 0;
      const write = async (msg) => {
        if (call.cancelled) return false;
        chunkId++;
        if (!call.write({ chunk_id: chunkId, ...msg })) await new Promise((r) => call.once("drain", r));
        return !call.cancelled;
      };
      try {
        let prepared;
        try { prepared = prepare(req, true); } catch (info) { await write({ is_final: true, error: info }); return call.end(); }
        if (!prepared.isStream) {
          try { const v = await runUnary(req, call, true); const e = encode(v); await write({ data_json: e.json, blobs: e.blobs, is_final: true }); }
          catch (info) { await write({ is_final: true, error: info }); }
          return call.end();
        }
        const abort = new AbortController();
        call.on("cancelled", () => abort.abort());
        await slots.acquire();
        inFlight++;
        started(req.request_id);
        let gen;
        try {
          gen = prepared.fn(prepared.args, makeCtx(req, abort));
          const deadline = req.timeout > 0 ? Date.now() + req.timeout * 1000 : null;
          while (!abort.signal.aborted) {
            let step = gen.next();
            if (deadline) step = withTimeout(Promise.resolve(step), (deadline - Date.now()) / 1000, req.tool, abort);
            const { value, done } = await step;
            if (done) break;
            const final = value && value.__snakepit_final === true;
            const data = final ? value.data : value;
            const e = data === undefined ? { json: Buffer.alloc(0), blobs: {} } : encode(data);
            if (!(await write({ data_json: e.json, blobs: e.blobs, is_final: final }))) break;
            if (final) return call.end();
          }
          if (!abort.signal.aborted) await write({ is_final: true });
        } catch (err) {
          const info = err && err.category && err.details_json ? err : toolError(req.tool, err);
          await write({ is_final: true, error: info });
        } finally {
          if (gen && typeof gen.return === "function") { try { await gen.return(); } catch (_) { /* its finally failed */ } }
          inFlight--; slots.release(); ended(req.request_id);
        }
      } finally { if (!call.cancelled) call.end(); }
    },
    InitSession: (call, cb) => { const created = !sessions.has(call.request.session_id); if (created) sessions.set(call.request.session_id, {}); cb(null, { created }); },
    EndSession: (call, cb) => cb(null, { existed: sessions.delete(call.request.session_id) }),
    StreamTelemetry: (call) => {
      call.on("data", (c) => { telemetry.enabled = c.enabled; telemetry.rate = c.sampling_rate; telemetry.allow = c.allow || []; telemetry.deny = c.deny || [];
        emit("telemetry.configured", { sampling_rate: c.sampling_rate }, { enabled: c.enabled }, "", true); });
      const flush = () => {
        while (telemetry.queue.length && !call.cancelled) {
          const ev = telemetry.queue.shift();
          call.write({ event: ev.name.split("."), measurements_json: Buffer.from(JSON.stringify(ev.measurements)), metadata_json: Buffer.from(JSON.stringify(ev.metadata)), timestamp: ev.ts, correlation_id: ev.correlationId, worker_id: workerId, dropped: telemetry.dropped });
          telemetry.dropped = 0;
        }
      };
      telemetry.wake = flush;
      call.on("cancelled", () => { telemetry.wake = null; });
      call.on("end", () => { telemetry.wake = null; call.end(); });
      flush();
    },
  };
  const streaming = new Set(["ExecuteStream", "StreamTelemetry"]);
  const service = {};
  for (const [name, h] of Object.entries(handlers)) service[name] = authed(h, streaming.has(name));

  const server = new grpc.Server({ "grpc.max_send_message_length": MAX_MESSAGE, "grpc.max_receive_message_length": MAX_MESSAGE });
  server.addService(proto.WorkerService.service, service);
  const port = await new Promise((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));

  let stopping = false;
  async function stop(code, grace, why) {
    if (stopping) return;
    stopping = true;
    log("info", `worker ${workerId} stopping: ${why}`);
    await new Promise((resolve) => {
      const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, grace * 1000);
      server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    });
    try { if (typeof mod.shutdown === "function") await mod.shutdown(); } catch (err) { log("error", `shutdown hook failed: ${err}`); }
    process.exit(code);
  }
  process.on("SIGTERM", () => stop(EXIT_OK, opts.shutdownGrace, "signal SIGTERM"));
  process.on("SIGINT", () => stop(EXIT_OK, opts.shutdownGrace, "signal SIGINT"));
  process.stdin.on("end", () => stop(EXIT_HOST_LOST, 0.5, "stdin closed: the host is gone"));
  process.stdin.on("error", () => stop(EXIT_HOST_LOST, 0.5, "stdin failed: the host is gone"));
  process.stdin.resume();

  if (opts.heartbeatTimeout > 0) {
    lastHeartbeat = Date.now();
    const every = Math.max(50, Math.min(opts.heartbeatInterval, opts.heartbeatTimeout) * 500);
    setInterval(() => {
      if (Date.now() - lastHeartbeat < opts.heartbeatTimeout * 1000) return;
      const lost = () => {
        if (opts.dependent) stop(EXIT_HOST_LOST, 0.5, `no host heartbeat for ${opts.heartbeatTimeout} s (dependent)`);
        else { log("warning", "no host heartbeat; not dependent, serving on"); lastHeartbeat = Date.now(); }
      };
      if (!opts.hostAddress) return lost();
      host().Heartbeat({ worker_id: workerId, sent_at: Date.now() / 1000 }, hostMeta, { deadline: Date.now() + 2000 }, (err) => { if (err) lost(); else lastHeartbeat = Date.now(); });
    }, every).unref();
  }

  const line = JSON.stringify({ port, pid: process.pid, worker_id: workerId, language: "node", protocol: 1 }) + "\n";
  if (opts.readyFd === null) process.stdout.write(line);
  else { fs.writeSync(opts.readyFd, line); fs.closeSync(opts.readyFd); }
}

main().catch((err) => { process.stderr.write(`worker failed: ${err && err.stack || err}\n`); process.exit(EXIT_INIT); });
