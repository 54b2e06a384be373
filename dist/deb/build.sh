#!/usr/bin/env bash
# Build the Debian package regent_VERSION_ARCH.deb from a built `regent` binary
# (and `regent-module`, built beside it: installed as
# /usr/libexec/regent/regent-module, where the daemon looks for it) and what
# dist/ contains, with dpkg-deb alone (no debhelper, no cargo-deb):
#
#   dist/deb/build.sh BINARY OUTDIR      e.g. dist/deb/build.sh target/release/regent target/deb
#
# Why a script rather than `cargo deb`: it needs nothing but dpkg-deb (always on
# Debian), so CI builds the package without compiling a packaging tool; it takes
# every unit in dist/ (*.service, *.socket) as it finds it, moving the binary's
# path from /usr/local/bin (a manual install) to /usr/bin; and the man pages and
# completions come from the very binary being packaged (`regent man`,
# `regent completions`), so they match its CLI definition.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY OUTDIR" >&2
  exit 2
fi
bin=$(realpath "$1")
module=$(dirname "$bin")/regent-module
[ -x "$module" ] || { echo "no regent-module beside $bin (cargo build -p regent-cli builds both)" >&2; exit 1; }
out=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
dist=$root/dist

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/regent
umask 022

install -D -m 0755 "$bin" "$pkg/usr/bin/regent"
install -D -m 0755 "$module" "$pkg/usr/libexec/regent/regent-module"
if command -v strip >/dev/null; then
  strip --strip-unneeded "$pkg/usr/bin/regent" "$pkg/usr/libexec/regent/regent-module"
fi

units=0
for unit in "$dist"/*.service "$dist"/*.socket; do
  [ -e "$unit" ] || continue
  install -d "$pkg/usr/lib/systemd/system"
  sed 's#/usr/local/bin/regent#/usr/bin/regent#g' "$unit" >"$pkg/usr/lib/systemd/system/$(basename "$unit")"
  units=$((units + 1))
done
[ "$units" -gt 0 ] || { echo "no units in $dist" >&2; exit 1; }

install -D -m 0644 "$dist/regent.toml" "$pkg/etc/regent/regent.toml"
install -D -m 0644 "$dist/regent.sysusers" "$pkg/usr/lib/sysusers.d/regent.conf"
install -D -m 0644 "$dist/regent.tmpfiles" "$pkg/usr/lib/tmpfiles.d/regent.conf"
install -D -m 0644 "$dist/apparmor/regent" "$pkg/usr/share/regent/apparmor/regent"

doc=$pkg/usr/share/doc/regent
install -d "$doc/examples"
install -m 0644 "$dist"/examples/* "$doc/examples/"
gzip -9n -c "$root/README.md" >"$doc/README.md.gz"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: regent
License: MIT OR Apache-2.0
COPYRIGHT

# Man pages and completions, generated from the CLI definition of this binary.
"$bin" man --out-dir "$stage/man" >/dev/null
install -d "$pkg/usr/share/man/man1"
for page in "$stage"/man/*.1; do
  gzip -9n -c "$page" >"$pkg/usr/share/man/man1/$(basename "$page").gz"
done
install -d "$pkg/usr/share/bash-completion/completions" \
  "$pkg/usr/share/zsh/vendor-completions" "$pkg/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$pkg/usr/share/bash-completion/completions/regent"
"$bin" completions zsh >"$pkg/usr/share/zsh/vendor-completions/_regent"
"$bin" completions fish >"$pkg/usr/share/fish/vendor_completions.d/regent.fish"

install -d "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$dist/deb/$script" "$pkg/DEBIAN/$script"
done
echo /etc/regent/regent.toml >"$pkg/DEBIAN/conffiles"
# What dpkg-shlibdeps would say, without a debian/ tree: the packages of the
# shared libraries the binaries load, and glibc's newest symbol version they use.
depends=$( (ldd "$bin"; ldd "$module") | awk '$3 ~ /^\// {print $3}' | sort -u | while read -r lib; do
  dpkg -S "$(realpath "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
glibc=$( (objdump -T "$bin" "$module" 2>/dev/null || true) | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1 | cut -d_ -f2)
if [ -n "$glibc" ]; then
  depends=$(echo "$depends" | sed "s/\blibc6\b/libc6 (>= $glibc)/")
fi
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: regent
Version: $version
Architecture: $arch
Maintainer: Regent maintainers <regent@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
${depends:+Depends: $depends
}Recommends: systemd
Suggests: apparmor
Section: admin
Priority: optional
Description: narrow privileged operations for unprivileged programs
 Regent lets unprivileged local programs ask a privileged service to run a
 fixed set of declared, validated operations over a Unix socket, and nothing
 else. The default configuration enables no operation.
CONTROL

mkdir -p "$out"
deb=$out/regent_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
