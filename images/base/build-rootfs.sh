#!/bin/sh
# Offline base image, step 1: a minimal Debian root filesystem in DIR.
#
#   build-rootfs.sh SUITE DIR PACKAGES [CACHE_DIR] [MIRROR]
#
# debootstrap (minbase) with the comma-separated PACKAGES, then trimmed of what a
# container never needs (package caches and lists, docs, man pages, locales).
# The orchestrator then imports DIR as an image (`docker import`, via the API).
# Needs root and the Debian package debootstrap; the Debian mirror is the only
# network access of the whole image build.
set -eu
suite=$1
dir=$2
packages=$3
cache=${4:-}
mirror=${5:-}

set -- --variant=minbase --include="$packages"
if [ -n "$cache" ]; then
  mkdir -p "$cache"
  set -- "$@" --cache-dir="$cache"
fi
set -- "$@" "$suite" "$dir"
if [ -n "$mirror" ]; then
  set -- "$@" "$mirror"
fi
debootstrap "$@"

rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
  "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
  "$dir"/usr/share/locale/* "$dir"/var/log/*.log "$dir"/var/cache/debconf/*-old \
  "$dir"/debootstrap
# the image's own resolver config comes from the engine at run time
: >"$dir"/etc/resolv.conf
printf 'testbed\n' >"$dir"/etc/hostname
