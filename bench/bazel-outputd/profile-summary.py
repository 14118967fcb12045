#!/usr/bin/python3
"""Summarize a Bazel JSON trace profile (--profile=FILE.json.gz) for
bench/guest/40-bazel-outputd.sh: total time per event category and per
(category, name) over all threads, the largest first, so two builds of the
same targets (the roofline and the output service) can be set side by side.

usage: profile-summary.py LABEL PROFILE [TOP]

Event names carry paths and labels; digits and anything after the first
space or colon are cut, so one kind of event sums to one line.
"""
import collections
import gzip
import json
import re
import sys


def kind(name):
    name = re.split(r"[ :(]", name, maxsplit=1)[0]
    return re.sub(r"[0-9]+", "N", name)[:48]


def main():
    label, path = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    with gzip.open(path, "rt") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    by_cat = collections.Counter()
    by_name = collections.Counter()
    counts = collections.Counter()
    for ev in events:
        if ev.get("ph") != "X" or "dur" not in ev:
            continue
        cat = ev.get("cat", "?")
        key = (cat, kind(ev.get("name", "?")))
        by_cat[cat] += ev["dur"]
        by_name[key] += ev["dur"]
        counts[key] += 1
    for cat, us in by_cat.most_common(top):
        print("PROFILE %s cat %-40s %10.3f s" % (label, cat[:40], us / 1e6))
    for (cat, name), us in by_name.most_common(top):
        print("PROFILE %s %-30s %-48s %8d x %10.3f s" %
              (label, cat[:30], name, counts[(cat, name)], us / 1e6))


main()
