#!/usr/bin/env bash
# Builds rbdcsi and its benchmark programs (bench/), runs them all as root and writes the
# "Latest run" section of BENCHMARKS.md (between the bench.sh markers; printed to stdout too).
#
#   scripts/bench.sh [--hostpath PATH] [--hostpath-label TEXT] [--quick] [--no-write]
#
# --hostpath: csi-driver-host-path's hostpathplugin binary, the reference for footprint and RPC
# overhead (built from its public source; see README). --quick: smaller figures for a smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

hostpath="" label="csi-driver-host-path" quick=0 write=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --hostpath) hostpath="$(realpath "$2")"; shift 2 ;;
    --hostpath-label) label="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --no-write) write=0; shift ;;
    *) echo "usage: $0 [--hostpath PATH] [--hostpath-label TEXT] [--quick] [--no-write]" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench.sh: run as root (mounts, namespaces, loop devices)" >&2; exit 2; }

scripts/build.sh --target rbdcsi holder_bench mass_bench rpc_bench
out="$(mktemp -d /tmp/rbdcsi-benchsh-XXXXXX)"
busy_pids=()
cleanup() {
  for pid in "${busy_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT

if [[ $quick -eq 1 ]]; then
  mass=(--volumes 20 --reps 1) rpc=(--starts 2 --calls 100 --rounds 1)
  holder=(--mounts 100 --namespaces 20 --processes 200 --trials 10 --tool-repeats 1 --scan-repeats 3)
else
  mass=(--volumes 100 --reps 3) rpc=(--starts 5 --calls 500 --rounds 3)
  holder=(--trials 30 --tool-repeats 3 --scan-repeats 5)
fi
hp=()
[[ -n $hostpath ]] && hp=(--hostpath "$hostpath" --hostpath-label "$label")

snapshot() {  # what else ran: load and the busiest other processes
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg); busiest processes: $(
    ps -eo comm,%cpu --sort=-%cpu --no-headers | head -5 | awk '{printf "%s%s %s%%", s, $1, $2; s=", "}')"
}
before="$(snapshot)"
start_time="$(date -u '+%Y-%m-%d %H:%M UTC')"

echo "== rpc_bench" >&2
build/bench/rpc_bench --rbdcsi build/cmd/rbdcsi "${hp[@]}" "${rpc[@]}" >"$out/rpc.md"
echo "== mass_bench" >&2
build/bench/mass_bench --rbdcsi build/cmd/rbdcsi "${mass[@]}" >"$out/mass.md"
echo "== holder_bench" >&2
build/bench/holder_bench "${holder[@]}" --markdown "$out/holder.md" --label "as found" >&2
# The same while two compilers run beside it (one per vCPU of the reference machine).
for _ in 1 2; do
  (while :; do c++ -std=c++17 -O2 -I. -c bench/holder_bench.cc -o /dev/null 2>/dev/null; done) &
  busy_pids+=($!)
done
build/bench/holder_bench "${holder[@]}" --markdown "$out/holder.md" \
  --label "two compilers beside it" >&2
for pid in "${busy_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
busy_pids=()
after="$(snapshot)"

{
  echo "## Latest run (\`scripts/bench.sh\`)"
  echo
  echo "- Date: $start_time; command: \`scripts/bench.sh${hostpath:+ --hostpath PATH}$([[ $quick -eq 1 ]] && echo " --quick")\`"
  echo "- Machine: $(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"), Release build"
  echo "- Beside it, at the start: $before"
  echo "- At the end: $after"
  echo
  cat "$out/rpc.md" "$out/mass.md"
  echo "### Holder scan (\`holder_bench\`)"
  echo
  echo "Synthetic node: ${holder[*]}; median times; the ratio is the task grep's time over the scan's."
  echo
  echo "| run | rbdcsi scan | \`grep -l\` over every task's mountinfo | ratio (goal >= 30x) | holders found by the scan | release-to-unmap p50 / p99 |"
  echo "|---|---|---|---|---|---|"
  cat "$out/holder.md"
} >"$out/section.md"
cat "$out/section.md"

if [[ $write -eq 1 ]]; then
  begin='<!-- bench.sh: begin -->' end='<!-- bench.sh: end -->'
  grep -qF "$begin" BENCHMARKS.md || printf '\n%s\n%s\n' "$begin" "$end" >>BENCHMARKS.md
  awk -v b="$begin" -v e="$end" -v f="$out/section.md" '
    $0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' BENCHMARKS.md >"$out/BENCHMARKS.md"
  cp "$out/BENCHMARKS.md" BENCHMARKS.md
  echo "bench.sh: wrote the section into BENCHMARKS.md" >&2
fi
