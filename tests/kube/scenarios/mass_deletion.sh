# Mass deletion, as the incident began: 20 pods with one volume each, deleted together; every
# volume is unstaged and nothing is left mapped or mounted.
# shellcheck shell=bash

scenario_mass_deletion() {
  local n=20 i vols=() t0 t1 pending
  for ((i = 0; i < n; i++)); do vols+=("$(create_volume "mass-${i}")"); done
  for ((i = 0; i < n; i++)); do
    pv_pvc_yaml "mass-${i}" "${vols[i]}"
    app_pod_yaml "mass-${i}" "mass-${i}" "echo ${i} > /data/i && exec sleep 3600"
  done | kc apply -f - >/dev/null
  t0=$(now_ms)
  for ((i = 0; i < n; i++)); do wait_until 300 "pod mass-${i} Running" pod_running "mass-${i}"; done
  klog "measure: ${n} pods Running $(($(now_ms) - t0)) ms after the last was created"
  check "${n} volumes are mapped" test "$(loops_backed_under "${RUN}/rbdcsi/data" | wc -l)" -eq "${n}"

  t0=$(now_ms)
  kc -n "${KUBE_NS}" delete pod --all --wait=false >/dev/null
  for ((i = 0; i < n; i++)); do
    wait_until 300 "volume mass-${i} released" volume_released "${vols[i]}" "mass-${i}"
  done
  t1=$(now_ms)
  klog "measure: ${n} pods deleted at once -> all devices released: $((t1 - t0)) ms"
  check "no loop device of this run is left" test -z "$(loops_backed_under "${RUN}/rbdcsi/data")"
  check "nothing is left mounted under kubelet's CSI directory" \
    test -z "$(mounts_under "${KUBELET_DIR}/plugins/kubernetes.io/csi")"
  check "every NodeUnstageVolume succeeded" \
    test -z "$(calls NodeUnstageVolume mass- | grep -v code=OK)"
  check "no volume record is left" test -z "$(ls -A "${RUN}/rbdcsi/state/volumes")"
}
