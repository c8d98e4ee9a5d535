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

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const ZOHA: &str = env!("CARGO_BIN_EXE_zoha");

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Reports whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
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
            // SAFETY: geteuid has no preconditions and cannot fail.
            unsafe { libc::geteuid() }
        };
        self.add_account_with_uid(address, uid)
    }

    /// Adds an account with an explicit uid (and gid equal to it).
    pub fn add_account_with_uid(&mut self, address: &str, uid: u32) -> Account {
        let local = address.split('@').next().unwrap_or(address);
        let home = self.dir.path.join("home").join(local);
        fs::create_dir_all(&home).expect("create home");
        fs::set_permissions(
            self.dir.path.join("home"),
            fs::Permissions::from_mode(0o755),
        )
        .expect("chmod home root");
        if is_root() {
            std::os::unix::fs::chown(&home, Some(uid), Some(uid)).expect("chown home");
        }
        let account = Account {
            address: address.to_string(),
            uid,
            gid: uid,
            home,
        };
        self.accounts.push(account.clone());
        account
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
        let mut text = String::new();
        for a in &self.accounts {
            text.push_str(&format!(
                "{}\tuid={}|gid={}|home={}\n",
                a.address,
                a.uid,
                a.gid,
                a.home.display()
            ));
        }
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
        let mut daemon = Daemon {
            child: Some(child),
            port,
            log_path,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut client) = Client::tcp(self.port) {
                let greeting = client.read_reply();
                assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
                client.send(b"QUIT\r\n");
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "zoha exited with {status} before listening; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "zoha did not listen within {WAIT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns everything zoha wrote to standard error so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    /// Waits for the process to exit (at most [`WAIT`]).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for zoha") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("zoha did not exit within {WAIT:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
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
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
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
