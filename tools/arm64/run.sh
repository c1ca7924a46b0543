#!/usr/bin/env bash
# make test-arm64: the device install and a device test subset on Debian bookworm arm64.
#
# Flow: (1) make sure qemu-user-static is registered with binfmt_misc so the kernel runs aarch64
# ELF files through qemu, (2) build a bookworm arm64 root filesystem with debootstrap from the
# Debian mirror this machine's apt uses, once, cached outside the checkout (ARM64_ROOTFS), (3)
# copy the checkout and this machine's CA bundle and pip settings into it, (4) chroot into it and
# run tools/arm64/inside.sh: a fresh venv, the wheel built from the checkout with the device
# extras (dependencies as wheels only), doctor, infer, bench and the device tests.
#
# A missing tool is installed with apt when we are root and fails the target otherwise: CI never
# skips this. Only /proc and a private /dev/shm are mounted inside: the host's /sys would show
# LiteRT's XNNPACK the x86 CPU's cache and core data, which crashes it under emulation.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${ARM64_CACHE:-/var/cache/edge-agent}
ROOTFS=${ARM64_ROOTFS:-$CACHE/arm64-rootfs}
SUITE=bookworm
# What the rootfs holds besides debootstrap's minbase (gcc builds the tests' fake LiteRT
# delegate). pip inside uses the host's CA bundle (copy_host_settings), though ca-certificates
# still comes in as a dependency of python3-venv. Changing this list rebuilds the rootfs.
PACKAGES=python3,python3-venv,mosquitto,gcc,libc6-dev
ROOTFS_KEY="$SUITE arm64 minbase $PACKAGES v1"
START=$SECONDS

say() { printf '== arm64: %s\n' "$*"; }
die() { printf 'test-arm64: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, binfmt_misc): run it as root or with sudo"

need_tools() {
    local missing=""
    command -v debootstrap >/dev/null || missing="$missing debootstrap"
    command -v chroot >/dev/null || missing="$missing coreutils"
    if [ "$(uname -m)" != aarch64 ]; then
        command -v qemu-aarch64-static >/dev/null || missing="$missing qemu-user-static"
        command -v update-binfmts >/dev/null || missing="$missing binfmt-support"
    fi
    [ -z "$missing" ] && return
    command -v apt-get >/dev/null || die "missing:$missing, and no apt-get to install them with"
    say "installing$missing (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# The kernel hands aarch64 ELF files to qemu. The F flag makes it open the interpreter once at
# registration, so the chroot does not need a copy of qemu inside.
need_binfmt() {
    [ "$(uname -m)" = aarch64 ] && return
    local dir=/proc/sys/fs/binfmt_misc
    [ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir" \
        || die "cannot mount binfmt_misc at $dir (a container without --privileged?)"
    [ -e "$dir/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 \
        || update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
    [ -e "$dir/qemu-aarch64" ] || die "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)"
    grep -q '^enabled' "$dir/qemu-aarch64" || die "binfmt_misc entry qemu-aarch64 is disabled"
    grep -q '^flags:.*F' "$dir/qemu-aarch64" \
        || die "qemu-aarch64 is registered without the F flag; re-register it from qemu-user-static"
}

# The Debian mirror apt already uses here (the deb822 URIs: line or a one-line deb entry),
# unless ARM64_MIRROR names one.
debian_mirror() {
    if [ -n "${ARM64_MIRROR:-}" ]; then echo "$ARM64_MIRROR"; return; fi
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v '^\s*#' \
        | grep -oE '(https?|file)://[^ ]*/debian/?(\s|$)' | head -n1 | tr -d '[:space:]' || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# Mounts a killed run left behind: never delete a root filesystem with /proc mounted in it.
unmount_leftovers() {
    local m
    for m in dev/pts dev/shm proc; do
        if mountpoint -q "$ROOTFS/$m" 2>/dev/null; then umount "$ROOTFS/$m" || umount -l "$ROOTFS/$m"; fi
    done
}

build_rootfs() {
    local mirror tmp
    mirror=$(debian_mirror)
    tmp="$ROOTFS.building"
    say "building the $SUITE arm64 root filesystem in $ROOTFS from $mirror (once; cached)"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$ROOTFS")"
    local t0=$SECONDS
    if ! nice -n 10 debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" \
        "$SUITE" "$tmp" "$mirror" >"$CACHE/arm64-debootstrap.log" 2>&1; then
        tail -n 20 "$CACHE/arm64-debootstrap.log" >&2
        die "debootstrap failed (log: $CACHE/arm64-debootstrap.log)"
    fi
    rm -rf "$tmp"/var/cache/apt/archives/*.deb
    echo "$ROOTFS_KEY" >"$tmp/.edge-agent-rootfs"
    unmount_leftovers
    rm -rf "$ROOTFS"
    mv "$tmp" "$ROOTFS"
    ROOTFS_NOTE="built in $((SECONDS - t0)) s"
}

# Network settings and pip's view of the package index, as this machine has them: the CA bundle
# (a proxy may re-sign TLS) and pip's config files. Index and find-links entries that are local
# paths (file://, /...) are dropped: those folders are not inside the root filesystem.
copy_host_settings() {
    cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
    [ -f /etc/hosts ] && cp -L /etc/hosts "$ROOTFS/etc/hosts"
    local bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    mkdir -p "$ROOTFS/etc/edge-agent-ci"
    if [ -f "$bundle" ]; then
        cp -L "$bundle" "$ROOTFS/etc/edge-agent-ci/ca-bundle.crt"
    else
        cp -L "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$ROOTFS/etc/edge-agent-ci/ca-bundle.crt" 2>/dev/null \
            || die "no CA bundle at $bundle for pip inside the root filesystem (set SSL_CERT_FILE)"
    fi
    rm -f "$ROOTFS/etc/pip.conf" && rm -rf "$ROOTFS/etc/xdg/pip" "$ROOTFS/root/.config/pip"
    [ -f /etc/pip.conf ] && pip_conf_without_local_paths </etc/pip.conf >"$ROOTFS/etc/pip.conf"
    if [ -d /etc/xdg/pip ]; then
        mkdir -p "$ROOTFS/etc/xdg" && cp -rL /etc/xdg/pip "$ROOTFS/etc/xdg/pip"
        [ -f /etc/xdg/pip/pip.conf ] && pip_conf_without_local_paths </etc/xdg/pip/pip.conf >"$ROOTFS/etc/xdg/pip/pip.conf"
    fi
    if [ -f "$HOME/.config/pip/pip.conf" ]; then
        mkdir -p "$ROOTFS/root/.config/pip"
        pip_conf_without_local_paths <"$HOME/.config/pip/pip.conf" >"$ROOTFS/root/.config/pip/pip.conf"
    fi
}

pip_conf_without_local_paths() {
    awk '
        /^[[:space:]]*(find-links|index-url|extra-index-url)[[:space:]]*=/ {
            split($0, kv, "="); out = ""; n = split(kv[2], values, /[[:space:]]+/)
            for (i = 1; i <= n; i++)
                if (values[i] != "" && values[i] !~ /^(file:|\/)/) out = out " " values[i]
            if (out != "") print kv[1] "=" out
            next
        }
        { print }'
}

# The checkout as git sees it (tracked and untracked-but-not-ignored files), or the whole tree
# without venvs and caches where there is no git.
copy_checkout() {
    rm -rf "$ROOTFS/work"
    mkdir -p "$ROOTFS/work/src"
    if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
            | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
            | tar --null -T - -cf -) | tar -xf - -C "$ROOTFS/work/src"
    else
        tar -C "$REPO" --exclude='.venv*' --exclude='__pycache__' --exclude='.*_cache' -cf - . \
            | tar -xf - -C "$ROOTFS/work/src"
    fi
}

MOUNTS=()
cleanup() {
    local m
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${MOUNTS[i]}
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}
trap cleanup EXIT

mount_inside() {
    mountpoint -q "$ROOTFS/proc" || { mount -t proc proc "$ROOTFS/proc"; MOUNTS+=("$ROOTFS/proc"); }
    mkdir -p "$ROOTFS/dev/shm"
    mountpoint -q "$ROOTFS/dev/shm" || { mount -t tmpfs -o size=512m,mode=1777 shm "$ROOTFS/dev/shm"; MOUNTS+=("$ROOTFS/dev/shm"); }
    mkdir -p "$ROOTFS/dev/pts"
    mountpoint -q "$ROOTFS/dev/pts" || { mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOTFS/dev/pts"; MOUNTS+=("$ROOTFS/dev/pts"); }
}

need_tools
need_binfmt
mkdir -p "$CACHE"
exec 9>"$CACHE/arm64.lock"
flock -w 1800 9 || die "another test-arm64 holds $CACHE/arm64.lock"

ROOTFS_NOTE="cached"
if [ "$(cat "$ROOTFS/.edge-agent-rootfs" 2>/dev/null)" != "$ROOTFS_KEY" ]; then
    build_rootfs
else
    say "reusing the root filesystem in $ROOTFS (delete it to rebuild)"
fi
copy_host_settings
copy_checkout
mount_inside

# A clean environment inside: what pip needs to reach the index, and the test settings.
inside_env=(
    HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
    PIP_CERT=/etc/edge-agent-ci/ca-bundle.crt SSL_CERT_FILE=/etc/edge-agent-ci/ca-bundle.crt
    REQUESTS_CA_BUNDLE=/etc/edge-agent-ci/ca-bundle.crt
    PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-180}" PIP_DISABLE_PIP_VERSION_CHECK=1
    ARM64_TESTS="${ARM64_TESTS:-}" EDGE_AGENT_TEST_SLOWDOWN="${EDGE_AGENT_TEST_SLOWDOWN:-6}"
    CI=true
)
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_RETRIES \
    HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    if [ -n "${!var:-}" ]; then inside_env+=("$var=${!var}"); fi
done

set +e
nice -n 10 chroot "$ROOTFS" /usr/bin/env -i "${inside_env[@]}" /bin/bash /work/src/tools/arm64/inside.sh
rc=$?
set -e
elapsed=$((SECONDS - START))
if [ "$rc" != 0 ]; then
    die "inside the arm64 root filesystem (exit $rc) after ${elapsed} s"
fi
echo "test-arm64: passed in ${elapsed} s (root filesystem $ROOTFS_NOTE); $(cat "$ROOTFS/work/summary")"
