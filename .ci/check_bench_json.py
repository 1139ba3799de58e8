"""Checks `bench --quick --json` output (stdin): it parses, has the fields
the README documents, and every transport and floor produced a figure.
No timing is asserted: CI machines are noisy; this is a smoke test."""
import json
import sys

doc = json.load(sys.stdin)
machine = doc["machine"]
assert machine["cpus"] >= 1, machine
results = doc["results"]
fields = {"transport", "mode", "kind", "size", "p50_ns", "p99_ns", "p999_ns",
          "msgs_per_s", "bytes_per_s", "floor", "ratio_to_floor"}
for r in results:
    missing = fields - r.keys()
    assert not missing, f"{r} lacks {missing}"
    assert r["mode"] in ("spin", "block", "raw"), r
    assert r["kind"] in ("rtt", "stream", "floor"), r


def figures(transport, kind, mode=None):
    return [r for r in results
            if r["transport"] == transport and r["kind"] == kind
            and (mode is None or r["mode"] == mode)]


def positive(value):
    return isinstance(value, (int, float)) and value > 0


problems = []
for mode in ("spin", "block"):
    rows = figures("shm", "rtt", mode)
    if not any(positive(r["p50_ns"]) for r in rows):
        problems.append(f"shm {mode}: no round-trip figure")
for t in ("shm", "pipe", "fifo", "mqueue", "unix-stream", "unix-dgram", "tcp"):
    if t != "shm" and not any(positive(r["p50_ns"]) for r in figures(t, "rtt")):
        problems.append(f"{t}: no round-trip figure")
    if not any(positive(r["msgs_per_s"]) and positive(r["bytes_per_s"])
               for r in figures(t, "stream")):
        problems.append(f"{t}: no streaming figure")
    for r in figures(t, "rtt") + figures(t, "stream"):
        if r["note"] is None and not positive(r["ratio_to_floor"]):
            problems.append(f"{t} {r['kind']} {r['size']} B: no ratio to its floor")
for floor in ("atomic", "futex"):
    if not any(positive(r["p50_ns"]) for r in figures(floor, "floor")):
        problems.append(f"floor {floor}: no figure")
if not any(positive(r["bytes_per_s"]) for r in figures("memcpy", "floor")):
    problems.append("floor memcpy: no figure")
for t in ("pipe", "fifo", "mqueue", "unix-stream", "unix-dgram", "tcp"):
    rows = figures(f"{t}-raw", "floor")
    if not any(positive(r["p50_ns"]) for r in rows) or not any(positive(r["bytes_per_s"]) for r in rows):
        problems.append(f"floor {t}-raw: missing latency or throughput")
idle = doc.get("idle_receiver")
if not idle or not isinstance(idle.get("cpu_percent"), (int, float)):
    problems.append("no idle-receiver figure")
if not doc.get("targets"):
    problems.append("no targets")

if problems:
    sys.exit("bench --quick --json: " + "; ".join(problems))
print(f"bench smoke: {len(results)} results, every transport and floor measured")
