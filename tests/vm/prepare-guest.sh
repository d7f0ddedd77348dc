#!/usr/bin/env bash
# Prepares what tests/vm/vm-run boots: Debian's own kernel (fetched with apt, unpacked, only the
# modules the tests need kept) and a small busybox initramfs that mounts the host's root over 9p.
#
#   tests/vm/prepare-guest.sh CACHE_DIR
#
# CACHE_DIR (normally build/vm-guest) receives vmlinuz, initramfs.img, root/lib/modules/VERSION
# and the file `ready` naming the kernel version. A cache that is ready is reused as it is;
# delete the directory to fetch the current kernel again. Exit 77 when qemu cannot run here.
set -euo pipefail

# Modules the guest tests load (the dependencies come along).
readonly kTestModules=(rbd nbd loop ext4 xfs overlay fuse)
# Modules the initramfs loads to reach the 9p root and build the overlay on it.
readonly kBootModules=(virtio_pci 9pnet_virtio 9p overlay)

die() { echo "prepare-guest: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: prepare-guest.sh CACHE_DIR"
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
"$here/vm-run" --probe || exit $?  # 77 (with the reason) when qemu cannot run at all
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
exec 9>"$cache/.lock"
flock 9
if [[ -f "$cache/ready" ]]; then
  echo "prepare-guest: reusing $cache (kernel $(cat "$cache/ready"))"
  exit 0
fi

unpack=$(mktemp -d "$cache/rbdcsi-unpack.XXXXXX")
trap 'rm -rf "$unpack"' EXIT

# The package linux-image-amd64 depends on names the current kernel, e.g. linux-image-6.1.0-N-amd64.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
package=$(kernel_package)
if [[ -z "$package" ]]; then
  apt-get update -qq
  package=$(kernel_package)
fi
[[ -n "$package" ]] || die "apt knows no linux-image-amd64 (is a Debian mirror configured?)"
version=${package#linux-image-}
echo "prepare-guest: fetching $package"
# apt drops privileges to _apt for downloads; the directory must be writable for it.
chmod 0777 "$unpack"
if ! (cd "$unpack" && apt-get download -qq "$package" 2>/dev/null); then
  apt-get update -qq
  (cd "$unpack" && apt-get download -qq "$package") || die "apt-get download $package failed"
fi
dpkg-deb -x "$unpack"/"$package"_*.deb "$unpack/x"
depmod -b "$unpack/x" "$version"

# Copies the named modules and everything they depend on into ROOT, keeping their paths.
copy_modules() {
  local root=$1; shift
  local m ko
  for m in "$@"; do
    modprobe -d "$unpack/x" -S "$version" --show-depends "$m" |
      awk '$1 == "insmod" { print $2 }'
  done | awk '!seen[$0]++' | while read -r ko; do
    rel=${ko#"$unpack/x/"}
    mkdir -p "$root/$(dirname "$rel")"
    cp "$ko" "$root/$rel"
    echo "$rel"
  done
}

# The modules tree the guest bind-mounts at /lib/modules/VERSION.
rm -rf "$cache/root"
mods=lib/modules/$version
mkdir -p "$cache/root/$mods"
copy_modules "$cache/root" "${kTestModules[@]}" "${kBootModules[@]}" >/dev/null
cp "$unpack/x/$mods"/modules.{order,builtin,builtin.modinfo} "$cache/root/$mods/"
depmod -b "$cache/root" "$version"
cp "$unpack/x/boot/vmlinuz-$version" "$cache/vmlinuz"

# The initramfs: static busybox, the boot modules in load order, and init.
initrd=$unpack/initrd
mkdir -p "$initrd/bin"
cp /bin/busybox "$initrd/bin/busybox"
file_is_static=$(LC_ALL=C readelf -d "$initrd/bin/busybox" 2>&1 | grep -c NEEDED || true)
[[ "$file_is_static" == 0 ]] || die "/bin/busybox is not static (install busybox-static)"
copy_modules "$initrd" "${kBootModules[@]}" >"$initrd/modules.load"
cp "$here/initramfs-init" "$initrd/init"
chmod 0755 "$initrd/init"
(cd "$initrd" && find . -mindepth 1 | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null) |
  gzip -9 >"$cache/initramfs.img.tmp"
mv "$cache/initramfs.img.tmp" "$cache/initramfs.img"

rm -rf "$unpack"
echo "$version" >"$cache/ready"
echo "prepare-guest: kernel $version ready in $cache" \
  "($(du -sh "$cache" | cut -f1), initramfs $(du -h "$cache/initramfs.img" | cut -f1))"
