# The fix by propagation: the same node_exporter-like holder, but with its host mount
# mountPropagation: HostToContainer. The host unmount reaches its copy, so the app pod's
# deletion unstages on the first attempt, and the holder keeps running. The holder mounts the
# kubelet's directory rather than /: containerd accepts HostToContainer only for a source on a
# shared or slave mount, and / is private on a host whose init is not systemd (the kubelet makes
# its own directory shared); on a systemd host / works the same.
# shellcheck shell=bash

scenario_propagation_fix() {
  local vol pv=fix holder before t0 t1 attempts
  vol=$(create_volume fix)
  pv_pvc "${pv}" "${vol}"
  holder=$(app_and_holder "${pv}" HostToContainer 'touch /out/holder.ready && exec node_exporter' \
    "${KUBELET_DIR}")
  check "the holder sees the staged volume" test -f "/proc/${holder}/root/host$(globalmount "${pv}")/hello"

  before=$(count_calls NodeUnstageVolume "${vol}")
  t0=$(now_ms)
  kc -n "${KUBE_NS}" delete pod app --wait=false >/dev/null
  wait_until 120 "the volume released" volume_released "${vol}" "${pv}"
  t1=$(now_ms)
  attempts=$(($(count_calls NodeUnstageVolume "${vol}") - before))
  klog "measure: pod deletion -> device released: $((t1 - t0)) ms, NodeUnstageVolume attempts: ${attempts}"
  check "the first NodeUnstageVolume succeeded" test "${attempts}" -eq 1 -a \
    -n "$(calls NodeUnstageVolume "${vol}" | tail -1 | grep code=OK)"
  check "the holder (pid ${holder}) still runs" kill -0 "${holder}"
  check "the unmount reached the holder's view" \
    test ! -e "/proc/${holder}/root/host$(globalmount "${pv}")/hello"
}
