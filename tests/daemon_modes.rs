//! Start modes of the real binary, and `-n`.
//!
//! The modes: inetd (`-i`) on a socket pair, on pipes and on a TCP
//! connection, systemd socket activation with listening sockets and in the
//! `Accept=yes` style, a capability bounding set as in zoha.service, and
//! detaching with a pid file.
//!
//! inetd and systemd hand Zoha its sockets as open descriptors, so these
//! tests start the binary with the descriptors already in place: as
//! standard input, output and error for `-i`, and at 3, 4, ... with
//! `LISTEN_FDS` for socket activation.

mod common;

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{
    assert_exit_success, read_pid, read_reply_from, Client, Daemon, DetachedGuard, Reply, Setup,
    TempDir, WAIT, ZOHA,
};

/// Pause between two looks at a file or a process that the test waits for.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A message body as the client sends it, dot-terminated.
const BODY: &[u8] = b"Subject: modes\r\n\r\nhello\r\n.\r\n";

// --- helpers -------------------------------------------------------------

/// A reader that fails with `TimedOut` instead of blocking longer than
/// [`WAIT`], so a silent `zoha` fails the test instead of hanging it.
struct TimedReader {
    file: File,
}

impl TimedReader {
    fn new(fd: impl Into<OwnedFd>) -> TimedReader {
        TimedReader {
            file: File::from(fd.into()),
        }
    }
}

impl Read for TimedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pollfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pollfd` is one live, initialised pollfd for the whole call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, WAIT.as_millis() as libc::c_int) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        if ready == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no output from zoha within {WAIT:?}"),
            ));
        }
        self.file.read(buf)
    }
}

/// Waits for `child` to exit; kills it and fails after [`WAIT`].
fn wait_exit(child: &mut Child) -> ExitStatus {
    common::wait_exit(child).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("zoha did not exit within {WAIT:?}");
    })
}

/// Waits until `condition` holds; fails with `what` after [`WAIT`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// One `zoha -i` process and the test's ends of its standard streams.
struct InetdSession {
    child: Child,
    replies: BufReader<TimedReader>,
    commands: File,
}

impl InetdSession {
    /// Starts `zoha -i` with one connected socket as standard input,
    /// output and error, as xinetd and Postfix's spawn(8) do.
    fn on_socket(setup: &Setup, theirs: OwnedFd, ours: OwnedFd) -> InetdSession {
        let child = Command::new(ZOHA)
            .arg("-i")
            .arg("-c")
            .arg(setup.config_path())
            .stdin(Stdio::from(theirs.try_clone().expect("dup socket")))
            .stdout(Stdio::from(theirs.try_clone().expect("dup socket")))
            .stderr(Stdio::from(theirs))
            .spawn()
            .expect("start zoha -i");
        let commands = File::from(ours.try_clone().expect("dup socket"));
        InetdSession {
            child,
            replies: BufReader::new(TimedReader::new(ours)),
            commands,
        }
    }

    /// Starts `zoha -i` on a socket pair.
    fn on_socket_pair(setup: &Setup) -> InetdSession {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        InetdSession::on_socket(setup, OwnedFd::from(theirs), OwnedFd::from(ours))
    }

    /// Starts `zoha -i` with a pipe as standard input and another as
    /// standard output; standard error goes to `stderr_path`.
    fn on_pipes(setup: &Setup, stderr_path: &Path) -> InetdSession {
        let stderr = File::create(stderr_path).expect("create stderr file");
        let mut child = Command::new(ZOHA)
            .arg("-i")
            .arg("-c")
            .arg(setup.config_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start zoha -i");
        let stdin = child.stdin.take().expect("stdin pipe");
        let stdout = child.stdout.take().expect("stdout pipe");
        InetdSession {
            child,
            replies: BufReader::new(TimedReader::new(stdout)),
            commands: File::from(OwnedFd::from(stdin)),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.commands.write_all(bytes).expect("write to zoha");
    }

    fn reply(&mut self) -> Reply {
        read_reply_from(&mut self.replies).unwrap_or_else(|e| panic!("no reply from zoha -i: {e}"))
    }

    fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Reads whatever zoha writes until it closes its end.
    fn rest_of_output(&mut self) -> String {
        let mut rest = Vec::new();
        self.replies
            .read_to_end(&mut rest)
            .expect("read to the end of the output");
        String::from_utf8_lossy(&rest).into_owned()
    }

    /// Runs one transaction to `rcpt` and returns the reply after the body.
    fn deliver(&mut self, rcpt: &str) -> Reply {
        send_up_to_data(|line| self.command(line), rcpt);
        self.send(BODY);
        self.reply()
    }
}

impl Drop for InetdSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a complete inetd session that delivers one message and quits.
fn check_inetd_delivery(mut session: InetdSession, setup: &Setup) {
    let alice = &setup.accounts[0];
    let greeting = session.reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    let delivered = session.deliver(&alice.address);
    assert_eq!(delivered.code, 250, "reply after the body: {delivered:?}");
    assert!(
        delivered.text().starts_with("2.0.0 <alice@example.org> "),
        "reply after the body: {delivered:?}"
    );
    let quit = session.command("QUIT");
    assert_eq!(quit.code, 221, "QUIT: {quit:?}");
    let rest = session.rest_of_output();
    assert_eq!(rest, "", "output after the QUIT reply");
    let status = wait_exit(&mut session.child);
    assert!(status.success(), "zoha -i exited with {status}");
    assert_eq!(alice.files("new").len(), 1, "messages in new/");
    assert_eq!(alice.files("tmp").len(), 0, "files left in tmp/");
}

/// Descriptors at 3, 4, ... in a child process, for socket activation.
const MAX_PASSED: usize = 8;

/// Moves `sources` to descriptors 3, 4, ... in the child between fork and
/// exec, without allocating. Each source goes first to a free descriptor
/// above 100, so that no `dup2` target overwrites a source that is still to
/// be moved.
fn move_to_listen_fds(sources: &[RawFd; MAX_PASSED], count: usize) -> io::Result<()> {
    let mut parked = [-1; MAX_PASSED];
    for i in 0..count {
        // SAFETY: F_DUPFD_CLOEXEC takes an integer and only creates a descriptor.
        let fd = unsafe { libc::fcntl(sources[i], libc::F_DUPFD_CLOEXEC, 100) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        parked[i] = fd;
    }
    for (i, &fd) in parked.iter().enumerate().take(count) {
        // SAFETY: dup2 takes two integers; the copy at 3 + i has no CLOEXEC flag.
        if unsafe { libc::dup2(fd, 3 + i as RawFd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts `zoha -f -c CONFIG` the way systemd does with socket activation:
/// `sockets` at descriptors 3, 4, ..., `LISTEN_FDS` set to their number and
/// `LISTEN_PID` to the pid of `zoha` itself. A shell sets `LISTEN_PID=$$`
/// and then execs `zoha`, which keeps the pid.
fn start_activated(setup: &Setup, sockets: &[RawFd], names: Option<&str>) -> Daemon {
    assert!(sockets.len() <= MAX_PASSED, "too many sockets for the test");
    let log_path = setup.dir.path.join("zoha.stderr");
    let log = File::create(&log_path).expect("create log file");
    let mut sources = [-1; MAX_PASSED];
    sources[..sockets.len()].copy_from_slice(sockets);
    let count = sockets.len();

    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(ZOHA)
        .arg("-f")
        .arg("-c")
        .arg(setup.config_path())
        .env("LISTEN_FDS", count.to_string())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if let Some(names) = names {
        command.env("LISTEN_FDNAMES", names);
    }
    // SAFETY: the closure only calls fcntl and dup2, which are
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || move_to_listen_fds(&sources, count));
    }

    let child = command.spawn().expect("start zoha with inherited sockets");
    Daemon {
        child: Some(child),
        port: 0,
        log_path,
    }
}

/// Sends LHLO, MAIL and RCPT for `rcpt` and DATA through `command`, which
/// sends one command line and returns its reply, and checks each reply.
fn send_up_to_data(mut command: impl FnMut(&str) -> Reply, rcpt: &str) {
    let lhlo = command("LHLO client.test");
    assert_eq!(lhlo.code, 250, "LHLO: {lhlo:?}");
    let mail = command("MAIL FROM:<s@example.net>");
    assert_eq!(mail.code, 250, "MAIL: {mail:?}");
    let rcpt_reply = command(&format!("RCPT TO:<{rcpt}>"));
    assert_eq!(rcpt_reply.code, 250, "RCPT: {rcpt_reply:?}");
    let data = command("DATA");
    assert_eq!(data.code, 354, "DATA: {data:?}");
}

/// Runs one transaction to `rcpt` on `client` and returns the final reply.
fn deliver_over(client: &mut Client, rcpt: &str) -> Reply {
    let greeting = client.read_reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    send_up_to_data(|line| client.command(line), rcpt);
    client.send(BODY);
    client.read_reply()
}

/// Reports whether something accepts TCP connections on 127.0.0.1:`port`.
fn port_is_bound(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Returns the `Received:` field of a stored message, unfolded.
fn received_field(message: &[u8]) -> String {
    let (added, _) = common::split_added_headers(message);
    let start = added.find("Received: ").expect("a Received field");
    added[start..].replace("\n\t", " ").replace("\n ", " ")
}

// --- inetd (-i) ----------------------------------------------------------

#[test]
fn inetd_socketpair_delivers_message() {
    let mut setup = Setup::new("inetd-pair");
    setup.add_account("alice@example.org");
    setup.write("");
    let session = InetdSession::on_socket_pair(&setup);
    check_inetd_delivery(session, &setup);
}

#[test]
fn inetd_pipes_deliver_message() {
    let mut setup = Setup::new("inetd-pipes");
    setup.add_account("alice@example.org");
    setup.write("");
    let stderr_path = setup.dir.path.join("inetd.stderr");
    let session = InetdSession::on_pipes(&setup, &stderr_path);
    check_inetd_delivery(session, &setup);
}

#[test]
fn inetd_tcp_socket_names_peer() {
    let mut setup = Setup::new("inetd-tcp");
    let alice = setup.add_account("alice@example.org");
    setup.write("");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let ours = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    ours.set_read_timeout(Some(WAIT)).expect("set timeout");
    let (theirs, _) = listener.accept().expect("accept");
    let session = InetdSession::on_socket(&setup, OwnedFd::from(theirs), OwnedFd::from(ours));
    check_inetd_delivery(session, &setup);
    let messages = alice.messages();
    let received = received_field(&messages[0]);
    assert!(
        received.starts_with("Received: from client.test ([127.0.0.1])"),
        "the peer address from getpeername on standard input: {received}"
    );
}

#[test]
fn inetd_idle_timeout_closes_session() {
    let mut setup = Setup::new("inetd-timeout");
    setup.add_account("alice@example.org");
    setup.write("command_timeout = 1\n");
    let mut session = InetdSession::on_socket_pair(&setup);
    let greeting = session.reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    let lhlo = session.command("LHLO client.test");
    assert_eq!(lhlo.code, 250, "LHLO: {lhlo:?}");
    // Send nothing more: the next reply is the timeout.
    let timeout = session.reply();
    assert_eq!(timeout.code, 421, "reply after idling: {timeout:?}");
    assert!(
        timeout.text().starts_with("4.4.2 "),
        "enhanced code of the timeout reply: {timeout:?}"
    );
    let rest = session.rest_of_output();
    assert_eq!(rest, "", "output after the timeout reply");
    let status = wait_exit(&mut session.child);
    assert!(status.success(), "zoha -i exited with {status}");
}

#[test]
fn inetd_bad_command_keeps_session() {
    let mut setup = Setup::new("inetd-bad");
    setup.add_account("alice@example.org");
    setup.write("");
    let stderr_path = setup.dir.path.join("inetd.stderr");
    let mut session = InetdSession::on_pipes(&setup, &stderr_path);
    let greeting = session.reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    let bad = session.command("FROB the widget");
    assert_eq!(bad.code, 500, "reply to an unknown command: {bad:?}");
    assert!(
        bad.text().starts_with("5.5.2 "),
        "enhanced code for an unknown command: {bad:?}"
    );
    let delivered = session.deliver("alice@example.org");
    assert_eq!(
        delivered.code, 250,
        "delivery after the bad command: {delivered:?}"
    );
    let quit = session.command("QUIT");
    assert_eq!(quit.code, 221, "QUIT: {quit:?}");
    let status = wait_exit(&mut session.child);
    assert!(status.success(), "zoha -i exited with {status}");
}

#[test]
fn inetd_bad_config_sends_421() {
    let mut setup = Setup::new("inetd-badconf");
    setup.add_account("alice@example.org");
    setup.write("bogus = 1\n");
    let mut session = InetdSession::on_socket_pair(&setup);
    let status = wait_exit(&mut session.child);
    assert_eq!(status.code(), Some(1), "exit status of zoha -i");
    // The connection carries only LMTP: the client must read a temporary
    // failure, not the text of the configuration error.
    let output = session.rest_of_output();
    let mut replies = output.as_bytes();
    let reply = read_reply_from(&mut replies);
    assert!(
        matches!(&reply, Ok(r) if r.code == 421),
        "first output on the connection: {output:?}"
    );
    assert!(
        replies.is_empty(),
        "output after the 421 reply: {:?}",
        String::from_utf8_lossy(replies)
    );
}

#[test]
fn inetd_sigterm_idle_gets_421() {
    let mut setup = Setup::new("inetd-term");
    setup.add_account("alice@example.org");
    setup.write("shutdown_timeout = 2\n");
    let mut session = InetdSession::on_socket_pair(&setup);
    let greeting = session.reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    // The LHLO reply shows that the session loop runs and signals are handled.
    let lhlo = session.command("LHLO client.test");
    assert_eq!(lhlo.code, 250, "LHLO: {lhlo:?}");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(session.child.id() as libc::pid_t, libc::SIGTERM) };
    let reply = session.reply();
    assert_eq!(reply.code, 421, "reply after SIGTERM: {reply:?}");
    assert!(
        reply.text().starts_with("4.3.2 "),
        "enhanced code after SIGTERM: {reply:?}"
    );
    let status = wait_exit(&mut session.child);
    assert!(status.success(), "zoha -i exited with {status}");
}

// --- systemd socket activation ------------------------------------------

#[test]
fn activation_serves_inherited_listeners() {
    let mut setup = Setup::new("activation");
    let alice = setup.add_account("alice@example.org");
    // The configured listen addresses must stay unused.
    setup.write("");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let tcp_port = tcp.local_addr().expect("address").port();
    let unix_path = setup.dir.path.join("activated.sock");
    let unix = UnixListener::bind(&unix_path).expect("bind the UNIX socket");
    let mut daemon = start_activated(
        &setup,
        &[tcp.as_raw_fd(), unix.as_raw_fd()],
        Some("tcp:unix"),
    );
    drop(tcp);
    drop(unix);

    let mut over_tcp = Client::tcp(tcp_port).expect("connect to the inherited TCP socket");
    let reply = deliver_over(&mut over_tcp, &alice.address);
    assert_eq!(reply.code, 250, "delivery over TCP: {reply:?}");
    let mut over_unix = Client::unix(&unix_path).expect("connect to the inherited UNIX socket");
    let reply = deliver_over(&mut over_unix, &alice.address);
    assert_eq!(reply.code, 250, "delivery over UNIX: {reply:?}");
    assert_eq!(alice.files("new").len(), 2, "messages in new/");

    assert!(
        !port_is_bound(setup.port),
        "the configured TCP address 127.0.0.1:{} was bound; log:\n{}",
        setup.port,
        daemon.log()
    );
    assert!(
        !setup.socket.exists(),
        "the configured UNIX socket {} was created",
        setup.socket.display()
    );
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
    assert!(
        unix_path.exists(),
        "zoha removed the socket file it did not create"
    );
}

#[test]
fn activation_without_fdnames_works() {
    let mut setup = Setup::new("activation-nonames");
    let alice = setup.add_account("alice@example.org");
    setup.write("");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let tcp_port = tcp.local_addr().expect("address").port();
    let mut daemon = start_activated(&setup, &[tcp.as_raw_fd()], None);
    drop(tcp);
    let mut client = Client::tcp(tcp_port).expect("connect to the inherited socket");
    let reply = deliver_over(&mut client, &alice.address);
    assert_eq!(
        reply.code,
        250,
        "delivery: {reply:?}; log:\n{}",
        daemon.log()
    );
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
}

#[test]
fn activation_other_pid_is_ignored() {
    let mut setup = Setup::new("activation-otherpid");
    setup.add_account("alice@example.org");
    let mut daemon = {
        setup.write("");
        // LISTEN_PID names another process: the variables are not for zoha,
        // so it binds the configured addresses.
        let log_path = setup.dir.path.join("zoha.stderr");
        let log = File::create(&log_path).expect("create log file");
        let child = Command::new(ZOHA)
            .arg("-f")
            .arg("-c")
            .arg(setup.config_path())
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start zoha");
        Daemon {
            child: Some(child),
            port: setup.port,
            log_path,
        }
    };
    wait_until("the configured port to greet", || {
        Client::tcp(setup.port).is_ok()
    });
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
}

#[test]
fn accept_style_serves_one_session() {
    let mut setup = Setup::new("accept-yes");
    let alice = setup.add_account("alice@example.org");
    setup.write("");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("address").port();
    let mut client = Client::tcp(port).expect("connect");
    let (accepted, _) = listener.accept().expect("accept");
    drop(listener);
    let mut daemon = start_activated(&setup, &[accepted.as_raw_fd()], Some("connection"));
    drop(accepted);

    let reply = deliver_over(&mut client, &alice.address);
    assert_eq!(
        reply.code,
        250,
        "delivery: {reply:?}; log:\n{}",
        daemon.log()
    );
    let quit = client.command("QUIT");
    assert_eq!(quit.code, 221, "QUIT: {quit:?}");
    assert!(client.is_closed(), "connection open after QUIT");
    let status = daemon.wait();
    assert_exit_success(&daemon, status);
    let messages = alice.messages();
    let received = received_field(&messages[0]);
    assert!(
        received.starts_with("Received: from client.test ([127.0.0.1])"),
        "the peer address of the accepted socket: {received}"
    );
    assert!(
        !port_is_bound(setup.port),
        "the configured TCP address was bound in Accept=yes style"
    );
}

// --- systemd hardening ---------------------------------------------------

#[test]
fn bounded_capabilities_still_deliver() {
    if common::skip_unless_root("bounded_capabilities_still_deliver") {
        return;
    }
    let mut setup = Setup::new("capabilities");
    let alice = setup.add_account("alice@example.org");
    setup.write("");
    // As on a real host: a home only its owner can enter, and a userdb file
    // only root can read. Root without CAP_DAC_OVERRIDE and
    // CAP_DAC_READ_SEARCH can do neither, so a delivery works only if every
    // mailbox access happens as the owner.
    fs::set_permissions(&alice.home, fs::Permissions::from_mode(0o700)).expect("chmod home");
    fs::set_permissions(setup.userdb_path(), fs::Permissions::from_mode(0o600))
        .expect("chmod userdb");

    // The capability bounding set and no_new_privs of contrib/zoha.service.
    let log_path = setup.dir.path.join("zoha.stderr");
    let log = File::create(&log_path).expect("create log file");
    let child = Command::new("setpriv")
        .arg("--bounding-set=-all,+setuid,+setgid,+net_bind_service,+chown")
        .arg("--no-new-privs")
        .arg(ZOHA)
        .arg("-f")
        .arg("-c")
        .arg(setup.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start zoha under setpriv");
    let mut daemon = Daemon {
        child: Some(child),
        port: setup.port,
        log_path,
    };
    wait_until("the daemon to listen", || Client::tcp(setup.port).is_ok());

    let mut client = Client::tcp(setup.port).expect("connect");
    let reply = deliver_over(&mut client, &alice.address);
    assert_eq!(
        reply.code,
        250,
        "delivery: {reply:?}; log:\n{}",
        daemon.log()
    );
    let message = alice.maildir().join("new").join(&alice.files("new")[0]);
    assert_eq!(
        common::owner_and_mode(&message),
        (alice.uid, 0o600),
        "owner and mode of the message"
    );
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
}

// --- detaching -----------------------------------------------------------

/// Reports whether `pid` is a live process, not a zombie left for init.
fn process_is_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

#[test]
fn detached_daemon_writes_pid_file() {
    let mut setup = Setup::new("detach");
    setup.add_account("alice@example.org");
    let pid_file = setup.dir.path.join("zoha.pid");
    setup.write(&format!("pid_file = {}\n", pid_file.display()));
    let _guard = DetachedGuard {
        pid_file: pid_file.clone(),
    };

    let first = Command::new(ZOHA)
        .arg("-c")
        .arg(setup.config_path())
        .stdin(Stdio::null())
        .output()
        .expect("start zoha");
    assert!(
        first.status.success(),
        "first start exited with {}: {}",
        first.status,
        String::from_utf8_lossy(&first.stderr)
    );
    wait_until("a pid in the pid file", || read_pid(&pid_file).is_some());
    let pid = read_pid(&pid_file).expect("pid in the pid file");
    assert!(
        process_is_running(pid),
        "no process {pid} from the pid file"
    );
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or(&[]);
    assert!(
        argv0.ends_with(b"/zoha"),
        "process {pid} is not zoha: {}",
        String::from_utf8_lossy(&cmdline)
    );
    let mut client = Client::connect(setup.port);
    assert_eq!(client.command("QUIT").code, 221, "QUIT to the daemon");

    let second = Command::new(ZOHA)
        .arg("-c")
        .arg(setup.config_path())
        .stdin(Stdio::null())
        .output()
        .expect("start zoha again");
    let message = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        second.status.code(),
        Some(1),
        "exit status of the second start: {message}"
    );
    assert!(
        message.contains("already running"),
        "message of the second start: {message}"
    );
    assert_eq!(
        read_pid(&pid_file),
        Some(pid),
        "the second start changed the pid file"
    );

    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    wait_until("the pid file to be removed", || !pid_file.exists());
    wait_until("the daemon to exit", || !process_is_running(pid));
}

#[test]
fn detached_start_reports_bind_error() {
    let mut setup = Setup::new("detach-busy");
    setup.add_account("alice@example.org");
    let pid_file = setup.dir.path.join("zoha.pid");
    setup.write(&format!("pid_file = {}\n", pid_file.display()));
    let _guard = DetachedGuard {
        pid_file: pid_file.clone(),
    };
    // Another socket is bound to the port. Start-up fails before
    // detaching, so the error reaches the terminal and the exit status.
    let _busy = TcpListener::bind(("127.0.0.1", setup.port)).expect("occupy the port");
    let output = Command::new(ZOHA)
        .arg("-c")
        .arg(setup.config_path())
        .stdin(Stdio::null())
        .output()
        .expect("start zoha");
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit status: {message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", setup.port)),
        "the message names the address: {message}"
    );
    assert!(
        read_pid(&pid_file).is_none(),
        "a pid file was written by a failed start"
    );
}

// --- -n ------------------------------------------------------------------

/// Runs `zoha -n -c FILE` on `text` and returns the printed lines, sorted.
fn nondefault_lines(tag: &str, text: &str) -> Vec<String> {
    let dir = TempDir::new(tag);
    let config = dir.path.join("zoha.conf");
    fs::write(&config, text).expect("write config");
    let output = Command::new(ZOHA)
        .arg("-n")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("run zoha -n");
    assert!(
        output.status.success(),
        "zoha -n exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn nondefaults_lists_only_changes() {
    let lines = nondefault_lines(
        "nondefaults",
        "workers = 100\nmax_recipients = 50\nlocal_domains = $hostname, localhost\n\
         # a comment\nsyslog_facility = local3\nfsync = yes\n",
    );
    assert_eq!(
        lines,
        vec!["max_recipients = 50", "syslog_facility = local3"],
        "settings printed by -n"
    );
}

#[test]
fn nondefaults_empty_config_prints_nothing() {
    let lines = nondefault_lines("nondefaults-empty", "# nothing set\n");
    assert!(lines.is_empty(), "settings printed by -n: {lines:?}");
}

#[test]
fn nondefaults_compares_values_not_spelling() {
    // 5m is 300 s and 50M is 52428800 bytes: both equal the defaults.
    let lines = nondefault_lines(
        "nondefaults-units",
        "command_timeout = 5m\nmax_message_size = 50M\nfsync = yes\n",
    );
    assert!(lines.is_empty(), "settings printed by -n: {lines:?}");
}
