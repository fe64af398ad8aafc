#!/usr/bin/env python3
"""Writes symbol-order.txt: the functions a `foundation node` runs while it
starts, joins a cluster, serves /metrics and idles, in the order it first
runs them. build.rs hands the file to the linker, which puts those
functions side by side at the start of the binary's code, so a node maps
a few MB of code instead of pulling 64 KiB around each scattered function
(ADR 028; docs/BENCHMARKS.md, "Link order").

Function names carry a hash of their build's settings (profile,
features), so the file holds one list per build that ships: the release
build of the README and the Dockerfile, and the `dist` profile. Run it
again when `foundation bench memory`'s idle figure creeps up (new code on
the idle path is not in the file, so it lands wherever the linker puts
it):

    cargo build --release -p foundation-cli
    cargo build --profile dist -p foundation-cli
    python3 crates/foundation-cli/symbol-order.py target/release/foundation target/dist/foundation
    cargo build --release -p foundation-cli   # relinks with the new order

Needs valgrind (callgrind records every function a process runs) and nm.
Only loopback traffic; every process it starts is stopped before it ends.
"""

import glob
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

SECRET = "symbol-order-secret-0123456789abcdef"
BASE = 27946  # membership ports BASE, BASE+2, ...; HTTP ports BASE+1000+i
PEERS = 4  # native peers in the cluster scenario (5 nodes in all)


def node_args(exe, i, seed):
    args = [
        exe, "node", "--cluster", "static", "--name", f"order-{i}",
        "--bind", "127.0.0.1", "--port", str(BASE + 2 * i),
        "--http-port", str(BASE + 1000 + i), "--stop-on-stdin-eof",
    ]
    if seed is not None:
        args += ["--seeds", f"127.0.0.1:{BASE + 2 * seed}"]
    return args


def start(args, log):
    """Starts a node in the log's directory (where its data goes)."""
    env = dict(os.environ, FOUNDATION_SECRET=SECRET)
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log,
                            stderr=subprocess.STDOUT, env=env,
                            cwd=os.path.dirname(log.name))


def stop(proc, wait=60):
    try:
        proc.stdin.close()
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scrape(i, seconds):
    """What a monitored node serves: health, members and metrics."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for path in ("/health", "/ready", "/members", "/metrics"):
            try:
                url = f"http://127.0.0.1:{BASE + 1000 + i}{path}"
                urllib.request.urlopen(url, timeout=5).read()
            except OSError:
                pass
        time.sleep(1)


def profiled(exe, out, seed, log):
    """Node 0 under callgrind."""
    args = ["valgrind", "--tool=callgrind", "--demangle=no",
            f"--callgrind-out-file={out}", "--dump-instr=no",
            "--compress-strings=no", "--compress-pos=no"]
    return start(args + node_args(exe, 0, seed), log)


def peers(exe, seed, log):
    """Nodes 1 to PEERS, natively, seeded by node `seed`."""
    return [start(node_args(exe, i, seed), log) for i in range(1, PEERS + 1)]


def part(path):
    """Which dump of its run a callgrind file is (1 for the first)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("part:"):
                return int(line.split(":", 1)[1])
            if line.startswith("fn="):
                break
    return 0


def functions(path):
    """Function names in a callgrind file, in the order they first appear."""
    seen = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                name = line.split("=", 1)[1].strip()
                seen.setdefault(name, None)
    return list(seen)


def order_of(exe):
    """The functions `exe` defines that a profiled node ran, in order."""
    nm = subprocess.run(["nm", "--defined-only", exe], check=True,
                        capture_output=True, text=True).stdout
    defined = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    with tempfile.TemporaryDirectory() as tmp:
        log = open(os.path.join(tmp, "nodes.log"), "w")
        founder = os.path.join(tmp, "founder.cg")
        member = os.path.join(tmp, "member.cg")
        # A node alone founds its coordination group; then four join it,
        # and it leads them (replication, the seed's answers). What every
        # node runs goes first: the dump after the alone phase.
        node = profiled(exe, founder, None, log)
        scrape(0, 20)
        subprocess.run(["callgrind_control", "--dump", str(node.pid)],
                       check=True, capture_output=True)
        others = peers(exe, 0, log)
        scrape(0, 40)
        stop(node, wait=120)
        for p in others:
            stop(p)
        # A node joining four others: it follows.
        first = start(node_args(exe, 1, None), log)
        time.sleep(1)
        others = [first] + [start(node_args(exe, i, 1), log) for i in range(2, PEERS + 1)]
        time.sleep(3)
        node = profiled(exe, member, 1, log)
        scrape(0, 40)
        stop(node, wait=120)
        for p in others:
            stop(p)
        outs = sorted(glob.glob(founder + "*"), key=part) + [member]
        order = {}
        for out in outs:
            for name in functions(out):
                if name in defined:
                    order.setdefault(name, None)
    if len(order) < 1000:
        sys.exit(f"{exe}: only {len(order)} functions recorded: did the nodes start? (valgrind on the PATH?)")
    print(f"{exe}: {len(order)} functions")
    return list(order)


def main():
    exes = [os.path.abspath(e) for e in sys.argv[1:]] or [os.path.abspath("target/release/foundation")]
    here = os.path.dirname(os.path.abspath(__file__))
    # One list per build, one after the other: each build's names carry its
    # own hashes, so the linker finds its own list and skips the others.
    names = {}
    for exe in exes:
        for name in order_of(exe):
            names.setdefault(name, None)
    target = os.path.join(here, "symbol-order.txt")
    with open(target, "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"{target}: {len(names)} functions")


if __name__ == "__main__":
    main()
