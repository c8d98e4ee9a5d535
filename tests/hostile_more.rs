//! Second hostile pass: regression tests for the defects found by attacking
//! the code added after `tests/hostile.rs` (overall deadlines, syslog, the
//! authdaemon client, quota, folders, signals, detaching and inetd mode),
//! and cheap checks of the attacks that the daemon already survives.
//!
//! Each test starts its own daemon, fake syslog daemon or fake authdaemon
//! on a free loopback port or on a socket in its temporary directory. Slow
//! peers are paced with read timeouts. Tests wait for replies, log lines or
//! process exits as events and never assert how long anything took.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{
    ask, assert_code, assert_in_sync, authdaemon_config, chown_tree, list_files,
    make_account_maildir, poll_read, send_signal, userdb_line, wait_exit, AcceptThread, Account,
    Client, Daemon, DetachedGuard, Reply, Setup, WAIT, ZOHA,
};

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

/// Runs one transaction for `rcpt` on a new session. Returns the RCPT
/// rejection, or the reply after the message. `body` is CRLF-terminated and
/// dot-stuffed, without the final dot.
fn deliver(port: u16, rcpt: &str, body: &[u8]) -> Reply {
    let mut client = Client::ready(port);
    assert_code(&ask(&mut client, "MAIL FROM:<s@example.net>"), 250, "MAIL");
    let reply = ask(&mut client, &format!("RCPT TO:<{rcpt}>"));
    if reply.code != 250 {
        return reply;
    }
    assert_code(&ask(&mut client, "DATA"), 354, "DATA");
    let mut wire = body.to_vec();
    wire.extend_from_slice(b".\r\n");
    client.send(&wire);
    client
        .try_read_reply()
        .unwrap_or_else(|e| panic!("no reply after the message to <{rcpt}>: {e}"))
}

/// Adds `local@example.org` with a Maildir++ quota. The account gets its own
/// uid and home through a helper account named `local-home`.
fn add_quota_account(setup: &mut Setup, local: &str, quota: &str) -> Account {
    let holder = setup.add_account(&format!("{local}-home@example.org"));
    let account = Account {
        address: format!("{local}@example.org"),
        ..holder
    };
    setup.add_userdb_line(&format!("{}|quota={quota}", userdb_line(&account)));
    account
}

/// Writes `config` and the userdb file, then starts `zoha -f` without
/// waiting for it to listen (the harness's own start would fail on a
/// daemon that never greets, hiding what went wrong).
fn spawn_foreground(setup: &Setup, config: &str) -> Daemon {
    setup.write_userdb();
    fs::write(setup.config_path(), config).expect("write config");
    Daemon::spawn(&setup.config_path(), setup.port, &setup.dir.path)
}

/// Connects to `port` (retrying until the daemon listens) and returns the
/// greeting, or why there was none.
fn first_greeting(port: u16) -> Result<Reply, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match Client::tcp(port) {
            Ok(mut client) => return client.try_read_reply(),
            Err(e) if Instant::now() > deadline => return Err(format!("never listened: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Connects a non-blocking UNIX stream socket to `path`. A full listen
/// backlog gives `WouldBlock` instead of waiting.
fn connect_nonblocking(path: &Path) -> std::io::Result<OwnedFd> {
    let bytes = path.as_os_str().as_encoded_bytes();
    // SAFETY: sockaddr_un is plain data for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    assert!(bytes.len() < addr.sun_path.len(), "socket path too long");
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes only integers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, flags, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is an initialised sockaddr_un of `len` bytes.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// A UNIX stream socket whose server never accepts, with its listen
/// backlog full: a connect to it waits until the server accepts.
struct FullBacklog {
    _listener: UnixListener,
    _queued: Vec<OwnedFd>,
}

impl FullBacklog {
    fn bind(path: &Path) -> FullBacklog {
        let listener = UnixListener::bind(path).expect("bind the stalled socket");
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).expect("chmod");
        // SAFETY: listen takes only integers; a second call lowers the backlog.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let mut queued = Vec::new();
        loop {
            match connect_nonblocking(path) {
                Ok(fd) => queued.push(fd),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the backlog of {}: {e}", path.display()),
            }
            assert!(queued.len() < 10_000, "the backlog never filled");
        }
        FullBacklog {
            _listener: listener,
            _queued: queued,
        }
    }
}

/// The fake authdaemon's reply to each request.
#[derive(Clone)]
enum Answer {
    /// These bytes in one write, then close.
    Bytes(Vec<u8>),
    /// These bytes one write per byte, then close.
    ByteByByte(Vec<u8>),
    /// Nothing; the connection stays open until the client closes it.
    Silent,
}

/// A courier-authlib authdaemon stand-in on a UNIX socket.
struct FakeAuthdaemon {
    answer: Arc<Mutex<Answer>>,
    requests: Arc<AtomicUsize>,
    _server: AcceptThread,
}

impl FakeAuthdaemon {
    fn start(path: &Path, answer: Answer) -> FakeAuthdaemon {
        let listener = UnixListener::bind(path).expect("bind the fake authdaemon");
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).expect("chmod");
        let answer = Arc::new(Mutex::new(answer));
        let requests = Arc::new(AtomicUsize::new(0));
        let server = {
            let (answer, requests) = (answer.clone(), requests.clone());
            AcceptThread::start(listener, move |stream| {
                let answer = answer.lock().expect("answer").clone();
                let requests = requests.clone();
                std::thread::spawn(move || serve_auth_request(stream, &answer, &requests));
            })
        };
        FakeAuthdaemon {
            answer,
            requests,
            _server: server,
        }
    }

    fn set_answer(&self, answer: Answer) {
        *self.answer.lock().expect("answer") = answer;
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve_auth_request(mut stream: UnixStream, answer: &Answer, requests: &AtomicUsize) {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\n") {
        match stream.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => return,
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    match answer {
        Answer::Bytes(bytes) => {
            let _ = stream.write_all(bytes);
        }
        Answer::ByteByByte(bytes) => {
            for b in bytes {
                if stream.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Answer::Silent => {
            // Hold the connection until the client gives up and closes it.
            let _ = stream.read(&mut byte);
        }
    }
}

/// Builds a valid authdaemon reply for `account`, with `extra` lines before
/// the dot.
fn auth_reply(account: &Account, extra: &str) -> Vec<u8> {
    format!(
        "UID={uid}\nGID={gid}\nHOME={home}\n{extra}.\n",
        uid = account.uid,
        gid = account.gid,
        home = account.home.display()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// Regression tests for the defects the attacks found.
// ---------------------------------------------------------------------------

/// logging::SyslogState::connect uses the `syslog` crate, which connects a
/// stream-type syslog socket with a blocking connect(2). When the syslog
/// daemon stops accepting, that connect waits for ever while holding the
/// logger's mutex, so the first log line blocks start-up and every session.
#[test]
fn stream_syslog_backlog_keeps_serving() {
    let mut setup = Setup::new("h2-syslog-backlog");
    setup.add_account("alice@example.org");
    let _stalled = FullBacklog::bind(&setup.log_socket());
    let mut daemon = spawn_foreground(&setup, &setup.config_text(""));
    let greeting = first_greeting(setup.port).unwrap_or_else(|e| {
        panic!("no greeting while a stream syslog socket does not accept: {e}")
    });
    assert_code(&greeting, 220, "greeting");
    let reply = deliver(setup.port, "alice@example.org", b"hi\r\n");
    assert_code(&reply, 250, "delivery while syslog is stalled");
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

/// Bytes queued in one of `pid`'s pipes, and the pipe's capacity, for the
/// fullest pipe.
fn fullest_pipe(pid: u32) -> (usize, usize) {
    let mut fullest = (0, usize::MAX);
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return fullest;
    };
    for entry in entries.filter_map(Result::ok) {
        let is_pipe = fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("pipe:"));
        if !is_pipe {
            continue;
        }
        let Ok(pipe) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(entry.path())
        else {
            continue;
        };
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to the pointer, which is live.
        let rc = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut queued) };
        // SAFETY: F_GETPIPE_SZ takes no argument.
        let capacity = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_GETPIPE_SZ) };
        if rc == 0 && capacity > 0 && queued as usize >= fullest.0 {
            fullest = (queued as usize, capacity as usize);
        }
    }
    fullest
}

/// daemon::wait_for_stop reads one byte per signal from a non-blocking
/// self-pipe, and the handler drops the byte when the pipe is full. A burst
/// of SIGHUPs faster than reloads fills the pipe, so a SIGTERM sent right
/// after it is lost and the daemon never stops.
#[test]
fn sighup_storm_keeps_sigterm_working() {
    let mut setup = Setup::new("h2-hup-storm");
    setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    let pid = daemon.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<JoinHandle<()>> = (0..4)
        .map(|_| {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    for _ in 0..1000 {
                        send_signal(pid, libc::SIGHUP);
                    }
                    sent.fetch_add(1000, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Storm until the signal pipe is full, or for a fixed number of signals
    // when the daemon drains it faster than they arrive.
    while sent.load(Ordering::SeqCst) < 20_000_000 {
        let (queued, capacity) = fullest_pipe(pid);
        if queued >= capacity {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.join().expect("signal sender");
    }

    send_signal(pid, libc::SIGTERM);
    let mut child = daemon.child.take().expect("daemon running");
    let status = wait_exit(&mut child);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.expect("the SIGTERM sent after a SIGHUP storm was lost");
    assert!(status.success(), "exit status {status}");
}

/// Receives every datagram that arrives within `wait`.
fn drain_datagrams(socket: &UnixDatagram, wait: Duration) -> Vec<String> {
    socket.set_read_timeout(Some(wait)).expect("timeout");
    let mut received = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    received
}

/// Counts the stderr lines of the daemon, which get the same records as syslog.
fn log_lines(daemon: &Daemon) -> usize {
    daemon.log().lines().count()
}

/// logging::SyslogState::send counts a line as dropped only when a send
/// fails. While the socket is gone (a restarting syslog daemon), send
/// returns before trying, so the "N log lines were dropped" note that
/// follows the outage reports 1 (or nothing) however many lines were lost.
#[test]
fn syslog_outage_counts_dropped_lines() {
    let mut setup = Setup::new("h2-syslog-outage");
    let alice = setup.add_account("alice@example.org");
    let sink = UnixDatagram::bind(setup.log_socket()).expect("bind syslog socket");
    fs::set_permissions(setup.log_socket(), fs::Permissions::from_mode(0o666)).expect("chmod");
    let mut daemon = setup.start("");
    assert_code(
        &deliver(setup.port, &alice.address, b"hi\r\n"),
        250,
        "before",
    );
    assert!(!drain_datagrams(&sink, Duration::from_millis(200)).is_empty());

    // The syslog daemon restarts: its socket disappears for a while.
    drop(sink);
    fs::remove_file(setup.log_socket()).expect("remove syslog socket");
    let before = log_lines(&daemon);
    for _ in 0..5 {
        assert_code(
            &deliver(setup.port, &alice.address, b"hi\r\n"),
            250,
            "during",
        );
    }
    let lost = log_lines(&daemon) - before;

    let sink = UnixDatagram::bind(setup.log_socket()).expect("bind syslog socket again");
    fs::set_permissions(setup.log_socket(), fs::Permissions::from_mode(0o666)).expect("chmod");
    // Zoha retries the socket at most every 10 seconds: log until it does.
    let deadline = Instant::now() + WAIT;
    let first = loop {
        assert!(Instant::now() < deadline, "syslog was never used again");
        assert_code(
            &deliver(setup.port, &alice.address, b"hi\r\n"),
            250,
            "after",
        );
        if let Some(first) = drain_datagrams(&sink, Duration::from_millis(300)).first() {
            break first.clone();
        }
    };

    let reported: usize = first
        .split_once("]: ")
        .map(|(_, text)| text)
        .and_then(|rest| rest.strip_suffix(" log lines were dropped: syslog did not accept them"))
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    assert!(
        reported >= lost,
        "{lost} lines were lost during the outage, but the first line after it is {first:?}"
    );
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

/// logging::ZohaLogger::log replaces only CR and LF. So values from an
/// authdaemon reply (and HOME paths, and quota strings from `maildirsize`)
/// reach the log with ESC, BEL, NUL or C1 control characters. Those forge
/// terminal output for readers of the log, and NUL cuts syslog lines.
#[test]
fn authdaemon_control_bytes_escaped_in_log() {
    let setup = Setup::new("h2-log-control");
    let socket = setup.dir.path.join("authdaemon.sock");
    let reply = "UID=5\u{1b}[2J\u{7}\u{0}\u{85}x\nGID=5\nHOME=/srv/\u{1b}]0;x\u{7}\n.\n";
    let _auth = FakeAuthdaemon::start(&socket, Answer::Bytes(reply.as_bytes().to_vec()));
    fs::write(setup.config_path(), authdaemon_config(&setup, &socket, "")).expect("config");
    let daemon = Daemon::start(&setup.config_path(), setup.port, &setup.dir.path);
    let reply = deliver(setup.port, "alice@example.org", b"hi\r\n");
    assert_code(&reply, 451, "RCPT with a broken authdaemon reply");
    let log = daemon.log();
    assert!(log.contains("is not a number"), "log:\n{log}");
    let raw: Vec<char> = log
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        raw.is_empty(),
        "control characters {raw:?} reached the log:\n{}",
        log.escape_debug()
    );
}

/// logging::ZohaLogger::log writes each line to standard error with a
/// blocking write. In the foreground, a supervisor's log reader may stall
/// (svlogd or multilog on a full disk, or `zoha -f 2>&1 | cmd`). The pipe
/// then fills after about 64 KiB of log, and every session that logs waits
/// for ever, although logging must never block deliveries.
#[test]
fn stalled_stderr_pipe_keeps_serving() {
    let mut setup = Setup::new("h2-stderr-pipe");
    setup.add_account("alice@example.org");
    setup.write("");
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded, so both are fresh descriptors without another owner.

    let (_unread, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let child = Command::new(ZOHA)
        .arg("-f")
        .arg("-c")
        .arg(setup.config_path())
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write_end))
        .spawn()
        .expect("start zoha");
    let _daemon = Daemon {
        child: Some(child),
        port: setup.port,
        log_path: setup.dir.path.join("unused.stderr"),
    };
    first_greeting(setup.port).expect("zoha listens");

    // Each session logs about 200 bytes; 1000 of them overflow the pipe.
    for n in 0..1000 {
        let mut client = Client::tcp(setup.port).expect("connect");
        let greeting = client.try_read_reply().unwrap_or_else(|e| {
            panic!("session {n} got no greeting with standard error full: {e}")
        });
        assert_code(&greeting, 220, "greeting");
        assert_code(&ask(&mut client, "QUIT"), 221, "QUIT");
    }
}

/// Each pipelined RCPT waits authdaemon_timeout for a silent authdaemon,
/// one after the other, and the session goes on after its client has gone.
/// So 60 pipelined recipients hold the worker for 60 timeouts, and with
/// `workers = 1` every other client gets 421 meanwhile.
#[test]
fn stalled_authdaemon_frees_worker_after_hangup() {
    let setup = Setup::new("h2-auth-hangup");
    let socket = setup.dir.path.join("authdaemon.sock");
    let auth = FakeAuthdaemon::start(&socket, Answer::Silent);
    let extra = "authdaemon_timeout = 1\nworkers = 1\n";
    fs::write(
        setup.config_path(),
        authdaemon_config(&setup, &socket, extra),
    )
    .expect("config");
    let _daemon = Daemon::start(&setup.config_path(), setup.port, &setup.dir.path);
    let mut client = loop {
        let mut client = Client::tcp(setup.port).expect("connect");
        if client.read_reply().code == 220 {
            break client;
        }
    };

    let mut wire = b"LHLO x\r\nMAIL FROM:<>\r\n".to_vec();
    wire.extend_from_slice(&b"RCPT TO:<alice@example.org>\r\n".repeat(60));
    client.send(&wire);
    let deadline = Instant::now() + WAIT;
    while auth.requests() == 0 {
        assert!(
            Instant::now() < deadline,
            "no lookup reached the authdaemon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client);

    let deadline = Instant::now() + WAIT;
    loop {
        let mut next = Client::tcp(setup.port).expect("connect");
        let greeting = next.read_reply();
        if greeting.code == 220 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the only worker still serves a client that left ({} lookups so far)",
            auth.requests()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// Attacks the daemon already survives.
// ---------------------------------------------------------------------------

/// A quota of `0S` or `0C` means no limit of that kind, as in Courier's
/// maildirquota (checkOneQuota) and in Dovecot. So it must not defer every
/// message with 452 4.2.2.
#[test]
fn zero_quota_means_no_limit() {
    let mut setup = Setup::new("h2-zero-quota");
    let accounts = [
        add_quota_account(&mut setup, "alice", "0S"),
        add_quota_account(&mut setup, "bob", "100000S,0C"),
        add_quota_account(&mut setup, "carol", "0S,0C"),
    ];
    make_account_maildir(&accounts[0]);
    let _daemon = setup.start("");
    for account in &accounts {
        let reply = deliver(setup.port, &account.address, b"hi\r\n");
        assert_code(&reply, 250, &format!("delivery to {}", account.address));
    }
}

/// The Maildir++ quota does not count `.Trash` (maildirquota(7)). So mail to
/// `alice+Trash@` must not land there, or any sender could store unlimited
/// mail past the quota.
#[test]
fn trash_detail_respects_quota() {
    let mut setup = Setup::new("h2-trash-quota");
    let alice = add_quota_account(&mut setup, "alice", "3C");
    for sub in [
        "cur",
        "new",
        "tmp",
        ".Trash/cur",
        ".Trash/new",
        ".Trash/tmp",
    ] {
        fs::create_dir_all(alice.maildir().join(sub)).expect("create Maildir");
    }
    fs::write(alice.maildir().join(".Trash/maildirfolder"), "").expect("maildirfolder");
    chown_tree(&alice.maildir(), alice.uid);
    let _daemon = setup.start("detail_folders = yes\n");
    let accepted = (0..8)
        .map(|_| deliver(setup.port, "alice+Trash@example.org", b"hi\r\n"))
        .filter(|reply| reply.code == 250)
        .count();
    let stored = alice.files("new").len() + list_files(&alice.maildir().join(".Trash/new")).len();
    assert!(
        accepted <= 3,
        "{accepted} of 8 messages accepted for a 3C quota ({stored} stored)"
    );
}

/// A duration too large for `Instant` arithmetic must be rejected by the
/// configuration check, or the daemon must work with it. Otherwise adding
/// it to `Instant::now()` panics: in every session for command_timeout,
/// in every DATA for data_timeout, and at SIGTERM for shutdown_timeout.
#[test]
fn huge_timeout_setting_no_panic() {
    for name in [
        "command_timeout",
        "data_timeout",
        "shutdown_timeout",
        "authdaemon_timeout",
    ] {
        check_huge_setting(name);
    }
}

fn check_huge_setting(name: &str) {
    let mut setup = Setup::new("h2-huge-timeout");
    let alice = setup.add_account("alice@example.org");
    let socket = setup.dir.path.join("authdaemon.sock");
    let _auth = FakeAuthdaemon::start(&socket, Answer::Bytes(auth_reply(&alice, "")));
    let extra = format!("{name} = 9223372036854775807\n");
    let config = authdaemon_config(&setup, &socket, &extra);
    fs::write(setup.config_path(), &config).expect("write config");
    let check = Command::new(ZOHA)
        .arg("-t")
        .arg("-c")
        .arg(setup.config_path())
        .output()
        .expect("run zoha -t");
    if !check.status.success() {
        return;
    }
    let mut daemon = spawn_foreground(&setup, &config);
    let greeting = first_greeting(setup.port)
        .unwrap_or_else(|e| panic!("{name} passed zoha -t but sessions get no greeting: {e}"));
    assert_code(&greeting, 220, name);
    let reply = deliver(setup.port, &alice.address, b"hi\r\n");
    assert_code(&reply, 250, &format!("delivery with a huge {name}"));
    send_signal(daemon.pid(), libc::SIGTERM);
    let status = daemon.wait();
    assert!(
        status.success(),
        "{name}: exit status {status} after SIGTERM"
    );
}

/// `zoha -t` (run by service managers before a start) must finish within
/// authdaemon_timeout when authdaemond does not accept connections.
#[test]
fn config_check_stalled_authdaemon_finishes() {
    let setup = Setup::new("h2-check-stalled");
    let socket = setup.dir.path.join("authdaemon.sock");
    let _stalled = FullBacklog::bind(&socket);
    let config = authdaemon_config(&setup, &socket, "authdaemon_timeout = 1\n");
    fs::write(setup.config_path(), config).expect("write config");
    let mut child = Command::new(ZOHA)
        .arg("-t")
        .arg("-c")
        .arg(setup.config_path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run zoha -t");
    let status = wait_exit(&mut child);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.expect("zoha -t hangs while the authdaemon does not accept");
    assert_eq!(status.code(), Some(1), "an unreachable source is a problem");
}

/// Sends `piece` again and again, one write per 100 ms read timeout (about
/// 10 writes a second), until the daemon replies or closes. Returns the
/// reply, or an empty string when the connection is closed.
fn trickle_until_reply(stream: &mut TcpStream, piece: &[u8]) -> String {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the trickled data was never cut");
        if stream.write_all(piece).is_err() {
            return String::new();
        }
        if let Some(answer) = poll_read(stream) {
            return String::from_utf8_lossy(&answer).into_owned();
        }
    }
}

/// Opens a session for alice and sends everything up to the message data
/// (`DATA` or a BDAT command), reading the replies before it.
fn open_transfer(port: u16, command: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let wire = format!("LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\n{command}\r\n");
    stream.write_all(wire.as_bytes()).expect("send");
    let expected = if command == "DATA" { 4 } else { 3 };
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen)
        .split("\r\n")
        .filter(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
        .count()
        < expected
    {
        let n = stream.read(&mut buf).expect("read replies");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    stream
}

/// A command line sent one byte at a time but completed well within
/// command_timeout gets its normal reply.
#[test]
fn slow_command_within_limit_succeeds() {
    let mut setup = Setup::new("h2-slow-line");
    setup.add_account("alice@example.org");
    let _daemon = setup.start("command_timeout = 20\n");
    let mut client = Client::connect(setup.port);
    for byte in b"LHLO slow.example\r\n" {
        client.send(&[*byte]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let reply = client.read_reply();
    assert_code(&reply, 250, "LHLO sent slowly within command_timeout");
    assert_code(&ask(&mut client, "NOOP"), 250, "NOOP");
}

/// DATA and a BDAT chunk trickled at about 400 bytes a second, below the
/// minimum rate, are cut with 421 4.4.2 once data_timeout has passed, and
/// nothing remains in `tmp/`, `new/` or the spool.
#[test]
fn trickled_data_cut_leaves_nothing() {
    let mut setup = Setup::new("h2-trickle");
    let alice = setup.add_account("alice@example.org");
    make_account_maildir(&alice);
    let _daemon = setup.start("data_timeout = 1\n");
    for command in ["DATA", "BDAT 1000000 LAST"] {
        let mut stream = open_transfer(setup.port, command);
        let piece = format!("{}\r\n", "x".repeat(38));
        let answer = trickle_until_reply(&mut stream, piece.as_bytes());
        assert!(
            answer.starts_with("421 4.4.2"),
            "{command} trickled below the minimum rate: {answer:?}"
        );
    }
    let mut client = Client::ready(setup.port);
    assert_in_sync(&mut client);
    assert!(alice.files("new").is_empty(), "a cut message was stored");
    assert!(
        alice.files("tmp").is_empty(),
        "a cut message left tmp/ files"
    );
    assert!(list_files(&setup.dir.path.join("spool")).is_empty());
}

/// Authdaemon replies that must each get 451 at RCPT, with what they try.
fn hostile_auth_replies(alice: &Account) -> Vec<(&'static str, Vec<u8>)> {
    let (uid, home) = (alice.uid, alice.home.display().to_string());
    let ids = format!("UID={uid}\nGID={uid}\n");
    vec![
        (
            "NUL",
            format!("UID={uid}\0\nGID={uid}\nHOME={home}\n.\n").into_bytes(),
        ),
        (
            "invalid UTF-8",
            [
                format!("{ids}HOME={home}\nNAME=").as_bytes(),
                b"\xff\xfe\n.\n",
            ]
            .concat(),
        ),
        ("line without =", auth_reply(alice, "GARBAGE\n")),
        (
            "uid 0",
            format!("UID=0\nGID={uid}\nHOME={home}\n.\n").into_bytes(),
        ),
        (
            "gid 0",
            format!("UID={uid}\nGID=0\nHOME={home}\n.\n").into_bytes(),
        ),
        (
            "USERNAME=root",
            format!("USERNAME=root\nHOME={home}\n.\n").into_bytes(),
        ),
        (
            "relative HOME",
            format!("{ids}HOME=home/alice\n.\n").into_bytes(),
        ),
        (
            "HOME with ..",
            format!("{ids}HOME={home}/../alice\n.\n").into_bytes(),
        ),
        (
            "MAILDIR with ..",
            auth_reply(alice, "MAILDIR=../bob/Maildir\n"),
        ),
        (
            "other mailhost",
            auth_reply(alice, "OPTIONS=mailhost=node-b.example\n"),
        ),
        (
            "huge reply",
            auth_reply(alice, &format!("NAME={}\n", "a".repeat(200_000))),
        ),
    ]
}

/// Each hostile authdaemon reply of [`hostile_auth_replies`] gets 451 at
/// RCPT. A reply sent one byte per write is still read whole. A second
/// record after the first `.` line is ignored. Nothing appears outside the
/// home.
#[test]
fn hostile_authdaemon_replies_rejected() {
    let mut setup = Setup::new("h2-auth-replies");
    let alice = setup.add_account("alice@example.org");
    let socket = setup.dir.path.join("authdaemon.sock");
    let auth = FakeAuthdaemon::start(&socket, Answer::Bytes(b"FAIL\n".to_vec()));
    fs::write(setup.config_path(), authdaemon_config(&setup, &socket, "")).expect("config");
    let _daemon = Daemon::start(&setup.config_path(), setup.port, &setup.dir.path);
    for (what, reply) in hostile_auth_replies(&alice) {
        auth.set_answer(Answer::Bytes(reply));
        let mut client = Client::ready(setup.port);
        assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");
        let reply = ask(&mut client, "RCPT TO:<alice@example.org>");
        assert_eq!(reply.code, 451, "{what}: {reply:?}");
    }

    auth.set_answer(Answer::ByteByByte(auth_reply(&alice, "")));
    assert_code(
        &deliver(setup.port, &alice.address, b"hi\r\n"),
        250,
        "bytewise reply",
    );

    // A second record after the end is ignored: the first one decides.
    let trailing = [
        auth_reply(&alice, ""),
        b"UID=0\nGID=0\nHOME=/\n.\n".to_vec(),
    ]
    .concat();
    auth.set_answer(Answer::Bytes(trailing));
    assert_code(
        &deliver(setup.port, &alice.address, b"hi\r\n"),
        250,
        "trailing record",
    );
    for name in alice.files("new") {
        let (owner, _) = common::owner_and_mode(&alice.maildir().join("new").join(name));
        assert_eq!(owner, alice.uid, "stored as the first record's uid");
    }
    assert_eq!(list_files(&setup.dir.path.join("home")), ["alice"]);
}

/// An authdaemon whose listen backlog is full gets no hold on the session:
/// the RCPT is deferred after authdaemon_timeout and the session goes on.
#[test]
fn authdaemon_full_backlog_defers_rcpt() {
    let setup = Setup::new("h2-auth-backlog");
    let socket = setup.dir.path.join("authdaemon.sock");
    let _stalled = FullBacklog::bind(&socket);
    let config = authdaemon_config(&setup, &socket, "authdaemon_timeout = 1\n");
    fs::write(setup.config_path(), config).expect("config");
    let _daemon = Daemon::start(&setup.config_path(), setup.port, &setup.dir.path);
    let mut client = Client::ready(setup.port);
    assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");
    let reply = ask(&mut client, "RCPT TO:<alice@example.org>");
    assert_code(&reply, 451, "RCPT while authdaemond does not accept");
    assert_in_sync(&mut client);
}

/// A `maildirsize` that the mailbox owner made a FIFO, a symbolic link to
/// one of their files outside the Maildir, a 16 GiB sparse file or garbage
/// never blocks, is never followed and is rebuilt. A directory there defers
/// only that mailbox, and leaves nothing in `tmp/`.
#[test]
fn quota_file_special_kinds_handled() {
    let mut setup = Setup::new("h2-quota-kinds");
    let kinds = ["fifo", "link", "sparse", "garbage", "directory"];
    let accounts: Vec<Account> = kinds
        .iter()
        .map(|kind| add_quota_account(&mut setup, kind, "100000S,100C"))
        .collect();
    let target = accounts[1].home.join("keep");
    fs::write(&target, "keep\n").expect("write");
    for (kind, account) in kinds.iter().zip(&accounts) {
        make_account_maildir(account);
        let file = account.maildir().join("maildirsize");
        match *kind {
            "fifo" => {
                let path =
                    std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).expect("path");
                // SAFETY: `path` is a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
            }
            "link" => std::os::unix::fs::symlink(&target, &file).expect("symlink"),
            "sparse" => fs::File::create(&file)
                .and_then(|f| f.set_len(16 << 30))
                .expect("sparse file"),
            "garbage" => fs::write(&file, b"100000S,100C\n\xff\xfe 12\n-5 x\n\0\0").expect("write"),
            _ => fs::create_dir(&file).expect("mkdir"),
        }
        chown_tree(&account.home, account.uid);
    }
    let _daemon = setup.start("");
    for (kind, account) in kinds.iter().zip(&accounts) {
        let reply = deliver(setup.port, &account.address, b"hi\r\n");
        if *kind == "directory" {
            assert_eq!(reply.code / 100, 4, "{kind}: {reply:?}");
            assert!(account.files("new").is_empty(), "{kind}");
        } else {
            assert_code(&reply, 250, kind);
            assert_eq!(account.files("new").len(), 1, "{kind}");
        }
        assert!(account.files("tmp").is_empty(), "{kind}: tmp/ not empty");
    }
    assert_eq!(fs::read_to_string(&target).expect("read"), "keep\n");
}

/// Concurrent deliveries race between the quota check and the quota
/// record. With a 3-message quota and 8 sessions at a time, the Maildir
/// may go over its limit by at most the number of concurrent sessions,
/// also after several bursts (lost `maildirsize` lines must not add up).
#[test]
fn concurrent_quota_overshoot_stays_bounded() {
    const SESSIONS: usize = 8;
    let mut setup = Setup::new("h2-quota-race");
    let alice = add_quota_account(&mut setup, "alice", "3C");
    let _daemon = setup.start("fsync = no\n");
    for _ in 0..3 {
        let barrier = Arc::new(Barrier::new(SESSIONS));
        let port = setup.port;
        let sessions: Vec<JoinHandle<u16>> = (0..SESSIONS)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut client = Client::ready(port);
                    assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");
                    let rcpt = ask(&mut client, "RCPT TO:<alice@example.org>");
                    barrier.wait();
                    if rcpt.code != 250 {
                        return rcpt.code;
                    }
                    assert_code(&ask(&mut client, "DATA"), 354, "DATA");
                    client.send(b"hi\r\n.\r\n");
                    client.read_reply().code
                })
            })
            .collect();
        for session in sessions {
            let code = session.join().expect("session");
            assert!(code == 250 || code == 452, "reply {code}");
        }
    }
    let stored = alice.files("new").len();
    assert!(
        stored <= 3 + SESSIONS,
        "{stored} messages for a 3C quota with {SESSIONS} concurrent sessions"
    );
}

/// `+detail` folders: UTF-8 and `&` names are stored as given (Courier-IMAP 5
/// uses UTF-8 on disk), dots make subfolders, any case of INBOX and a
/// detail over 200 bytes go to INBOX, and each new folder is subscribed once.
#[test]
fn detail_folders_utf8_and_inbox() {
    let mut setup = Setup::new("h2-folders");
    let alice = setup.add_account("alice@example.org");
    let _daemon = setup.start("detail_folders = create\n");
    let long = "x".repeat(201);
    let details = [
        "Entwürfe",
        "A&B",
        "&Jjo-",
        "Lists.2026",
        "INBOX",
        "inbox",
        "InBoX",
        &long,
    ];
    for detail in details {
        let reply = deliver(
            setup.port,
            &format!("alice+{detail}@example.org"),
            b"hi\r\n",
        );
        assert_code(&reply, 250, detail);
    }

    assert_eq!(
        alice.files("new").len(),
        4,
        "INBOX gets the INBOX and long details"
    );
    for folder in [".Entwürfe", ".A&B", ".&Jjo-", ".Lists.2026"] {
        let path = alice.maildir().join(folder);
        assert_eq!(list_files(&path.join("new")).len(), 1, "{folder}");
        assert!(path.join("maildirfolder").exists(), "{folder}");
    }

    let subscribed =
        fs::read_to_string(alice.maildir().join("courierimapsubscribed")).expect("read");
    let mut lines: Vec<&str> = subscribed.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "INBOX.&Jjo-",
            "INBOX.A&B",
            "INBOX.Entwürfe",
            "INBOX.Lists.2026"
        ]
    );
}

/// A spam folder that the owner replaced by a symbolic link (or a file) is
/// never followed: that recipient is deferred and nothing is written
/// through the link. A folded spam header still matches, and only the first
/// of two spam headers counts.
#[test]
fn spam_folder_symlink_not_followed() {
    let mut setup = Setup::new("h2-spam");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let carol = setup.add_account("carol@example.org");
    let outside = setup.dir.path.join("outside");
    fs::create_dir_all(&outside).expect("mkdir");
    for account in [&bob, &carol] {
        make_account_maildir(account);
    }
    std::os::unix::fs::symlink(&outside, bob.maildir().join(".Junk")).expect("symlink");
    fs::write(carol.maildir().join(".Junk"), "x").expect("write");
    chown_tree(&bob.maildir(), bob.uid);
    chown_tree(&carol.maildir(), carol.uid);
    let _daemon = setup.start("spam_header = X-Spam-Flag: YES\n");
    let spam = b"X-Spam-Flag: YES\r\nSubject: s\r\n\r\nspam\r\n";
    for account in [&bob, &carol] {
        let reply = deliver(setup.port, &account.address, spam);
        assert_eq!(reply.code / 100, 4, "{}: {reply:?}", account.address);
        assert!(account.files("tmp").is_empty());
    }
    assert!(list_files(&outside).is_empty(), "written through .Junk");
    let folded = b"X-Spam-Flag:\r\n YES\r\n\r\nx\r\n";
    let twice = b"X-Spam-Flag: NO\r\nX-Spam-Flag: YES\r\n\r\nx\r\n";
    assert_code(&deliver(setup.port, &alice.address, folded), 250, "folded");
    assert_code(&deliver(setup.port, &alice.address, twice), 250, "twice");
    assert_eq!(list_files(&alice.maildir().join(".Junk/new")).len(), 1);
    assert_eq!(alice.files("new").len(), 1);
}

/// SIGTERM arrives right after the end of a large message to many
/// recipients, with a short shutdown_timeout. Whatever the timing, every
/// recipient that got 250 has exactly one file in `new/`, every other one
/// has none, and no `tmp/` file is left (invariant 1 of the design).
#[test]
fn sigterm_mid_delivery_keeps_durability() {
    const RECIPIENTS: usize = 30;
    let mut setup = Setup::new("h2-term-durable");
    let accounts: Vec<Account> = (0..RECIPIENTS)
        .map(|i| setup.add_account(&format!("u{i}@example.org")))
        .collect();
    let mut daemon = setup.start("shutdown_timeout = 1\n");
    let mut client = Client::ready(setup.port);
    assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");
    for account in &accounts {
        assert_code(
            &ask(&mut client, &format!("RCPT TO:<{}>", account.address)),
            250,
            "RCPT",
        );
    }
    assert_code(&ask(&mut client, "DATA"), 354, "DATA");

    let line = format!("{}\r\n", "y".repeat(998));
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    body.extend_from_slice(line.repeat(8000).as_bytes());
    body.extend_from_slice(b".\r\n");
    client.send(&body);
    daemon.signal(libc::SIGTERM);
    let mut replies = Vec::new();
    while replies.len() < RECIPIENTS {
        match client.try_read_reply() {
            Ok(reply) => replies.push(reply),
            Err(_) => break,
        }
    }
    let status = daemon.wait();
    assert!(status.success(), "exit status {status}");

    for (i, account) in accounts.iter().enumerate() {
        let delivered = replies.get(i).is_some_and(|r| r.code == 250);
        let stored = account.files("new").len();
        assert_eq!(
            stored,
            usize::from(delivered),
            "{}: {:?}",
            account.address,
            replies.get(i)
        );
        assert!(
            account.files("tmp").is_empty(),
            "{}: tmp/ not empty",
            account.address
        );
    }
}

/// SIGHUP every millisecond while three clients deliver: no delivery fails,
/// and the daemon still stops on SIGTERM.
#[test]
fn sighup_during_traffic_loses_nothing() {
    let mut setup = Setup::new("h2-hup-traffic");
    let accounts: Vec<Account> = (0..3)
        .map(|i| setup.add_account(&format!("u{i}@example.org")))
        .collect();
    let mut daemon = setup.start("fsync = no\n");
    let pid = daemon.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                send_signal(pid, libc::SIGHUP);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let port = setup.port;
    let clients: Vec<JoinHandle<()>> = accounts
        .iter()
        .map(|account| {
            let address = account.address.clone();
            std::thread::spawn(move || {
                for _ in 0..40 {
                    assert_code(&deliver(port, &address, b"hi\r\n"), 250, &address);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    stop.store(true, Ordering::SeqCst);
    storm.join().expect("storm");

    for account in &accounts {
        assert_eq!(account.files("new").len(), 40, "{}", account.address);
    }
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

/// Runs `zoha -c config` (detaching) and returns its exit status and
/// standard error once the starting process has exited.
fn start_detached(config: &Path) -> (ExitStatus, String) {
    let output = Command::new(ZOHA)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run zoha");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Two detaching starts at once with one pid file: one daemon runs and the
/// other start fails with status 1. A pid file that is a symbolic link is
/// never followed: the start fails and the link target is unchanged.
#[test]
fn pid_file_races_and_links_refused() {
    let mut setup = Setup::new("h2-pid-file");
    setup.add_account("alice@example.org");
    let pid_file = setup.dir.path.join("zoha.pid");
    let guard = DetachedGuard {
        pid_file: pid_file.clone(),
    };
    setup.write(&format!("pid_file = {}\n", pid_file.display()));
    let second = setup.dir.path.join("second.conf");
    let text = fs::read_to_string(setup.config_path()).expect("config");
    let other_port = common::free_port();
    let text = text
        .replace(&format!(":{}", setup.port), &format!(":{other_port}"))
        .replace("lmtp.sock", "lmtp2.sock");
    fs::write(&second, text).expect("write config");

    let starts: Vec<JoinHandle<(ExitStatus, String)>> = [setup.config_path(), second]
        .into_iter()
        .map(|config| std::thread::spawn(move || start_detached(&config)))
        .collect();
    let results: Vec<(ExitStatus, String)> = starts
        .into_iter()
        .map(|start| start.join().expect("start"))
        .collect();
    let codes: Vec<Option<i32>> = results.iter().map(|(status, _)| status.code()).collect();
    assert!(
        codes == [Some(0), Some(1)] || codes == [Some(1), Some(0)],
        "two starts with one pid file: {results:?}"
    );

    let pid = guard.pid().expect("pid in the pid file");
    send_signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + WAIT;
    while pid_file.exists() {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }

    let target = setup.dir.path.join("target");
    fs::write(&target, "keep\n").expect("write");
    std::os::unix::fs::symlink(&target, &pid_file).expect("symlink");
    let (status, stderr) = start_detached(&setup.config_path());
    assert_eq!(
        status.code(),
        Some(1),
        "start with a linked pid file: {stderr}"
    );
    assert_eq!(fs::read_to_string(&target).expect("read"), "keep\n");
}

/// Under inetd with a regular file as standard input containing a whole
/// session, every command gets its reply, the message is stored, and the
/// process exits 0 at the end of the file.
#[test]
fn inetd_regular_file_session_delivers() {
    let mut setup = Setup::new("h2-inetd-file");
    let alice = setup.add_account("alice@example.org");
    setup.write("");
    let session = setup.dir.path.join("session");
    let wire = "LHLO x\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n\
                DATA\r\nSubject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    fs::write(&session, wire).expect("write session");
    let output = Command::new(ZOHA)
        .arg("-i")
        .arg("-c")
        .arg(setup.config_path())
        .stdin(fs::File::open(&session).expect("open session"))
        .output()
        .expect("run zoha -i");
    assert!(output.status.success(), "exit status {}", output.status);
    let replies = String::from_utf8_lossy(&output.stdout).into_owned();
    let codes: Vec<&str> = replies
        .split("\r\n")
        .filter(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "354", "250", "221"],
        "{replies}"
    );
    assert_eq!(alice.files("new").len(), 1);
}

/// A stream-type syslog socket that accepts and reads gets every record as
/// one RFC 3164 line ended by a NUL byte, lines never interleaved.
#[test]
fn stream_syslog_lines_nul_framed() {
    let mut setup = Setup::new("h2-syslog-stream");
    let alice = setup.add_account("alice@example.org");
    let listener = UnixListener::bind(setup.log_socket()).expect("bind syslog socket");
    fs::set_permissions(setup.log_socket(), fs::Permissions::from_mode(0o666)).expect("chmod");
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&text).contains("status=sent") {
            let n = stream.read(&mut buf).expect("read syslog stream");
            assert!(n > 0, "the stream closed");
            text.extend_from_slice(&buf[..n]);
        }
        text
    });

    let mut daemon = setup.start("");
    assert_code(
        &deliver(setup.port, &alice.address, b"hi\r\n"),
        250,
        "delivery",
    );
    let text = reader.join().expect("syslog reader");

    // The last record may still be arriving: check only the complete ones.
    let complete = &text[..text.iter().rposition(|&b| b == 0).map_or(0, |end| end + 1)];
    assert!(!complete.is_empty(), "no NUL-terminated record");
    for record in complete.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        assert!(record.starts_with('<'), "record {record:?}");
        assert_eq!(record.matches(" zoha[").count(), 1, "record {record:?}");
        assert!(!record.contains('\n'), "record {record:?}");
    }
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}
