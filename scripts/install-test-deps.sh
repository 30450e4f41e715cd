#!/usr/bin/env bash
# Installs the real peers tollgate's tests talk to, from Debian packages:
#   kamailio (the SBC), sip-tester (SIPp callers and callees), dnsutils (dig),
#   knot-dnsutils (kdig), dnsperf, iproute2 (ss), util-linux (unshare).
# Does nothing for packages already installed. Needs root (or sudo).
set -euo pipefail

packages=(kamailio sip-tester dnsutils knot-dnsutils dnsperf iproute2 util-linux procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test peers: all installed"
  exit 0
fi
echo "test peers: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian kamailio package starts a system service on :5060; the tests run their own.
$sudo systemctl disable --now kamailio >/dev/null 2>&1 || true
$sudo pkill -x kamailio >/dev/null 2>&1 || true
echo "test peers: installed"
