# The rbdcsi plugin image: Debian 12, the plugin and the Ceph client tools its mappers run.
#   docker build -t rbdcsi:latest .
# Without a registry, make debian:12 and debian:12-slim from a Debian mirror first:
#   scripts/debian-base-image     (README, "Deploying on Kubernetes")
# Stage 1 builds with the same script CI uses; stage 2 installs only what the binaries link
# (computed from rbdcsi-controller, which links all rbdcsi does plus the Ceph libraries, so a
# new library dependency cannot be forgotten) and the tools.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN apt-get update && scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DRBDCSI_FAULT_POINTS=OFF \
 && cmake --build build -j"$(nproc)" --target rbdcsi \
 && strip build/cmd/rbdcsi build/cmd/rbdcsi-controller \
 && scripts/runtime-packages.sh build/cmd/rbdcsi-controller > /runtime-packages \
 && cat /runtime-packages

FROM debian:12-slim
COPY --from=build /runtime-packages /runtime-packages
# ceph-common: `rbd device map/unmap` (krbd); rbd-nbd and rbd-fuse: the nbd and fuse mappers;
# e2fsprogs/xfsprogs: mkfs and fsck; util-linux/mount: losetup, mount; kmod: modprobe rbd/nbd.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ceph-common rbd-nbd rbd-fuse e2fsprogs xfsprogs util-linux mount kmod \
      $(cat /runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /runtime-packages
# rbdcsi (the node plugin, no Ceph library) executes rbdcsi-controller for the controller service.
COPY --from=build /src/build/cmd/rbdcsi /src/build/cmd/rbdcsi-controller /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/rbdcsi"]
CMD ["serve"]
