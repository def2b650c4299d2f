#!/usr/bin/env bash
# Installs what make bench needs from Debian's packages — wrk, nginx (the
# light build when it exists), HAProxy and h2load (nghttp2-client) — only when missing. The benchmark
# runs the binaries itself with its own config files and pid files in a temp
# dir; the packages' system services are never started: a policy-rc.d that
# refuses service starts is in place for the install (unless one already is).
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v nginx >/dev/null || missing+=(nginx)
command -v h2load >/dev/null || missing+=(nghttp2-client) # scenario (g): HTTP/2 load
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

echo "bench: installing ${missing[*]} from Debian's packages"
$sudo apt-get update -qq
pkgs=()
for m in "${missing[@]}"; do
  if [ "$m" = nginx ]; then
    if apt-cache show nginx-light >/dev/null 2>&1; then pkgs+=(nginx-light); else pkgs+=(nginx); fi
  else
    pkgs+=("$m")
  fi
done
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
