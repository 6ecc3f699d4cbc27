# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
# The local test image both container engines import (sourced by scripts/podman-service
# and scripts/docker-service, so the two build it from the very same rootfs).
#
# busybox, a hostname-then-echo script, and a stdlib-only WebSocket echo (run with the
# host's Python bind-mounted read-only). Raise TEST_IMAGE_VERSION whenever the contents
# change: the services re-import an image whose pointsman.test.version label differs.

TEST_IMAGE=localhost/pointsman-test-echo:latest
TEST_IMAGE_VERSION=4
TEST_IMAGE_CHANGES=('CMD ["/bin/sh"]' "LABEL pointsman.test.version=$TEST_IMAGE_VERSION")

# build_test_rootfs OUT_TAR: write the image's root file system as a tar archive.
build_test_rootfs() {
    local out="$1" here root busybox applet
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    root="$(mktemp -d)"
    chmod 755 "$root"
    mkdir -p "$root"/{bin,tmp,etc,proc,sys,dev,app,usr,run}
    busybox="$(command -v busybox || echo /bin/busybox)"
    cp "$busybox" "$root/bin/busybox"
    for applet in sh cat nc httpd echo ls sleep hostname env kill ps; do
        ln -s busybox "$root/bin/$applet"
    done
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
    printf '#!/bin/sh\n# Say who answers, then echo.\nhostname\nexec cat\n' > "$root/bin/hello-echo"
    chmod 755 "$root/bin/hello-echo"
    cp "$here/examples/per-connection/wsecho.py" "$root/app/wsecho.py"
    tar -C "$root" -cf "$out" .
    rm -rf "$root"
}
