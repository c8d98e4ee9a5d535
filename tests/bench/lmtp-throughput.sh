#!/usr/bin/env bash
# LMTP delivery throughput of Zoha compared with Dovecot LMTP, measured in the same run.
#
# Usage: tests/bench/lmtp-throughput.sh   (as root)
#
# Starts Zoha and a private Dovecot LMTP on loopback ports, each delivering into its own
# Maildir for alice@example.org (uid 5001) with fsync on. Then it runs Postfix's smtp-source
# against each in alternating rounds. It prints messages per second for every run, the
# median per server and the ratio Zoha/Dovecot of the medians. After every run it counts
# the files in new/ to check that every message arrived. It never asserts a time: the
# numbers depend on the machine, its disk and its load.
#
# NOTE: the two servers do not make the same durability promise. Dovecot 2.3.19 with
# mail_fsync = optimized fsyncs each message file before renaming it into new/ but does not
# fsync new/ afterwards; Zoha with fsync = yes fsyncs both (each seen with strace).
#
# Environment:
#   ZOHA            Zoha binary (default: target/release/zoha, built with cargo if unset)
#   BENCH_ROUNDS    rounds; each round runs both servers, alternating which goes first (default 3)
#   BENCH_MESSAGES  messages per run (default 2000)
#   BENCH_SESSIONS  parallel LMTP sessions (default 4)
#   BENCH_SIZE      message size in bytes (default 2048)
#   BENCH_SERVERS   servers to measure (default "zoha dovecot"; one name skips the ratio)
# Exit status: 0 when every run delivered every message, 1 otherwise.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$HERE/../e2e/lib.sh"

ROUNDS=${BENCH_ROUNDS:-3}
MESSAGES=${BENCH_MESSAGES:-2000}
SESSIONS=${BENCH_SESSIONS:-4}
SIZE=${BENCH_SIZE:-2048}
SERVERS=${BENCH_SERVERS:-zoha dovecot}
UID_ALICE=5001

ROOT=""
ZOHA_PID=""
DOVECOT_CONFIG=""
declare -A PORT MAILDIR RATES
FAILED=0

cleanup() {
    local status=$?
    set +e
    [[ -n $ZOHA_PID ]] && stop_process "$ZOHA_PID" zoha
    [[ -n $DOVECOT_CONFIG ]] && stop_dovecot "$DOVECOT_CONFIG"
    if [[ -n $ROOT ]]; then
        if ((status == 0)); then
            rm -rf "$ROOT"
        else
            log "kept the benchmark directory $ROOT"
        fi
    fi
    exit "$status"
}

find_zoha() {
    if [[ -n ${ZOHA:-} ]]; then
        [[ -x $ZOHA ]] || die "ZOHA=$ZOHA is not an executable file"
        echo "$ZOHA"
        return
    fi
    (cd "$REPO_ROOT" && cargo build --release >&2) || die "cargo build --release failed in $REPO_ROOT"
    echo "$REPO_ROOT/target/release/zoha"
}

setup_zoha() {
    local dir=$ROOT/zoha binary
    binary=$(find_zoha)
    mkdir -p "$dir/spool"
    chmod 0755 "$dir"
    make_home "$dir/alice" "$UID_ALICE"
    printf 'alice@example.org\tuid=%s|gid=%s|home=%s|mail=%s/Maildir\n' \
        "$UID_ALICE" "$UID_ALICE" "$dir/alice" "$dir/alice" >"$dir/userdb"
    PORT[zoha]=$(free_port)
    MAILDIR[zoha]=$dir/alice/Maildir
    write_zoha_config "$dir/zoha.conf" "127.0.0.1:${PORT[zoha]}" "$dir/userdb" "$dir/spool" yes
    echo "# zoha: $binary -f -c $dir/zoha.conf"
    sed 's/^/#   /' "$dir/zoha.conf"
    start_zoha "$binary" "$dir/zoha.conf" "$dir/zoha.log" "127.0.0.1:${PORT[zoha]}"
}

setup_dovecot() {
    local dir=$ROOT/dovecot
    mkdir -p "$dir"
    chmod 0755 "$dir"
    make_home "$dir/alice" "$UID_ALICE"
    printf 'alice@example.org::%s:%s::%s::\n' "$UID_ALICE" "$UID_ALICE" "$dir/alice" >"$dir/passwd"
    PORT[dovecot]=$(free_port)
    MAILDIR[dovecot]=$dir/alice/Maildir
    write_dovecot_config "$dir/conf" "$dir/passwd" "${PORT[dovecot]}"
    DOVECOT_CONFIG=$dir/conf/dovecot.conf
    echo "# dovecot: dovecot -c $DOVECOT_CONFIG ($(dovecot --version))"
    sed 's/^/#   /' "$DOVECOT_CONFIG"
    start_dovecot "$DOVECOT_CONFIG" "127.0.0.1:${PORT[dovecot]}"
}

count_new_files() {
    local directory=$1/new
    if [[ -d $directory ]]; then
        find "$directory" -maxdepth 1 -type f | wc -l
    else
        echo 0
    fi
}

# Run smtp-source once against SERVER, print the rate and append it to RATES[SERVER].
run_once() {
    local server=$1 round=$2 start end elapsed delivered rate
    local -a command=(smtp-source -L -c -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE"
        -f s@example.net -t alice@example.org "127.0.0.1:${PORT[$server]}")
    # Start every run from an empty new/ so both servers see the same directory sizes.
    find "${MAILDIR[$server]}/new" -maxdepth 1 -type f -delete 2>/dev/null || true
    sync

    start=$(date +%s.%N)
    if ! "${command[@]}" >"$ROOT/smtp-source.$server.$round.log" 2>&1; then
        log "$server round $round: smtp-source failed:"
        tail -n 5 "$ROOT/smtp-source.$server.$round.log" >&2
        FAILED=1
    fi
    end=$(date +%s.%N)

    delivered=$(count_new_files "${MAILDIR[$server]}")
    elapsed=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
    rate=$(awk -v n="$delivered" -v t="$elapsed" 'BEGIN { printf "%.1f", n / t }')
    RATES[$server]+="$rate "
    printf '%-8s round %d: %5d of %d messages in %7.3f s = %8.1f messages/s\n' \
        "$server" "$round" "$delivered" "$MESSAGES" "$elapsed" "$rate"
    if ((delivered != MESSAGES)); then
        log "$server round $round: $delivered files in ${MAILDIR[$server]}/new, expected $MESSAGES"
        FAILED=1
    fi
}

median() {
    tr ' ' '\n' | grep . | sort -g | awk '{ value[NR] = $1 }
        END { if (NR % 2) print value[(NR + 1) / 2]; else printf "%.1f\n", (value[NR / 2] + value[NR / 2 + 1]) / 2 }'
}

main() {
    require_root
    local packages=(postfix)
    [[ " $SERVERS " == *" dovecot "* ]] && packages+=(dovecot-lmtpd)
    install_packages "${packages[@]}"

    ROOT=$(mktemp -d /tmp/zoha-bench.XXXXXX)
    chmod 0755 "$ROOT"
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    local server
    for server in $SERVERS; do
        case $server in
        zoha) setup_zoha ;;
        dovecot) setup_dovecot ;;
        *) die "unknown server '$server' in BENCH_SERVERS: use zoha and/or dovecot" ;;
        esac
    done
    local -a servers
    read -r -a servers <<<"$SERVERS"

    echo "# each run: smtp-source -L -c -s $SESSIONS -m $MESSAGES -l $SIZE -f s@example.net -t alice@example.org 127.0.0.1:PORT"
    for server in "${servers[@]}"; do
        echo "#   $server: PORT=${PORT[$server]}, Maildir ${MAILDIR[$server]}"
    done
    echo "# fsync: zoha fsync = yes (file and new/); dovecot mail_fsync = optimized (file only)"
    echo "# machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
        "filesystem $(df -PT "$ROOT" | awk 'NR == 2 { print $2 }') for $ROOT"

    local round order
    for ((round = 1; round <= ROUNDS; round++)); do
        order=("${servers[@]}")
        if ((round % 2 == 0 && ${#servers[@]} == 2)); then
            order=("${servers[1]}" "${servers[0]}")
        fi
        for server in "${order[@]}"; do
            run_once "$server" "$round"
        done
    done

    echo "# summary over $ROUNDS rounds (median messages/s)"
    declare -A medians
    for server in "${servers[@]}"; do
        medians[$server]=$(median <<<"${RATES[$server]}")
        printf '%-8s median %8.1f messages/s  (runs: %s)\n' "$server" "${medians[$server]}" "${RATES[$server]% }"
    done
    if [[ -n ${medians[zoha]:-} && -n ${medians[dovecot]:-} ]]; then
        awk -v z="${medians[zoha]}" -v d="${medians[dovecot]}" \
            'BEGIN { printf "ratio Zoha/Dovecot: %.2f\n", z / d }'
    fi
    if ((FAILED)); then
        log "some runs did not deliver every message; see above"
        exit 1
    fi
}

main "$@"
