#!/usr/bin/env bash
# Installs what rbdcsi needs to build, run and test, from Debian 12 packages.
# Idempotent, and a fast no-op when everything is already installed.
# --build-only: only what compiling the plugin with g++ needs (the image's build stage).
set -euo pipefail

build_packages=(
  cmake g++ make pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libmount-dev libblkid-dev libgtest-dev libgmock-dev
  # YAML for migrate-pv
  libyaml-cpp-dev
  # Prometheus metrics (serve --metrics-address)
  prometheus-cpp-dev
  # the Ceph client libraries of the controller's Ceph backend
  librados-dev libradospp-dev librbd-dev
)
packages=(
  "${build_packages[@]}"
  # the fuzz targets (libFuzzer) and sanitizer builds: clang and its runtime libraries
  clang libclang-rt-14-dev
  # run: filesystems, mounts, loop devices, holder tooling
  util-linux mount e2fsprogs xfsprogs kmod procps
  # the live test cluster (tests/ceph) and the fuse mapper
  ceph-mon ceph-osd ceph-mgr ceph-common rbd-fuse
  # the README's gRPC client and the benchmark's comparison tools
  python3 python3-grpcio python3-protobuf lsof psmisc
  # the manifest tests (deploy/)
  python3-yaml
  # the vm tests: a qemu guest with Debian's kernel and a busybox initramfs (tests/vm/), nbd
  qemu-system-x86 busybox-static rbd-nbd
  # the kube tests: a one-node cluster on 127.0.0.1, kubelet built from Debian's source package
  dpkg-dev xz-utils golang-go golang-github-modern-go-reflect2-dev etcd-server containerd runc
  containernetworking-plugins iptables openssl curl
)

if [[ "${1:-}" == --build-only ]]; then
  packages=("${build_packages[@]}")
elif (($# > 0)); then
  echo "usage: install-deps.sh [--build-only]" >&2
  exit 2
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
