#!/usr/bin/env bash
# End-to-end test: real mail through Postfix into Zoha, read back with Courier IMAP.
#
# Usage: tests/e2e/run.sh   (as root; `make e2e` and CI call it)
#
# Installs the Debian packages it needs, then starts in a temporary directory a private
# Postfix instance (SMTP on 127.0.0.1:$E2E_SMTP_PORT), an LMTP capture server and the
# delivery agent, all on loopback or UNIX sockets. Each pass sends every message of
# CPython's and enmime's email test data, plus generated edge cases, through Postfix with
# 1, 3 and 60 recipients. Then it checks every delivered copy on disk and over Courier IMAP
# against the bytes Postfix sent (check_delivery.py lists the checks). Pass "tcp" uses
# lmtp:inet:[127.0.0.1]:PORT, pass "unix" lmtp:unix:/path.
#
# Environment:
#   ZOHA            Zoha binary (default: target/release/zoha, built with cargo if unset)
#   E2E_SERVER      zoha (default), or dovecot to run the harness against Dovecot LMTP
#   E2E_HEADER_MODE zoha or generic: how strictly the added header fields are checked
#                   (default: zoha for Zoha, generic for Dovecot)
#   E2E_PASSES      passes to run (default: "tcp unix")
#   E2E_SMTP_PORT   Postfix SMTP port on 127.0.0.1 (default 2525)
#   E2E_KEEP        1: keep the temporary directory even when every check passed
# Exit status: 0 when every check of every pass passed, 1 otherwise.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"

SERVER=${E2E_SERVER:-zoha}
PASSES=${E2E_PASSES:-tcp unix}
SMTP_PORT=${E2E_SMTP_PORT:-2525}
KEEP=${E2E_KEEP:-0}
case $SERVER in
zoha) HEADER_MODE=${E2E_HEADER_MODE:-zoha} ;;
dovecot) HEADER_MODE=${E2E_HEADER_MODE:-generic} ;;
*) die "E2E_SERVER must be zoha or dovecot, not '$SERVER'" ;;
esac

ACCOUNT_NAMES=(alice bob carol)
declare -A ACCOUNT_UIDS=([alice]=5001 [bob]=5002 [carol]=5003)

PACKAGES=(postfix swaks courier-imap courier-authdaemon courier-authlib-userdb maildrop
    libpython3.11-testsuite golang-github-jhillyerd-enmime-dev)
[[ $SERVER == dovecot ]] && PACKAGES+=(dovecot-lmtpd)

ROOT=""
CAPTURE_PID=""
ZOHA_PID=""
DOVECOT_CONFIG=""
TRANSPORT=""
FAILED=0

cleanup() {
    local status=$?
    set +e
    [[ -n $ZOHA_PID ]] && stop_process "$ZOHA_PID" zoha
    [[ -n $DOVECOT_CONFIG ]] && stop_dovecot "$DOVECOT_CONFIG"
    [[ -n $ROOT ]] && stop_postfix "$ROOT/postfix"
    [[ -n $CAPTURE_PID ]] && stop_process "$CAPTURE_PID" "capture server"
    if [[ -n $ROOT ]]; then
        if ((status == 0 && KEEP != 1)); then
            rm -rf "$ROOT"
        else
            log "kept the test directory $ROOT"
        fi
    fi
    exit "$status"
}

# Print the Zoha binary to test, building it with cargo when $ZOHA is not set.
find_zoha() {
    if [[ -n ${ZOHA:-} ]]; then
        [[ -x $ZOHA ]] || die "ZOHA=$ZOHA is not an executable file"
        echo "$ZOHA"
        return
    fi
    (cd "$REPO_ROOT" && cargo build --release >&2) || die "cargo build --release failed in $REPO_ROOT"
    echo "$REPO_ROOT/target/release/zoha"
}

# Create the accounts of one pass under DIR/home and write DIR/userdb (Courier userdb
# format, for Zoha) and DIR/passwd (passwd-file format, for Dovecot).
make_accounts() {
    local dir=$1 name uid home
    mkdir -p "$dir/home"
    chmod 0755 "$dir" "$dir/home"
    : >"$dir/userdb"
    : >"$dir/passwd"
    for name in "${ACCOUNT_NAMES[@]}"; do
        uid=${ACCOUNT_UIDS[$name]}
        home=$dir/home/$name
        make_home "$home" "$uid"
        printf '%s@example.org\tuid=%s|gid=%s|home=%s|mail=%s/Maildir\n' \
            "$name" "$uid" "$uid" "$home" "$home" >>"$dir/userdb"
        printf '%s@example.org::%s:%s::%s::\n' "$name" "$uid" "$uid" "$home" >>"$dir/passwd"
    done
    chmod 0644 "$dir/userdb" "$dir/passwd"
}

account_arguments() {
    local dir=$1 name uid
    for name in "${ACCOUNT_NAMES[@]}"; do
        uid=${ACCOUNT_UIDS[$name]}
        printf -- '--account\n%s:%s:%s:%s:%s\n' "$name" "$uid" "$uid" "$dir/home/$name" "$dir/home/$name/Maildir"
    done
}

# Start the delivery agent for pass NAME in DIR and set TRANSPORT to Postfix's transport for it.
start_agent() {
    local name=$1 dir=$2 port socket
    port=$(free_port)
    socket=$dir/run/lmtp.sock
    mkdir -p "$dir/run" "$dir/spool"
    chmod 0755 "$dir/run"
    case $SERVER in
    zoha)
        if [[ $name == unix ]]; then
            write_zoha_config "$dir/zoha.conf" "127.0.0.1:$port, unix:$socket" "$dir/userdb" "$dir/spool"
            start_zoha "$ZOHA_BINARY" "$dir/zoha.conf" "$dir/agent.log" "127.0.0.1:$port" "unix:$socket"
        else
            write_zoha_config "$dir/zoha.conf" "127.0.0.1:$port" "$dir/userdb" "$dir/spool"
            start_zoha "$ZOHA_BINARY" "$dir/zoha.conf" "$dir/agent.log" "127.0.0.1:$port"
        fi
        ;;
    dovecot)
        write_dovecot_config "$dir/dovecot" "$dir/passwd" "$port" "$socket"
        DOVECOT_CONFIG=$dir/dovecot/dovecot.conf
        start_dovecot "$DOVECOT_CONFIG" "127.0.0.1:$port" "unix:$socket"
        ln -sf "$dir/dovecot/dovecot.log" "$dir/agent.log"
        ;;
    esac
    if [[ $name == unix ]]; then
        TRANSPORT="lmtp:unix:$socket"
    else
        TRANSPORT="lmtp:inet:[127.0.0.1]:$port"
    fi
}

stop_agent() {
    if [[ -n $ZOHA_PID ]]; then
        stop_process "$ZOHA_PID" zoha
        ZOHA_PID=""
    fi
    if [[ -n $DOVECOT_CONFIG ]]; then
        stop_dovecot "$DOVECOT_CONFIG"
        DOVECOT_CONFIG=""
    fi
}

# Run one pass: fresh accounts, the agent, sending, waiting for the queue, checking.
# A failed check sets FAILED=1 and the script goes on, but a failed setup step ends it.
run_pass() {
    local name=$1
    local dir=$ROOT/$name
    log "pass $name: starting $SERVER"
    make_accounts "$dir"
    start_agent "$name" "$dir"
    reconfigure_postfix "$ROOT/postfix" "virtual_transport = $TRANSPORT"
    log "pass $name: Postfix delivers example.org to $TRANSPORT"

    log "pass $name: sending messages through Postfix"
    mkdir -p "$dir/sent"
    python3 "$HERE/send_messages.py" --smtp "127.0.0.1:$SMTP_PORT" --pass-name "$name" \
        --manifest "$dir/manifest.json" --save-dir "$dir/sent"
    log "pass $name: waiting for the Postfix queue to drain"
    wait_for_empty_queue "$ROOT/postfix" 900 || FAILED=1

    log "pass $name: checking deliveries"
    local accounts
    mapfile -t accounts < <(account_arguments "$dir")
    python3 "$HERE/check_delivery.py" --manifest "$dir/manifest.json" --captures "$ROOT/captures" \
        "${accounts[@]}" --postfix-log "$ROOT/postfix/postfix.log" --agent-log "$dir/agent.log" \
        --header-mode "$HEADER_MODE" --title "pass $name ($SERVER over ${TRANSPORT%%:/*})" \
        --failures-file "$dir/failures.txt" || FAILED=1
    stop_agent
}

main() {
    require_root
    install_packages "${PACKAGES[@]}"
    if [[ $SERVER == zoha ]]; then
        ZOHA_BINARY=$(find_zoha)
        log "testing $ZOHA_BINARY ($("$ZOHA_BINARY" -V 2>&1 | head -n 1 || true))"
    fi

    ROOT=$(mktemp -d /tmp/zoha-e2e.XXXXXX)
    chmod 0755 "$ROOT"
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    local capture_port
    capture_port=$(free_port)
    mkdir -p "$ROOT/captures"
    python3 "$HERE/lmtp_capture.py" --listen "127.0.0.1:$capture_port" --dir "$ROOT/captures" \
        >"$ROOT/capture.log" 2>&1 &
    CAPTURE_PID=$!
    wait_for_greeting "127.0.0.1:$capture_port" 30 "$CAPTURE_PID"

    # Bounces go to the test senders at example.net: discard them so the queue drains.
    printf 'capture.test lmtp:inet:[127.0.0.1]:%s\nexample.net discard:\n' "$capture_port" \
        >"$ROOT/transport"
    start_postfix "$ROOT/postfix" "$SMTP_PORT" "error:no pass running" "$ROOT/transport"

    local pass
    for pass in $PASSES; do
        case $pass in
        tcp | unix) run_pass "$pass" ;;
        *) die "unknown pass '$pass' in E2E_PASSES: use tcp and/or unix" ;;
        esac
    done

    if ((FAILED)); then
        log "FAILED: see the summaries above; details in $ROOT/*/failures.txt"
        exit 1
    fi
    log "all passes passed"
}

main "$@"
