#!/usr/bin/env bash
# Installs a Debian package the tests need, unless its commands are already there:
#   infra/install-debian-package.sh PACKAGE COMMAND [COMMAND ...]
# chromium (the dashboard's browser test), prometheus (prometheus + promtool: the operations
# test). Needs root or sudo; says so in one line otherwise.
set -euo pipefail
package="$1"; shift
missing=0
for cmd in "$@"; do command -v "$cmd" >/dev/null 2>&1 || missing=1; done
if [ "$missing" -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "$package is missing and this user cannot install packages: apt install $package" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
for cmd in "$@"; do command -v "$cmd"; done
