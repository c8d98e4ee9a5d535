#!/bin/bash
# Run Debian's courier-authdaemon with the userdb module on private copies of
# /etc/courier and /run/courier/authdaemon. Then run a command (Zoha) in the same
# mount namespace, so that it reaches the daemon at the standard socket path
# /run/courier/authdaemon/socket. The machine's own Courier setup stays untouched.
#
# Usage (as root):
#   unshare -m --propagation private bash authdaemon-namespace.sh DIR ACCOUNTS -- COMMAND...
#
#   DIR       an empty private directory; receives etc-courier/ and authdaemon/
#   ACCOUNTS  a file with one account a line: ADDRESS field=value ... (the arguments
#             of `userdb ADDRESS set`); the first account is used to check readiness
#
# Prints "authdaemond ready" on standard output once authdaemond answers a lookup for
# the first account, then runs COMMAND in the foreground. SIGTERM or SIGINT stops
# COMMAND; authdaemond is stopped whenever the script exits. The exit status is
# COMMAND's.
set -euo pipefail

if [ $# -lt 4 ] || [ "$3" != "--" ]; then
    echo "usage: $0 DIR ACCOUNTS -- COMMAND..." >&2
    exit 2
fi
dir=$1
accounts=$2
shift 3

# The bind mounts below would replace the machine's Courier configuration if this
# script ran in the initial mount namespace, so refuse to run there.
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
    echo "$0: not in a private mount namespace; run it under unshare -m" >&2
    exit 1
fi

# Private copies: the packaged configuration with only the userdb module, no accounts.
mkdir -p "$dir/etc-courier" "$dir/authdaemon"
cp -a /etc/courier/. "$dir/etc-courier/"
rm -rf "$dir/etc-courier"/userdb "$dir/etc-courier"/userdb.* "$dir/etc-courier"/userdbshadow.*
sed -i 's/^authmodulelist=.*/authmodulelist="authuserdb"/' "$dir/etc-courier/authdaemonrc"
chown courier:courier "$dir/authdaemon"
chmod 0750 "$dir/authdaemon"
mkdir -p /run/courier/authdaemon
mount --bind "$dir/etc-courier" /etc/courier
mount --bind "$dir/authdaemon" /run/courier/authdaemon

# Accounts, written and compiled by Courier's own tools.
first=
while read -r -a words; do
    [ ${#words[@]} -eq 0 ] && continue
    userdb "${words[0]}" set "${words[@]:1}"
    first=${first:-${words[0]}}
done <"$accounts"
makeuserdb

stop_authdaemond() {
    /usr/sbin/authdaemond stop >/dev/null 2>&1 || true
}
trap stop_authdaemond EXIT
/usr/sbin/authdaemond start

# authdaemond forks its workers in the background, so it is ready once a lookup works.
# authtest exits 0 only when the daemon returned the account.
for _ in $(seq 300); do
    if authtest "$first" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
if ! authtest "$first" >/dev/null 2>&1; then
    echo "$0: authdaemond did not answer for $first" >&2
    exit 1
fi
echo "authdaemond ready"

"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
status=0
wait "$child" || status=$?
# A trapped signal ends the first wait before the child has exited.
if kill -0 "$child" 2>/dev/null; then
    status=0
    wait "$child" || status=$?
fi
exit "$status"
