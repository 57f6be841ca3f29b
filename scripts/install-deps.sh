#!/usr/bin/env bash
# Installs the system packages Meshgate needs to build, run and test, when they are missing
# (Debian/Ubuntu, as root). Swift itself is expected on PATH.
#   scripts/install-deps.sh            build + run: libre2-dev (RE2, for regex matches)
#   scripts/install-deps.sh --test     also the clients the tests use: curl, nc, systemd-analyze, pytest
set -euo pipefail

packages=(libre2-dev)
if [[ ${1:-} == --test ]]; then
    packages+=(curl netcat-openbsd systemd openssl prometheus nghttp2-client)
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    SUDO=
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ${1:-} == --test ]] && ! python3 -c "import pytest, h2, grpc, jwt, cryptography" 2>/dev/null; then
    echo "install-deps: installing pytest, h2, grpcio, PyJWT, cryptography"
    python3 -m pip install -q pytest h2 grpcio "pyjwt[crypto]"
fi
