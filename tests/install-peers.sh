#!/usr/bin/env bash
# Installs what the interop tests need from Debian's packages: libcoap's
# clients and servers, OpenSSL and GnuTLS command-line tools, and the
# autotools that DTLSSocket (tinydtls, a pip test dependency) builds with, and
# strace (the generator's system calls are counted per request).
# Does nothing when they are already there.
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
missing=()
for pair in coap-client-openssl:libcoap3-bin openssl:openssl gnutls-cli:gnutls-bin \
    autoreconf:autoconf aclocal:automake libtoolize:libtool gcc:gcc make:make strace:strace; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
