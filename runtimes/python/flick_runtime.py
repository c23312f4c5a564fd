"""Flick Python runtime shim.

Loads a user's function and serves it over HTTP. Standard library only, and
deliberately light on imports because interpreter start-up is on the cold-start
path of every function instance.

Environment:
  PORT            port to listen on (required)
  FLICK_LISTEN_FD a listening socket to serve on instead (an instance without a network)
  FLICK_HOST      listen host (default 127.0.0.1)
  FLICK_CODE_DIR  directory with the user's code
  FLICK_CODE_URL  used when FLICK_CODE_DIR is unset: "http(s)://.../sha256:<64 hex>",
                  a gzip'd tar of the user's code, downloaded, checked against
                  the digest that is the URL's last path segment and unpacked
                  into a fresh temporary directory before serving
  FLICK_HANDLER   "module.function" (default "main.handle"); the module may be
                  dotted ("pkg.mod.fn") or use slashes ("src/app.fn") and is
                  resolved relative to the code directory

With neither FLICK_CODE_DIR nor FLICK_CODE_URL, the shim starts in generic mode
and waits for POST /_flick/specialize with JSON
  {"codeDir": "...", "handler": "...", "env": {"K": "V"}}   or
  {"codeURL": "http://.../sha256:<64 hex>", "handler": "...", "env": {...}}
(exactly one of codeDir and codeURL); it answers 200 {"ok": true}, or 500
{"error": "..."} and stays generic. A code archive may hold only regular files
and directories with relative paths free of "..", at most 10000 entries and
256 MiB unpacked.

The handler is called as handler(req) and may return str, bytes, dict/list
(or another JSON scalar), None, or a (status, headers, body) tuple. If it
returns an awaitable (async def), it is run to completion with asyncio, which
is imported only in that case.
"""

import importlib
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import parse_qs, urlsplit

SPECIALIZE_PATH = "/_flick/specialize"

_handler = None  # the user's callable once loaded; None means generic mode
_specialize_lock = threading.Lock()


def _format_exc():
    """The current exception with its traceback, minus the shim's and the
    import machinery's own frames, which only hide the user's code."""
    import traceback  # only needed on failures; keep it off the start-up path

    te = traceback.TracebackException(*sys.exc_info())
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if f.filename != __file__
         and f.filename != importlib.__file__
         and not f.filename.startswith("<frozen importlib")]
    )
    return "".join(te.format())


class Headers(dict):
    """Request headers: a plain dict with lower-case keys (so it serialises
    as JSON) whose lookups are case-insensitive."""

    __slots__ = ()

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and dict.__contains__(self, key.lower())

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)


class Request:
    """What the user's handler receives."""

    __slots__ = ("method", "path", "query_string", "query", "query_all", "headers", "body")

    def __init__(self, method, path, query_string, headers, body):
        self.method = method
        self.path = path  # percent-encoded, without the query string
        self.query_string = query_string
        self.query_all = parse_qs(query_string, keep_blank_values=True) if query_string else {}
        self.query = {k: v[0] for k, v in self.query_all.items()}
        self.headers = headers
        self.body = body

    def json(self):
        """Parse the body as JSON; None for an empty body."""
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.path)


def load_handler(code_dir, spec):
    """Import spec ("module.function") from code_dir, which becomes the cwd and
    the first sys.path entry. Raises on any failure."""
    code_dir = os.path.abspath(code_dir)
    module_name, sep, func_name = spec.replace("/", ".").rpartition(".")
    if not sep or not module_name or not func_name:
        raise ValueError("handler %r must have the form module.function" % spec)
    if not os.path.isdir(code_dir):
        raise FileNotFoundError("code directory %r does not exist" % code_dir)
    os.chdir(code_dir)
    if not sys.path or sys.path[0] != code_dir:
        sys.path.insert(0, code_dir)
    importlib.invalidate_caches()  # the directory may be newer than the finder caches
    module = importlib.import_module(module_name)
    try:
        fn = getattr(module, func_name)
    except AttributeError:
        raise AttributeError(
            "module %r (%s) has no function %r" % (module_name, getattr(module, "__file__", "?"), func_name)
        ) from None
    if not callable(fn):
        raise TypeError("%s.%s is not callable (got %s)" % (module_name, func_name, type(fn).__name__))
    return fn


MAX_UNPACKED_BYTES = 256 << 20  # sum of a code archive's file sizes
MAX_ENTRIES = 10000  # entries in a code archive
# The download and the decompressed tar stream: file data plus headers, padding
# and PAX records.
MAX_STREAM_BYTES = MAX_UNPACKED_BYTES + (64 << 20)
DOWNLOAD_TIMEOUT = 60  # seconds a download may stall


class CodeFetchError(Exception):
    """A code archive could not be downloaded, verified or unpacked."""


def fetch_code(url):
    """Download the gzip'd tar at url, check that its sha256 is the digest
    that ends the URL ("sha256:<hex>"), unpack it into a fresh temporary
    directory and return that directory. Raises CodeFetchError naming what
    failed; nothing is left on disk then."""
    import shutil
    import tempfile

    want = _url_digest(url)
    # Both the download and the tar stream go through anonymous temporary
    # files, so memory use does not grow with the archive.
    with tempfile.TemporaryFile() as tar:
        with tempfile.TemporaryFile() as raw:
            got = _download(url, raw)
            if got != want:
                raise CodeFetchError("code archive %s: sha256 digest mismatch (downloaded bytes are sha256:%s)" % (url, got))
            _gunzip(raw, tar, url)
        dest = tempfile.mkdtemp(prefix="flick-code-")
        try:
            _untar(tar, dest, url)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    return dest


def _url_digest(url):
    """The lower-case hex digest that is url's last path segment."""
    from urllib.parse import unquote

    try:
        u = urlsplit(url)
        u.port  # raises ValueError for a port that is not a number
        ok = u.scheme in ("http", "https") and bool(u.hostname)
    except ValueError:
        ok = False
    segment = unquote(u.path.rpartition("/")[2]) if ok else ""
    hex_part = segment[len("sha256:"):]
    if not segment.startswith("sha256:") or len(hex_part) != 64 \
            or not all(c in "0123456789abcdefABCDEF" for c in hex_part):
        raise CodeFetchError("codeURL %s must be http(s)://.../sha256:<64 hex digits>" % json.dumps(url))
    return hex_part.lower()


def _download(url, out):
    """GET url into the file out (no redirects, no proxies) and return the
    sha256 hex digest of what was received."""
    import hashlib
    import http.client

    u = urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=DOWNLOAD_TIMEOUT)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=DOWNLOAD_TIMEOUT)
    target = (u.path or "/") + ("?" + u.query if u.query else "")
    h = hashlib.sha256()
    try:
        conn.request("GET", target, headers={"User-Agent": "flick-python-runtime"})
        resp = conn.getresponse()
        if not 200 <= resp.status <= 299:
            raise CodeFetchError("download %s: HTTP %d %s" % (url, resp.status, resp.reason))
        n = 0
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            if n > MAX_STREAM_BYTES:
                raise CodeFetchError("download %s: larger than %d bytes" % (url, MAX_STREAM_BYTES))
            h.update(chunk)
            out.write(chunk)
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise CodeFetchError("download %s: %s" % (url, str(e) or type(e).__name__)) from None
    finally:
        conn.close()
    return h.hexdigest()


def _gunzip(src, dst, url):
    """Decompress the file src into the file dst, at most MAX_STREAM_BYTES."""
    import gzip
    import zlib

    src.seek(0)
    n = 0
    try:
        with gzip.GzipFile(fileobj=src, mode="rb") as gz:
            while True:
                chunk = gz.read(1 << 20)
                if not chunk:
                    break
                n += len(chunk)
                if n > MAX_STREAM_BYTES:
                    raise CodeFetchError("code archive %s: decompressed tar larger than %d bytes" % (url, MAX_STREAM_BYTES))
                dst.write(chunk)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise CodeFetchError("code archive %s: not a gzip'd tar: %s" % (url, str(e) or type(e).__name__)) from None


_REFUSED_TYPES = {
    b"1": "hard links are not allowed",
    b"2": "symlinks are not allowed",
    b"3": "device nodes are not allowed",
    b"4": "device nodes are not allowed",
    b"6": "fifos are not allowed",
}


def _untar(f, dest, url):
    """Check every entry of the tar file f, then extract it into dest."""
    import tarfile

    if not hasattr(tarfile, "data_filter"):
        raise CodeFetchError(
            "code archive %s: this Python (%s) lacks tarfile extraction filters; "
            "codeURL needs 3.8.17+, 3.9.17+, 3.10.12+, 3.11.4+ or 3.12+" % (url, sys.version.split()[0])
        )

    def refuse(name, why):
        return CodeFetchError("code archive %s: entry %s: %s" % (url, json.dumps(name), why))

    import posixpath

    regular = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
    seen = set()  # files, by normalised name: a duplicate is refused, not overwritten
    f.seek(0)
    try:
        with tarfile.open(fileobj=f, mode="r:") as tf:
            members, total = [], 0
            for m in tf:  # reads one header at a time, so the count check stops a huge archive early
                if len(members) == MAX_ENTRIES:
                    raise CodeFetchError("code archive %s: more than %d entries" % (url, MAX_ENTRIES))
                name = m.name
                if not name:
                    raise refuse(name, "empty name")
                if "\0" in name:
                    raise refuse(name, "name contains NUL")
                if name.startswith("/"):
                    raise refuse(name, "absolute path")
                if ".." in name.split("/"):
                    raise refuse(name, 'path contains ".."')
                if m.type in regular:
                    key = posixpath.normpath(name)
                    if key in seen:
                        raise refuse(name, "duplicate entry")
                    seen.add(key)
                    total += m.size
                    if total > MAX_UNPACKED_BYTES:
                        raise refuse(name, "unpacked size exceeds %d bytes" % MAX_UNPACKED_BYTES)
                elif m.type != tarfile.DIRTYPE:
                    why = _REFUSED_TYPES.get(m.type) or "unsupported entry type %s" % json.dumps(m.type.decode("latin-1"))
                    raise refuse(name, why)
                members.append(m)
            # The data filter is a second line of defence (paths outside dest,
            # links, special files) and keeps modes sane: no setuid/setgid,
            # no group/other write, the owner's executable bit kept.
            tf.extractall(dest, members=members, filter="data")
    except tarfile.TarError as e:  # a corrupt tar, or the filter refusing an entry
        raise CodeFetchError("code archive %s: %s" % (url, e)) from None
    except OSError as e:
        raise CodeFetchError("code archive %s: unpacking: %s" % (url, e)) from None


def _specialize(payload):
    """Load a handler in generic mode. On failure, undo environment, cwd,
    sys.path and sys.modules changes so a later attempt starts clean."""
    global _handler
    usage = ('specialize body must be JSON {"codeDir": "...", "handler": "...", "env": {...}} '
             'or {"codeURL": "http://.../sha256:<hex>", "handler": "...", "env": {...}}')
    if not isinstance(payload, dict):
        raise ValueError(usage)
    code_dir, code_url = payload.get("codeDir"), payload.get("codeURL")
    if any(v is not None and not isinstance(v, str) for v in (code_dir, code_url)):
        raise ValueError(usage)
    if bool(code_dir) == bool(code_url):
        raise ValueError(usage + ", with exactly one of codeDir and codeURL")
    env = payload.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError("env must be an object of strings")
    fetched = fetch_code(code_url) if code_url else None
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    try:
        for k, v in env.items():
            os.environ[str(k)] = v if isinstance(v, str) else json.dumps(v)
        _handler = load_handler(fetched or code_dir, payload.get("handler") or "main.handle")
    except BaseException:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            del sys.modules[name]
        if fetched:
            import shutil

            shutil.rmtree(fetched, ignore_errors=True)
        raise


def _encode(body):
    """Map a handler body to (default content type or None, bytes)."""
    if body is None:
        return None, b""
    if isinstance(body, str):
        return "text/plain; charset=utf-8", body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return "application/octet-stream", bytes(body)
    if isinstance(body, (dict, list, int, float)):  # bool is an int
        return "application/json", json.dumps(body).encode("utf-8")
    raise TypeError("handler returned unsupported type %s" % type(body).__name__)


def _build_response(result):
    """Turn a handler's return value into (status, [(name, value)], body)."""
    status, extra = None, None
    if isinstance(result, tuple):
        if len(result) != 3:
            raise TypeError("a tuple response must be (status, headers, body), got %d items" % len(result))
        status, extra, result = result
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise TypeError("response status must be an int in 100..599, got %r" % (status,))
        if extra is not None and not isinstance(extra, dict):
            raise TypeError("response headers must be a dict, got %s" % type(extra).__name__)
    ctype, body = _encode(result)
    if status is None:
        status = 204 if result is None else 200
    headers = {}
    if ctype:
        headers["content-type"] = ("Content-Type", ctype)
    for name, value in (extra or {}).items():
        name = str(name)
        # Framing is ours to decide; a user-supplied length could desync keep-alive.
        if name.lower() in ("content-length", "transfer-encoding"):
            continue
        headers[name.lower()] = (name, value)
    out = []
    for name, value in headers.values():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            v = str(v)
            if "\r" in v or "\n" in v or "\r" in name or "\n" in name:
                raise ValueError("response header %r contains a line break" % name)
            out.append((name, v))
    return status, out, body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for pooled platform connections
    disable_nagle_algorithm = True

    def __getattr__(self, name):
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; accept any method.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format, *args):
        pass  # no per-request logging: it is noise and costs time

    def log_error(self, format, *args):
        sys.stderr.write("flick: %s\n" % (format % args))

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # skip trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self):
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(400, [("Content-Type", "text/plain; charset=utf-8")], b"malformed request body\n")
            return
        url = urlsplit(self.path)
        fn = _handler
        if fn is None:
            self._generic(url.path, body)
            return
        headers = Headers()
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        req = Request(self.command, url.path, url.query, headers, body)
        try:
            result = fn(req)
            if hasattr(result, "__await__"):
                import asyncio  # only paid for by async handlers

                result = asyncio.run(result)
            status, out, payload = _build_response(result)
        except (Exception, SystemExit):
            text = _format_exc()
            sys.stderr.write("flick: handler error on %s %s\n%s" % (self.command, url.path, text))
            status, out, payload = 500, [("Content-Type", "text/plain; charset=utf-8")], text.encode("utf-8")
        self._send(status, out, payload)

    def _generic(self, path, body):
        if self.command != "POST" or path != SPECIALIZE_PATH:
            self._send_json(503, {"error": "runtime is not specialized yet"})
            return
        with _specialize_lock:
            if _handler is not None:  # lost a race with a concurrent specialize
                self._send_json(409, {"error": "runtime is already specialized"})
                return
            try:
                _specialize(json.loads(body or b"null"))
            except BaseException:  # including SystemExit raised by the user's module
                text = _format_exc()
                sys.stderr.write("flick: specialize failed\n" + text)
                self._send_json(500, {"error": text})
                return
        sys.stderr.write("flick python runtime specialized: %s loaded\n" % os.environ.get("FLICK_FUNCTION", "function"))
        self._send_json(200, {"ok": True})

    def _send_json(self, status, obj):
        self._send(status, [("Content-Type", "application/json")], json.dumps(obj).encode("utf-8"))

    def _send(self, status, headers, body):
        # One write for status line, headers and body: fewer syscalls, and no
        # Nagle/delayed-ACK stall between header and body segments.
        no_body = status in (204, 304) or status < 200
        lines = ["HTTP/1.1 %d %s\r\n" % (status, self.responses.get(status, ("",))[0])]
        lines += ["%s: %s\r\n" % h for h in headers]
        if not no_body:
            lines.append("Content-Length: %d\r\n" % len(body))
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1", "replace")
        if not no_body and self.command != "HEAD":
            data += body
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self):
        # HTTPServer.server_bind calls socket.getfqdn, a DNS lookup that can
        # stall start-up; the name is never used here.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def _exit_now(signum, frame):
    # os._exit: don't wait for in-flight handlers or non-daemon user threads.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


def main():
    global _handler
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)

    host = os.environ.get("FLICK_HOST") or "127.0.0.1"
    try:
        port = int(os.environ["PORT"])
    except (KeyError, ValueError):
        sys.stderr.write("flick: PORT must be set to a port number\n")
        sys.exit(1)

    code_dir = os.environ.get("FLICK_CODE_DIR")
    code_url = os.environ.get("FLICK_CODE_URL")
    if not code_dir and code_url:
        try:
            code_dir = fetch_code(code_url)
        except BaseException:
            sys.stderr.write(_format_exc())
            sys.stderr.write("flick: failed to fetch code from FLICK_CODE_URL\n")
            sys.exit(1)
    if code_dir:
        try:
            _handler = load_handler(code_dir, os.environ.get("FLICK_HANDLER") or "main.handle")
        except BaseException:
            sys.stderr.write(_format_exc())
            sys.stderr.write("flick: failed to load handler\n")
            sys.exit(1)

    listen_fd = os.environ.get("FLICK_LISTEN_FD")
    if ":" in host:
        Server.address_family = socket.AF_INET6
    try:
        if listen_fd:
            # No network of its own: Flick handed in the listening socket.
            server = Server((host, port), Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = socket.socket(fileno=int(listen_fd))
            server.server_address = server.socket.getsockname()
            server.server_name, server.server_port = server.server_address[:2]
        else:
            server = Server((host, port), Handler)
    except OSError as e:
        sys.stderr.write("flick: cannot listen on %s:%d: %s\n" % (host, port, e))
        sys.exit(1)
    mode = "" if _handler is not None else " (generic, waiting for %s)" % SPECIALIZE_PATH
    sys.stderr.write("flick python runtime listening on %s:%d%s\n" % (host, server.server_port, mode))
    server.serve_forever()


if __name__ == "__main__":
    main()
