#!/usr/bin/python3
"""Markdown tables from bench/salesforce results (one JSON object a line, bench.py --out).

    bench/salesforce/table.py [build/sfbench/results.jsonl]
"""

import json
import sys


def ms(v):
    return "–" if v is None else "%.0f ms" % (v * 1000) if v < 10 else "%.1f s" % v


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/sfbench/results.jsonl"
    rows = [json.loads(line) for line in open(path) if line.strip()]
    lat = [r for r in rows if r["scenario"] == "latency"]
    if lat:
        print("| date | capture, daily limit | poll interval | load avg start → end | direction "
              "| n | p50 | p95 | p99 | max | timeouts | duplex calls/min idle |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in lat:
            idle = r["idle"]
            per_min = 60.0 * sum(idle["duplex_calls"].values()) / idle["seconds"]
            for d in ("sf2pg", "pg2sf"):
                s = r[d]
                print("| %s | %s, %d | %s | %s → %s | %s | %d | %s | %s | %s | %s | %d | %.1f |" % (
                    r["date"], r["capture"], r["daily_limit"],
                    "%.1f s" % idle["poll_interval_s"] if idle["poll_interval_s"] else "?",
                    r["loadavg_start"], r["loadavg_end"],
                    "Salesforce → PostgreSQL" if d == "sf2pg" else "PostgreSQL → Salesforce",
                    s["n"], ms(s.get("p50")), ms(s.get("p95")), ms(s.get("p99")),
                    ms(s.get("max")), r["timeouts"][d], per_min))
        print()
    for r in rows:
        if r["scenario"] != "calls":
            continue
        print("calls: %s; %d accounts, %d contacts; %.0f s at %.1f edits/s; daily limit %d"
              % (r["date"], r["accounts"], r["contacts"], r["duration_s"], r["rate"],
                 r["daily_limit"]))
        print()
        print("| contender | load avg | edits | converged after | API calls | by resource "
              "| calls per change | idle calls/min |")
        print("|---|---|---|---|---|---|---|---|")
        for c in r["runs"]:
            conv = c.get("converged_after_s")
            print("| %s | %s → %s | %d | %s | %d | %s | %.3f | %s |" % (
                c["contender"], c["loadavg_start"], c["loadavg_end"], c["edits"],
                ("%.1f s" % conv if conv is not None else "never")
                if "converged_after_s" in c else ("equal" if c.get("converged") else "differ"),
                c["calls_total"], ", ".join("%s %d" % kv for kv in sorted(c["calls"].items())),
                c["calls_per_change"],
                "%.1f" % c["idle"]["calls_per_min"] if "idle" in c else "–"))
        print()
    for r in rows:
        if r["scenario"] != "load":
            continue
        print("| date | direction | accounts + contacts | load avg | wall | rows/s | duplex CPU "
              "| rows/duplex CPU-s | emulator CPU | API calls | by resource | check |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for x in r["runs"]:
            ok = (x["pg"]["accounts"] == x["sf"]["accounts"] == r["accounts"] and
                  x["pg"]["contacts"] == x["sf"]["contacts"] == r["contacts"] and
                  x["pg"]["contacts_with_account"] == x["sf"]["contacts_with_account"]
                  == r["contacts"])
            print("| %s | %s | %d + %d | %s → %s | %.1f s | %.0f | %.1f s | %.0f | %.1f s | %d "
                  "| %s | %s |" % (
                      r["date"], x["direction"], r["accounts"], r["contacts"],
                      x["loadavg_start"], x["loadavg_end"], x["wall_s"], x["rows_per_s"],
                      x["duplex_cpu_s"], x["rows_per_duplex_cpu_s"] or 0, x["emulator_cpu_s"],
                      x["calls_total"],
                      ", ".join("%s %d" % kv for kv in sorted(x["calls"].items())),
                      "all rows, linked" if ok and x["exit"] == 0 else "INCOMPLETE"))
        print()


if __name__ == "__main__":
    main()
