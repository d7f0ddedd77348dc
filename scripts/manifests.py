"""deploy/ as kustomize builds it, for manifests_test and sidecar-check: the node DaemonSet with
or without the self-registration component, whose JSON patch is applied here (add, remove, test:
the operations it uses) so that no kustomize binary is needed."""
import copy
import os

import yaml

COMPONENT = os.path.join("components", "self-registration")


def _walk(doc, path):
    """(parent, key) of a JSON pointer in doc; list keys are ints, or '-' for the end."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]
    node = doc
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if isinstance(node, list) and last != "-":
        last = int(last)
    return node, last


def apply_json_patch(doc, ops):
    """A patched copy of doc; AssertionError when a `test` operation fails."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parent, key = _walk(doc, op["path"])
        if op["op"] == "test":
            assert parent[key] == op["value"], f"patch test failed: {op} (found {parent[key]})"
        elif op["op"] == "remove":
            del parent[key]
        elif op["op"] == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if key == "-" else key, copy.deepcopy(op["value"]))
            else:
                parent[key] = copy.deepcopy(op["value"])
        else:
            raise AssertionError(f"unsupported patch operation {op['op']}")
    return doc


def load_yaml(root, rel):
    with open(os.path.join(root, "deploy", rel), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def component_patches(root):
    """[(target, ops)] of the self-registration component."""
    k = load_yaml(root, os.path.join(COMPONENT, "kustomization.yaml"))[0]
    out = []
    for p in k["patches"]:
        ops = load_yaml(root, os.path.join(COMPONENT, p["path"]))[0]
        out.append((p["target"], ops))
    return out


def node_daemonset(root, self_registration=False):
    ds = load_yaml(root, "node-daemonset.yaml")[0]
    if self_registration:
        for target, ops in component_patches(root):
            assert target["kind"] == ds["kind"] and target["name"] == ds["metadata"]["name"]
            ds = apply_json_patch(ds, ops)
    return ds
