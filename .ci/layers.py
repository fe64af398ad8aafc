#!/usr/bin/env python3
"""Layering check: fails when a module of the `foundation` crate uses a
module of a higher layer (docs/adr/016-layers-and-the-proto-crate.md).

It reads `crate::<module>` paths (in `use` lines and inline paths) in every
non-test source file under crates/foundation/src, maps each file to its
top-level module, and checks each reference against LAYERS. Usage:

    python3 .ci/layers.py          # check; exit 1 on an upward arrow
    python3 .ci/layers.py --table  # print who uses whom
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "crates" / "foundation" / "src"

# Lowest first. A module may use modules of its own layer only where
# SIDEWAYS allows it, and any module of a lower layer.
LAYERS = [
    ["locks"],
    ["id", "shell_time", "faults", "tasks", "throttle", "calls", "context"],
    ["config", "telemetry", "spans"],
    ["security"],
    ["transport", "membership", "discovery"],
    ["messenger", "peers"],
    ["services"],
    ["registry", "coord"],
    ["process", "pubsub", "cache", "mesh"],
    ["messaging"],
    ["node", "error"],
    ["http"],
    ["builder"],
    ["lib"],
]
# Same-layer uses that are allowed: (user, used).
SIDEWAYS = {
    ("peers", "messenger"),
    ("node", "error"),
}
# Upward arrows that exist today and are being removed. The check fails on
# any arrow not listed here, and on a listed one that is gone (so the list
# only shrinks). Empty since issue 15 finished the layering.
KNOWN: set = set()

RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
USE = re.compile(r"\bcrate::([a-z_]+)")
GROUP = re.compile(r"\buse crate::\{([^}]*)\}", re.S)


def module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT)
    first = rel.parts[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod ... { ... }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def is_test_file(path: pathlib.Path) -> bool:
    name = path.name
    return name == "tests.rs" or name.endswith("_tests.rs") or "tests" in path.parts


def references(text: str):
    for m in USE.finditer(text):
        yield m.group(1)
    for g in GROUP.finditer(text):
        for part in g.group(1).split(","):
            head = part.strip().split("::")[0].strip()
            if head:
                yield head


def root_exports() -> dict:
    """Items lib.rs re-exports at the crate root, by the module they come from."""
    out = {}
    text = strip_tests((ROOT / "lib.rs").read_text())
    for m in re.finditer(r"pub use ([a-z_]+)::(\{[^}]*\}|[A-Za-z_]+);", text):
        for name in m.group(2).strip("{}").split(","):
            name = name.strip().split(" as ")[-1].strip()
            if name:
                out[name] = m.group(1)
    return out


ROOT_ITEM = re.compile(r"\bcrate::([A-Z][A-Za-z_]*|start)\b")


def main() -> int:
    exports = root_exports()
    edges = {}
    for path in sorted(ROOT.rglob("*.rs")):
        if is_test_file(path):
            continue
        src = module_of(path)
        text = strip_tests(path.read_text())
        found = list(references(text))
        found += [exports[n] for n in ROOT_ITEM.findall(text) if n in exports]
        for g in GROUP.finditer(text):
            for part in g.group(1).split(","):
                name = part.strip().split("::")[0].strip()
                if name in exports:
                    found.append(exports[name])
        for dst in found:
            if dst in ("self", "super") or dst == src or dst not in RANK and dst[0].isupper():
                continue
            if dst not in RANK:
                # A re-exported item at the crate root (crate::Node, ...).
                continue
            edges.setdefault((src, dst), set()).add(str(path.relative_to(ROOT.parent.parent.parent)))
    if "--table" in sys.argv:
        for (s, d), files in sorted(edges.items()):
            print(f"{s:>10} -> {d:<10} {len(files)} file(s)")
        return 0
    bad = []
    for known in sorted(KNOWN - set(edges)):
        bad.append(f"{known[0]} -> {known[1]} is gone: remove it from KNOWN in .ci/layers.py")
    for (s, d), files in sorted(edges.items()):
        if s not in RANK:
            bad.append(f"module {s} is in no layer: add it to LAYERS in .ci/layers.py")
            continue
        up = RANK[d] > RANK[s] or (RANK[d] == RANK[s] and (s, d) not in SIDEWAYS)
        if up and (s, d) not in KNOWN:
            bad.append(f"{s} (layer {RANK[s]}) uses {d} (layer {RANK[d]}) in {', '.join(sorted(files))}")
    if bad:
        print("layering: arrows that point up or sideways (see docs/adr/016):")
        for b in bad:
            print("  " + b)
        return 1
    print(f"layering: {len(edges)} module arrows; none points up ({len(KNOWN)} known exceptions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
