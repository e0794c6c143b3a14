#!/usr/bin/env python3
"""The hello-world tutorial's sync hook with a call counter, for the `hello-load` benchmark.

Loads the tutorial's hook module (examples/hello-world/sync.py) unchanged and serves its
handler with Python's ThreadingHTTPServer on 127.0.0.1, as a user would run it. Prints the port
it listens on; GET /calls answers the number of POSTs served so far. Stops when stdin closes,
so it never outlives the benchmark that started it.

SERVER is how the handler answers: `http10` (the tutorial as written: HTTP/1.0, one connection
per call), `keepalive` (HTTP/1.1, connections kept open; `http.server` sends the headers and the
body in two writes, Nagle's algorithm on) or `keepalive-nodelay` (the same with TCP_NODELAY).

Usage: python3 hello_hook.py PATH/TO/sync.py [SERVER]
"""
import importlib.util
import sys
import threading
from http.server import ThreadingHTTPServer


def load(path):
    spec = importlib.util.spec_from_file_location("hello_sync", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tutorial = load(sys.argv[1])
calls = 0
calls_lock = threading.Lock()


class Counting(tutorial.Controller):
    def do_POST(self):
        global calls
        with calls_lock:
            calls += 1
        super().do_POST()

    def do_GET(self):
        with calls_lock:
            body = str(calls).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def stop_when_stdin_closes(server):
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    mode = sys.argv[2] if len(sys.argv) > 2 else "http10"
    if mode not in ("http10", "keepalive", "keepalive-nodelay"):
        sys.exit("unknown server %r" % mode)
    if mode != "http10":
        Counting.protocol_version = "HTTP/1.1"
    if mode == "keepalive-nodelay":
        Counting.disable_nagle_algorithm = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=stop_when_stdin_closes, args=(server,), daemon=True).start()
    server.serve_forever()
