#!/usr/bin/env python3
"""Rewrites a Go 1.15-layout vendor/modules.txt into the layout Go 1.17+ accepts.

Kubernetes v1.20 lists a module twice: "# path version => replacement" (with the "## explicit"
marker) and "# path => replacement" (the go.mod replace directive), and puts the module's package
lines under either. Go 1.17+ attributes a package to the module line it follows, so packages under
a bare "# path => ..." line end up in a module without a version and -mod=vendor refuses the tree.
This moves every package line under its module's versioned line; nothing is added or dropped.
Usage: fix_vendor_modules.py vendor/modules.txt (rewrites in place; a second run changes nothing).
"""
import sys


def is_versioned(fields):
    return len(fields) >= 3 and fields[2] != "=>"


def rewrite(text):
    blocks = []  # [header, path, versioned, [body lines]]
    for line in text.splitlines():
        if line.startswith("# "):
            fields = line.split()
            blocks.append([line, fields[1], is_versioned(fields), []])
        elif blocks:
            blocks[-1][3].append(line)
        else:
            raise ValueError("modules.txt does not start with a module line: " + line)
    versioned = {b[1]: b for b in blocks if b[2]}
    for block in blocks:
        if block[2] or block[1] not in versioned:
            continue
        packages = [l for l in block[3] if not l.startswith("## ")]
        if any(l.startswith("## ") for l in block[3]):
            raise ValueError("marker under a replacement line of " + block[1])
        versioned[block[1]][3].extend(packages)
        block[3] = []
    out = []
    for header, _, _, body in blocks:
        markers = [l for l in body if l.startswith("## ")]
        packages = [l for l in body if not l.startswith("## ")]
        out.append(header)
        out.extend(markers)
        out.extend(packages)
    return "\n".join(out) + "\n"


def main():
    path = sys.argv[1]
    with open(path) as f:
        text = f.read()
    fixed = rewrite(text)
    before = sorted(l for l in text.splitlines() if l)
    after = sorted(l for l in fixed.splitlines() if l)
    if before != after:
        sys.exit("fix_vendor_modules: the rewrite would change the set of lines; refusing")
    with open(path, "w") as f:
        f.write(fixed)


if __name__ == "__main__":
    main()
