"""Fixtures for end-to-end tests: the built `metacontroller` binary in `dev` mode, kubectl
with a fresh cache directory, and Python hooks run as processes, as a user would."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("METACONTROLLER_BIN", ROOT / "target" / "debug" / "metacontroller"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=20.0, interval=0.1, what="condition"):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - report the last failure below
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last result: {last!r}")


class Cluster:
    """A running `metacontroller dev` and a kubectl bound to it."""

    def __init__(self, tmp: Path, extra_args=()):
        self.tmp = tmp
        self.kubeconfig = tmp / "kubeconfig"
        self.cache_dir = tmp / "kube-cache"
        self.log = open(tmp / "metacontroller.log", "wb")
        if not BINARY.exists():
            pytest.fail(f"{BINARY} is missing: build it with `cargo build -p metacontroller`")
        self.proc = subprocess.Popen(
            [str(BINARY), "dev", "--listen", "127.0.0.1:0",
             "--kubeconfig-out", str(self.kubeconfig), "--discovery-interval", "1s", *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: self.kubeconfig.exists() or self.proc.poll() is not None,
                       timeout=30, what="the kubeconfig")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"metacontroller dev exited early:\n{self.logs()}")
        self.env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(tmp))

    def kubectl(self, *args, input=None, check=True, timeout=60):
        cmd = ["kubectl", "--cache-dir", str(self.cache_dir), *args]
        res = subprocess.run(cmd, env=self.env, input=input, capture_output=True, text=True,
                             timeout=timeout, cwd=self.tmp)
        if check and res.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def get_json(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def exists(self, *args):
        return self.kubectl("get", *args, "-o", "name", check=False).returncode == 0

    def logs(self):
        self.log.flush()
        return (self.tmp / "metacontroller.log").read_text(errors="replace")[-8000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def cluster(tmp_path, request):
    c = Cluster(tmp_path)
    yield c
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        sys.stderr.write(f"\n--- metacontroller dev log ---\n{c.logs()}\n")
    c.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class Hook:
    """A Python hook script run as its own process on a loopback port."""

    def __init__(self, script: Path, tmp: Path):
        self.port = free_port()
        self.log = open(tmp / f"hook-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, timeout=15, what=f"hook {script.name} to listen")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def start_hook(tmp_path):
    hooks = []

    def start(script):
        h = Hook(Path(script), tmp_path)
        hooks.append(h)
        return h

    yield start
    for h in hooks:
        h.stop()


@pytest.fixture
def kubectl_available():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
