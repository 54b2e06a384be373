#!/usr/bin/env bash
# Package and unit checks, as root:
#   - the systemd units as the package ships them: `systemd-analyze verify` prints
#     nothing at all (it exits 0 on unknown keys and bad values, so any output
#     fails), and `systemd-analyze security` scores regent.service below 2.0;
#   - the AppArmor profile parses (`apparmor_parser -Q -K`, no kernel needed);
#   - the .deb (dist/deb/build.sh) installs with `dpkg -i`, `regent check` passes
#     on its config, the man page renders, the bash completion loads, and
#     `dpkg --purge` leaves nothing behind: no file, no directory, no user or group.
# Run alone: sudo bash .ci/package.sh [BINARY]  (default target/debug/regent,
# built with `cargo build -p regent-cli` when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "package check FAILED: $*" >&2
  exit 1
}

need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v systemd-sysusers >/dev/null || need+=(systemd)
command -v apparmor_parser >/dev/null || need+=(apparmor)
command -v man >/dev/null || need+=(man-db)
command -v groff >/dev/null || need+=(groff-base)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bin=${1:-target/debug/regent}
{ [ -x "$bin" ] && [ -x "$(dirname "$bin")/regent-module" ]; } || cargo build -p regent-cli --quiet
out=$(mktemp -d)
installed=no
cleanup() {
  # A failed check must not leave the package installed for the next run.
  if [ "$installed" = yes ]; then dpkg --purge regent >/dev/null 2>&1 || true; fi
  rm -rf "$out"
}
trap cleanup EXIT

echo "-- AppArmor profile"
apparmor_parser -Q -K -M /usr/share/apparmor-features/features dist/apparmor/regent ||
  fail "dist/apparmor/regent does not parse"

echo "-- build the package"
deb=$(bash dist/deb/build.sh "$bin" "$out")
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
if dpkg-query -W -f='${Status}' regent 2>/dev/null | grep -q installed; then
  fail "a regent package is installed already: purge it first (dpkg --purge regent)"
fi
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#; s#/$##' | grep -v '^/\?$' >"$out/files"

# What of the package's paths (directories such as /usr/share/man/man1) exists before.
while read -r f; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi
done <"$out/files" >"$out/before"

echo "-- dpkg -i"
installed=yes
dpkg -i "$deb"
dpkg-query -W -f='${Conffiles}\n' regent | grep -q '^ /etc/regent/regent.toml ' ||
  fail "/etc/regent/regent.toml is not a conffile"
getent group regent >/dev/null || fail "the group regent was not created"
[ "$(stat -c %a /var/lib/regent)" = 700 ] || fail "/var/lib/regent is not 0700"
[ -d /run/regent ] || fail "/run/regent was not created"

echo "-- regent check on the installed config"
regent check --config /etc/regent/regent.toml || fail "regent check refuses the shipped config"

echo "-- regent-module, where the daemon finds it"
module=/usr/libexec/regent/regent-module
[ "$(stat -c '%U %a' "$module")" = "root 755" ] || fail "$module is not root's, 0755"
answer=$(printf 'not a plan' | "$module") && fail "$module accepted a bad plan"
grep -q '"refused"' <<<"$answer" || fail "$module did not refuse a bad plan: $answer"
cat >"$out/augeas.toml" <<'TOML'
[operations.ssh-port]
description = "Set the SSH port"
augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", set = { "Port" = "{port}" } }
params.port = { type = "integer", min = 1024, max = 65535 }
TOML
check=$(regent check --config "$out/augeas.toml") || fail "regent check (an augeas operation): $check"
grep -q 'runs: augeas in `regent-module`' <<<"$check" || fail "regent check did not describe the module: $check"
ldd /usr/bin/regent | grep -q libaugeas && fail "/usr/bin/regent links libaugeas (only regent-module should)"
echo "regent-module: refuses a bad plan; regent check finds it; /usr/bin/regent does not link libaugeas"

echo "-- units, as shipped"
units=(/usr/lib/systemd/system/regent*.service)
for s in /usr/lib/systemd/system/regent*.socket; do [ -e "$s" ] && units+=("$s"); done
verify=$(systemd-analyze verify --man=no "${units[@]}" 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify printed (any output fails):
$verify"
echo "verify: ${units[*]##*/}: no output"
sec=$(systemd-analyze security --offline=true --threshold=19 /usr/lib/systemd/system/regent.service 2>&1) ||
  fail "regent.service scores 2.0 or more:
$(echo "$sec" | tail -1)"
echo "security: $(echo "$sec" | grep -o 'exposure level for [^:]*: [0-9.]*')"
cat /usr/lib/systemd/system/regent.service /usr/share/doc/regent/examples/firewall.conf >"$out/regent-firewall.service"
fw=$(systemd-analyze security --offline=true "$out/regent-firewall.service" 2>&1 | grep -o '[0-9.]* [A-Z]*[^0-9]*$' | tail -1)
echo "security with examples/firewall.conf (information): $fw"

echo "-- man page"
rendered=$(man -l /usr/share/man/man1/regent.1.gz 2>"$out/man.err" | col -b) || fail "man -l failed"
[ ! -s "$out/man.err" ] || fail "man -l warned: $(cat "$out/man.err")"
grep -q '^SYNOPSIS' <<<"$rendered" || fail "the man page has no SYNOPSIS"
grep -q 'regent-call' <<<"$rendered" || fail "the man page does not name regent-call"
zcat /usr/share/man/man1/regent-call.1.gz | groff -man -Tutf8 -ww -z 2>"$out/groff.err"
[ ! -s "$out/groff.err" ] || fail "groff warned on regent-call.1: $(cat "$out/groff.err")"
echo "man: $(ls /usr/share/man/man1/regent*.1.gz | wc -l) pages render"

echo "-- completions"
bash -c 'source /usr/share/bash-completion/completions/regent && complete -p regent' ||
  fail "the bash completion does not load"
[ -s /usr/share/zsh/vendor-completions/_regent ] || fail "no zsh completion"
[ -s /usr/share/fish/vendor_completions.d/regent.fish ] || fail "no fish completion"

echo "-- dpkg --purge"
dpkg --purge regent
installed=no
left=()
while read -r f; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  grep -qxF "$f" "$out/before" || left+=("$f")
done <"$out/files"
for f in /etc/regent /var/lib/regent /run/regent /usr/share/doc/regent /usr/share/regent /usr/libexec/regent; do
  [ -e "$f" ] && left+=("$f")
done
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
getent passwd regent >/dev/null && fail "the user regent is left after purge"
getent group regent >/dev/null && fail "the group regent is left after purge"
echo "purge: no file, directory, user or group left"
