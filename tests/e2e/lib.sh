# Shell helpers shared by tests/e2e/run.sh and tests/bench/lmtp-throughput.sh.
#
# Source this file from a bash script that runs as root with `set -euo pipefail`.
# The helpers start private instances of Postfix, Dovecot LMTP and Zoha inside a
# temporary directory, on loopback ports or UNIX sockets, and never touch the
# system-wide configuration in /etc/postfix or /etc/dovecot.

E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_LIB_DIR/../.." && pwd)

log() {
    printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root: Zoha switches to each mailbox owner's uid"
}

# Install the Debian packages given as arguments unless all of them are installed already.
# The debconf selections set Postfix's package configuration to "Local only", so the
# system instance cannot relay mail off the machine.
install_packages() {
    local missing=() package status
    for package in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
        [[ $status == installed ]] || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string zoha.example.org" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Print a TCP port on 127.0.0.1 that is free right now.
# NOTE: another process may take the port between this call and the bind.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Fail unless PORT on 127.0.0.1 is free, so that a test never talks to someone else's server.
require_free_port() {
    local port=$1
    python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as error:
    sys.exit(f"127.0.0.1:{sys.argv[1]} is already in use: {error.strerror}")' "$port"
}

# Wait until ADDRESS (host:port or unix:/path) sends an SMTP/LMTP greeting that starts
# with 220, for at most TIMEOUT seconds. If PID is given and that process exits, fail at once.
wait_for_greeting() {
    local address=$1 timeout=${2:-30} pid=${3:-}
    python3 - "$address" "$timeout" "$pid" <<'EOF'
import os, socket, sys, time

address, timeout, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + timeout
last_error = "no attempt made"
while time.monotonic() < deadline:
    if pid:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"server process {pid} exited before {address} answered")
    try:
        if address.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = address[len("unix:"):]
        else:
            host, port = address.rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (host, int(port))
        sock.settimeout(5)
        sock.connect(target)
        greeting = sock.recv(512)
        # Read the reply to QUIT before closing, so the server does not log a broken pipe.
        sock.sendall(b"QUIT\r\n")
        sock.recv(512)
        sock.close()
        if greeting.startswith(b"220"):
            sys.exit(0)
        last_error = f"greeting was {greeting[:80]!r}"
    except OSError as error:
        last_error = str(error)
    # Readiness has no event to wait on from outside the server, so poll briefly.
    time.sleep(0.1)
sys.exit(f"{address} sent no 220 greeting within {timeout:.0f} s: {last_error}")
EOF
}

# Create the home directory of one test account, owned by UID:GID with mode 0700.
# The Maildir inside is left to the delivery agent.
make_home() {
    local home=$1 uid=$2
    install -d -o "$uid" -g "$uid" -m 0700 "$home"
}

# Write a Zoha configuration file.
# Arguments: FILE LISTEN USERDB_FILE SPOOL_DIR [FSYNC]. LISTEN is a comma-separated list.
write_zoha_config() {
    local file=$1 listen=$2 userdb=$3 spool=$4 fsync=${5:-yes}
    cat >"$file" <<EOF
# Written by tests/e2e/lib.sh for one test run.
listen = $listen
hostname = zoha.test
userdb = file:$userdb
unix_socket_mode = 0666
spool_directory = $spool
syslog_socket = $spool/log.sock
fsync = $fsync
EOF
}

# Start Zoha in the foreground mode in the background and wait for its greeting on every
# listener. Arguments: BINARY CONFIG LOGFILE ADDRESS... Sets ZOHA_PID.
start_zoha() {
    local binary=$1 config=$2 logfile=$3 address
    shift 3
    "$binary" -f -c "$config" >>"$logfile" 2>&1 &
    ZOHA_PID=$!
    for address in "$@"; do
        if ! wait_for_greeting "$address" 30 "$ZOHA_PID"; then
            log "Zoha log $logfile (last 20 lines):"
            tail -n 20 "$logfile" >&2 || true
            return 1
        fi
    done
    log "zoha running as pid $ZOHA_PID with $config"
}

# Stop the process PID (SIGTERM, then SIGKILL after 10 s) and wait for it.
stop_process() {
    local pid=$1 name=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Write a private Dovecot LMTP configuration.
# Arguments: DIR USERS_FILE PORT [UNIX_SOCKET]. DIR contains the config, runtime and log files.
# USERS_FILE is in passwd-file format (user:password:uid:gid::home::).
write_dovecot_config() {
    local dir=$1 users=$2 port=$3 socket=${4:-}
    mkdir -p "$dir"
    chmod 0755 "$dir"
    {
        cat <<EOF
# Written by tests/e2e/lib.sh for one test run.
protocols = lmtp
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = no
mail_location = maildir:~/Maildir
mail_fsync = optimized
first_valid_uid = 1000
auth_username_format = %Lu
recipient_delimiter = +
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = passwd-file
  args = $users
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $port
  }
EOF
        if [[ -n $socket ]]; then
            cat <<EOF
  unix_listener $socket {
    mode = 0666
  }
EOF
        fi
        echo "}"
    } >"$dir/dovecot.conf"
}

# Start Dovecot with CONFIG and wait for the greeting on every ADDRESS given.
start_dovecot() {
    local config=$1 address
    shift
    dovecot -c "$config"
    for address in "$@"; do
        wait_for_greeting "$address" 30 || return 1
    done
    log "dovecot running with $config"
}

# Stop the Dovecot instance of CONFIG and wait until its master process is gone.
stop_dovecot() {
    local config=$1 pid_file i
    pid_file="$(doveconf -c "$config" -h base_dir 2>/dev/null)/master.pid" || return 0
    [[ -f $pid_file ]] || return 0
    local pid
    pid=$(cat "$pid_file")
    doveadm -c "$config" stop 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "dovecot master $pid still running after 10 s"
}

# Write and start a private Postfix instance in DIR: SMTP on 127.0.0.1:SMTP_PORT, mail for
# example.org to VIRTUAL_TRANSPORT, and the domains in TRANSPORT_TABLE routed by it.
# Arguments: DIR SMTP_PORT VIRTUAL_TRANSPORT TRANSPORT_TABLE.
# Its queue, data directory and log (DIR/postfix.log) live in DIR, so it runs beside a
# system Postfix without touching it.
start_postfix() {
    local dir=$1 smtp_port=$2 virtual_transport=$3 transport_table=$4
    local config=$dir/etc
    require_free_port "$smtp_port" || die "set E2E_SMTP_PORT to a free port"
    mkdir -p "$config" "$dir/queue"
    chmod 0755 "$dir" "$config" "$dir/queue"
    install -d -o postfix -g postfix -m 0700 "$dir/data"
    cp /etc/postfix/master.cf "$config/master.cf"
    cat >"$config/main.cf" <<EOF
# Written by tests/e2e/lib.sh for one test run.
compatibility_level = 3.6
meta_directory = /etc/postfix
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
notify_classes =
virtual_mailbox_domains = example.org
virtual_transport = $virtual_transport
transport_maps = texthash:$transport_table
# Anything not routed above stays on this machine and fails at once.
default_transport = error:no route in the test instance
relay_transport = error:no route in the test instance
EOF
    postconf -c "$config" -M# smtp/inet
    postconf -c "$config" -Me "127.0.0.1:$smtp_port/inet=127.0.0.1:$smtp_port inet n - n - - smtpd"
    postconf -c "$config" -F '*/*/chroot = n'
    postfix -c "$config" check
    postfix -c "$config" start
    wait_for_greeting "127.0.0.1:$smtp_port" 30
    log "postfix instance running from $config, SMTP on 127.0.0.1:$smtp_port"
}

# Change one main.cf setting of the private instance in DIR and reload it.
reconfigure_postfix() {
    local dir=$1 setting=$2
    postconf -c "$dir/etc" -e "$setting"
    postfix -c "$dir/etc" reload
}

# Stop the private Postfix instance in DIR and wait until its master process exits.
stop_postfix() {
    local dir=$1 pid i
    [[ -f $dir/etc/main.cf ]] || return 0
    pid=$(tr -d ' ' <"$dir/queue/pid/master.pid" 2>/dev/null || true)
    postfix -c "$dir/etc" stop 2>/dev/null || true
    [[ -n $pid ]] || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "postfix master $pid still running after 10 s"
}

# Wait until the queue of the Postfix instance in DIR is empty, for at most TIMEOUT seconds.
# The flush makes Postfix retry deferred mail at once.
wait_for_empty_queue() {
    local dir=$1 timeout=${2:-600} start=$SECONDS
    postqueue -c "$dir/etc" -f
    while ((SECONDS - start < timeout)); do
        if postqueue -c "$dir/etc" -j | grep -q .; then
            sleep 0.5
        else
            return 0
        fi
    done
    log "the Postfix queue is not empty after $timeout s:"
    postqueue -c "$dir/etc" -p | head -n 40 >&2
    return 1
}
