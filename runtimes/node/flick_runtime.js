'use strict';
// Flick Node.js runtime shim: loads a user's function and serves it over HTTP.
// Standard library only (CommonJS).
//
// Environment:
//   PORT            port to listen on (required)
//   FLICK_LISTEN_FD a listening socket to serve on instead (an instance without a network)
//   FLICK_HOST      listen host (default 127.0.0.1)
//   FLICK_CODE_DIR  directory with the user's code; if unset, start in generic
//                   mode and wait for POST /_flick/specialize
//   FLICK_HANDLER   "path[:export]" relative to FLICK_CODE_DIR (default
//                   "index.js"). Without an export name, module.exports itself
//                   is the handler (or its .default, for transpiled/ES modules);
//                   with one, module.exports[export]. ES modules that require()
//                   refuses are loaded with import().
//
// The handler is called as handler(req), may be sync or async, and may return
// a string, Buffer/Uint8Array, plain object/array (JSON), undefined/null (204),
// or a full response {statusCode, headers, body}. An object counts as a full
// response ONLY when it has a numeric `statusCode`; `status` alone is data, so
// returning e.g. {status: "ok"} is never misread as a response.

const http = require('http');
const path = require('path');
const fs = require('fs');

const SPECIALIZE_PATH = '/_flick/specialize';
// The pool's warm-up requests; a generic shim runs them through a throwaway handler.
const WARMUP_PATH = '/_flick/warmup';
let warmHandler = null;
const TEXT = 'text/plain; charset=utf-8';

let handler = null; // the user's function once loaded; null means generic mode
let specializing = false;

// The error with its stack, minus the shim's and Node's internal frames, which
// only hide the user's code.
function formatError(err) {
  if (!(err instanceof Error)) return 'non-Error thrown: ' + require('util').inspect(err);
  return String(err.stack || err)
    .split('\n')
    .filter((l) => !(/^\s+at /.test(l) && (l.includes(__filename) || /[( ]node:/.test(l))))
    .join('\n');
}

async function loadHandler(codeDir, spec) {
  codeDir = path.resolve(codeDir);
  const colon = spec.lastIndexOf(':');
  const file = colon >= 0 ? spec.slice(0, colon) : spec;
  const exportName = colon >= 0 ? spec.slice(colon + 1) : '';
  if (!file || (colon >= 0 && !exportName)) {
    throw new Error(`handler ${JSON.stringify(spec)} must have the form path[:export]`);
  }
  if (!fs.statSync(codeDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`code directory ${JSON.stringify(codeDir)} does not exist`);
  }
  process.chdir(codeDir);
  const full = path.resolve(codeDir, file);
  let mod;
  let esm = false;
  try {
    mod = require(full);
  } catch (err) {
    if (!err || err.code !== 'ERR_REQUIRE_ESM') throw err;
    mod = await import(require('url').pathToFileURL(full).href);
    esm = true;
  }
  let fn;
  if (exportName) {
    fn = mod == null ? undefined : mod[exportName];
    if (typeof fn === 'function') fn = fn.bind(mod); // keep `this` for methods
  } else if (!esm && typeof mod === 'function') {
    fn = mod;
  } else {
    fn = mod == null ? undefined : mod.default;
  }
  if (typeof fn !== 'function') {
    const what = exportName ? `export ${JSON.stringify(exportName)}` : 'module.exports';
    throw new TypeError(`${what} of ${full} is not a function (got ${fn === null ? 'null' : typeof fn})`);
  }
  return fn;
}

// Load a handler in generic mode. On failure, undo env, cwd and module cache
// changes so that a later attempt starts clean.
async function specialize(payload) {
  if (!payload || typeof payload !== 'object' || typeof payload.codeDir !== 'string' || !payload.codeDir) {
    throw new Error('specialize body must be JSON {"codeDir": "...", "handler": "...", "env": {...}}');
  }
  const env = payload.env || {};
  if (typeof env !== 'object' || Array.isArray(env)) throw new Error('env must be an object of strings');
  // The names in the env and the values the function's env replaces are saved, not a copy
  // of all of process.env, which costs several times more on the cold start's path.
  const savedNames = new Set(Object.keys(process.env));
  const savedEnv = new Map();
  const savedCwd = process.cwd();
  const savedCache = new Set(Object.keys(require.cache));
  try {
    for (const [k, v] of Object.entries(env)) {
      if (!savedEnv.has(k)) savedEnv.set(k, process.env[k]);
      process.env[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    handler = await loadHandler(payload.codeDir, payload.handler || 'index.js');
  } catch (err) {
    for (const k of Object.keys(process.env)) if (!savedNames.has(k)) delete process.env[k];
    for (const [k, v] of savedEnv) if (v !== undefined) process.env[k] = v;
    process.chdir(savedCwd);
    for (const k of Object.keys(require.cache)) if (!savedCache.has(k)) delete require.cache[k];
    throw err;
  }
}

function setOwn(obj, key, value) {
  // defineProperty so a "__proto__" query key is data, not a prototype swap.
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

function makeRequest(req, body) {
  let url = req.url;
  if (url[0] !== '/') {
    // absolute-form request target (proxies)
    const u = new URL(url);
    url = u.pathname + u.search;
  }
  const q = url.indexOf('?');
  const query = {};
  const queryAll = {};
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(url.slice(q + 1))) {
      if (Object.prototype.hasOwnProperty.call(queryAll, k)) {
        queryAll[k].push(v);
      } else {
        setOwn(query, k, v);
        setOwn(queryAll, k, [v]);
      }
    }
  }
  return {
    method: req.method,
    path: q >= 0 ? url.slice(0, q) : url, // percent-encoded, without the query
    headers: req.headers, // lower-case keys
    query, // first value per key
    queryAll,
    body,
    json() {
      return body.length ? JSON.parse(body.toString('utf8')) : null;
    },
  };
}

// Map a handler body to [default content type or null, Buffer or null].
function encode(body) {
  if (body === undefined || body === null) return [null, null];
  if (typeof body === 'string') return [TEXT, Buffer.from(body, 'utf8')];
  if (Buffer.isBuffer(body)) return ['application/octet-stream', body];
  if (ArrayBuffer.isView(body)) {
    return ['application/octet-stream', Buffer.from(body.buffer, body.byteOffset, body.byteLength)];
  }
  if (body instanceof ArrayBuffer) return ['application/octet-stream', Buffer.from(body)];
  const json = JSON.stringify(body);
  if (json === undefined) throw new TypeError(`handler returned unsupported type ${typeof body}`);
  return ['application/json', Buffer.from(json, 'utf8')];
}

function isFullResponse(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v) &&
    typeof v.statusCode === 'number';
}

// Turn a handler's return value into {status, headers: [[name, value]], body}.
function buildResponse(result) {
  let status = null;
  let extra = null;
  if (isFullResponse(result)) {
    status = result.statusCode;
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new TypeError(`statusCode must be an integer in 100..599, got ${status}`);
    }
    extra = result.headers;
    if (extra != null && (typeof extra !== 'object' || Array.isArray(extra))) {
      throw new TypeError('response headers must be an object');
    }
    result = result.body;
  }
  const [ctype, body] = encode(result);
  if (status === null) status = body === null ? 204 : 200;
  const headers = new Map();
  if (ctype) headers.set('content-type', ['Content-Type', ctype]);
  for (const [name, value] of Object.entries(extra || {})) {
    const lower = name.toLowerCase();
    // Framing is ours to decide; a user-supplied length could desync keep-alive.
    if (lower === 'content-length' || lower === 'transfer-encoding') continue;
    http.validateHeaderName(name);
    const v = Array.isArray(value) ? value.map(String) : String(value);
    for (const one of Array.isArray(v) ? v : [v]) http.validateHeaderValue(name, one);
    headers.set(lower, [name, v]);
  }
  return { status, headers: [...headers.values()], body };
}

function send(res, status, headers, body) {
  res.statusCode = status;
  for (const [name, value] of headers) res.setHeader(name, value);
  if (status === 204 || status === 304 || status < 200) {
    res.end();
    return;
  }
  body = body || Buffer.alloc(0);
  res.setHeader('Content-Length', body.length); // Node omits the body itself for HEAD
  res.end(body);
}

function sendJSON(res, status, obj) {
  send(res, status, [['Content-Type', 'application/json']], Buffer.from(JSON.stringify(obj)));
}

async function dispatch(req, res, body) {
  if (handler === null) return generic(req, res, body);
  const request = makeRequest(req, body);
  let out;
  try {
    out = buildResponse(await handler(request));
  } catch (err) {
    const text = formatError(err);
    process.stderr.write(`flick: handler error on ${req.method} ${request.path}\n${text}\n`);
    out = { status: 500, headers: [['Content-Type', TEXT]], body: Buffer.from(text + '\n') };
  }
  send(res, out.status, out.headers, out.body);
}

async function generic(req, res, body) {
  const q = req.url.indexOf('?');
  const p = q >= 0 ? req.url.slice(0, q) : req.url;
  if (p === WARMUP_PATH && warmHandler) {
    // Runs the whole user request path once on a throwaway handler, down to writing its
    // answer, so the first real request after specialization finds it compiled.
    try {
      const out = buildResponse(await warmHandler(makeRequest(req, body)));
      return send(res, out.status, out.headers, out.body);
    } catch (_) {
      return sendJSON(res, 503, { error: 'runtime is not specialized yet' });
    }
  }
  if (req.method !== 'POST' || p !== SPECIALIZE_PATH) {
    return sendJSON(res, 503, { error: 'runtime is not specialized yet' });
  }
  if (specializing) return sendJSON(res, 409, { error: 'specialization already in progress' });
  specializing = true;
  try {
    await specialize(body.length ? JSON.parse(body.toString('utf8')) : null);
  } catch (err) {
    const text = formatError(err);
    process.stderr.write(`flick: specialize failed\n${text}\n`);
    return sendJSON(res, 500, { error: text });
  } finally {
    specializing = false;
  }
  process.stderr.write(`flick node runtime specialized: ${process.env.FLICK_FUNCTION || 'function'} loaded\n`);
  sendJSON(res, 200, { ok: true });
}

function onRequest(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    dispatch(req, res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).catch((err) => {
      // Only reachable on a bug in the shim itself; never leave the client hanging.
      process.stderr.write(`flick: internal error\n${formatError(err)}\n`);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else {
        res.destroy();
      }
    });
  });
}

async function main() {
  const host = process.env.FLICK_HOST || '127.0.0.1';
  const port = Number(process.env.PORT);
  if (!process.env.PORT || !Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('flick: PORT must be set to a port number\n');
    process.exit(1);
  }
  const codeDir = process.env.FLICK_CODE_DIR;
  if (codeDir) {
    try {
      handler = await loadHandler(codeDir, process.env.FLICK_HANDLER || 'index.js');
    } catch (err) {
      process.stderr.write(`${formatError(err)}\nflick: failed to load handler\n`);
      process.exit(1);
    }
  }
  const server = http.createServer({ requireHostHeader: false }, onRequest);
  // The platform owns its connections' lifetimes: a warm pool instance waits
  // minutes with the connection it will be specialized over, so idle
  // keep-alive connections are never closed from this side.
  server.keepAliveTimeout = 0;
  server.headersTimeout = 66000;
  server.on('error', (err) => {
    process.stderr.write(`flick: cannot listen on ${host}:${port}: ${err.message}\n`);
    process.exit(1);
  });
  if (!handler) warmLoader();
  const listening = () => {
    const mode = handler ? '' : ` (generic, waiting for ${SPECIALIZE_PATH})`;
    process.stderr.write(`flick node runtime listening on ${host}:${server.address().port}${mode}\n`);
  };
  if (process.env.FLICK_LISTEN_FD) {
    // No network of its own: Flick handed in the listening socket.
    server.listen({ fd: Number(process.env.FLICK_LISTEN_FD) }, listening);
  } else {
    server.listen(port, host, listening);
  }
}

// warmLoader runs the module loader and the response path once while the instance waits in
// the pool, so a specialization does not pay for compiling them (several ms in Node).
async function warmLoader() {
  const os = require('os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flick-warm-'));
  const file = path.join(dir, 'index.js');
  const cwd = process.cwd();
  try {
    // A handler that answers a text body and a full response in turn, as user code does.
    fs.writeFileSync(file, 'let n = 0;\nmodule.exports = async (req) => (n++ % 2 ? ' +
      '{ statusCode: 200, headers: { "X-Warm": "1" }, body: req.json() } : `warm ${req.query.name}`);\n');
    // Through loadHandler, as a specialization will go.
    warmHandler = await loadHandler(dir, 'index.js');
    delete require.cache[file];
  } catch (_) {
    // warming is best effort
  } finally {
    process.chdir(cwd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Exit at once: in-flight requests are the platform's concern once it sends SIGTERM.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
// Node would otherwise crash on a promise the user forgot to await.
process.on('unhandledRejection', (err) => {
  process.stderr.write(`flick: unhandled promise rejection\n${formatError(err)}\n`);
});

main();
