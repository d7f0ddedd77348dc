# The seed incident: a node_exporter-like pod mounts the host's / with propagation None while an
# app pod's volume is staged; the app pod is deleted. Two holders, one after the other:
#  1. the holder also has a file on the volume open: NodeUnstageVolume refuses, naming the
#     holder (pid, command, pod, container); the kubelet retries; once the holder pod is
#     deleted the next retry unstages. Timed: holder exit -> device released, attempts, intervals.
#  2. the holder only has its private copy of the mount: with a plugin that releases such
#     copies (issue 14) the first unstage succeeds and the holder keeps running; without, it is
#     refused like 1 until the holder goes.
# shellcheck shell=bash

refusals() { calls NodeUnstageVolume "$1" | grep -c code=FAILED_PRECONDITION || true; }
refused_more_than() { (($(refusals "$1") > $2)); }

# seed_round VOLUME PV HOLDER_SCRIPT EXPECT(refuse|release)
seed_round() {
  local vol=$1 pv=$2 script=$3 expect=$4 holder t_exit t_rel before refused attempts
  holder=$(app_and_holder "${pv}" None "${script}")
  before=$(count_calls NodeUnstageVolume "${vol}")
  refused=$(refusals "${vol}")

  kc -n "${KUBE_NS}" delete pod app --wait=false >/dev/null
  if [[ ${expect} == release ]]; then
    wait_until 60 "the volume released with the holder still running" volume_released "${vol}" "${pv}"
    attempts=$(($(count_calls NodeUnstageVolume "${vol}") - before))
    check "the first NodeUnstageVolume succeeded (attempts: ${attempts})" test "${attempts}" -eq 1
    check "the holder (pid ${holder}) still runs" kill -0 "${holder}"
    check "the holder's view of the staging path is empty" \
      test -z "$(ls -A "/proc/${holder}/root/host$(globalmount "${pv}")" 2>/dev/null)"
    kc -n "${KUBE_NS}" delete pod node-exporter --wait=false >/dev/null
    wait_until 60 "pod app gone" pod_gone app
    wait_until 60 "pod node-exporter gone" pod_gone node-exporter
    return
  fi

  wait_until 60 "a refused NodeUnstageVolume" refused_more_than "${vol}" "${refused}"
  local refusal
  refusal=$(calls NodeUnstageVolume "${vol}" | grep code=FAILED_PRECONDITION | tail -1 | sed 's/.* error="//; s/"$//')
  klog "refusal: ${refusal}"
  check "the refusal names the holder's pid and command" grep -qF "pid ${holder} (node_exporter" <<<"${refusal}"
  check "the refusal names the holder's pod and container" \
    grep -qE "pod ${KUBE_NS}/node-exporter|${KUBE_NS}/node-exporter" <<<"${refusal}"
  check "the refusal names the container" grep -qF "node-exporter" <<<"${refusal}"
  check "the device is still mapped" volume_mapped "${vol}"
  wait_until 60 "the kubelet to log the refusal" grep -qF "pid ${holder} (node_exporter" "${RUN}/logs/kubelet.log"
  klog "kubelet logged: $(grep -F "pid ${holder} (node_exporter" "${RUN}/logs/kubelet.log" | head -1)"
  # Let the kubelet retry a few times, as it would while nobody looks.
  wait_until 60 "three refused attempts" refused_more_than "${vol}" $((refused + 2))

  kc -n "${KUBE_NS}" delete pod node-exporter --wait=false >/dev/null
  wait_until 60 "the holder to exit" sh -c "! kill -0 ${holder} 2>/dev/null"
  t_exit=$(now_ms)
  wait_until 300 "the volume released after the holder left" volume_released "${vol}" "${pv}"
  t_rel=$(now_ms)
  attempts=$(($(count_calls NodeUnstageVolume "${vol}") - before))
  klog "measure: holder exit -> device released: $((t_rel - t_exit)) ms; NodeUnstageVolume attempts: ${attempts}"
  klog "measure: NodeUnstageVolume calls:"
  python3 "${here}/calls.py" "${RUN}/logs/rbdcsi.log" NodeUnstageVolume "${vol}" |
    tail -n "${attempts}" | sed "1s/ +[0-9]* ms$//" >&2
  check "the last attempt succeeded" test -n "$(calls NodeUnstageVolume "${vol}" | tail -1 | grep code=OK)"
  check "kubelet's globalmount directory is gone" test ! -e "$(globalmount "${pv}")"
  check "the volume record is gone" test -z "$(ls -A "${RUN}/rbdcsi/state/volumes")"
  wait_until 60 "pod app gone" pod_gone app
  wait_until 60 "pod node-exporter gone" pod_gone node-exporter
}

scenario_seed_incident() {
  local vol pv=seed open_file
  vol=$(create_volume seed)
  pv_pvc "${pv}" "${vol}"
  open_file="exec 3</host$(globalmount "${pv}")/hello && touch /out/holder.ready && exec node_exporter"
  klog "round 1: the holder keeps a file on the volume open"
  seed_round "${vol}" "${pv}" "${open_file}" refuse
  klog "round 2: the holder only has its private copy of the mount"
  if plugin_releases_private_copies; then
    seed_round "${vol}" "${pv}" "touch /out/holder.ready && exec node_exporter" release
  else
    seed_round "${vol}" "${pv}" "touch /out/holder.ready && exec node_exporter" refuse
  fi
}
