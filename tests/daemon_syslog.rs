//! Syslog output of the real daemon.
//!
//! The test binds a UNIX datagram socket at `syslog_socket`, as a syslog
//! daemon binds `/dev/log`. Each datagram is one RFC 3164 line,
//! `<PRI>Mmm dd hh:mm:ss zoha[PID]: TEXT`. PRI is facility * 8 + severity
//! (RFC 3164, section 4.1.1), with facility 2 for mail and 19 for local3,
//! and severity 6 for info and 4 for warning.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, DetachedGuard, Setup, WAIT, ZOHA};

/// Priority of mail.info.
const MAIL_INFO: u32 = 2 * 8 + 6;
/// Priority of mail.warning.
const MAIL_WARNING: u32 = 2 * 8 + 4;
/// Priority of local3.info.
const LOCAL3_INFO: u32 = 19 * 8 + 6;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One parsed syslog datagram.
#[derive(Debug)]
struct Record {
    priority: u32,
    timestamp: String,
    pid: u32,
    text: String,
}

/// Splits `<PRI>TIMESTAMP zoha[PID]: TEXT`; the error quotes the datagram.
fn parse_record(datagram: &str) -> Result<Record, String> {
    let bad = |why: &str| format!("{why}: {datagram:?}");
    let rest = datagram.strip_prefix('<').ok_or_else(|| bad("no <PRI>"))?;
    let (priority, rest) = rest.split_once('>').ok_or_else(|| bad("no <PRI>"))?;
    let priority: u32 = priority.parse().map_err(|_| bad("bad PRI"))?;
    if rest.len() < 16 || !rest.is_char_boundary(15) {
        return Err(bad("too short for a timestamp"));
    }
    let (timestamp, rest) = rest.split_at(15);
    let rest = rest
        .strip_prefix(" zoha[")
        .ok_or_else(|| bad("no \" zoha[\" after the timestamp"))?;
    let (pid, text) = rest.split_once("]: ").ok_or_else(|| bad("no \"]: \""))?;
    let pid: u32 = pid.parse().map_err(|_| bad("bad pid"))?;
    Ok(Record {
        priority,
        timestamp: timestamp.to_string(),
        pid,
        text: text.to_string(),
    })
}

/// Reports whether `stamp` has the shape `Mmm dd hh:mm:ss`, with the day
/// either space-padded (RFC 3164) or zero-padded.
fn is_timestamp_shape(stamp: &str) -> bool {
    let bytes = stamp.as_bytes();
    let digit = |i: usize| bytes[i].is_ascii_digit();
    bytes.len() == 15
        && MONTHS.contains(&&stamp[..3])
        && bytes[3] == b' '
        && (bytes[4] == b' ' || digit(4))
        && digit(5)
        && bytes[6] == b' '
        && digit(7)
        && digit(8)
        && bytes[9] == b':'
        && digit(10)
        && digit(11)
        && bytes[12] == b':'
        && digit(13)
        && digit(14)
}

/// The datagram socket standing in for `/dev/log`.
struct SyslogSink {
    socket: UnixDatagram,
    received: Vec<String>,
}

impl SyslogSink {
    fn bind(setup: &Setup) -> SyslogSink {
        let path = setup.log_socket();
        let socket = UnixDatagram::bind(&path).expect("bind the syslog socket");
        // The daemon sends as root, but keep it reachable for any uid.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
        socket.set_read_timeout(Some(WAIT)).expect("set timeout");
        SyslogSink {
            socket,
            received: Vec::new(),
        }
    }

    /// Returns the first datagram, received so far or later, that contains
    /// `needle`; fails after [`WAIT`] without one.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(found) = self.received.iter().find(|d| d.contains(needle)) {
            return found.clone();
        }
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no syslog datagram with {needle:?}; received:\n{}",
                self.received.join("\n")
            );
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set timeout");
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) => panic!(
                    "no syslog datagram with {needle:?} ({e}); received:\n{}",
                    self.received.join("\n")
                ),
            };
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.received.push(datagram.clone());
            if datagram.contains(needle) {
                return datagram;
            }
        }
    }
}

/// Delivers one message to `rcpt` and returns the reply code after the body.
fn deliver(port: u16, rcpt: &str) -> u16 {
    let mut client = Client::ready(port);
    assert_eq!(
        client.command("MAIL FROM:<s@example.net>").code,
        250,
        "MAIL"
    );
    assert_eq!(
        client.command(&format!("RCPT TO:<{rcpt}>")).code,
        250,
        "RCPT"
    );
    assert_eq!(client.command("DATA").code, 354, "DATA");
    client.send(b"Subject: syslog\r\n\r\nbody\r\n.\r\n");
    let code = client.read_reply().code;
    assert_eq!(client.command("QUIT").code, 221, "QUIT");
    code
}

/// Reports whether `text` starts with a six-digit upper-case hexadecimal
/// session id and a colon.
fn starts_with_session_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 7
        && bytes[..6]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
        && bytes[6] == b':'
}

#[test]
fn syslog_delivery_line_is_mail_info() {
    let mut setup = Setup::new("syslog-info");
    let alice = setup.add_account("alice@example.org");
    let mut sink = SyslogSink::bind(&setup);
    let mut daemon = setup.start("");
    assert_eq!(deliver(setup.port, &alice.address), 250, "delivery");

    let datagram = sink.wait_for("status=sent");
    let record = parse_record(&datagram).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.priority, MAIL_INFO, "priority of {datagram:?}");
    assert!(
        is_timestamp_shape(&record.timestamp),
        "timestamp of {datagram:?}"
    );
    assert_eq!(record.pid, daemon.pid(), "pid in {datagram:?}");
    assert!(
        starts_with_session_id(&record.text),
        "session id at the start of {datagram:?}"
    );
    assert!(
        record.text[6..].starts_with(": to=<alice@example.org>, "),
        "recipient field in {datagram:?}"
    );
    assert!(
        record.text.contains(&format!(", uid={}, ", alice.uid)),
        "uid field in {datagram:?}"
    );
    let path = alice.maildir().join("new");
    assert!(
        record.text.contains(&format!(", path={}/", path.display())),
        "path field in {datagram:?}"
    );
    assert!(
        record
            .text
            .contains(", status=sent (250 2.0.0 <alice@example.org> "),
        "status field in {datagram:?}"
    );
    assert!(
        !datagram.contains('\n'),
        "line end inside the datagram {datagram:?}"
    );
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn syslog_session_lines_share_id() {
    let mut setup = Setup::new("syslog-session");
    let alice = setup.add_account("alice@example.org");
    let mut sink = SyslogSink::bind(&setup);
    let mut daemon = setup.start("");
    assert_eq!(deliver(setup.port, &alice.address), 250, "delivery");

    let sent = sink.wait_for("status=sent");
    let id = parse_record(&sent).unwrap_or_else(|e| panic!("{e}")).text[..6].to_string();
    let client = sink.wait_for(&format!("{id}: client=client.test "));
    let from = sink.wait_for(&format!("{id}: from=<s@example.net>, size="));
    assert!(from.contains(", nrcpt=1"), "recipient count in {from:?}");
    let disconnect = sink.wait_for(&format!("{id}: disconnect"));
    for datagram in [&client, &from, &disconnect] {
        let record = parse_record(datagram).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(record.priority, MAIL_INFO, "priority of {datagram:?}");
    }
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn syslog_deferral_is_mail_warning() {
    let mut setup = Setup::new("syslog-warning");
    let alice = setup.add_account("alice@example.org");
    let mut sink = SyslogSink::bind(&setup);
    let mut daemon = setup.start("");
    let mut client = Client::ready(setup.port);
    assert_eq!(
        client.command("MAIL FROM:<s@example.net>").code,
        250,
        "MAIL"
    );
    assert_eq!(
        client.command("RCPT TO:<alice@example.org>").code,
        250,
        "RCPT"
    );
    // A regular file appears where the Maildir should be between RCPT and
    // the end of the message, so the delivery itself fails temporarily.
    let _ = fs::remove_dir_all(alice.maildir());
    fs::write(alice.maildir(), b"not a directory").expect("write file");
    assert_eq!(client.command("DATA").code, 354, "DATA");
    client.send(b"Subject: syslog\r\n\r\nbody\r\n.\r\n");
    let reply = client.read_reply();
    assert_eq!(reply.code / 100, 4, "reply after the body: {reply:?}");

    let datagram = sink.wait_for("status=deferred");
    let record = parse_record(&datagram).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.priority, MAIL_WARNING, "priority of {datagram:?}");
    assert!(
        record.text[6..].starts_with(": to=<alice@example.org>, "),
        "recipient field in {datagram:?}"
    );
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn syslog_facility_local3_sets_priority() {
    let mut setup = Setup::new("syslog-local3");
    let alice = setup.add_account("alice@example.org");
    let mut sink = SyslogSink::bind(&setup);
    let mut daemon = setup.start("syslog_facility = local3\n");
    assert_eq!(deliver(setup.port, &alice.address), 250, "delivery");
    let datagram = sink.wait_for("status=sent");
    let record = parse_record(&datagram).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.priority, LOCAL3_INFO, "priority of {datagram:?}");
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn syslog_missing_socket_still_delivers() {
    let mut setup = Setup::new("syslog-missing");
    let alice = setup.add_account("alice@example.org");
    // Nothing is bound at syslog_socket.
    let mut daemon = setup.start("");
    assert!(
        !setup.log_socket().exists(),
        "something exists at {}",
        setup.log_socket().display()
    );
    assert_eq!(deliver(setup.port, &alice.address), 250, "first delivery");
    assert_eq!(deliver(setup.port, &alice.address), 250, "second delivery");
    assert_eq!(alice.files("new").len(), 2, "messages in new/");
    assert!(
        daemon.log().contains("status=sent"),
        "standard error still gets the log; log:\n{}",
        daemon.log()
    );
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn syslog_socket_appearing_later_is_used() {
    let mut setup = Setup::new("syslog-late");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    assert_eq!(deliver(setup.port, &alice.address), 250, "delivery before");
    // A syslog daemon that starts after Zoha: Zoha retries the socket at
    // most every 10 seconds, so wait for a delivery line to come through.
    let sink = SyslogSink::bind(&setup);
    let deadline = Instant::now() + WAIT;
    loop {
        assert_eq!(deliver(setup.port, &alice.address), 250, "delivery after");
        sink.socket.set_nonblocking(true).expect("set non-blocking");
        let mut buf = vec![0u8; 65536];
        let mut seen = false;
        while let Ok(n) = sink.socket.recv(&mut buf) {
            seen |= String::from_utf8_lossy(&buf[..n]).contains("status=sent");
        }
        if seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no datagram reached the socket bound after the start"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn syslog_detached_pid_is_daemon() {
    let mut setup = Setup::new("syslog-detach");
    setup.add_account("alice@example.org");
    let pid_file = setup.dir.path.join("zoha.pid");
    let _guard = DetachedGuard {
        pid_file: pid_file.clone(),
    };
    let mut sink = SyslogSink::bind(&setup);
    setup.write(&format!("pid_file = {}\n", pid_file.display()));
    let output = Command::new(ZOHA)
        .arg("-c")
        .arg(setup.config_path())
        .stdin(Stdio::null())
        .output()
        .expect("start zoha");
    assert!(
        output.status.success(),
        "start exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // "not started as root" comes before the fork; the start line after it.
    let started = sink.wait_for(" started: ");
    let record = parse_record(&started).unwrap_or_else(|e| panic!("{e}"));
    let pid: u32 = fs::read_to_string(&pid_file)
        .expect("read the pid file")
        .trim()
        .parse()
        .expect("a pid in the pid file");
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(
        record.pid, pid,
        "pid in the start line, against the pid file: {started:?}"
    );
    let stopped = sink.wait_for("stopped:");
    let record = parse_record(&stopped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.pid, pid, "pid in the stop line: {stopped:?}");
}

/// Returns today's local day of the month as RFC 3164 writes it: two
/// characters, a space before a single digit.
fn rfc3164_day_now() -> String {
    // SAFETY: time with a null pointer only returns the current time.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: tm is plain data for which all-zero bytes are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers point to live values for the whole call.
    let result = unsafe { libc::localtime_r(&now, &mut tm) };
    assert!(!result.is_null(), "localtime_r failed");
    format!("{:>2}", tm.tm_mday)
}

#[test]
fn syslog_timestamp_pads_day_with_space() {
    let mut setup = Setup::new("syslog-stamp");
    let alice = setup.add_account("alice@example.org");
    let mut sink = SyslogSink::bind(&setup);
    let mut daemon = setup.start("");
    let day_before = rfc3164_day_now();
    assert_eq!(deliver(setup.port, &alice.address), 250, "delivery");
    let datagram = sink.wait_for("status=sent");
    let day_after = rfc3164_day_now();

    // RFC 3164, section 4.1.2: a day below 10 is a space and one digit.
    // NOTE: a zero-padded day can show only on days 1 to 9 of a month.
    let record = parse_record(&datagram).unwrap_or_else(|e| panic!("{e}"));
    let day = &record.timestamp[4..6];
    assert!(
        day == day_before || day == day_after,
        "day {day:?} in {datagram:?}, expected {day_before:?} (local time)"
    );
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
}
