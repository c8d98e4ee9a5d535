//! Test harness: temporary setups, the real `zoha` binary, and a raw LMTP client.
//!
//! A [`Setup`] is a temporary directory holding a configuration file, a
//! Courier userdb file and the accounts' home directories. [`Daemon`] runs
//! the real binary (`zoha -f -c ...`) on a free loopback port and a UNIX
//! socket in that directory, and keeps its standard error as the log.
//! [`Client`] speaks raw LMTP: it sends bytes exactly as given and parses
//! replies, including multi-line ones.
//!
//! As root, each account gets its own uid (from 59001 up, no passwd entry
//! needed) and Zoha runs in root mode; as another user, every account gets
//! that user's uid and Zoha runs in single-user mode.
//!
//! The free functions below them are the helpers several test files share:
//! userdb lines and Maildirs, daemon start-up, exit and log waits, pid files,
//! `/proc` status lines, a thread for fake daemons on UNIX sockets, and LMTP
//! steps with their reply checks.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const ZOHA: &str = env!("CARGO_BIN_EXE_zoha");

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Reports whether the tests run as root.
pub fn is_root() -> bool {
    effective_uid() == 0
}

/// Returns the effective uid of the tests.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Prints why a root-only test is skipped; returns true when it should be.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    // Written to the stderr handle directly: libtest captures eprintln!.
    let note = format!("skipped {test}: needs root (run the tests as root to include it)\n");
    let _ = std::io::stderr().write_all(note.as_bytes());
    true
}

/// A directory removed when dropped (kept when ZOHA_KEEP_TEST_DIRS is set).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("zoha-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create test directory");
        // Every account uid must be able to reach its home below this directory.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .expect("chmod test directory");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("ZOHA_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// One account in the userdb file.
#[derive(Debug, Clone)]
pub struct Account {
    pub address: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl Account {
    /// The Maildir Zoha delivers to (`home/Maildir`).
    pub fn maildir(&self) -> PathBuf {
        self.home.join("Maildir")
    }

    /// Names of the files in `Maildir/<sub>`, sorted; empty when missing.
    pub fn files(&self, sub: &str) -> Vec<String> {
        list_files(&self.maildir().join(sub))
    }

    /// Contents of every message in `Maildir/new`, in name order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.files("new")
            .iter()
            .map(|n| fs::read(self.maildir().join("new").join(n)).expect("read message"))
            .collect()
    }
}

/// Sorted file names in `dir`; empty when it does not exist.
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A temporary configuration with accounts.
pub struct Setup {
    pub dir: TempDir,
    pub port: u16,
    pub socket: PathBuf,
    pub accounts: Vec<Account>,
    next_uid: u32,
    extra_userdb: String,
}

impl Setup {
    pub fn new(tag: &str) -> Setup {
        let dir = TempDir::new(tag);
        let socket = dir.path.join("lmtp.sock");
        fs::create_dir_all(dir.path.join("spool")).expect("create spool");
        fs::set_permissions(dir.path.join("spool"), fs::Permissions::from_mode(0o1777))
            .expect("chmod spool");
        Setup {
            dir,
            port: free_port(),
            socket,
            accounts: Vec::new(),
            next_uid: 59001,
            extra_userdb: String::new(),
        }
    }

    /// Adds an account whose home exists and belongs to its uid.
    pub fn add_account(&mut self, address: &str) -> Account {
        let uid = if is_root() {
            let uid = self.next_uid;
            self.next_uid += 1;
            uid
        } else {
            effective_uid()
        };
        self.add_account_with_uid(address, uid)
    }

    /// Adds an account with an explicit uid (and gid equal to it).
    pub fn add_account_with_uid(&mut self, address: &str, uid: u32) -> Account {
        let account = self.make_home(address, uid);
        self.accounts.push(account.clone());
        account
    }

    /// Adds an account whose userdb line carries a Maildir++ `quota`. Its
    /// home exists and belongs to `uid` when the tests run as root, and to
    /// the tester otherwise.
    pub fn add_account_with_quota(&mut self, address: &str, uid: u32, quota: &str) -> Account {
        let uid = if is_root() { uid } else { effective_uid() };
        let account = self.make_home(address, uid);
        self.add_userdb_line(&format!("{}|quota={quota}", userdb_line(&account)));
        account
    }

    /// Creates the home of `address` for `uid` (and gid equal to it) and
    /// returns the account, without adding it to the userdb file.
    fn make_home(&self, address: &str, uid: u32) -> Account {
        let local = address.split('@').next().unwrap_or(address);
        let home = self.dir.path.join("home").join(local);
        fs::create_dir_all(&home).expect("create home");
        fs::set_permissions(
            self.dir.path.join("home"),
            fs::Permissions::from_mode(0o755),
        )
        .expect("chmod home root");
        chown_if_root(&home, uid);
        Account {
            address: address.to_string(),
            uid,
            gid: uid,
            home,
        }
    }

    /// Adds a raw line to the userdb file (for broken entries).
    pub fn add_userdb_line(&mut self, line: &str) {
        self.extra_userdb.push_str(line);
        self.extra_userdb.push('\n');
    }

    pub fn userdb_path(&self) -> PathBuf {
        self.dir.path.join("userdb")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path.join("zoha.conf")
    }

    pub fn log_socket(&self) -> PathBuf {
        self.dir.path.join("log.sock")
    }

    /// Writes the userdb file from the accounts and extra lines.
    pub fn write_userdb(&self) {
        let mut text = userdb_text(&self.accounts);
        text.push_str(&self.extra_userdb);
        // Replace atomically, as Zoha's documentation asks.
        let tmp = self.dir.path.join("userdb.new");
        fs::write(&tmp, text).expect("write userdb");
        fs::rename(&tmp, self.userdb_path()).expect("install userdb");
    }

    /// Returns the base configuration plus `extra` settings (later lines win
    /// only if the base does not set the same name; do not repeat names).
    pub fn config_text(&self, extra: &str) -> String {
        let mut text = format!(
            "listen = 127.0.0.1:{port}, unix:{socket}\nhostname = zoha.test\nuserdb = file:{userdb}\nspool_directory = {spool}\nsyslog_socket = {log}\nunix_socket_mode = 0666\n",
            port = self.port,
            socket = self.socket.display(),
            userdb = self.userdb_path().display(),
            spool = self.dir.path.join("spool").display(),
            log = self.log_socket().display(),
        );
        if !is_root() {
            // A non-root tester's uid may be below the default min_uid.
            text.push_str("min_uid = 1\n");
        }
        text.push_str(extra);
        text
    }

    /// Writes the configuration file and the userdb file.
    pub fn write(&self, extra: &str) {
        self.write_userdb();
        fs::write(self.config_path(), self.config_text(extra)).expect("write config");
    }

    /// Writes everything and starts the daemon.
    pub fn start(&self, extra: &str) -> Daemon {
        self.write(extra);
        Daemon::start(&self.config_path(), self.port, &self.dir.path)
    }
}

/// The `zoha` binary running in the foreground.
pub struct Daemon {
    pub child: Option<Child>,
    pub port: u16,
    pub log_path: PathBuf,
}

impl Daemon {
    /// Starts `zoha -f -c config` and waits until `port` greets.
    pub fn start(config: &Path, port: u16, dir: &Path) -> Daemon {
        let mut daemon = Daemon::spawn(config, port, dir);
        daemon.wait_ready();
        daemon
    }

    /// Starts `zoha -f -c config` with its standard error in
    /// `dir/zoha.stderr`, without waiting for it to listen.
    pub fn spawn(config: &Path, port: u16, dir: &Path) -> Daemon {
        let log_path = dir.join("zoha.stderr");
        let log = fs::File::create(&log_path).expect("create log file");
        let child = Command::new(ZOHA)
            .arg("-f")
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start zoha");
        Daemon {
            child: Some(child),
            port,
            log_path,
        }
    }

    fn wait_ready(&mut self) {
        let child = self.child.as_mut().expect("daemon running");
        wait_for_greeting(self.port, child, &self.log_path);
    }

    /// Returns everything zoha wrote to standard error so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    /// Waits for the process to exit (at most [`WAIT`]).
    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        match wait_exit(&mut child) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                panic!("zoha did not exit within {WAIT:?}; log:\n{}", self.log());
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One reply: its code and every line's text after the code and separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of the last line (the enhanced code and message).
    pub fn text(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }
}

/// The stream under a [`Client`].
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A raw LMTP client.
pub struct Client {
    reader: BufReader<Stream>,
}

impl Client {
    pub fn tcp(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(WAIT))?;
        Ok(Client {
            reader: BufReader::new(Stream::Tcp(stream)),
        })
    }

    pub fn unix(path: &Path) -> std::io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(WAIT))?;
        Ok(Client {
            reader: BufReader::new(Stream::Unix(stream)),
        })
    }

    /// Connects over TCP and reads the greeting.
    pub fn connect(port: u16) -> Client {
        let mut c = Client::tcp(port).expect("connect to zoha");
        let greeting = c.read_reply();
        assert_eq!(greeting.code, 220, "{greeting:?}");
        c
    }

    /// Connects, reads the greeting and sends LHLO.
    pub fn ready(port: u16) -> Client {
        let mut c = Client::connect(port);
        c.send(b"LHLO client.test\r\n");
        assert_eq!(c.read_reply().code, 250);
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("send to zoha");
    }

    /// Sends one command line (CRLF added) and returns its reply.
    pub fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// Reads one reply; panics on a closed connection or malformed line.
    pub fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("no reply: {e}"))
    }

    /// Reads one reply, or the error that prevented it.
    pub fn try_read_reply(&mut self) -> Result<Reply, String> {
        read_reply_from(&mut self.reader)
    }

    /// Reads `n` replies and returns their codes.
    pub fn read_codes(&mut self, n: usize) -> Vec<u16> {
        (0..n).map(|_| self.read_reply().code).collect()
    }

    /// Reports whether the server closed the connection (reads to EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}

/// Reads one reply from `reader`; the error describes malformed input or
/// its end.
pub fn read_reply_from(reader: &mut impl BufRead) -> Result<Reply, String> {
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let text = text
            .strip_suffix("\r\n")
            .ok_or_else(|| format!("reply line without CRLF: {text:?}"))?;
        if text.len() < 4 {
            return Err(format!("short reply line {text:?}"));
        }
        let code: u16 = text[..3]
            .parse()
            .map_err(|_| format!("bad reply code in {text:?}"))?;
        lines.push(text[4..].to_string());
        match text.as_bytes()[3] {
            b' ' => return Ok(Reply { code, lines }),
            b'-' => continue,
            _ => return Err(format!("bad separator in {text:?}")),
        }
    }
}

/// Returns (uid, mode) of a path without following links.
pub fn owner_and_mode(path: &Path) -> (u32, u32) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.uid(), m.mode() & 0o7777)
}

/// Splits a stored message into Zoha's three added header fields and the rest.
pub fn split_added_headers(message: &[u8]) -> (String, Vec<u8>) {
    let mut fields = 0;
    let mut pos = 0;
    while pos < message.len() {
        let end = message[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|e| pos + e + 1)
            .unwrap_or(message.len());
        let is_continuation = matches!(message[pos], b' ' | b'\t');
        if !is_continuation {
            if fields == 3 {
                break;
            }
            fields += 1;
        }
        pos = end;
    }
    (
        String::from_utf8_lossy(&message[..pos]).into_owned(),
        message[pos..].to_vec(),
    )
}

// --- accounts, userdb lines and Maildirs ----------------------------------

/// Returns the userdb line of `account`, without its line end.
pub fn userdb_line(account: &Account) -> String {
    format!(
        "{}\tuid={}|gid={}|home={}",
        account.address,
        account.uid,
        account.gid,
        account.home.display()
    )
}

/// Returns the text of a userdb file with one line per account.
pub fn userdb_text(accounts: &[Account]) -> String {
    accounts
        .iter()
        .map(|a| format!("{}\n", userdb_line(a)))
        .collect()
}

/// Changes the owner and group of `path` to `uid` when the tests run as root.
pub fn chown_if_root(path: &Path, uid: u32) {
    if is_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(uid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// Gives `path` and everything below it to `uid` (as root; otherwise the
/// tester already owns it). Symbolic links are changed, never followed.
pub fn chown_tree(path: &Path, uid: u32) {
    if !is_root() {
        return;
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("lchown");
    let meta = fs::symlink_metadata(path).expect("lstat");
    if meta.is_dir() {
        for entry in fs::read_dir(path).expect("read_dir") {
            chown_tree(&entry.expect("entry").path(), uid);
        }
    }
}

/// Creates `dir` as a Maildir with `tmp`, `new` and `cur`, each of mode
/// 0700 and owned by `uid` (as root), as maildirmake does.
pub fn make_maildir(dir: &Path, uid: u32) {
    for path in [
        dir.to_path_buf(),
        dir.join("tmp"),
        dir.join("new"),
        dir.join("cur"),
    ] {
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod Maildir");
        chown_if_root(&path, uid);
    }
}

/// Creates `Maildir/{cur,new,tmp}` for `account` with the default mode
/// (unlike [`make_maildir`], which sets 0700) and gives the whole tree to
/// the account's uid.
pub fn make_account_maildir(account: &Account) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(account.maildir().join(sub)).expect("create Maildir");
    }
    chown_tree(&account.maildir(), account.uid);
}

// --- configurations and daemons -------------------------------------------

/// Starts a daemon with the accounts alice and bob at example.org and the
/// `extra` settings.
pub fn start_two_accounts(tag: &str, extra: &str) -> (Setup, Account, Account, Daemon) {
    let mut setup = Setup::new(tag);
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let daemon = setup.start(extra);
    (setup, alice, bob, daemon)
}

/// Returns the configuration of `setup` plus `extra`, with the authdaemon
/// at `socket` as the only account source.
pub fn authdaemon_config(setup: &Setup, socket: &Path, extra: &str) -> String {
    let file_source = format!("userdb = file:{}", setup.userdb_path().display());
    let text = setup.config_text(extra);
    assert!(
        text.contains(&file_source),
        "base configuration changed: {text}"
    );
    text.replace(
        &file_source,
        &format!("userdb = authdaemon:{}", socket.display()),
    )
}

/// Waits until `port` sends a 220 greeting. `child` is zoha or the process
/// that starts it. The wait fails with the log at `log_path` when `child`
/// exits first, or after [`WAIT`].
pub fn wait_for_greeting(port: u16, child: &mut Child, log_path: &Path) {
    let log = || fs::read_to_string(log_path).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(mut client) = Client::tcp(port) {
            let greeting = client.read_reply();
            assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
            client.send(b"QUIT\r\n");
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited with {status} before zoha listened; log:\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "zoha did not listen within {WAIT:?}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit. Returns `None` when it still runs after [`WAIT`].
pub fn wait_exit(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Returns the pid in the pid file at `path`, if it contains one.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Kills the detached daemon named by a pid file when dropped, so that a
/// failed test leaves no daemon behind.
pub struct DetachedGuard {
    pub pid_file: PathBuf,
}

impl DetachedGuard {
    /// Returns the pid in the pid file, if it contains one.
    pub fn pid(&self) -> Option<u32> {
        read_pid(&self.pid_file)
    }
}

impl Drop for DetachedGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGKILL);
        }
    }
}

/// Asserts that the daemon exited with status 0. The failure message shows
/// the daemon's log.
#[track_caller]
pub fn assert_exit_success(daemon: &Daemon, status: ExitStatus) {
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        daemon.log()
    );
}

/// Waits until the daemon's log contains `needle` and returns the whole
/// log. Fails after [`WAIT`].
pub fn wait_for_log(daemon: &Daemon, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = daemon.log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?} within {WAIT:?}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Returns the rest of the `key` line (such as `VmHWM:` or `Uid:`) of a
/// `/proc/.../status` file.
pub fn status_field(status_path: &Path, key: &str) -> String {
    let text = fs::read_to_string(status_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", status_path.display()));
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{} has no {key} line", status_path.display()))
}

/// Returns the daemon's peak resident memory (VmHWM) in KiB.
pub fn peak_kib(daemon: &Daemon) -> u64 {
    let path = PathBuf::from(format!("/proc/{}/status", daemon.pid()));
    let value = status_field(&path, "VmHWM:");
    value
        .trim()
        .strip_suffix("kB")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in kB in the VmHWM line of {}", path.display()))
}

/// A thread that passes each connection accepted on a UNIX listener to a
/// callback until it is dropped. The tests' fake authdaemons run on it.
pub struct AcceptThread {
    listener_fd: RawFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AcceptThread {
    /// Calls `accept` on the accept thread for every connection to `listener`.
    pub fn start(
        listener: UnixListener,
        mut accept: impl FnMut(UnixStream) + Send + 'static,
    ) -> AcceptThread {
        let listener_fd = listener.as_raw_fd();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    accept(stream);
                }
            })
        };
        AcceptThread {
            listener_fd,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for AcceptThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it checks the flag. A connection would
        // not do, because the test directory and its socket file may be gone.
        // SAFETY: shutdown has no memory preconditions, and the listener
        // thread keeps the descriptor open until it has seen the flag.
        unsafe { libc::shutdown(self.listener_fd, libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// --- LMTP steps and reply checks ------------------------------------------

/// Asserts the basic and enhanced code of `reply`. `context` names the step
/// in failure messages.
pub fn assert_reply(reply: &Reply, code: u16, enhanced: &str, context: &str) {
    assert_eq!(reply.code, code, "{context}: unexpected reply {reply:?}");
    assert!(
        reply.text().starts_with(enhanced),
        "{context}: expected enhanced code {enhanced}, got {reply:?}"
    );
}

/// Asserts the basic code of `reply`. `context` names the step in failure
/// messages.
pub fn assert_code(reply: &Reply, code: u16, context: &str) {
    assert_eq!(reply.code, code, "{context}: {reply:?}");
}

/// Sends MAIL from s@example.net, one RCPT per address in `recipients`
/// (each must be accepted) and DATA, which must get 354.
pub fn start_data(client: &mut Client, recipients: &[&str]) {
    start_data_with(client, "MAIL FROM:<s@example.net>", recipients);
}

/// Like [`start_data`], with `mail` as the MAIL command line.
pub fn start_data_with(client: &mut Client, mail: &str, recipients: &[&str]) {
    let reply = client.command(mail);
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    for rcpt in recipients {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
        assert_reply(&reply, 250, "2.1.5", &format!("RCPT TO:<{rcpt}>"));
    }
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
}

/// Sends one command line and returns its reply. A missing reply fails the
/// test with the command and the connection error.
pub fn ask(client: &mut Client, line: &str) -> Reply {
    client.send(format!("{line}\r\n").as_bytes());
    client
        .try_read_reply()
        .unwrap_or_else(|e| panic!("no reply to {line:?}: {e}"))
}

/// Asserts that the session still replies in step.
pub fn assert_in_sync(client: &mut Client) {
    assert_code(&ask(client, "NOOP"), 250, "NOOP after the attack");
}

/// Reads what arrives within the stream's read timeout: `Some(bytes)`
/// (empty at the end of the connection), or `None` when nothing arrived.
pub fn poll_read(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some(Vec::new()),
    }
}
