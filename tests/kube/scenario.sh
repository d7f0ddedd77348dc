#!/usr/bin/env bash
# Runs one kube scenario against the cluster `cluster.sh up` started:
#   scenario.sh BUILD_DIR NAME        (NAME: a file tests/kube/scenarios/NAME.sh)
# Exit 0 when every check passed, 1 on the first failed one, 77 when no cluster could start.
# Whatever the scenario created in the API is deleted afterwards, pass or fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
name=$2
KUBE_STATE=${build}/kube
# shellcheck source=tests/kube/lib.sh
source "${here}/lib.sh"
# shellcheck source=tests/kube/k8s.sh
source "${here}/k8s.sh"
load_cluster
# shellcheck source=/dev/null
source "${here}/scenarios/${name}.sh"
trap cleanup_scenario_objects EXIT
klog "scenario ${name}"
started=${SECONDS}
"scenario_${name//-/_}"
klog "scenario ${name} passed in $((SECONDS - started)) s"
