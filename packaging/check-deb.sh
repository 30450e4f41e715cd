#!/usr/bin/env bash
# Installs a built tollgate package on this machine (root), checks what it installed, verifies
# its units and lints it, then purges it. CI runs it after packaging/build-deb.sh:
#
#   packaging/check-deb.sh target/debian/tollgate_<version>_<arch>.deb
#
# Checks: the tollgate system user; /var/lib/tollgate 0700 tollgate:tollgate; /etc/tollgate/pki
# 0750 root:tollgate; /etc/tollgate/tollgate.toml a conffile, 0640 root:tollgate, readable by
# the tollgate user and valid (`tollgate config check`); `systemd-analyze verify` on every
# installed unit; each unit's ExecStart names a real subcommand; the man page renders (groff);
# the completions are there; `lintian` finds no error (overrides: debian/lintian-overrides, each
# with its reason); where systemd runs (PID 1), the engine's unit starts, reports READY, answers,
# reloads and stops. Then `dpkg --purge`: the state directory goes, the user stays.
set -euo pipefail
deb=${1:?usage: $0 PACKAGE.deb}
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "check-deb: ok: $*"; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"

if dpkg-query -W -f='${Status}' tollgate 2>/dev/null | grep -q installed; then
  fail "tollgate is already installed here; purge it first (dpkg --purge tollgate)"
fi
dpkg -i "$deb"
trap 'dpkg --purge tollgate >/dev/null 2>&1 || true' EXIT

# The user and group.
entry=$(getent passwd tollgate) || fail "no tollgate user"
uid=$(echo "$entry" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "tollgate is not a system user (uid $uid)"
case "$(echo "$entry" | cut -d: -f7)" in */nologin|/bin/false) ;; *) fail "tollgate has a login shell: $entry" ;; esac
getent group tollgate >/dev/null || fail "no tollgate group"
ok "system user: $entry"

# Directories and the configuration: owner, group, mode.
expect() {
  local path=$1 want=$2 got
  got=$(stat -c '%a %U:%G' "$path") || fail "$path is missing"
  [ "$got" = "$want" ] || fail "$path is $got, expected $want"
  ok "$path $got"
}
expect /var/lib/tollgate "700 tollgate:tollgate"
expect /etc/tollgate/pki "750 root:tollgate"
expect /etc/tollgate/tollgate.toml "640 root:tollgate"
expect /usr/bin/tollgate "755 root:root"
dpkg-query -W -f='${Conffiles}\n' tollgate | grep -q '^ /etc/tollgate/tollgate.toml ' \
  || fail "/etc/tollgate/tollgate.toml is not a conffile"
ok "conffile /etc/tollgate/tollgate.toml"
grep -q '^state_dir = "/var/lib/tollgate"$' /etc/tollgate/tollgate.toml || fail "the packaged configuration's state_dir is not /var/lib/tollgate"
diff <(/usr/bin/tollgate generate config --state-dir /var/lib/tollgate) /etc/tollgate/tollgate.toml >/dev/null \
  || fail "/etc/tollgate/tollgate.toml is not what the binary makes"
# As the units run it: the tollgate user reads the configuration, and it is valid.
runuser -u tollgate -- /usr/bin/tollgate --config /etc/tollgate/tollgate.toml config check >/dev/null \
  || fail "tollgate cannot read or validate /etc/tollgate/tollgate.toml"
ok "the tollgate user reads a valid /etc/tollgate/tollgate.toml"

# The units.
units=(/usr/lib/systemd/system/tollgate-*.service)
[ "${#units[@]}" -eq 5 ] || fail "expected 5 units, found ${units[*]}"
for unit in "${units[@]}"; do
  # --man=no: the container has no man-db index to look Documentation= up in.
  out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
  [ -z "$out" ] || fail "systemd-analyze verify $unit warns: $out"
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  role=${exec_start##* }
  [ "$exec_start" = "/usr/bin/tollgate --config /etc/tollgate/tollgate.toml $role" ] || fail "$unit: ExecStart=$exec_start"
  /usr/bin/tollgate "$role" --help >/dev/null || fail "$unit: \`tollgate $role\` is not a command"
  ok "$unit verified ($role)"
done

# The man pages render without warnings; the completions are in place.
for page in /usr/share/man/man1/tollgate.1.gz /usr/share/man/man1/tollgate-engine.1.gz /usr/share/man/man5/tollgate.toml.5.gz; do
  warnings=$(zcat "$page" | groff -man -Tutf8 -ww -z 2>&1) || fail "groff cannot render $page"
  [ -z "$warnings" ] || fail "groff warns on $page: $warnings"
done
# Read each page whole before searching it: with pipefail, `zcat | grep -q` fails at random once a
# page outgrows one write of zcat's (grep -q quits at the first match, zcat dies of SIGPIPE).
rendered=$(zcat /usr/share/man/man1/tollgate.1.gz | groff -man -Tutf8 2>/dev/null) || fail "cannot render tollgate(1)"
grep -q "tollgate" <<<"$rendered" || fail "tollgate(1) renders empty"
config_page=$(zcat /usr/share/man/man5/tollgate.toml.5.gz) || fail "cannot read tollgate.toml(5)"
grep -q "require_client_certificates" <<<"$config_page" || fail "tollgate.toml(5) lacks the [tls] options"
ok "man pages render ($(ls /usr/share/man/man1/tollgate*.1.gz | wc -l) pages, and tollgate.toml(5))"
for f in /usr/share/bash-completion/completions/tollgate /usr/share/zsh/vendor-completions/_tollgate /usr/share/fish/vendor_completions.d/tollgate.fish; do
  grep -q engine "$f" || fail "$f is missing or does not complete the subcommands"
done
bash -c 'source /usr/share/bash-completion/completions/tollgate' || fail "the bash completion does not load"
ok "completions (bash, zsh, fish)"

# lintian: no error; warnings are shown.
lintian --fail-on error "$deb"
ok "lintian: no error"

# Under a running systemd: the engine's unit, as an operator starts it.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl start tollgate-engine || { journalctl -u tollgate-engine --no-pager | tail -n 30; fail "tollgate-engine did not start"; }
  [ "$(systemctl show -p StatusText --value tollgate-engine)" != "" ] || fail "no READY status from tollgate-engine"
  dig @127.0.0.1 -p 5353 +short +tries=1 +time=5 health.tollgate. A | grep -q 127.0.0.1 || fail "the packaged engine does not answer"
  systemctl reload tollgate-engine
  systemctl is-active --quiet tollgate-engine || fail "tollgate-engine is not active after a reload"
  systemctl stop tollgate-engine
  ok "tollgate-engine.service starts (Type=notify), answers, reloads, stops"
else
  # No systemd here (a container): run the engine as its unit does (the same user and command
  # line, NOTIFY_SOCKET unset) and check it serves from the packaged layout.
  echo "check-deb: systemd is not running here: the engine runs as its unit would, without systemd"
  log=$(mktemp)
  setpriv --reuid=tollgate --regid=tollgate --init-groups --inh-caps=-all \
    /usr/bin/tollgate --config /etc/tollgate/tollgate.toml engine >"$log" 2>&1 &
  pid=$!
  answered=""
  for _ in $(seq 1 240); do
    if dig @127.0.0.1 -p 5353 +short +tries=1 +time=1 health.tollgate. A 2>/dev/null | grep -q 127.0.0.1; then
      answered=yes; break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  [ -n "$answered" ] || { cat "$log"; kill "$pid" 2>/dev/null; fail "the packaged engine did not answer"; }
  kill -HUP "$pid"
  for _ in $(seq 1 120); do
    grep -q "reload requested" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  grep -q "reload requested" "$log" || { cat "$log"; fail "the engine did not take SIGHUP as a reload"; }
  dig @127.0.0.1 -p 5353 +short +tries=1 +time=5 health.tollgate. A | grep -q 127.0.0.1 || { cat "$log"; fail "no answer after SIGHUP"; }
  kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "SIGHUP ended the engine"; }
  kill -TERM "$pid"
  wait "$pid" || { cat "$log"; fail "the engine exited with an error after SIGTERM"; }
  [ "$(stat -c %U /var/lib/tollgate/tollgate.lock 2>/dev/null)" = tollgate ] || fail "the engine's state is not in /var/lib/tollgate"
  rm -f "$log"
  ok "the packaged engine runs as tollgate from /var/lib/tollgate, answers, reloads on SIGHUP, stops on SIGTERM"
fi

dpkg --purge tollgate
trap - EXIT
[ ! -e /var/lib/tollgate ] || fail "/var/lib/tollgate is left after purge"
[ ! -e /etc/tollgate/tollgate.toml ] || fail "/etc/tollgate/tollgate.toml is left after purge"
getent passwd tollgate >/dev/null || fail "purge removed the tollgate user (Debian keeps system users)"
ok "purged"
