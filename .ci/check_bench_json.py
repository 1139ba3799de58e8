"""Checks `bench --quick --json` output (stdin): it parses, has the fields
the README documents, every transport and floor produced a figure in each
pass that measures it, and every ratio comes with its per-round values.
No timing is asserted: CI machines are noisy; this is a smoke test."""
import json
import sys

doc = json.load(sys.stdin)
machine = doc["machine"]
assert machine["cpus"] >= 1, machine
passes = machine["passes"]
assert passes and set(passes) <= {"pinned", "unpinned", "one-cpu"}, passes
rounds = machine["rounds"]
assert isinstance(rounds, int) and rounds >= 5, f"{rounds} rounds: at least 5"
assert doc.get("method"), "no method"
results = doc["results"]
fields = {"pass", "transport", "mode", "kind", "variant", "size", "samples",
          "p50_ns", "p99_ns", "p999_ns", "msgs_per_s", "bytes_per_s",
          "rounds_p50_ns", "rounds_bytes_per_s", "floor", "floor_rounds",
          "ratios", "ratio_to_floor", "ratio_min", "ratio_max", "note"}
for r in results:
    missing = fields - r.keys()
    assert not missing, f"{r} lacks {missing}"
    assert r["pass"] in passes, r
    assert r["mode"] in ("spin", "block", "raw"), r
    assert r["kind"] in ("rtt", "stream", "floor"), r
    for key in ("rounds_p50_ns", "rounds_bytes_per_s", "floor_rounds", "ratios"):
        assert isinstance(r[key], list), f"{r}: {key} is not a list"


def positive(value):
    return isinstance(value, (int, float)) and value > 0


def figures(pass_, transport, kind, mode=None, variant=None):
    return [r for r in results
            if r["pass"] == pass_ and r["transport"] == transport and r["kind"] == kind
            and (mode is None or r["mode"] == mode)
            and (variant is None or r["variant"] == variant)]


FALLBACKS = ("pipe", "fifo", "mqueue", "unix-stream", "unix-dgram", "tcp")
problems = []

# Every compared figure: its own rounds, its floor's rounds, one ratio per
# round, and the median and spread of those ratios.
for r in results:
    if r["kind"] == "floor" or r["note"] is not None:
        continue
    what = f"{r['pass']} {r['transport']} {r['mode']} {r['variant'] or ''} {r['kind']} {r['size']} B"
    own = r["rounds_bytes_per_s"] if r["kind"] == "stream" else r["rounds_p50_ns"]
    if len(own) != rounds or not all(positive(v) for v in own):
        problems.append(f"{what}: {len(own)} round figures, expected {rounds}")
    if len(r["floor_rounds"]) != rounds:
        problems.append(f"{what}: {len(r['floor_rounds'])} floor rounds, expected {rounds}")
    if len(r["ratios"]) != rounds or not all(positive(v) for v in r["ratios"]):
        problems.append(f"{what}: {len(r['ratios'])} per-round ratios, expected {rounds}")
    if not (positive(r["ratio_to_floor"]) and positive(r["ratio_min"]) and positive(r["ratio_max"])
            and r["ratio_min"] <= r["ratio_to_floor"] <= r["ratio_max"]):
        problems.append(f"{what}: no ratio median within its spread")

for p in passes:
    two_cpus = p != "one-cpu"
    if two_cpus:
        for variant in ("zero-copy", "copy"):
            if not any(positive(r["p50_ns"]) for r in figures(p, "shm", "rtt", "spin", variant)):
                problems.append(f"{p}: shm spin {variant}: no round-trip figure")
        if not any(positive(r["bytes_per_s"]) for r in figures(p, "shm", "stream")):
            problems.append(f"{p}: shm: no streaming figure")
        for floor in ("atomic", "cross-copy"):
            if not any(positive(r["p50_ns"]) for r in figures(p, floor, "floor")):
                problems.append(f"{p}: floor {floor}: no figure")
        if not any(positive(r["bytes_per_s"]) for r in figures(p, "line-stream", "floor")):
            problems.append(f"{p}: floor line-stream: no figure")
    for variant in ("zero-copy", "wake"):
        if not any(positive(r["p50_ns"]) for r in figures(p, "shm", "rtt", "block", variant)):
            problems.append(f"{p}: shm block {variant}: no round-trip figure")
    if not any(positive(r["p50_ns"]) for r in figures(p, "futex", "floor")):
        problems.append(f"{p}: floor futex: no figure")
    for t in FALLBACKS:
        if not any(positive(r["p50_ns"]) for r in figures(p, t, "rtt")):
            problems.append(f"{p}: {t}: no round-trip figure")
        if not any(positive(r["msgs_per_s"]) and positive(r["bytes_per_s"])
                   for r in figures(p, t, "stream")):
            problems.append(f"{p}: {t}: no streaming figure")
        rows = figures(p, f"{t}-raw", "floor")
        if not any(positive(r["p50_ns"]) for r in rows) or not any(positive(r["bytes_per_s"]) for r in rows):
            problems.append(f"{p}: floor {t}-raw: missing latency or throughput")
        for r in rows:
            if r["note"] is None and not (r["rounds_p50_ns"] or r["rounds_bytes_per_s"]):
                problems.append(f"{p}: floor {t}-raw {r['size']} B: no rounds")

idle = doc.get("idle_receiver")
if not idle or not isinstance(idle.get("cpu_percent"), (int, float)):
    problems.append("no idle-receiver figure")
elif not isinstance(idle.get("wakeups_per_s"), (int, float)):
    problems.append("no idle-receiver wake-ups figure")
targets = doc.get("targets")
if not targets:
    problems.append("no targets")
for needle in ("async 64 B round trip", "the same, arming at once", "death notice",
               "8-client server, messages/s", "8-client server, client round trip p50",
               "8-client server, client round trip p99"):
    if not any(t.get("target", "").startswith(needle) and t.get("rounds") for t in targets or []):
        problems.append(f"no measured target {needle!r}")
for t in targets or []:
    for key in ("target", "pass", "value", "min", "max", "rounds", "limit", "bound", "met"):
        if key not in t:
            problems.append(f"target {t.get('target')}: no {key}")
    if t.get("met") is not None and not t.get("rounds"):
        problems.append(f"target {t['target']}: judged without rounds")
if not doc.get("not_measured"):
    problems.append("no note on what the bench does not measure (instruction counts)")

if problems:
    sys.exit("bench --quick --json: " + "; ".join(problems))
judged = sum(1 for t in targets if t["met"] is not None)
print(f"bench smoke: {len(results)} results in {len(passes)} passes of {rounds} rounds, "
      f"every transport and floor measured, {judged} targets judged")
