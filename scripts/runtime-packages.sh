#!/usr/bin/env bash
# Prints the Debian packages that own the shared libraries BINARY links, one per line: what a
# runtime image must install to run it (the Dockerfile's final stage uses this list).
# Exit 1 when a library belongs to no package (a library built by hand would be missed).
set -euo pipefail
binary=${1:?usage: runtime-packages.sh BINARY}
mapfile -t libs < <(ldd "$binary" | awk '/=> \// {print $3}')
# Debian 12 merges /usr: dpkg knows each file under /lib or /usr/lib, so look for both names,
# in dpkg's file lists directly (one grep instead of a dpkg-query per library).
names=()
for lib in "${libs[@]}"; do
  real=$(readlink -f "$lib")
  names+=("$lib" "$real" "/usr${lib#/usr}" "${lib#/usr}" "/usr${real#/usr}" "${real#/usr}")
done
owners=$(grep -HFx -f <(printf '%s\n' "${names[@]}") /var/lib/dpkg/info/*.list || true)
for lib in "${libs[@]}"; do
  base="/$(basename "$(dirname "$(readlink -f "$lib")")")/$(basename "$(readlink -f "$lib")")"
  if ! grep -qF -- "$base" <<<"$owners"; then
    echo "runtime-packages: no Debian package owns $lib" >&2
    exit 1
  fi
done
# "/var/lib/dpkg/info/libc6:amd64.list:/lib/x86_64-linux-gnu/libc.so.6" -> "libc6"
sed -E 's|^/var/lib/dpkg/info/([^:/]+)(:[a-z0-9]+)?\.list:.*|\1|' <<<"$owners" | sort -u
