# Lifecycle: a static PV from CreateVolume; a pod writes; the pod is deleted, kubelet unpublishes
# and unstages, the device is released; a second pod on the same PV sees the file.
# shellcheck shell=bash

scenario_lifecycle() {
  local vol pv=life uid dev t0 t1
  vol=$(create_volume life)
  klog "CreateVolume: ${vol}"
  pv_pvc "${pv}" "${vol}"
  app_pod writer "${pv}" 'echo written-by-writer > /data/hello && sync && touch /out/writer.done && exec sleep 3600'
  wait_until 120 "pod writer Running" pod_running writer
  wait_until 30 "the writer's file" test -f "${RUN}/shared/writer.done"
  uid=$(pod_uid writer)
  dev=$(volume_device "${vol}")
  check "the volume is mapped (${dev}) and staged at kubelet's globalmount" \
    test -n "${dev}" -a "$(findmnt -no SOURCE "$(globalmount "${pv}")")" = "${dev}"
  check "the pod's volume is published at kubelet's target path" mountpoint -q \
    "${KUBELET_DIR}/pods/${uid}/volumes/kubernetes.io~csi/${pv}/mount"
  check "kubelet made NodeStageVolume and NodePublishVolume calls" \
    test "$(count_calls NodeStageVolume "${vol}")" -ge 1 -a "$(count_calls NodePublishVolume "${vol}")" -ge 1

  t0=$(now_ms)
  kc -n "${KUBE_NS}" delete pod writer --wait=false >/dev/null
  wait_until 120 "the volume released after the writer's deletion" volume_released "${vol}" "${pv}"
  t1=$(now_ms)
  klog "measure: pod deletion to device released: $((t1 - t0)) ms"
  check "NodeUnpublishVolume and NodeUnstageVolume succeeded" \
    test -n "$(calls NodeUnpublishVolume "${vol}" | grep code=OK)" -a \
    -n "$(calls NodeUnstageVolume "${vol}" | grep code=OK)"
  wait_until 60 "pod writer gone" pod_gone writer

  app_pod reader "${pv}" 'cat /data/hello > /out/reader.out && exec sleep 3600'
  wait_until 120 "pod reader Running" pod_running reader
  wait_until 30 "the reader's output" test -s "${RUN}/shared/reader.out"
  check "the second pod reads what the first wrote" \
    test "$(cat "${RUN}/shared/reader.out")" = written-by-writer
  kc -n "${KUBE_NS}" delete pod reader --wait=false >/dev/null
  wait_until 120 "the volume released after the reader's deletion" volume_released "${vol}" "${pv}"
  check "no NodeUnstageVolume failed" test -z "$(calls NodeUnstageVolume "${vol}" | grep -v code=OK)"
  wait_until 60 "pod reader gone" pod_gone reader
  kc -n "${KUBE_NS}" delete pvc "${pv}" >/dev/null && kc delete pv "${pv}" >/dev/null
  csi DeleteVolume '{"volume_id": "'"${vol}"'"}' >/dev/null
  check "DeleteVolume removed the image" test ! -e "$(image_file "${vol}")"
}
