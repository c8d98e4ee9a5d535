#!/bin/sh
# Checks `make install` and `make uninstall` in temporary DESTDIRs.
#
# usage: sh tests/install.sh [BINARY]
#
# With BINARY (for example target/release/zoha from `make build`), the
# Makefile installs that file; CARGO=true keeps any build step from running.
# Without BINARY, the Makefile's own target/release/zoha must exist, because
# `make install` does not build. Root is not needed. The exit status is 0 when
# every check passes and 1 otherwise. Each failed check prints one FAIL
# line.

set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/zoha-install.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

failures=0

pass() {
	echo "ok   $1"
}

fail() {
	echo "FAIL $1"
	failures=$((failures + 1))
}

# check DESCRIPTION COMMAND...: runs COMMAND and reports the result.
check() {
	description=$1
	shift
	if "$@"; then
		pass "$description"
	else
		fail "$description"
	fi
}

# run_make LOG TARGET VARIABLE=VALUE...: runs make in the repository,
# keeping its output in LOG; prints the output when make fails.
run_make() {
	log=$1
	shift
	if [ -n "$binary" ]; then
		set -- "$@" CARGO=true BINARY="$binary"
	fi
	if make --no-print-directory -C "$repo" "$@" >"$log" 2>&1; then
		return 0
	fi
	sed 's/^/    make: /' "$log"
	return 1
}

binary=
if [ $# -gt 0 ]; then
	binary=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
	if [ ! -x "$binary" ]; then
		echo "FAIL $1 is not an executable file"
		exit 1
	fi
fi

# --- PREFIX=/usr: the layout a distribution package uses ---------------------

dest=$work/usr-root
prefix=/usr
sbin=$dest$prefix/sbin/zoha
man8=$dest$prefix/share/man/man8
man5=$dest$prefix/share/man/man5
etc=$dest/etc/zoha
doc=$dest$prefix/share/doc/zoha

check "first install exits 0" run_make "$work/install1.log" install DESTDIR="$dest" PREFIX="$prefix"

check "binary installed at sbin/zoha" test -f "$sbin"
check "binary is executable" test -x "$sbin"
mode=$(stat -c %a "$sbin" 2>/dev/null || echo missing)
check "binary mode is 755 (got $mode)" test "$mode" = 755
version=$("$sbin" -V 2>&1 || true)
case $version in
"zoha "*) pass "installed binary runs: $version" ;;
*) fail "installed binary runs: -V printed '$version'" ;;
esac

for page in "$man8/zoha.8" "$man5/zoha.conf.5" "$man5/zoha-userdb.5"; do
	check "man page ${page#"$dest"}" test -s "$page"
done

check "zoha.conf.example installed in /etc/zoha" test -s "$etc/zoha.conf.example"
check "zoha.conf created from the example" cmp -s "$etc/zoha.conf.example" "$etc/zoha.conf"
check "installed zoha.conf parses (zoha -n)" sh -c '"$1" -n -c "$2" >/dev/null' sh "$sbin" "$etc/zoha.conf"
check "README in the documentation directory" test -s "$doc/README.md"
check "contrib files in the documentation directory" test -s "$doc/contrib/zoha.service"

# --- A second install keeps the administrator's zoha.conf --------------------

echo "# changed by the administrator" >>"$etc/zoha.conf"
cp "$etc/zoha.conf" "$work/zoha.conf.before"
check "second install exits 0" run_make "$work/install2.log" install DESTDIR="$dest" PREFIX="$prefix"
check "second install keeps an existing zoha.conf" cmp -s "$work/zoha.conf.before" "$etc/zoha.conf"
check "second install says it keeps zoha.conf" grep -q "keeping the existing" "$work/install2.log"
check "second install does not nest contrib/contrib" test ! -e "$doc/contrib/contrib"

# --- Uninstall removes everything but zoha.conf -------------------------------

check "uninstall exits 0" run_make "$work/uninstall.log" uninstall DESTDIR="$dest" PREFIX="$prefix"
check "uninstall removes the binary" test ! -e "$sbin"
for page in "$man8/zoha.8" "$man5/zoha.conf.5" "$man5/zoha-userdb.5"; do
	check "uninstall removes ${page#"$dest"}" test ! -e "$page"
done
check "uninstall removes zoha.conf.example" test ! -e "$etc/zoha.conf.example"
check "uninstall removes the documentation directory" test ! -e "$doc"
check "uninstall keeps zoha.conf" cmp -s "$work/zoha.conf.before" "$etc/zoha.conf"

# --- Directory variables ------------------------------------------------------

dest=$work/opt-root
check "install with sbindir, mandir and sysconfdir exits 0" run_make "$work/install3.log" install \
	DESTDIR="$dest" PREFIX=/opt/zoha sbindir=/opt/zoha/bin mandir=/opt/zoha/man sysconfdir=/opt/zoha/etc
check "sbindir is honoured" test -x "$dest/opt/zoha/bin/zoha"
check "mandir is honoured" test -s "$dest/opt/zoha/man/man8/zoha.8"
check "sysconfdir is honoured" test -s "$dest/opt/zoha/etc/zoha/zoha.conf.example"
check "nothing outside the given directories" sh -c '[ "$(ls "$1")" = opt ]' sh "$dest"

if [ "$failures" -gt 0 ]; then
	echo "install.sh: $failures checks failed"
	exit 1
fi
echo "install.sh: all checks passed"
