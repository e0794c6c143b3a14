#!/usr/bin/env python3
"""Marks Pods Ready, standing in for the kubelet: `metacontroller dev` stores Pods but never
runs them, so nothing else would ever report them Ready.

Usage:
  python3 mark-ready.py -n cats -l app=nginx              # every matching Pod, once
  python3 mark-ready.py -n cats nginx-backend-0           # just these Pods
  python3 mark-ready.py -n cats -l app=nginx --watch 120  # keep marking new Pods for 120s

Each Pod gets `status.phase: Running` and a `Ready: True` condition through the status
subresource (`kubectl patch --subresource=status`).
"""
import argparse
import json
import subprocess
import time

READY = {
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
    }
}


def kubectl(*args):
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def is_ready(pod):
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pods(namespace, selector, names):
    if names:
        return [json.loads(kubectl("-n", namespace, "get", "pod", n, "-o", "json")) for n in names]
    args = ["-n", namespace, "get", "pods", "-o", "json"]
    if selector:
        args += ["-l", selector]
    return json.loads(kubectl(*args))["items"]


def mark(namespace, selector, names):
    marked = []
    for pod in pods(namespace, selector, names):
        meta = pod["metadata"]
        if is_ready(pod) or meta.get("deletionTimestamp"):
            continue
        kubectl("-n", namespace, "patch", "pod", meta["name"], "--subresource=status",
                "--type=merge", "-p", json.dumps(READY))
        marked.append(meta["name"])
    return marked


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="Pod names (default: every matching Pod)")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("-l", "--selector", default="")
    parser.add_argument("--watch", type=float, default=0.0, metavar="SECONDS",
                        help="keep marking Pods as they appear for this long")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS")
    args = parser.parse_args()
    deadline = time.monotonic() + args.watch
    while True:
        for name in mark(args.namespace, args.selector, args.names):
            print(f"pod/{name} marked Ready", flush=True)
        if time.monotonic() >= deadline:
            break
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
