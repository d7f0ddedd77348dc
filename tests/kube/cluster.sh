#!/usr/bin/env bash
# A one-node Kubernetes v1.20 cluster on 127.0.0.1 for the kube tests, and its teardown.
#   cluster.sh up BUILD_DIR     builds (or reuses) the binaries, starts etcd, kube-apiserver,
#                               kube-controller-manager, containerd, kubelet and rbdcsi
#   cluster.sh down BUILD_DIR   stops all of it and removes every trace (also after a failure)
# Loopback only: every daemon binds 127.0.0.1, pods use the host network, the only CNI plugin is
# `loopback`; no address, bridge or iptables rule is added. Ports, paths and the cgroup root are
# private to the run, so it does not disturb anything else on the machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$2" && pwd)
KUBE_STATE=${build}/kube
KUBE_BIN=${KUBE_STATE}/bin
# shellcheck source=tests/kube/lib.sh
source "${here}/lib.sh"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

make_pki() {
  local p=${RUN}/pki
  mkdir -p "${p}" && cd "${p}"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
    -subj /CN=rbdcsi-test-ca 2>/dev/null
  cert() {  # name subject [subjectAltName]
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -out "$1.crt" ${3:+-extfile <(printf 'subjectAltName=%s' "$3")} 2>/dev/null
  }
  cert apiserver /CN=kube-apiserver "IP:127.0.0.1,DNS:localhost,IP:10.96.0.1"
  cert admin "/O=system:masters/CN=rbdcsi-admin"
  cert kubelet "/O=system:nodes/CN=system:node:${KUBE_NODE}"
  # Controllers run under the controller manager's own identity (no per-controller accounts).
  cert controller-manager "/O=system:masters/CN=system:kube-controller-manager"
  openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  for user in admin kubelet controller-manager; do
    cat >"${user}.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:${APISERVER_PORT}", certificate-authority: ${p}/ca.crt}}]
users: [{name: ${user}, user: {client-certificate: ${p}/${user}.crt, client-key: ${p}/${user}.key}}]
contexts: [{name: local, context: {cluster: local, user: ${user}}}]
current-context: local
KC
  done
  cd - >/dev/null
}

make_images() {
  local img=${RUN}/images applets=()
  mkdir -p "${img}"
  python3 "${here}/make_image.py" "${img}/pause.tar" rbdcsi.local/pause:v1 '["/pause"]' \
    "${KUBE_BIN}/pause:/pause"
  for a in $(busybox --list); do
    [[ ${a} == busybox ]] || applets+=(--link "/bin/${a}=busybox")
  done
  python3 "${here}/make_image.py" "${img}/busybox.tar" rbdcsi.local/busybox:v1 '["/bin/sh"]' \
    /bin/busybox:/bin/busybox "${KUBE_BIN}/pause:/bin/node_exporter" "${applets[@]}"
}

start_containerd() {
  local c=${RUN}/containerd
  mkdir -p "${c}" "${RUN}/cni"
  cat >"${RUN}/cni/10-loopback.conflist" <<'CNI'
{"cniVersion": "0.4.0", "name": "rbdcsi-loopback", "plugins": [{"type": "loopback"}]}
CNI
  cat >"${c}/config.toml" <<TOML
version = 2
root = "${c}/root"
state = "${c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${c}/containerd.sock"
[ttrpc]
  address = "${c}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "rbdcsi.local/pause:v1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${RUN}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${RUN}/runc"
TOML
  start_daemon containerd containerd --config "${c}/config.toml"
  wait_until 30 "containerd" ctr --address "${c}/containerd.sock" version
  for i in pause busybox; do
    ctr --address "${c}/containerd.sock" -n k8s.io images import "${RUN}/images/${i}.tar" >/dev/null
  done
}

start_control_plane() {
  local p=${RUN}/pki
  start_daemon etcd etcd --name rbdcsi --data-dir "${RUN}/etcd" \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "rbdcsi=http://127.0.0.1:${ETCD_PEER_PORT}" --listen-metrics-urls ''
  wait_until 30 "etcd" curl -sf "http://127.0.0.1:${ETCD_PORT}/health"
  start_daemon kube-apiserver "${KUBE_BIN}/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${ETCD_PORT}" --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 --secure-port "${APISERVER_PORT}" --insecure-port 0 \
    --endpoint-reconciler-type none --service-cluster-ip-range 10.96.0.0/24 \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged --client-ca-file "${p}/ca.crt" \
    --tls-cert-file "${p}/apiserver.crt" --tls-private-key-file "${p}/apiserver.key" \
    --kubelet-client-certificate "${p}/admin.crt" --kubelet-client-key "${p}/admin.key" \
    --service-account-key-file "${p}/sa.pub" --service-account-signing-key-file "${p}/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local
  wait_until 90 "kube-apiserver" kc get --raw /readyz
  start_daemon kube-controller-manager "${KUBE_BIN}/kube-controller-manager" \
    --kubeconfig "${p}/controller-manager.kubeconfig" --bind-address 127.0.0.1 --port 0 \
    --secure-port 0 --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "${p}/sa.key" --root-ca-file "${p}/ca.crt"
}

# cgroup v1: the kubelet creates kubepods under a root private to this run, in every hierarchy.
make_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -f ${h}cgroup.procs ]] || continue
    mkdir -p "${h}${CGROUP_ROOT}"
    if [[ -f ${h}cpuset.cpus ]]; then
      cat "${h}cpuset.cpus" >"${h}${CGROUP_ROOT}/cpuset.cpus"
      cat "${h}cpuset.mems" >"${h}${CGROUP_ROOT}/cpuset.mems"
    fi
  done
}

start_kubelet() {
  local k=${RUN}/kubelet-config.yaml
  make_cgroup_root
  cat >"${k}" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: ${KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${KUBELET_HEALTHZ_PORT}
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: ${RUN}/pki/ca.crt}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /${CGROUP_ROOT}
failSwapOn: false
oomScoreAdj: 0
makeIPTablesUtilChains: false
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
volumePluginDir: ${RUN}/flexvolume
clusterDomain: cluster.local
YAML
  KUBELET_ARGV=("${KUBE_BIN}/kubelet" --config "${k}" --root-dir "${KUBELET_DIR}"
    --kubeconfig "${RUN}/pki/kubelet.kubeconfig" --hostname-override "${KUBE_NODE}"
    --container-runtime remote --container-runtime-endpoint "unix://${RUN}/containerd/containerd.sock"
    --v 2)
  save_vars KUBELET_ARGV
  start_kubelet_again
}

# RBDCSI_EXTRA_FLAGS: more `serve` flags, e.g. to turn a behaviour off for a run.
start_rbdcsi() {
  # shellcheck disable=SC2206 # the extra flags are split on purpose
  RBDCSI_ARGV=("${build}/cmd/rbdcsi" serve
    --endpoint "unix://${KUBELET_DIR}/plugins/${KUBE_DRIVER}/csi.sock"
    --registration-dir "${KUBELET_DIR}/plugins_registry" --nodeid "${KUBE_NODE}"
    --kubelet-dir "${KUBELET_DIR}"
    --state-dir "${RUN}/rbdcsi/state" --data-dir "${RUN}/rbdcsi/data" --key-dir "${RUN}/rbdcsi/keys"
    --cri-endpoint "unix://${RUN}/containerd/containerd.sock" ${RBDCSI_EXTRA_FLAGS:-})
  save_vars RBDCSI_ARGV
  start_rbdcsi_again
}

up() {
  if [[ $(id -u) -ne 0 ]]; then
    mkdir -p "${KUBE_STATE}" && echo "not root: the kubelet needs root" >"${KUBE_STATE}/skip-reason"
    echo "SKIP: $(cat "${KUBE_STATE}/skip-reason")"
    exit 77
  fi
  rm -f "${KUBE_STATE}/skip-reason"
  (down)  # whatever an interrupted earlier run left
  local started=${SECONDS}
  "${here}/build-kube.sh" "${KUBE_STATE}"
  klog "binaries ready in $((SECONDS - started)) s"
  RUN=$(mktemp -d /tmp/rbdcsi-kube-XXXXXX)
  echo "${RUN}" >"${KUBE_STATE}/run-dir"
  mkdir -p "${RUN}/logs" "${RUN}/pids" "${RUN}/rbdcsi" "${RUN}/shared"
  iptables-save 2>/dev/null | grep -o '^:[A-Z][A-Z0-9_-]*' | sort -u >"${RUN}/iptables-chains.before" || true
  ETCD_PORT=$(free_port) ETCD_PEER_PORT=$(free_port) APISERVER_PORT=$(free_port)
  KUBELET_PORT=$(free_port) KUBELET_HEALTHZ_PORT=$(free_port)
  KUBELET_DIR=${RUN}/kubelet CGROUP_ROOT=${RUN##*/}
  save_vars ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KUBELET_PORT KUBELET_HEALTHZ_PORT \
    KUBELET_DIR CGROUP_ROOT KUBE_BIN build
  started=${SECONDS}
  make_pki
  make_images
  start_containerd
  start_control_plane
  start_kubelet
  klog "node Ready $((SECONDS - started)) s after start"
  kc apply -f "${here}/../../deploy/csidriver.yaml" >/dev/null
  kc create namespace "${KUBE_NS}" >/dev/null
  wait_until 60 "the default service account" kc -n "${KUBE_NS}" get serviceaccount default
  start_rbdcsi
  klog "cluster up in $((SECONDS - started)) s (run directory ${RUN})"
}

# Deletes what the tests left in the API so the kubelet unpublishes and unstages while rbdcsi
# still serves; bounded, since a broken test may have left a volume that cannot unstage.
drain_pods() {
  [[ -n $(daemon_pid kube-apiserver) && -n $(daemon_pid kubelet) ]] || return 0
  kc delete namespace "${KUBE_NS}" --wait=false >/dev/null 2>&1
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    [[ -z $(kc get pods -A --no-headers 2>/dev/null) ]] &&
      [[ -z $(mounts_under "${KUBELET_DIR}/plugins/kubernetes.io/csi") ]] && break
    sleep 0.5
  done
  kc delete pv --all --wait=false >/dev/null 2>&1
}

# Kills every container of this run's containerd (the shims outlive containerd otherwise).
kill_containers() {
  local ctr_=(ctr --address "${RUN}/containerd/containerd.sock" -n k8s.io) id pid
  if [[ -n $(daemon_pid containerd) ]]; then
    for id in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do
      "${ctr_[@]}" tasks kill -s SIGKILL "${id}" >/dev/null 2>&1
    done
    sleep 1
    for id in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do
      "${ctr_[@]}" tasks delete -f "${id}" >/dev/null 2>&1
    done
  fi
  stop_daemon containerd
  # Shims of this run carry its containerd socket in their command line.
  for pid in $(grep -lsF -- "${RUN}/containerd/containerd.sock" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [[ $(cat "/proc/${pid}/comm" 2>/dev/null) == containerd-shim* ]] && kill -KILL "${pid}" 2>/dev/null
  done
  # Any process still in this run's cgroups was started by this run.
  for pid in $(cat /sys/fs/cgroup/*/"${CGROUP_ROOT}"/cgroup.procs \
    /sys/fs/cgroup/*/"${CGROUP_ROOT}"/*/cgroup.procs /sys/fs/cgroup/*/"${CGROUP_ROOT}"/*/*/cgroup.procs \
    /sys/fs/cgroup/*/"${CGROUP_ROOT}"/*/*/*/cgroup.procs 2>/dev/null | sort -u); do
    kill -KILL "${pid}" 2>/dev/null
  done
}

remove_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -d ${h}${CGROUP_ROOT} ]] || continue
    find "${h}${CGROUP_ROOT}" -depth -type d -exec rmdir {} + 2>/dev/null
  done
}

# Removes KUBE-* iptables chains that did not exist before this run (kubelet is told to make
# none; this only catches a regression).
remove_new_chains() {
  local table chain
  [[ -f ${RUN}/iptables-chains.before ]] || return 0
  for table in filter nat mangle; do
    for chain in $(iptables -t "${table}" -S 2>/dev/null | awk '$1 == "-N" { print $2 }'); do
      grep -qx ":${chain}" "${RUN}/iptables-chains.before" && continue
      klog "removing iptables chain ${table}/${chain} this run created"
      iptables -t "${table}" -F "${chain}" && iptables -t "${table}" -X "${chain}"
    done
  done
}

down() {
  set +e
  RUN=$(run_dir)
  if [[ -z ${RUN} || ! -d ${RUN} ]]; then
    rm -f "${KUBE_STATE}/run-dir"
    return 0
  fi
  [[ -f ${RUN}/env ]] && source "${RUN}/env"
  KUBELET_DIR=${KUBELET_DIR:-${RUN}/kubelet} CGROUP_ROOT=${CGROUP_ROOT:-${RUN##*/}}
  klog "tearing down ${RUN}"
  drain_pods
  stop_daemon kubelet
  kill_containers
  stop_daemon rbdcsi
  stop_daemon kube-controller-manager
  stop_daemon kube-apiserver
  stop_daemon etcd
  local m dev attempt
  for attempt in 1 2 3; do
    for m in $(mounts_under "${RUN}"); do umount "${m}" 2>/dev/null; done
    [[ -z $(mounts_under "${RUN}") ]] && break
    sleep 1
  done
  for dev in $(loops_backed_under "${RUN}/rbdcsi/data"); do
    klog "detaching ${dev}, left attached by a failed test"
    losetup -d "${dev}"
  done
  remove_cgroups
  remove_new_chains
  rm -rf /var/log/pods/"${KUBE_NS}"_* /var/log/containers/*_"${KUBE_NS}"_*
  if [[ -n $(mounts_under "${RUN}") ]]; then
    klog "LEAK: still mounted: $(mounts_under "${RUN}" | tr '\n' ' ') — keeping ${RUN}"
    return 1
  fi
  rm -rf "${RUN}"
  rm -f "${KUBE_STATE}/run-dir"
  klog "torn down"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
  echo "usage: $0 up|down BUILD_DIR" >&2
  exit 2
  ;;
esac
