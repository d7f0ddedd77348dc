#!/usr/bin/env bash
# Builds kubelet, kube-apiserver, kube-controller-manager, kubectl and a static pause binary from
# Debian 12's `kubernetes` source package (upstream v1.20.2 with vendor/), offline, into
# CACHE/bin. Does nothing when CACHE/bin already holds this version's binaries.
# Usage: build-kube.sh CACHE      (root: apt-get source runs with private lists under CACHE)
set -euo pipefail

readonly kVersion=1.20.5+really1.20.2-1.1+deb12u1
readonly kUpstream=v1.20.2
readonly kBinaries=(kubelet kube-apiserver kube-controller-manager kubectl)
here=$(cd "$(dirname "$0")" && pwd)
cache=$(mkdir -p "$1" && cd "$1" && pwd)
bin=${cache}/bin
stamp=${bin}/VERSION

if [[ -f ${stamp} && $(cat "${stamp}") == "${kVersion}" ]]; then
  exit 0
fi
log() { echo "build-kube: $*" >&2; }
started=${SECONDS}
work=${cache}/work
rm -rf "${work}" "${bin}"
mkdir -p "${work}/lists/partial" "${work}/apt-cache/archives/partial" "${bin}"

# apt-get source needs deb-src lines; pass our own list and state so the host's apt stays as is.
cat >"${work}/sources.list" <<LIST
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
LIST
apt_opts=(-o "Dir::Etc::SourceList=${work}/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=${work}/lists" -o "Dir::Cache=${work}/apt-cache")
log "fetching the kubernetes source package ${kVersion}"
apt-get "${apt_opts[@]}" update -qq
(cd "${work}" && apt-get "${apt_opts[@]}" -qq --download-only source "kubernetes=${kVersion}")
(cd "${work}" && dpkg-source -x kubernetes_*.dsc src >/dev/null 2>&1)
src=${work}/src

# Fix 1: vendor/modules.txt in the layout Go >= 1.17 accepts with -mod=vendor.
python3 "${here}/fix_vendor_modules.py" "${src}/vendor/modules.txt"
# Fix 2: the vendored reflect2 1.0.1 breaks with Go >= 1.18; Debian's 1.0.2 replaces it.
reflect2=${src}/vendor/github.com/modern-go/reflect2
rm -rf "${reflect2}" && mkdir "${reflect2}"
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.{go,s} "${reflect2}/"

export GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0 GOCACHE=${work}/gocache
export GOPATH=${work}/gopath
# Fix 3: the tarball lacks pkg/generated/openapi/zz_generated.openapi.go; generate it with the
# tree's own openapi-gen over the packages tagged +k8s:openapi-gen (as its Makefile does).
log "generating the OpenAPI definitions"
(cd "${src}" && go build -o "${work}/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
mkdir -p "${GOPATH}/src/k8s.io" && ln -sfn "${src}" "${GOPATH}/src/k8s.io/kubernetes"
inputs=$(cd "${src}" &&
  find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -name '*.go' -print |
  xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' |
  sed 's|^\./staging/src|vendor|; s|^\./||; s|/[^/]*$||' |
  grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
  LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd,)
(cd "${GOPATH}/src/k8s.io/kubernetes" && GO111MODULE=off GOFLAGS='' "${work}/openapi-gen" \
  -i "${inputs}" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
  -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "${work}/openapi-violations")
diff -q "${work}/openapi-violations" "${src}/api/api-rules/violation_exceptions.list" >/dev/null ||
  log "warning: OpenAPI rule violations differ from the tree's known list"

# Components report an empty version without these (and kubelet's version skew checks need one).
ldflags=-s
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${kUpstream} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=20"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
log "building ${kBinaries[*]} (a few minutes on 2 cores)"
(cd "${src}" && go build -trimpath -ldflags "${ldflags}" -o "${work}/out/" \
  "${kBinaries[@]/#/./cmd/}")
gcc -static -O2 -DVERSION="${kUpstream}-rbdcsi" -o "${work}/out/pause" \
  "${src}/build/pause/linux/pause.c"
for b in "${kBinaries[@]}" pause; do install -m 0755 "${work}/out/${b}" "${bin}/${b}"; done
echo "${kVersion}" >"${stamp}"
rm -rf "${work}"  # ~2 GB of source and Go build cache; the binaries are what is reused
log "done in $((SECONDS - started)) s: ${bin}"
