#!/usr/bin/env python3
"""Lists the calls of one CSI method for one volume from rbdcsi's text log, with the interval
since the previous call: what the kubelet actually did, and when.

Usage: calls.py LOG METHOD VOLUME_ID    -> one line per call: "TIME CODE +INTERVAL_MS"
       calls.py --intervals LOG METHOD VOLUME_ID -> the intervals in ms, space separated
"""
import datetime
import re
import sys

LINE = re.compile(r"^(\S+) \S+ \S+: req=\S+ method=(\S+) code=(\S+) .*")


def calls(log, method, volume):
    out = []
    with open(log, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m or m.group(2) != method or ('"' + volume + '"') not in line:
                continue
            when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z")
            out.append((when, m.group(3)))
    return out


def main(argv):
    intervals_only = argv[1] == "--intervals"
    log, method, volume = argv[2:5] if intervals_only else argv[1:4]
    found = calls(log, method, volume)
    intervals = [round((b[0] - a[0]).total_seconds() * 1000) for a, b in zip(found, found[1:])]
    if intervals_only:
        print(" ".join(str(i) for i in intervals))
        return
    for i, (when, code) in enumerate(found):
        print(when.strftime("%H:%M:%S.%f")[:-3], code, "+%d ms" % intervals[i - 1] if i else "")


if __name__ == "__main__":
    main(sys.argv)
