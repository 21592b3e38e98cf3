#!/usr/bin/env bash
# Builds the kioskedge .deb packages (make deb: amd64, arm64, armhf into
# dist/). With --check, also installs the one for this machine with dpkg -i
# and checks the installed box: the binaries are static and print the
# version, the example configuration passes kioskctl config check, the
# kioskedge user, its groups and the state directory are right; then it
# purges the package again. --check needs root and dpkg, refuses to run
# where kioskedge is already installed, and leaves the kioskedge user and
# the gpio group in place (as a purge does). CI runs it with --check.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
--check) check=true ;;
"") ;;
*)
	echo "usage: scripts/package.sh [--check]" >&2
	exit 2
	;;
esac

if ! command -v make >/dev/null; then
	echo "package.sh: needs GNU make (apt-get install -y make)" >&2
	exit 1
fi
echo "== make deb"
rm -f dist/kioskedge_*.deb
make deb
$check || exit 0

fail() {
	echo "package.sh: FAIL: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || fail "--check installs a package: run it as root"
command -v dpkg >/dev/null || fail "--check needs dpkg"
if dpkg-query -W -f='${Status}' kioskedge 2>/dev/null | grep -q 'installed'; then
	fail "kioskedge is already installed here; --check will not replace it"
fi
arch=$(dpkg --print-architecture)
debs=(dist/kioskedge_*_"$arch".deb)
[ -f "${debs[0]}" ] || fail "no package for this machine's architecture ($arch) in dist/"
version=$(dpkg-deb -f "${debs[0]}" Version)

echo "== dpkg -i ${debs[0]}"
dpkg -i "${debs[0]}"

echo "== checks"
out=$(kioskd --version)
echo "$out"
# The Debian version has ~ where the semantic version kioskd prints has -.
[ "$out" = "kioskd ${version/\~/-}" ] || fail "kioskd --version said '$out', want 'kioskd ${version/\~/-}'"
kioskctl version
kioskctl config check /etc/kioskedge/kioskd.toml.example
for b in /usr/bin/kioskd /usr/bin/kioskctl; do
	if ldd "$b" >/dev/null 2>&1; then
		fail "$b is dynamically linked"
	fi
done
getent passwd kioskedge >/dev/null || fail "no kioskedge user"
groups=" $(id -nG kioskedge) "
for g in kioskedge dialout gpio; do
	[[ $groups == *" $g "* ]] || fail "kioskedge is not in group $g (groups:$groups)"
done
state=$(stat -c '%U:%G %a' /var/lib/kioskedge)
[ "$state" = "kioskedge:kioskedge 700" ] || fail "/var/lib/kioskedge is $state, want kioskedge:kioskedge 700"
conf=$(stat -c '%U:%G %a' /etc/kioskedge)
[ "$conf" = "root:kioskedge 750" ] || fail "/etc/kioskedge is $conf, want root:kioskedge 750"
[ -f /usr/lib/systemd/system/kioskd.service ] || fail "no kioskd.service"
if command -v systemctl >/dev/null && systemctl is-enabled --quiet kioskd.service 2>/dev/null; then
	fail "installing enabled kioskd.service"
fi

echo "== dpkg -P kioskedge"
dpkg -P kioskedge
[ ! -e /usr/bin/kioskd ] || fail "/usr/bin/kioskd left after purge"
echo "package.sh: ok"
