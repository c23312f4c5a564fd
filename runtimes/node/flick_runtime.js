'use strict';
// Flick Node.js runtime shim: loads a user's function and serves it over HTTP.
// Standard library only (CommonJS).
//
// Environment:
//   PORT            port to listen on (required)
//   FLICK_LISTEN_FD a listening socket to serve on instead (an instance without a network)
//   FLICK_HOST      listen host (default 127.0.0.1)
//   FLICK_CODE_DIR  directory with the user's code
//   FLICK_CODE_URL  used when FLICK_CODE_DIR is unset: "http(s)://.../sha256:<64 hex>",
//                   a gzip'd tar of the user's code, downloaded, checked against
//                   the digest that is the URL's last path segment and unpacked
//                   into a fresh temporary directory before serving
//   FLICK_HANDLER   "path[:export]" relative to the code directory (default
//                   "index.js"). Without an export name, module.exports itself
//                   is the handler (or its .default, for transpiled/ES modules);
//                   with one, module.exports[export]. ES modules that require()
//                   refuses are loaded with import().
//
// With neither FLICK_CODE_DIR nor FLICK_CODE_URL, the shim starts in generic
// mode and waits for POST /_flick/specialize with JSON
//   {"codeDir": "...", "handler": "...", "env": {"K": "V"}}   or
//   {"codeURL": "http://.../sha256:<64 hex>", "handler": "...", "env": {...}}
// (exactly one of codeDir and codeURL); it answers 200 {"ok": true}, or 500
// {"error": "..."} and stays generic. A code archive may hold only regular
// files and directories with relative paths free of "..", at most 10000
// entries and 256 MiB unpacked.
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

const MAX_UNPACKED_BYTES = 256 * 1024 * 1024; // sum of a code archive's file sizes
const MAX_ENTRIES = 10000; // entries in a code archive
// The download and the decompressed tar stream: file data plus headers,
// padding and PAX records.
const MAX_STREAM_BYTES = MAX_UNPACKED_BYTES + 64 * 1024 * 1024;
const MAX_PAX_BYTES = 1024 * 1024;
const DOWNLOAD_IDLE_MS = 60000; // how long a download may stall
const BLOCK = 512;

// Download the gzip'd tar at url, check that its sha256 is the digest that
// ends the URL ("sha256:<hex>"), unpack it into a fresh temporary directory and
// return that directory. Errors name what failed; nothing is left on disk then.
async function fetchCode(url) {
  const { u, hex } = parseCodeURL(url);
  const data = await download(u, url);
  const got = require('crypto').createHash('sha256').update(data).digest('hex');
  if (got !== hex) {
    throw new Error(`code archive ${url}: sha256 digest mismatch (downloaded bytes are sha256:${got})`);
  }
  let tar;
  try {
    tar = require('zlib').gunzipSync(data, { maxOutputLength: MAX_STREAM_BYTES });
  } catch (err) {
    if (err && err.code === 'ERR_BUFFER_TOO_LARGE') {
      throw new Error(`code archive ${url}: decompressed tar larger than ${MAX_STREAM_BYTES} bytes`);
    }
    throw new Error(`code archive ${url}: not a gzip'd tar: ${err && err.message}`);
  }
  // Every entry is checked before anything is written.
  const entries = readTar(tar, (msg) => new Error(`code archive ${url}: ${msg}`));
  const dest = fs.mkdtempSync(path.join(require('os').tmpdir(), 'flick-code-'));
  try {
    writeEntries(entries, dest, url);
  } catch (err) {
    fs.rmSync(dest, { recursive: true, force: true });
    throw err;
  }
  return dest;
}

function parseCodeURL(url) {
  let u = null;
  let segment = '';
  try {
    u = new URL(url);
    segment = u.pathname.slice(u.pathname.lastIndexOf('/') + 1);
    segment = decodeURIComponent(segment);
  } catch (_) {
    // judged below
  }
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(segment);
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !m) {
    throw new Error(`codeURL ${JSON.stringify(url)} must be http(s)://.../sha256:<64 hex digits>`);
  }
  return { u, hex: m[1].toLowerCase() };
}

// GET url into memory (no redirects, no proxies).
function download(u, url) {
  const mod = u.protocol === 'https:' ? require('https') : http;
  return new Promise((resolve, reject) => {
    // The first failure wins; destroying the request afterwards only adds echoes.
    const fail = (msg) => reject(new Error(`download ${url}: ${msg}`));
    const req = mod.get(u, { agent: false, headers: { 'User-Agent': 'flick-node-runtime' } }, (res) => {
      if (res.statusCode < 200 || res.statusCode > 299) {
        fail(`HTTP ${res.statusCode} ${res.statusMessage}`);
        res.resume();
        return;
      }
      const chunks = [];
      let n = 0;
      res.on('data', (chunk) => {
        n += chunk.length;
        if (n > MAX_STREAM_BYTES) {
          fail(`larger than ${MAX_STREAM_BYTES} bytes`);
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve(Buffer.concat(chunks, n)));
      res.on('error', (err) => fail(err.message));
      res.on('close', () => {
        if (!res.complete) fail('connection closed before the end of the body');
      });
    });
    req.setTimeout(DOWNLOAD_IDLE_MS, () => {
      fail(`no data for ${DOWNLOAD_IDLE_MS / 1000} s`);
      req.destroy();
    });
    req.on('error', (err) => fail(err.message));
  });
}

const REFUSED_TYPES = {
  1: 'hard links are not allowed',
  2: 'symlinks are not allowed',
  3: 'device nodes are not allowed',
  4: 'device nodes are not allowed',
  6: 'fifos are not allowed',
  L: 'GNU long names are not supported',
  K: 'GNU long link names are not supported',
};

// A NUL-terminated string field.
function tarString(h, off, len) {
  let end = h.indexOf(0, off);
  if (end < 0 || end > off + len) end = off + len;
  return h.toString('utf8', off, end);
}

// A numeric field: octal text (NUL/space padded), or GNU base-256.
function tarNumber(h, off, len, what, fail) {
  if (h[off] & 0x80) {
    if (h[off] & 0x40) throw fail(`negative ${what} in tar header`);
    let v = h[off] & 0x3f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + h[off + i];
      if (v > Number.MAX_SAFE_INTEGER) throw fail(`${what} in tar header too large`);
    }
    return v;
  }
  const s = h.toString('latin1', off, off + len).replace(/^ +/, '').replace(/[ \0].*$/s, '');
  if (!/^[0-7]*$/.test(s)) throw fail(`bad ${what} field in tar header`);
  return s ? parseInt(s, 8) : 0;
}

// The records of a PAX extended header that matter here: path and size.
function parsePax(buf, fail) {
  const out = {};
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    const lenText = sp < 0 ? '' : buf.toString('latin1', pos, sp);
    const len = /^[0-9]{1,7}$/.test(lenText) ? Number(lenText) : 0;
    const end = pos + len;
    if (len <= sp - pos + 1 || end > buf.length || buf[end - 1] !== 0x0a) throw fail('malformed PAX header');
    const rec = buf.toString('utf8', sp + 1, end - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) throw fail('malformed PAX record');
    const key = rec.slice(0, eq);
    const value = rec.slice(eq + 1);
    if (key === 'path') {
      out.path = value;
    } else if (key === 'size') {
      if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) throw fail('bad PAX size');
      out.size = Number(value);
    } else if (key.startsWith('GNU.sparse.')) {
      throw fail('sparse files are not supported');
    }
    pos = end;
  }
  return out;
}

// Parse a ustar stream (with PAX extended headers) into a list of
// {name, dir, mode, data}, refusing anything but regular files and
// directories with relative, ".."-free names, and enforcing the limits.
function readTar(tar, fail) {
  const entries = [];
  let total = 0;
  let pax = {}; // from a PAX header, for the entry that follows it
  let off = 0;
  while (off < tar.length) { // an archive without end-of-archive blocks is accepted, as tar does
    if (tar.length - off < BLOCK) throw fail('truncated tar header');
    const h = tar.subarray(off, off + BLOCK);
    let sum = 0;
    let signedSum = 0;
    let zero = true;
    for (let i = 0; i < BLOCK; i++) {
      if (h[i] !== 0) zero = false;
      const b = i >= 148 && i < 156 ? 0x20 : h[i]; // the checksum field counts as spaces
      sum += b;
      signedSum += b > 127 ? b - 256 : b;
    }
    if (zero) break; // end of archive
    const stored = tarNumber(h, 148, 8, 'checksum', fail);
    if (stored !== sum && stored !== signedSum) throw fail(`bad tar header checksum at offset ${off}`);
    const type = String.fromCharCode(h[156]);
    let size = tarNumber(h, 124, 12, 'size', fail);
    const dataOff = off + BLOCK;
    if (type === 'x' || type === 'g') {
      if (size > MAX_PAX_BYTES) throw fail(`PAX header larger than ${MAX_PAX_BYTES} bytes`);
      if (dataOff + size > tar.length) throw fail('truncated PAX header');
      // Global headers ('g') only carry defaults such as git archive's commit id.
      if (type === 'x') pax = parsePax(tar.subarray(dataOff, dataOff + size), fail);
      off = dataOff + Math.ceil(size / BLOCK) * BLOCK;
      continue;
    }
    // Only POSIX ustar has the prefix field; GNU tar keeps other data there.
    const posix = h.toString('latin1', 257, 263) === 'ustar\0';
    let name = tarString(h, 0, 100);
    const prefix = posix ? tarString(h, 345, 155) : '';
    if (prefix) name = prefix + '/' + name;
    if (pax.path !== undefined) name = pax.path;
    if (pax.size !== undefined) size = pax.size;
    pax = {};
    const mode = tarNumber(h, 100, 8, 'mode', fail);

    if (entries.length === MAX_ENTRIES) throw fail(`more than ${MAX_ENTRIES} entries`);
    const refuse = (why) => fail(`entry ${JSON.stringify(name)}: ${why}`);
    if (!name) throw refuse('empty name');
    if (name.includes('\0')) throw refuse('name contains NUL');
    if (name.startsWith('/')) throw refuse('absolute path');
    if (name.split('/').includes('..')) throw refuse('path contains ".."');
    let dir;
    if (type === '5' || (type === '\0' && name.endsWith('/'))) {
      dir = true;
    } else if (type === '0' || type === '\0' || type === '7') {
      dir = false;
      total += size;
      if (total > MAX_UNPACKED_BYTES) throw refuse(`unpacked size exceeds ${MAX_UNPACKED_BYTES} bytes`);
    } else {
      throw refuse(REFUSED_TYPES[type] || `unsupported entry type ${JSON.stringify(type)}`);
    }
    const dataSize = dir ? 0 : size; // a directory's size field is ignored, as tar does
    if (dataOff + dataSize > tar.length) throw refuse('truncated file data');
    entries.push({ name, dir, mode, data: dir ? null : tar.subarray(dataOff, dataOff + dataSize) });
    off = dataOff + Math.ceil(size / BLOCK) * BLOCK;
  }
  return entries;
}

// Write checked entries under dest, a fresh directory. No entry can be a link,
// so no path can resolve outside dest; files are created exclusively so that
// a duplicate is an error rather than an overwrite.
function writeEntries(entries, dest, url) {
  for (const e of entries) {
    const target = path.resolve(dest, e.name);
    const fail = (msg) => new Error(`code archive ${url}: entry ${JSON.stringify(e.name)}: ${msg}`);
    if (target !== dest && !target.startsWith(dest + path.sep)) throw fail('outside the destination');
    try {
      if (e.dir) {
        fs.mkdirSync(target, { recursive: true, mode: 0o755 });
        continue;
      }
      fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
      // As Python's tarfile "data" filter: no setuid/setgid/sticky, no group
      // or other write, the owner may read and write, and execute bits only
      // if the owner has one.
      let mode = (e.mode & 0o755) | 0o600;
      if (!(mode & 0o100)) mode &= ~0o111;
      fs.writeFileSync(target, e.data, { flag: 'wx', mode });
      fs.chmodSync(target, mode); // exact, whatever the umask
    } catch (err) {
      throw fail(err.code === 'EEXIST' ? 'duplicate or conflicting entry' : err.message);
    }
  }
}

// Load a handler in generic mode. On failure, undo env, cwd and module cache
// changes so that a later attempt starts clean.
async function specialize(payload) {
  const usage = 'specialize body must be JSON {"codeDir": "...", "handler": "...", "env": {...}} ' +
    'or {"codeURL": "http://.../sha256:<hex>", "handler": "...", "env": {...}}';
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw new Error(usage);
  const { codeDir, codeURL } = payload;
  if ([codeDir, codeURL].some((v) => v != null && typeof v !== 'string')) throw new Error(usage);
  if (!codeDir === !codeURL) throw new Error(`${usage}, with exactly one of codeDir and codeURL`);
  const env = payload.env || {};
  if (typeof env !== 'object' || Array.isArray(env)) throw new Error('env must be an object of strings');
  const fetched = codeURL ? await fetchCode(codeURL) : null;
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
    handler = await loadHandler(fetched || codeDir, payload.handler || 'index.js');
  } catch (err) {
    for (const k of Object.keys(process.env)) if (!savedNames.has(k)) delete process.env[k];
    for (const [k, v] of savedEnv) if (v !== undefined) process.env[k] = v;
    process.chdir(savedCwd);
    for (const k of Object.keys(require.cache)) if (!savedCache.has(k)) delete require.cache[k];
    if (fetched) fs.rmSync(fetched, { recursive: true, force: true });
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
  let codeDir = process.env.FLICK_CODE_DIR;
  if (!codeDir && process.env.FLICK_CODE_URL) {
    try {
      codeDir = await fetchCode(process.env.FLICK_CODE_URL);
    } catch (err) {
      process.stderr.write(`${formatError(err)}\nflick: failed to fetch code from FLICK_CODE_URL\n`);
      process.exit(1);
    }
  }
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
