# Shared by the kube test scripts (sourced, not run). Needs KUBE_STATE set to the directory
# (under the build tree) where the running cluster's run directory is recorded.
# shellcheck shell=bash

readonly KUBE_NODE=rbdcsi-node
readonly KUBE_NS=rbdcsi-test
readonly KUBE_DRIVER=rbd.rbdcsi.dev

klog() { echo "[$(date -u +%H:%M:%S.%N | cut -c1-12)] $*" >&2; }
die() {
  klog "FAIL: $*"
  exit 1
}

# The run directory of the cluster started by `cluster.sh up`, or "" when there is none.
run_dir() { cat "${KUBE_STATE}/run-dir" 2>/dev/null || true; }

# Loads the running cluster's paths and ports (written by cluster.sh up) or exits 77 saying why
# there is no cluster.
load_cluster() {
  RUN=$(run_dir)
  if [[ -z ${RUN} || ! -f ${RUN}/env ]]; then
    if [[ -f ${KUBE_STATE}/skip-reason ]]; then
      echo "SKIP: the cluster could not start: $(cat "${KUBE_STATE}/skip-reason")"
      exit 77
    fi
    die "no cluster is running (tests/kube/cluster.sh up did not finish)"
  fi
  # shellcheck source=/dev/null
  source "${RUN}/env"
}

# save_vars NAME...: appends the variables to ${RUN}/env, global when sourced in a function.
save_vars() { declare -p "$@" | sed 's/^declare /declare -g /' >>"${RUN}/env"; }

kc() { "${KUBE_BIN}/kubectl" --kubeconfig "${RUN}/pki/admin.kubeconfig" "$@"; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${limit} s waiting for ${what}"
    sleep 0.2
  done
}

# The pid recorded for a daemon, if it still runs.
daemon_pid() {
  local pid
  pid=$(cat "${RUN}/pids/$1" 2>/dev/null) || return 1
  kill -0 "${pid}" 2>/dev/null && echo "${pid}"
}

# start_daemon NAME COMMAND...: runs COMMAND in its own session, output to logs/NAME.log.
start_daemon() {
  local name=$1
  shift
  setsid "$@" >>"${RUN}/logs/${name}.log" 2>&1 </dev/null &
  echo $! >"${RUN}/pids/${name}"
}

# stop_daemon NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 10).
stop_daemon() {
  local pid limit=${2:-10}
  pid=$(daemon_pid "$1") || return 0
  kill -TERM "${pid}" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${pid}" 2>/dev/null || true
  while kill -0 "${pid}" 2>/dev/null; do sleep 0.1; done
  rm -f "${RUN}/pids/$1"
}

# Mount points under $1 in this mount namespace, deepest first.
mounts_under() {
  awk -v dir="$1" '{ p = $5; gsub(/\\040/, " ", p); if (p == dir || index(p, dir "/") == 1) print p }' \
    /proc/self/mountinfo | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# Loop devices whose backing file lies under $1.
loops_backed_under() {
  local f
  for f in /sys/block/loop*/loop/backing_file; do
    [[ -r ${f} ]] || continue
    case "$(cat "${f}" 2>/dev/null)" in
    "$1"/*) f=${f#/sys/block/} && echo "/dev/${f%%/*}" ;;
    esac
  done
}

# Starts the kubelet with the arguments `cluster.sh up` chose; waits for the node to be Ready.
start_kubelet_again() {
  start_daemon kubelet "${KUBELET_ARGV[@]}"
  wait_until 120 "node ${KUBE_NODE} Ready" node_ready
}
node_ready() {
  [[ $(kc get node "${KUBE_NODE}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

# Starts rbdcsi with the arguments `cluster.sh up` chose; waits until the kubelet registered it
# (again: the registration socket is new, so the kubelet's plugin watcher calls GetInfo anew).
start_rbdcsi_again() {
  local before
  before=$(registrations)
  start_daemon rbdcsi "${RBDCSI_ARGV[@]}"
  wait_until 60 "the kubelet to register ${KUBE_DRIVER}" registered_since "${before}"
}
registrations() {
  [[ -f ${RUN}/logs/rbdcsi.log ]] || { echo 0 && return; }
  grep -c "kubelet registered driver ${KUBE_DRIVER}" "${RUN}/logs/rbdcsi.log" || true
}
registered_since() {
  (($(registrations) > $1)) &&
    kc get csinode "${KUBE_NODE}" -o jsonpath='{.spec.drivers[*].name}' | grep -qw "${KUBE_DRIVER}"
}
