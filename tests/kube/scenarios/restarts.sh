# Restarts: rbdcsi is killed (SIGKILL, as a crash) and started again while a volume is staged
# and published; later the kubelet is restarted while a pod runs. Each time the kubelet's later
# unpublish and unstage succeed and the device is released.
# shellcheck shell=bash

scenario_restarts() {
  local vol pv=restart
  vol=$(create_volume restart)
  pv_pvc "${pv}" "${vol}"

  app_pod app "${pv}" 'echo one > /data/hello && sync && exec sleep 3600'
  wait_until 120 "pod app Running" pod_running app
  wait_until 30 "the staging mount" mountpoint -q "$(globalmount "${pv}")"
  kill -KILL "$(daemon_pid rbdcsi)"
  wait_until 10 "rbdcsi gone" sh -c "! kill -0 $(cat "${RUN}/pids/rbdcsi") 2>/dev/null"
  klog "rbdcsi killed; starting it again"
  start_rbdcsi_again
  kc -n "${KUBE_NS}" delete pod app --wait=false >/dev/null
  wait_until 120 "the volume released after rbdcsi's restart" volume_released "${vol}" "${pv}"
  check "unpublish and unstage after rbdcsi's restart succeeded" \
    test -n "$(calls NodeUnstageVolume "${vol}" | tail -1 | grep code=OK)"
  wait_until 60 "pod app gone" pod_gone app

  app_pod app2 "${pv}" 'cat /data/hello > /out/app2.out && exec sleep 3600'
  wait_until 120 "pod app2 Running" pod_running app2
  wait_until 30 "app2's output" test -s "${RUN}/shared/app2.out"
  check "the data survived" test "$(cat "${RUN}/shared/app2.out")" = one
  stop_daemon kubelet
  klog "kubelet stopped; starting it again"
  start_kubelet_again
  kc -n "${KUBE_NS}" delete pod app2 --wait=false >/dev/null
  wait_until 120 "the volume released after the kubelet's restart" volume_released "${vol}" "${pv}"
  check "unstage after the kubelet's restart succeeded" \
    test -n "$(calls NodeUnstageVolume "${vol}" | tail -1 | grep code=OK)"
  check "kubelet's globalmount directory is gone" test ! -e "$(globalmount "${pv}")"
}
