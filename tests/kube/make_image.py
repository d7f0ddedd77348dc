#!/usr/bin/env python3
"""Writes a one-layer container image as a docker-archive tarball that `ctr images import` takes.

Usage: make_image.py OUT.tar NAME:TAG ENTRYPOINT SRC:DEST[:mode] ... [--link DEST=TARGET ...]
Files are copied from SRC on this machine to DEST in the image (owned by root); links are
symlinks. No registry is involved: the images the kube tests run are made from Debian packages.
"""
import hashlib
import io
import json
import sys
import tarfile


def layer_bytes(files, links):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for dest in [d for _, d, _ in files] + [d for d, _ in links]:
            parts = dest.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for src, dest, mode in files:
            with open(src, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(dest.strip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for dest, target in links:
            info = tarfile.TarInfo(dest.strip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def main(argv):
    out, ref, entrypoint = argv[1], argv[2], json.loads(argv[3])
    files, links, rest = [], [], argv[4:]
    while rest:
        arg = rest.pop(0)
        if arg == "--link":
            dest, target = rest.pop(0).split("=", 1)
            links.append((dest, target))
            continue
        fields = arg.split(":")
        mode = int(fields[2], 8) if len(fields) > 2 else 0o755
        files.append((fields[0], fields[1], mode))
    layer = layer_bytes(files, links)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "rbdcsi tests/kube/make_image.py"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref],
                            "Layers": ["layer/layer.tar"]}]).encode()
    with tarfile.open(out, "w") as tar:
        for name, data in ((config_name, config), ("layer/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main(sys.argv)
