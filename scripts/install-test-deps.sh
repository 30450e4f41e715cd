#!/usr/bin/env bash
# Installs the real peers tollgate's tests talk to, from Debian packages, and starts the ones
# that are servers:
#   kamailio (the SBC) and kamailio-tls-modules (its tls module: SIP over TLS to the engine), sip-tester (SIPp callers and callees), dnsutils (dig),
#   knot-dnsutils (kdig), dnsperf, postgresql (the scale-out store), chromium and
#   chromium-driver (the web UI test), fonts-dejavu-core (the charts' font, which their label
#   widths are estimated for), iproute2 (ss; ip netns, bridge and veth for the multi-host
#   test), util-linux (unshare), tcpdump (the probe test, and the multi-host test's capture of
#   its bridge) and tshark (the probe test and benchmark), openssl (the multi-host test's TLS
#   handshakes), libpcap-dev (the probe's live-capture feature),
#   freeradius (the AAA server the SRP monitor probes), redis-server (the shared counters'
#   store: the tests start private ones on free ports), iputils-arping (gratuitous ARP when
#   an SRP pair moves its service address), binutils (strip: `tollgate lab` ships a stripped
#   binary in its release bundles), systemd (systemd-analyze verify, systemd-sysusers and
#   systemd-tmpfiles for the package), lintian (the package's lint), groff-base (rendering
#   the man pages), adduser; openssl also reads and verifies what `tollgate pki` makes.
# Makes sure PostgreSQL runs and has the role the tests use:
#   postgres://tollgate:tollgate@127.0.0.1:5432/postgres (override with TOLLGATE_TEST_POSTGRES).
# The store's TLS tests (crates/store/tests/pg_tls.rs) start throwaway clusters of their own with
# the same package's initdb and pg_ctl (/usr/lib/postgresql/<version>/bin, or
# TOLLGATE_TEST_PG_BIN), as the postgres user through runuser (util-linux) when run as root.
# Does nothing for what is already there. Needs root (or sudo).
set -euo pipefail

packages=(kamailio kamailio-tls-modules sip-tester dnsutils knot-dnsutils dnsperf postgresql postgresql-client chromium chromium-driver fonts-dejavu-core iproute2 util-linux procps tcpdump openssl tshark wireshark-common libpcap-dev freeradius iputils-arping redis-server binutils systemd lintian groff-base adduser)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# groff-base: the man page test renders tollgate.toml(5) as man(1) does, warnings as errors.
dpkg-query -W -f='${Status}' groff-base 2>/dev/null | grep -q "install ok installed" || missing+=(groff-base)
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo for the test peers" >&2; exit 1; }
  sudo="sudo"
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "test peers: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian kamailio package may start a system service on :5060; the tests run their own.
  $sudo systemctl disable --now kamailio >/dev/null 2>&1 || true
  $sudo pkill -x kamailio >/dev/null 2>&1 || true
  # Likewise freeradius on :1812: the SRP test starts and kills its own.
  $sudo systemctl disable --now freeradius >/dev/null 2>&1 || true
  $sudo pkill -x freeradius >/dev/null 2>&1 || true
  # Likewise redis-server on :6379: the shared-counters tests start private ones.
  $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  $sudo pkill -x redis-server >/dev/null 2>&1 || true
else
  echo "test peers: all installed"
fi

# PostgreSQL: start the cluster if it is down (no systemd needed), and create the test role.
if [ -z "${TOLLGATE_TEST_POSTGRES:-}" ]; then
  cluster=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR==1 {print $1" "$2}')
  if [ -z "$cluster" ]; then
    ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    $sudo pg_createcluster "$ver" main >/dev/null
    cluster="$ver main"
  fi
  # shellcheck disable=SC2086
  if ! pg_lsclusters --no-header | grep -q online; then
    $sudo pg_ctlcluster $cluster start
  fi
  as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
  as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname = 'tollgate'" | grep -q 1 \
    || as_postgres psql -qc "CREATE ROLE tollgate LOGIN PASSWORD 'tollgate' CREATEDB"
  echo "test peers: PostgreSQL $cluster is online"
fi
