#!/usr/bin/env bash
# Builds rbdcsi and serves it on a local socket on the embedded loop backend (no Ceph needed).
# Override with RBDCSI_ENDPOINT, RBDCSI_STATE_DIR, RBDCSI_DATA_DIR, RBDCSI_KUBELET_DIR (where
# staging and target paths must lie: the README's walkthroughs use /tmp/rbdcsi-demo); extra
# args go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
endpoint=${RBDCSI_ENDPOINT:-unix:///run/rbdcsi/csi.sock}
state=${RBDCSI_STATE_DIR:-/var/lib/rbdcsi/state}
data=${RBDCSI_DATA_DIR:-/var/lib/rbdcsi/data}
kubelet=${RBDCSI_KUBELET_DIR:-/tmp/rbdcsi-demo}
mkdir -p "${kubelet}"
cat <<MSG
rbdcsi serving on ${endpoint} (state ${state}, loop images in ${data}, staging and target
paths under ${kubelet}). Ctrl-C stops it.
From another shell:
  scripts/csi-call --endpoint ${endpoint} GetPluginInfo
  scripts/csi-call --endpoint ${endpoint} Probe
MSG
exec build/cmd/rbdcsi serve --endpoint "${endpoint}" --state-dir "${state}" --data-dir "${data}" \
  --kubelet-dir "${kubelet}" "$@"
