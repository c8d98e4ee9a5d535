#!/bin/bash
# Courier compatibility tests: Zoha against Debian's courier-authdaemon with the
# userdb module, maildrop's deliverquota and maildirmake, and Courier IMAP.
#
# Usage, as root on Debian 12:  bash tests/courier/run.sh [cargo test arguments]
#
# Installs the Courier packages when they are missing, then runs
# tests/courier_authdaemon.rs, tests/courier_quota.rs and tests/courier_folders.rs
# with ZOHA_REQUIRE_COURIER set, so that a missing Courier program fails the run
# instead of skipping tests. The real authdaemond runs in a private mount namespace
# (see authdaemon-namespace.sh): the machine's /etc/courier stays untouched.
set -euo pipefail

cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: run as root: the tests deliver as several uids and run authdaemond" >&2
    exit 1
fi

packages=(courier-authdaemon courier-authlib-userdb courier-imap maildrop)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "$0: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # Package scripts cannot start services on these machines; the tests start
    # what they need themselves.
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The directory Courier's authdaemond creates its socket in; the namespace
# script mounts a private directory over it.
mkdir -p /run/courier/authdaemon

if ! unshare -m --propagation private true; then
    echo "$0: unshare -m failed; the real authdaemond test needs a private mount namespace" >&2
    exit 1
fi

export ZOHA_REQUIRE_COURIER=1
cargo test --no-fail-fast --test courier_authdaemon --test courier_quota --test courier_folders "$@"
