#!/usr/bin/python3
"""Parses every manifest under deploy/ and checks it against the plugin it deploys.

usage: manifests_test.py RBDCSI_BINARY REPO_ROOT

The flags the manifests pass must exist in `rbdcsi serve --help`; the socket the plugin serves
must be the one its sidecars dial and the one kubelet is told about; the driver name, the mount
propagation, the probe ports and the sidecars' arguments must agree with each other.
"""
import glob
import os
import re
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import manifests  # noqa: E402  (scripts/manifests.py: the self-registration component applied)

BINARY = ""
ROOT = ""
KUBELET_DIR = "/var/lib/kubelet"


def load_all():
    """{relative path: [documents]} for every YAML file under deploy/ but the components (their
    patches are no objects; test_self_registration_component builds them)."""
    docs = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "**", "*.yaml"), recursive=True)):
        if os.path.relpath(path, os.path.join(ROOT, "deploy")).startswith("components/"):
            continue
        with open(path, encoding="utf-8") as f:
            docs[os.path.relpath(path, os.path.join(ROOT, "deploy"))] = [
                d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def serve_flags():
    out = subprocess.run([BINARY, "serve", "--help"], check=True, capture_output=True,
                         text=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out)), out


def flag_values(args):
    """['--a=b', '--c'] -> {'--a': 'b', '--c': None}"""
    values = {}
    for arg in args:
        name, _, value = arg.partition("=")
        values[name] = value if _ else None
    return values


def container(pod_spec, name):
    for c in pod_spec["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name}")


def volume_for(pod_spec, c, path):
    """The volume and mount of container c that covers `path`, the deepest one."""
    best = None
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    assert best is not None, f"{c['name']}: nothing mounted at {path}"
    vols = {v["name"]: v for v in pod_spec["volumes"]}
    return vols[best["name"]], best


def host_path_of(pod_spec, c, path):
    """Where `path` inside container c lives on the host (hostPath volumes only)."""
    vol, mount = volume_for(pod_spec, c, path)
    assert "hostPath" in vol, f"{c['name']}: {path} is not on the host ({vol})"
    rest = path[len(mount["mountPath"].rstrip("/")):]
    return vol["hostPath"]["path"].rstrip("/") + rest


def port_number(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p["name"] == port:
            return p["containerPort"]
    raise AssertionError(f"{c['name']}: no port named {port}")


def http_port(endpoint):
    assert endpoint and re.fullmatch(r"[^:]*:\d+", endpoint), endpoint
    return int(endpoint.rsplit(":", 1)[1])


class ManifestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = load_all()
        cls.flags, cls.help = serve_flags()
        cls.objects = [d for ds in cls.docs.values() for d in ds]
        cls.by_kind = {}
        for d in cls.objects:
            cls.by_kind.setdefault(d["kind"], []).append(d)
        cls.driver = cls.one("CSIDriver")["metadata"]["name"]

    @classmethod
    def one(cls, kind, name=None):
        found = [d for d in cls.by_kind.get(kind, [])
                 if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def pod(self, kind, name):
        return self.one(kind, name)["spec"]["template"]["spec"]

    def pod_of(self, spec):
        """The pod template's metadata, for a pod spec from pod()."""
        for d in self.by_kind["DaemonSet"] + self.by_kind["Deployment"]:
            if d["spec"]["template"]["spec"] is spec:
                return d["spec"]["template"]["metadata"]
        raise AssertionError("not a pod template")

    def plugin_args(self, pod_spec):
        c = container(pod_spec, "rbdcsi")
        self.assertEqual(c["args"][0], "serve")
        return c, flag_values(c["args"][1:])

    def test_every_document_is_a_named_kubernetes_object(self):
        self.assertGreaterEqual(len(self.objects), 15)
        for path, ds in self.docs.items():
            for d in ds:
                if path == "kustomization.yaml":
                    continue
                self.assertIn("apiVersion", d, path)
                self.assertIn("kind", d, path)
                self.assertTrue(d.get("metadata", {}).get("name"), path)

    def test_kustomization_applies_every_top_level_manifest(self):
        k = self.docs["kustomization.yaml"][0]
        top = {p for p in self.docs if "/" not in p and p != "kustomization.yaml"}
        self.assertEqual(set(k["resources"]), top)
        namespaced = [d for p in top for d in self.docs[p]
                      if d["kind"] in ("DaemonSet", "Deployment", "ServiceAccount", "ConfigMap",
                                       "Role", "RoleBinding")]
        for d in namespaced:
            self.assertEqual(d["metadata"]["namespace"], "rbdcsi", d["metadata"]["name"])

    def test_plugin_flags_exist_in_serve(self):
        for kind, name in (("DaemonSet", "rbdcsi-node"), ("Deployment", "rbdcsi-controller")):
            _, args = self.plugin_args(self.pod(kind, name))
            for flag in args:
                self.assertIn(flag, self.flags, f"{name}: rbdcsi serve has no {flag}")
            self.assertEqual(args["--drivername"], self.driver)
            # serve checks every value before it looks at --help: the values parse too.
            argv = [a.replace("$(NODE_NAME)", "node-1") for a in
                    container(self.pod(kind, name), "rbdcsi")["args"]]
            run = subprocess.run([BINARY] + argv + ["--help"], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, f"{name}: {run.stderr}")
        _, node = self.plugin_args(self.pod("DaemonSet", "rbdcsi-node"))
        self.assertIn("--no-controller", node)
        _, controller = self.plugin_args(self.pod("Deployment", "rbdcsi-controller"))
        self.assertIn("--no-node", controller)

    def test_node_plugin_sees_the_host(self):
        spec = self.pod("DaemonSet", "rbdcsi-node")
        self.assertTrue(spec["hostPID"], "the holder scan needs every process's /proc entry")
        c, _ = self.plugin_args(spec)
        self.assertTrue(c["securityContext"]["privileged"])
        for path, read_only in (("/dev", False), ("/sys", False), ("/lib/modules", True),
                                ("/run/udev", True)):
            vol, mount = volume_for(spec, c, path)
            self.assertEqual(mount["mountPath"], path)
            self.assertEqual(vol["hostPath"]["path"], path)
            self.assertEqual(bool(mount.get("readOnly")), read_only, path)

    def test_only_the_kubelet_dir_is_bidirectional(self):
        spec = self.pod("DaemonSet", "rbdcsi-node")
        propagating = [(c["name"], m) for c in spec["containers"]
                       for m in c.get("volumeMounts", []) if "mountPropagation" in m]
        bidirectional = [(n, m) for n, m in propagating if m["mountPropagation"] == "Bidirectional"]
        self.assertEqual(len(bidirectional), 1, bidirectional)
        name, mount = bidirectional[0]
        self.assertEqual(name, "rbdcsi")
        self.assertEqual(mount["mountPath"], KUBELET_DIR)
        c, args = self.plugin_args(spec)
        self.assertEqual(host_path_of(spec, c, KUBELET_DIR), KUBELET_DIR)
        # serve accepts staging and target paths only under its --kubelet-dir: the mount's path.
        self.assertEqual(args["--kubelet-dir"], KUBELET_DIR)
        # Any other host directory that propagates only follows the host (never a private copy
        # kept alive here, never a mount sent back).
        for n, m in propagating:
            if m is not mount:
                self.assertEqual(m["mountPropagation"], "HostToContainer", (n, m))
                self.assertTrue(m.get("readOnly"), (n, m))

    def test_state_and_keys_live_where_they_must(self):
        spec = self.pod("DaemonSet", "rbdcsi-node")
        c, args = self.plugin_args(spec)
        state = args["--state-dir"]
        host = host_path_of(spec, c, state)
        self.assertFalse(host.startswith(KUBELET_DIR + "/"), "records must outlive staging dirs")
        self.assertEqual(host, state, "doctor and gc read the same path on the host")
        vol, _ = volume_for(spec, c, args["--key-dir"])
        self.assertEqual(vol.get("emptyDir"), {"medium": "Memory"}, "keys never reach a disk")

    def test_socket_and_registration_paths_agree(self):
        spec = self.pod("DaemonSet", "rbdcsi-node")
        c, args = self.plugin_args(spec)
        socket = re.sub(r"^unix://", "", args["--endpoint"])
        socket_vol, _ = volume_for(spec, c, socket)
        host_socket = host_path_of(spec, c, socket)
        self.assertEqual(host_socket, f"{KUBELET_DIR}/plugins/{self.driver}/csi.sock")

        reg = container(spec, "node-driver-registrar")
        reg_args = flag_values(reg["args"])
        self.assertEqual(reg_args["--kubelet-registration-path"], host_socket)
        self.assertEqual(volume_for(spec, reg, reg_args["--csi-address"])[0], socket_vol)
        self.assertEqual(host_path_of(spec, reg, reg_args["--csi-address"]), host_socket)
        reg_dir = reg_args.get("--plugin-registration-path") or "/registration"
        self.assertEqual(host_path_of(spec, reg, reg_dir), f"{KUBELET_DIR}/plugins_registry")
        # Never two registrations of one driver: with the registrar, the plugin does not register.
        self.assertNotIn("--registration-dir", args)
        self.check_volumes_used(spec)

    def test_doctor_in_the_node_pod_needs_no_flags(self):
        """The README runs `kubectl exec ... -c rbdcsi -- rbdcsi doctor` without flags: its
        defaults must be the DaemonSet's paths and runtime."""
        out = subprocess.run([BINARY, "doctor", "--help"], check=True, capture_output=True,
                             text=True).stdout
        defaults = dict(re.findall(r"(--[a-z-]+) TEXT=(\S+)", out))
        _, args = self.plugin_args(self.pod("DaemonSet", "rbdcsi-node"))
        for flag in ("--state-dir", "--data-dir", "--rbd-program", "--cri-endpoint"):
            self.assertEqual(defaults[flag], args.get(flag, defaults[flag]), flag)
        self.assertIn("--cri-endpoint", args)
        self.assertEqual(defaults["--kubelet-dir"], args["--kubelet-dir"])

    def check_volumes_used(self, spec):
        mounted = {m["name"] for x in spec["containers"] for m in x.get("volumeMounts", [])}
        self.assertEqual({v["name"] for v in spec["volumes"]}, mounted)

    def test_self_registration_component(self):
        k = manifests.load_yaml(ROOT, os.path.join(manifests.COMPONENT, "kustomization.yaml"))[0]
        self.assertEqual(k["kind"], "Component")
        template = manifests.node_daemonset(ROOT, self_registration=True)["spec"]["template"]
        spec = template["spec"]
        self.assertEqual({x["name"] for x in spec["containers"]}, {"rbdcsi", "liveness-probe"})
        c = container(spec, "rbdcsi")
        args = flag_values(c["args"][1:])
        for flag in args:
            self.assertIn(flag, self.flags, f"rbdcsi serve has no {flag}")
        argv = [a.replace("$(NODE_NAME)", "node-1") for a in c["args"]]
        run = subprocess.run([BINARY] + argv + ["--help"], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        # The registration socket lands in the kubelet's plugins_registry (seen through the
        # kubelet-dir mount) and names the CSI socket as the kubelet, on the host, sees it.
        socket = re.sub(r"^unix://", "", args["--endpoint"])
        self.assertEqual(host_path_of(spec, c, args["--registration-dir"]),
                         f"{KUBELET_DIR}/plugins_registry")
        self.assertEqual(args["--kubelet-registration-path"], host_path_of(spec, c, socket))
        self.check_volumes_used(spec)
        self.check_probe(spec, template["metadata"])
        # A failed `test` operation (deploy/ moved the registrar) fails like kustomize would.
        _, ops = manifests.component_patches(ROOT)[0]
        moved = manifests.node_daemonset(ROOT)
        moved["spec"]["template"]["spec"]["containers"].reverse()
        with self.assertRaises(AssertionError):
            manifests.apply_json_patch(moved, ops)

    def test_cri_endpoint_is_the_hosts_runtime(self):
        spec = self.pod("DaemonSet", "rbdcsi-node")
        c, args = self.plugin_args(spec)
        cri = re.sub(r"^unix://", "", args["--cri-endpoint"])
        vol, mount = volume_for(spec, c, cri)
        self.assertEqual(host_path_of(spec, c, cri), cri)
        self.assertNotEqual(mount["mountPath"], cri, "a socket file mount goes stale when the "
                            "runtime restarts: mount its directory")
        self.assertEqual(mount.get("mountPropagation"), "HostToContainer")

    def check_probe(self, spec, meta=None):
        c, args = self.plugin_args(spec)
        socket = re.sub(r"^unix://", "", args["--endpoint"])
        probe = container(spec, "liveness-probe")
        probe_args = flag_values(probe["args"])
        self.assertEqual(volume_for(spec, probe, probe_args["--csi-address"])[0],
                         volume_for(spec, c, socket)[0])
        self.assertEqual(port_number(c, c["livenessProbe"]["httpGet"]["port"]),
                         http_port(probe_args["--http-endpoint"]))
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        metrics = http_port(args["--metrics-address"])
        self.assertEqual(port_number(c, "metrics"), metrics)
        meta = meta or self.pod_of(spec)
        self.assertEqual(int(meta["annotations"]["prometheus.io/port"]), metrics)
        ports = [p["containerPort"] for x in spec["containers"] for p in x.get("ports", [])]
        self.assertEqual(len(ports), len(set(ports)), "ports clash (hostNetwork)")

    def test_probe_ports_agree(self):
        self.check_probe(self.pod("DaemonSet", "rbdcsi-node"))
        self.check_probe(self.pod("Deployment", "rbdcsi-controller"))
        reg = container(self.pod("DaemonSet", "rbdcsi-node"), "node-driver-registrar")
        self.assertEqual(port_number(reg, reg["livenessProbe"]["httpGet"]["port"]),
                         http_port(flag_values(reg["args"])["--http-endpoint"]))

    def test_controller_sidecars_elect_a_leader_on_the_plugin_socket(self):
        spec = self.pod("Deployment", "rbdcsi-controller")
        c, args = self.plugin_args(spec)
        socket_vol = volume_for(spec, c, re.sub(r"^unix://", "", args["--endpoint"]))[0]
        for name in ("csi-provisioner", "csi-resizer", "csi-snapshotter"):
            side = container(spec, name)
            side_args = flag_values(side["args"])
            self.assertIn("--leader-election", side_args, name)
            self.assertEqual(volume_for(spec, side, side_args["--csi-address"])[0], socket_vol)

    def test_rbac_binds_what_the_pods_run_as(self):
        accounts = {(d["metadata"]["namespace"], d["metadata"]["name"])
                    for d in self.by_kind["ServiceAccount"]}
        for kind, name in (("DaemonSet", "rbdcsi-node"), ("Deployment", "rbdcsi-controller")):
            d = self.one(kind, name)
            sa = d["spec"]["template"]["spec"]["serviceAccountName"]
            self.assertIn((d["metadata"]["namespace"], sa), accounts)
        roles = {(b["kind"], b["metadata"]["name"]): b
                 for b in self.by_kind["ClusterRole"] + self.by_kind["Role"]}
        granted = set()
        for b in self.by_kind["ClusterRoleBinding"] + self.by_kind["RoleBinding"]:
            role = roles[(b["roleRef"]["kind"], b["roleRef"]["name"])]
            for s in b["subjects"]:
                self.assertIn((s["namespace"], s["name"]), accounts)
                for rule in role["rules"]:
                    for res in rule["resources"]:
                        granted.update((s["name"], res, v) for v in rule["verbs"])
        for need in (("persistentvolumes", "create"), ("persistentvolumes", "delete"),
                     ("persistentvolumeclaims/status", "patch"), ("leases", "update"),
                     ("volumesnapshotcontents/status", "update")):
            self.assertIn(("rbdcsi-controller",) + need, granted)
        self.assertFalse([g for g in granted if g[0] == "rbdcsi-node"])

    def test_classes_and_volumes_name_this_driver(self):
        mappers = re.search(r"--default-mapper TEXT:\{([^}]*)\}", self.help).group(1).split(",")
        for sc in self.by_kind["StorageClass"]:
            self.assertEqual(sc["provisioner"], self.driver)
            self.assertIn(sc["parameters"]["mapper"], mappers)
        self.assertGreaterEqual(len(self.by_kind["StorageClass"]), 2)
        self.assertEqual(self.one("VolumeSnapshotClass")["driver"], self.driver)
        for pv in self.by_kind["PersistentVolume"]:
            self.assertEqual(pv["spec"]["csi"]["driver"], self.driver)
        secrets = {(s["metadata"]["namespace"], s["metadata"]["name"])
                   for s in self.by_kind["Secret"]}
        for sc in self.by_kind["StorageClass"] + self.by_kind["VolumeSnapshotClass"]:
            p = sc["parameters"]
            for key, name in p.items():
                if key.endswith("-secret-name"):
                    ns = p[key.replace("-secret-name", "-secret-namespace")]
                    self.assertIn((ns, name), secrets, key)

    def test_cluster_config_is_json_the_controller_mounts(self):
        import json
        cm = self.one("ConfigMap", "rbdcsi-cluster-config")
        clusters = json.loads(cm["data"]["config.json"])
        ids = {c["clusterID"] for c in clusters}
        for sc in self.by_kind["StorageClass"]:
            if sc["parameters"]["mapper"] != "loop":
                self.assertIn(sc["parameters"]["clusterID"], ids)
        for kind, name in (("DaemonSet", "rbdcsi-node"), ("Deployment", "rbdcsi-controller")):
            spec = self.pod(kind, name)
            c, args = self.plugin_args(spec)
            path = args["--cluster-config"]
            vol, mount = volume_for(spec, c, path)
            self.assertEqual(vol.get("configMap"), {"name": "rbdcsi-cluster-config"}, name)
            self.assertTrue(mount.get("readOnly"), name)
            self.assertIn(os.path.relpath(path, mount["mountPath"]), cm["data"], name)
        for entry in clusters:
            key_file = entry.get("controllerCredentials", {}).get("keyFile")
            if key_file:
                spec = self.pod("Deployment", "rbdcsi-controller")
                vol, _ = volume_for(spec, container(spec, "rbdcsi"), key_file)
                self.assertEqual(vol["secret"]["defaultMode"], 0o400)

    def test_node_exporter_example_follows_host_mounts(self):
        spec = self.pod("DaemonSet", "node-exporter")
        c = container(spec, "node-exporter")
        vol, mount = volume_for(spec, c, "/host")
        self.assertEqual(vol["hostPath"]["path"], "/")
        self.assertEqual(mount["mountPropagation"], "HostToContainer")
        self.assertTrue(mount["readOnly"])

    def test_dockerfile_builds_in_stages_and_knows_its_libraries(self):
        with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
            text = f.read()
        stages = re.findall(r"^FROM (\S+)", text, re.M)
        self.assertEqual(stages, ["debian:12", "debian:12-slim"])
        self.assertIn("ceph-common", text)
        self.assertIn("-DRBDCSI_FAULT_POINTS=OFF", text, "a release image has no fault points")
        self.assertIn('ENTRYPOINT ["/usr/local/bin/rbdcsi"]', text)
        known = {}

        def packages(binary):
            binary = os.path.realpath(binary)
            if binary not in known:
                known[binary] = set(subprocess.run(
                    [os.path.join(ROOT, "scripts", "runtime-packages.sh"), binary], check=True,
                    capture_output=True, text=True).stdout.split())
            return known[binary]

        out = packages(BINARY)
        self.assertIn("libmount1", out)  # gRPC, protobuf and abseil are linked statically
        self.assertIn("libc6", out)
        self.assertNotIn("librados2", out)  # rbdcsi-controller alone links the Ceph libraries
        # Every executable the build makes is in the image, and the packages the image installs
        # (computed from one of them) cover what each of them links.
        built = sorted(f for f in os.listdir(os.path.dirname(BINARY))
                       if f.startswith("rbdcsi") and
                       os.access(os.path.join(os.path.dirname(BINARY), f), os.X_OK) and
                       os.path.isfile(os.path.join(os.path.dirname(BINARY), f)))
        copies = " ".join(re.findall(r"^COPY --from=build (.*)$", text, re.M))
        for name in built:
            self.assertIn(f"build/cmd/{name} ", copies + " ", f"the image lacks {name}")
        source = re.search(r"runtime-packages\.sh build/cmd/(\S+)", text).group(1)
        installed = packages(os.path.join(os.path.dirname(BINARY), source))
        for name in built:
            missing = packages(os.path.join(os.path.dirname(BINARY), name)) - installed
            self.assertFalse(missing, f"{name} links packages the image does not install")
        # The smoke test the README gives for the image: `--version` and `version` agree.
        flag = subprocess.run([BINARY, "--version"], check=True, capture_output=True, text=True)
        sub = subprocess.run([BINARY, "version"], check=True, capture_output=True, text=True)
        self.assertRegex(flag.stdout, r"^rbdcsi \d+\.\d+\.\d+\n$")
        self.assertEqual(flag.stdout, sub.stdout)


if __name__ == "__main__":
    BINARY, ROOT = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
