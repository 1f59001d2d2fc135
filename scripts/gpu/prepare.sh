#!/usr/bin/env bash
# scripts/gpu/prepare.sh: run HERE (a development machine with Debian's registry) before a session
# uses the lent GPU machine, which can download nothing. It fetches the Debian packages octa builds
# against (and the shared libraries they need beyond glibc/libstdc++) into .gpu-deps/, and makes
# sure the real MNIST is in data/ (scripts/setup.sh --no-build). Both folders are git-ignored:
# name them in the device tool's `carry` (["data/MNIST", ".gpu-deps"]). About 25 MB.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
scripts/setup.sh --no-build
pkgs=(catch2 libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libssl-dev
      libcurl4-openssl-dev libopenblas0-pthread libopenblas-pthread-dev libpng-dev
      libturbojpeg0-dev)
# Never carry the C/C++ runtime or the distribution's core: the GPU machine's own must be used.
core='^(libc6|libc6-dev|libgcc-s1|libstdc\+\+6|libstdc\+\+-12-dev|gcc-12-base|libc-dev-bin|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|rpcsvc-proto|libtirpc-common|debconf|debconf-2.0|cdebconf|dpkg|perl-base|tar|install-info|awk|mawk|base-files|libselinux1|libpcre2-8-0|libaudit1|libaudit-common|libcap-ng0|libpam0g|libpam-modules|libpam-modules-bin|libpam-runtime|libsystemd0|libdb5.3|libgcrypt20|libgpg-error0|liblz4-1|libacl1|libmd0|libbz2-1.0|liblzma5|libopenblas0|libopenblas-dev|libopenblas0-openmp|libopenblas0-serial|libopenblas-openmp-dev|libopenblas-serial-dev|libblas3|liblapack3|libblas-dev|liblapack-dev)$'
deps=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
         --no-replaces --no-enhances "${pkgs[@]}" | grep -v '^ ' | grep -v '<' | sort -u |
       grep -v -E "$core")
rm -rf .gpu-deps && mkdir -p .gpu-deps
# shellcheck disable=SC2086  # one package name per word
(cd .gpu-deps && apt-get download $deps >/dev/null)
echo "prepare.sh: $(find .gpu-deps -name '*.deb' | wc -l) packages, $(du -sh .gpu-deps | cut -f1) in .gpu-deps; data in data/MNIST/raw"
