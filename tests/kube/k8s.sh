# Helpers the scenarios share: volumes, PVs, pods, and what the node shows of them (sourced).
# shellcheck shell=bash

csi() {
  "${here}/../../scripts/csi-call" --endpoint "unix://${KUBELET_DIR}/plugins/${KUBE_DRIVER}/csi.sock" "$@"
}

# create_volume NAME: CreateVolume (64 MiB, ext4, single node writer); prints the volume id.
create_volume() {
  csi CreateVolume '{"name": "'"$1"'", "capacity_range": {"required_bytes": 67108864},
    "volume_capabilities": [{"mount": {"fs_type": "ext4"},
    "access_mode": {"mode": "SINGLE_NODE_WRITER"}}]}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["volume"]["volume_id"])'
}

# pv_pvc NAME VOLUME_ID: a static PV for the volume and a claim bound to it, both named NAME.
# Each *_yaml function prints what its namesake applies, for applying many objects at once.
pv_pvc() { pv_pvc_yaml "$@" | kc apply -f - >/dev/null; }
pv_pvc_yaml() {
  cat <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: $1}
spec:
  capacity: {storage: 64Mi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  csi: {driver: ${KUBE_DRIVER}, volumeHandle: "$2", fsType: ext4}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $1, namespace: ${KUBE_NS}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: $1
  resources: {requests: {storage: 64Mi}}
---
YAML
}

# pod NAME CONTAINER SCRIPT MOUNT VOLUME: a busybox pod running SCRIPT in sh, with the volume
# MOUNT/VOLUME (YAML flow mappings) and the run's shared directory at /out (how tests read what
# pods wrote). No scheduler runs: the pod names the node itself.
pod() { pod_yaml "$@" | kc apply -f - >/dev/null; }
pod_yaml() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: ${KUBE_NS}}
spec:
  nodeName: ${KUBE_NODE}
  hostNetwork: true
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: $2
    image: rbdcsi.local/busybox:v1
    imagePullPolicy: Never
    command: [sh, -c, '$3']
    volumeMounts: [$4, {name: out, mountPath: /out}]
  volumes: [$5, {name: out, hostPath: {path: ${RUN}/shared, type: Directory}}]
---
YAML
}

# app_pod NAME CLAIM SCRIPT: CLAIM at /data.
app_pod() { app_pod_yaml "$@" | kc apply -f - >/dev/null; }
app_pod_yaml() {
  pod_yaml "$1" app "$3" '{name: data, mountPath: /data}' \
    "{name: data, persistentVolumeClaim: {claimName: $2}}"
}

pod_uid() { kc -n "${KUBE_NS}" get pod "$1" -o jsonpath='{.metadata.uid}'; }
pod_phase() { kc -n "${KUBE_NS}" get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
pod_running() { [[ $(pod_phase "$1") == Running ]]; }
pod_gone() { ! kc -n "${KUBE_NS}" get pod "$1" >/dev/null 2>&1; }

globalmount() { echo "${KUBELET_DIR}/plugins/kubernetes.io/csi/pv/$1/globalmount"; }
# The image file of a loop-backend volume id "pool/image".
image_file() { echo "${RUN}/rbdcsi/data/images/${1%%/*}/${1#*/}.img"; }
# The loop device mapping a volume id, or nothing.
volume_device() {
  local f img
  img=$(image_file "$1")
  for f in /sys/block/loop*/loop/backing_file; do
    [[ $(cat "${f}" 2>/dev/null) == "${img}" ]] && { f=${f#/sys/block/} && echo "/dev/${f%%/*}"; }
  done
  return 0
}
volume_mapped() { [[ -n $(volume_device "$1") ]]; }
volume_released() { ! volume_mapped "$1" && [[ -z $(mounts_under "${KUBELET_DIR}/plugins/kubernetes.io/csi/pv/$2") ]]; }

# Lines of the rbdcsi log for METHOD (and, if given, a volume id); `grep -c` of them with count_calls.
calls() { grep "method=$1 " "${RUN}/logs/rbdcsi.log" | grep -F "${2:-}" || true; }
count_calls() { calls "$@" | grep -c . || true; }

# now_ms: wall clock in milliseconds, to time what the kubelet does.
now_ms() { date +%s%3N; }

# Removes what a scenario created in the API and waits for the kubelet to unstage it.
cleanup_scenario_objects() {
  kc -n "${KUBE_NS}" delete pod --all --wait=false >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)) && [[ -n $(kc -n "${KUBE_NS}" get pods --no-headers 2>/dev/null) ]]; do
    sleep 0.5
  done
  kc -n "${KUBE_NS}" delete pvc --all --wait=false >/dev/null 2>&1 || true
  kc delete pv --all --wait=false >/dev/null 2>&1 || true
}

check() {  # check DESCRIPTION COMMAND...: one assertion, logged either way
  if "${@:2}"; then
    klog "ok: $1"
  else
    die "$1"
  fi
}

# holder_pod NAME PROPAGATION SCRIPT [HOST_PATH]: a node_exporter-like pod: the host's / (or
# HOST_PATH, seen at /host/HOST_PATH) at /host with the given mountPropagation (None is the
# default). The image's /bin/node_exporter sleeps until SIGTERM, named as the incident's holder.
holder_pod() {
  local host_path=${4:-/}
  pod "$1" node-exporter "$3" \
    "{name: root, mountPath: /host${host_path%/}, readOnly: true, mountPropagation: $2}" \
    "{name: root, hostPath: {path: ${host_path}}}"
}

# app_and_holder PV PROPAGATION SCRIPT [HOST_PATH]: pod "app" on PV, staged; then pod
# "node-exporter" (holder_pod) running SCRIPT, which touches /out/holder.ready. Prints its pid.
app_and_holder() {
  app_pod app "$1" "echo $1 > /data/hello && sync && exec sleep 3600"
  wait_until 120 "pod app Running" pod_running app
  wait_until 30 "the app's staging mount" mountpoint -q "$(globalmount "$1")"
  rm -f "${RUN}/shared/holder.ready"
  holder_pod node-exporter "$2" "$3" "${4:-/}"
  wait_until 120 "pod node-exporter Running" pod_running node-exporter
  wait_until 30 "the holder ready" test -f "${RUN}/shared/holder.ready"
  local holder
  holder=$(pod_process node_exporter)
  check "the holder runs as node_exporter (pid ${holder})" test -n "${holder}"
  echo "${holder}"
}

# The host pid of the process named COMM running in this run's pod cgroups.
pod_process() {
  local pid
  for pid in $(cat /sys/fs/cgroup/pids/"${CGROUP_ROOT}"/kubepods/*/pod*/*/cgroup.procs \
    /sys/fs/cgroup/pids/"${CGROUP_ROOT}"/kubepods/pod*/*/cgroup.procs 2>/dev/null); do
    [[ $(cat "/proc/${pid}/comm" 2>/dev/null) == "$1" ]] && echo "${pid}"
  done
  return 0
}

# Whether this rbdcsi lets the kernel release private copies of a staging mount (issue 14:
# remove the staging directory when only such copies hold the device). Decided by the plugin's
# behaviour flag as `serve --help` lists it; KUBE_EXPECT_PRIVATE_RELEASE=0|1 overrides.
plugin_releases_private_copies() {
  if [[ -n ${KUBE_EXPECT_PRIVATE_RELEASE:-} ]]; then
    [[ ${KUBE_EXPECT_PRIVATE_RELEASE} == 1 ]]
    return
  fi
  local flag
  flag=$("${build}/cmd/rbdcsi" serve --help 2>&1 | grep -oE -- '--[a-z-]*release[a-z-]*' | head -1)
  [[ -n ${flag} ]] || return 1
  # A flag that turns the release off: on unless the running rbdcsi was given it.
  local argv
  argv=" $(tr '\0' ' ' <"/proc/$(daemon_pid rbdcsi)/cmdline") "
  [[ ${argv} != *" ${flag} "* && ${argv} != *" ${flag}="* ]]
}
