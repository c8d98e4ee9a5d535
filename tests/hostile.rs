//! Hostile client and hostile mailbox owner: regression tests for the
//! defects found by attacking the real binary, and cheap checks of attacks
//! the daemon already survives.
//!
//! Each test starts its own daemon on a free loopback port and a socket in a
//! temporary directory. Tests that need a slow peer pace their bytes with
//! read timeouts but never assert how long anything took: they wait for a
//! reply (or the end of the connection) as the event.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use common::{
    ask, assert_code, assert_in_sync, chown_tree, is_root, list_files, make_account_maildir,
    peak_kib, poll_read, Client, Reply, Setup, WAIT,
};

/// Creates a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: `c_path` is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// Runs MAIL, the RCPTs and DATA with `body` (already CRLF-terminated and
/// dot-stuffed, without the final dot); returns the RCPT and message replies.
fn transaction(client: &mut Client, recipients: &[&str], body: &[u8]) -> (Vec<Reply>, Vec<Reply>) {
    assert_code(&ask(client, "MAIL FROM:<s@example.net>"), 250, "MAIL");
    let mut rcpts = Vec::new();
    for r in recipients {
        let reply = ask(client, &format!("RCPT TO:<{r}>"));
        assert_ne!(reply.code, 421, "session closed at RCPT <{r}>: {reply:?}");
        rcpts.push(reply);
    }
    let accepted = rcpts.iter().filter(|r| r.code == 250).count();
    assert_code(&ask(client, "DATA"), 354, "DATA");
    let mut wire = body.to_vec();
    wire.extend_from_slice(b".\r\n");
    client.send(&wire);
    let mut replies = Vec::new();
    for n in 0..accepted {
        match client.try_read_reply() {
            Ok(reply) => replies.push(reply),
            Err(e) => panic!(
                "reply {} of {accepted} after the data missing ({e}); got {replies:?}",
                n + 1
            ),
        }
    }
    (rcpts, replies)
}

// ---------------------------------------------------------------------------
// Regression tests for the defects the attacks found.
// ---------------------------------------------------------------------------

/// A connection beyond `workers` gets 421 4.3.2 at once. server::accept_loop
/// must write the reply before it drops the connection, or the reply goes to
/// a closed (or reused) descriptor and the client sees a bare close.
#[test]
fn busy_pool_rejects_with_421() {
    let mut setup = Setup::new("hostile-busy");
    setup.add_account("alice@example.org");
    let _daemon = setup.start("workers = 2\n");
    // The harness's readiness probe may still hold a worker for a moment:
    // retry until two sessions of our own run.
    let mut sessions = Vec::new();
    let mut attempts = 0;
    while sessions.len() < 2 {
        attempts += 1;
        assert!(attempts < 10_000, "the probe session never ended");
        let mut client = Client::tcp(setup.port).expect("connect");
        let greeting = client.read_reply();
        if greeting.code == 220 {
            sessions.push(client);
        } else {
            assert_code(&greeting, 421, "while the probe ends");
        }
    }
    let mut third = Client::tcp(setup.port).expect("connect");
    let reply = third
        .try_read_reply()
        .unwrap_or_else(|e| panic!("third connection got no 421 4.3.2: {e}"));
    assert_code(&reply, 421, "connection beyond workers");
    assert!(reply.text().starts_with("4.3.2"), "{reply:?}");
}

/// delivery::choose_folder slices the spam header value at the byte length
/// of the configured value, so a multi-byte character there panics.
#[test]
fn spam_header_multibyte_value_delivers() {
    let mut setup = Setup::new("hostile-spam");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let _daemon = setup.start("spam_header = X-Spam-Flag: YES\n");
    let mut client = Client::ready(setup.port);
    let body = "X-Spam-Flag: \u{e9}\u{e9}\r\nSubject: x\r\n\r\nhi\r\n".as_bytes();
    let (_, replies) = transaction(&mut client, &["alice@example.org", "bob@example.org"], body);
    for r in &replies {
        assert_code(r, 250, "delivery with a multi-byte spam header value");
    }
    assert_in_sync(&mut client);
    assert_eq!(alice.files("new").len() + bob.files("new").len(), 2);
}

/// maildir::quota::QuotaLimit::parse splits the quota string one byte
/// before its end, so a multi-byte last character panics. The mailbox owner
/// controls that string in `maildirsize`, and the panic ends the session for
/// every other recipient of the transaction too.
#[test]
fn quota_file_multibyte_quota_accepted() {
    let mut setup = Setup::new("hostile-quota-utf8");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    make_account_maildir(&bob);
    fs::write(bob.maildir().join("maildirsize"), "1\u{e9}\n").expect("write maildirsize");
    chown_tree(&bob.maildir(), bob.uid);
    let _daemon = setup.start("");
    let mut client = Client::ready(setup.port);
    let (rcpts, replies) = transaction(
        &mut client,
        &["alice@example.org", "bob@example.org"],
        b"hi\r\n",
    );
    assert_code(&rcpts[0], 250, "RCPT alice");
    assert_code(&rcpts[1], 250, "RCPT bob (invalid quota string is ignored)");
    for r in &replies {
        assert_code(r, 250, "delivery");
    }
    assert_in_sync(&mut client);
    assert_eq!(alice.files("new").len(), 1);
}

/// maildir::quota::add_directory_usage adds `,S=` sizes from file names
/// with `+=` on i64: a name with a huge size overflows (a panic in debug
/// builds, a wrapped, negative usage in release builds).
#[test]
fn quota_rebuild_huge_sizes_over_quota() {
    let mut setup = Setup::new("hostile-quota-overflow");
    let alice = setup.add_account("alice@example.org");
    setup.add_userdb_line(&format!(
        "carol@example.org\tuid={uid}|gid={uid}|home={home}|quota=1000S",
        uid = alice.uid,
        home = alice.home.display()
    ));
    make_account_maildir(&alice);
    fs::write(
        alice.maildir().join("new/1.M1P1Q1.h,S=5000"),
        vec![b'x'; 10],
    )
    .expect("write");
    fs::write(
        alice
            .maildir()
            .join("cur/2.M1P1Q2.h,S=9223372036854775807:2,S"),
        b"x",
    )
    .expect("write");
    chown_tree(&alice.maildir(), alice.uid);
    let _daemon = setup.start("");
    let mut client = Client::ready(setup.port);
    assert_code(&ask(&mut client, "MAIL FROM:<s@example.net>"), 250, "MAIL");
    let reply = ask(&mut client, "RCPT TO:<carol@example.org>");
    assert_code(&reply, 452, "RCPT to a mailbox far over its 1000S quota");
    assert_in_sync(&mut client);
}

/// maildir::subscribe reads `courierimapsubscribed` with no size limit, so
/// a sparse file of the mailbox owner makes the daemon allocate its whole
/// size. Memory per session must stay bounded.
#[test]
fn subscribed_file_huge_memory_bounded() {
    let mut setup = Setup::new("hostile-subscribed-huge");
    let alice = setup.add_account("alice@example.org");
    make_account_maildir(&alice);
    let file = fs::File::create(alice.maildir().join("courierimapsubscribed")).expect("create");
    file.set_len(256 << 20).expect("make a sparse file");
    drop(file);
    chown_tree(&alice.maildir(), alice.uid);
    let daemon = setup.start("detail_folders = create\n");
    let before = peak_kib(&daemon);
    let mut client = Client::ready(setup.port);
    let (_, replies) = transaction(&mut client, &["alice+news@example.org"], b"hi\r\n");
    assert_eq!(replies.len(), 1);
    assert_in_sync(&mut client);
    let grown = peak_kib(&daemon).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "peak memory grew by {grown} KiB for a 256 MiB courierimapsubscribed"
    );
}

/// maildir::subscribe opens `courierimapsubscribed` for appending without
/// O_NONBLOCK. When the mailbox owner makes it a FIFO, the worker blocks in
/// open(2) until some process opens the FIFO for reading, and so does a
/// stopping daemon.
#[test]
fn subscribed_fifo_does_not_hang() {
    let mut setup = Setup::new("hostile-subscribed-fifo");
    let alice = setup.add_account("alice@example.org");
    make_account_maildir(&alice);
    mkfifo(&alice.maildir().join("courierimapsubscribed"));
    chown_tree(&alice.maildir(), alice.uid);
    let _daemon = setup.start("detail_folders = create\n");
    let mut client = Client::ready(setup.port);
    assert_code(&ask(&mut client, "MAIL FROM:<s@example.net>"), 250, "MAIL");
    assert_code(
        &ask(&mut client, "RCPT TO:<alice+news@example.org>"),
        250,
        "RCPT",
    );
    assert_code(&ask(&mut client, "DATA"), 354, "DATA");
    client.send(b"hi\r\n.\r\n");
    let reply = client
        .try_read_reply()
        .unwrap_or_else(|e| panic!("no reply after the data (worker blocked on a FIFO): {e}"));
    assert!(
        reply.code == 250 || reply.code / 100 == 4,
        "delivery with a FIFO as subscription file: {reply:?}"
    );
    assert_in_sync(&mut client);
}

/// A subscription file that cannot be used makes the first delivery fail
/// with 451 but leaves the folder created. The retry then succeeds without
/// subscribing, so a failed delivery must not leave the folder behind.
#[test]
fn subscribed_symlink_no_half_folder() {
    let mut setup = Setup::new("hostile-subscribed-link");
    let alice = setup.add_account("alice@example.org");
    make_account_maildir(&alice);
    let target = setup.dir.path.join("root-owned");
    fs::write(&target, "keep\n").expect("write");
    std::os::unix::fs::symlink(&target, alice.maildir().join("courierimapsubscribed"))
        .expect("symlink");
    chown_tree(&alice.maildir(), alice.uid);
    let _daemon = setup.start("detail_folders = create\n");
    let mut client = Client::ready(setup.port);
    let (_, replies) = transaction(&mut client, &["alice+news@example.org"], b"hi\r\n");
    assert_eq!(fs::read_to_string(&target).expect("read"), "keep\n");
    if replies[0].code != 250 {
        assert!(
            !alice.maildir().join(".news").exists(),
            "{:?} left the folder .news behind",
            replies[0]
        );
    }
}

/// A `+detail` longer than a file name allows gets 451 on every attempt
/// (ENAMETOOLONG), whereas every other unusable detail falls back to INBOX.
#[test]
fn long_detail_falls_back_inbox() {
    let mut setup = Setup::new("hostile-long-detail");
    let alice = setup.add_account("alice@example.org");
    let _daemon = setup.start("detail_folders = create\n");
    let mut client = Client::ready(setup.port);
    let address = format!("alice+{}@example.org", "x".repeat(300));
    let (rcpts, replies) = transaction(&mut client, &[&address], b"hi\r\n");
    assert_code(&rcpts[0], 250, "RCPT");
    assert_code(&replies[0], 250, "delivery with a 300-character detail");
    assert_eq!(alice.files("new").len(), 1, "delivered to INBOX");
}

/// Sends `bytes` one at a time, paced by a short read timeout, until the
/// daemon replies. Returns the reply bytes, or `None` when no reply came.
fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> Option<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    for b in bytes {
        if stream.write_all(&[*b]).is_err() {
            return Some(Vec::new());
        }
        if let Some(answer) = poll_read(stream) {
            return Some(answer);
        }
    }
    None
}

/// Reads until a line that starts with `prefix` has arrived.
fn read_until_line(stream: &mut TcpStream, prefix: &str) {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen)
        .lines()
        .any(|l| l.starts_with(prefix))
    {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before {prefix}: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

/// lmtp::conn applies command_timeout to each read, not to the line. A
/// client that sends one byte a little faster than the timeout keeps a
/// worker busy for ever (slowloris) instead of getting 421 4.4.2.
#[test]
fn slow_command_line_times_out() {
    let mut setup = Setup::new("hostile-slow-command");
    setup.add_account("alice@example.org");
    let _daemon = setup.start("command_timeout = 1\n");
    let mut stream = TcpStream::connect(("127.0.0.1", setup.port)).expect("connect");
    read_until_line(&mut stream, "220 ");
    let line = format!("NOOP {}\r\n", "x".repeat(60));
    let answer = trickle(&mut stream, line.as_bytes())
        .expect("the daemon waited for a command sent one byte at a time past its timeout");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("421 4.4.2"),
        "expected 421 4.4.2 before the slow line was complete, got {text:?}"
    );
}

/// The same per-read timeout in DATA: one byte at a time keeps a session
/// and its worker busy for ever.
#[test]
fn slow_data_times_out() {
    let mut setup = Setup::new("hostile-slow-data");
    setup.add_account("alice@example.org");
    let _daemon = setup.start("data_timeout = 1\n");
    let mut stream = TcpStream::connect(("127.0.0.1", setup.port)).expect("connect");
    read_until_line(&mut stream, "220 ");
    stream
        .write_all(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
        .expect("send");
    read_until_line(&mut stream, "354 ");
    let body = format!("Subject: {}\r\n", "y".repeat(60));
    let answer = trickle(&mut stream, body.as_bytes())
        .expect("the daemon waited for data sent one byte at a time past its timeout");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("421 4.4.2"),
        "expected 421 4.4.2 before the slow data was complete, got {text:?}"
    );
}

/// logging::SyslogState::send writes to a blocking socket under a global
/// mutex. When the syslog daemon stops reading, the next log line blocks in
/// send(2), and every session waits for that mutex, so no greeting is sent.
#[test]
fn stalled_syslog_keeps_serving() {
    let mut setup = Setup::new("hostile-syslog-stall");
    setup.add_account("alice@example.org");
    // A syslog socket that never reads.
    let _stalled = UnixDatagram::bind(setup.log_socket()).expect("bind log socket");
    fs::set_permissions(setup.log_socket(), fs::Permissions::from_mode(0o666)).expect("chmod");
    let _daemon = setup.start("");
    // Fill its queue, as a syslog daemon that hangs on a full disk would.
    let filler = UnixDatagram::unbound().expect("socket");
    filler.connect(setup.log_socket()).expect("connect");
    filler.set_nonblocking(true).expect("nonblocking");
    let mut full = false;
    for _ in 0..1_000_000 {
        if let Err(e) = filler.send(b"<22>filler: x") {
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            full = true;
            break;
        }
    }
    assert!(full, "the log socket queue never filled");
    let mut late = Client::tcp(setup.port).expect("connect");
    let greeting = late
        .try_read_reply()
        .unwrap_or_else(|e| panic!("no greeting while syslog is stalled: {e}"));
    assert_code(&greeting, 220, "greeting");
}

/// session::reply logs every rejected RCPT, so a client that pipelines
/// many RCPTs beyond max_recipients writes one log line each.
#[test]
fn excess_rcpts_do_not_flood_log() {
    let mut setup = Setup::new("hostile-log-flood");
    setup.add_account("alice@example.org");
    let daemon = setup.start("max_recipients = 2\n");
    let mut client = Client::ready(setup.port);
    let mut wire = b"MAIL FROM:<>\r\n".to_vec();
    for _ in 0..2002 {
        wire.extend_from_slice(b"RCPT TO:<alice@example.org>\r\n");
    }
    client.send(&wire);
    let codes = client.read_codes(2003);
    assert_eq!(codes.iter().filter(|&&code| code == 452).count(), 2000);
    assert_in_sync(&mut client);
    let lines = daemon
        .log()
        .lines()
        .filter(|l| l.contains("Too many recipients"))
        .count();
    assert!(
        lines <= 10,
        "{lines} log lines for one over-limit transaction"
    );
}

// ---------------------------------------------------------------------------
// Attacks the daemon already survives.
// ---------------------------------------------------------------------------

/// Counts complete replies (last lines of multi-line replies) in `wire`.
fn reply_codes(wire: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(wire)
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .map(|l| l[..3].to_string())
        .collect()
}

/// Sends `wire` in one write (or byte by byte) and reads to the end.
fn one_shot(port: u16, wire: &[u8], bytewise: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    if bytewise {
        for b in wire {
            stream.write_all(&[*b]).expect("send");
        }
    } else {
        stream.write_all(wire).expect("send");
    }
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read to the end");
    out
}

/// One session with every kind of trap: a rejected and two accepted RCPTs,
/// stuffed dots, bare CR and LF, commands inside the data, BDAT without
/// MAIL, a CRLF split across BDAT chunks, and DATA after BDAT LAST.
const MIXED_SESSION: &[u8] = b"LHLO x\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<alice@example.org>\r\n\
RCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n..a\r\n.\r\r\n\r\n.\n.\r\n\
MAIL FROM:<x@y>\r\n.\r\nBDAT 3\r\nxyz\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.org>\r\nBDAT 4\r\n\
ab\r\rBDAT 2 LAST\r\n\nzDATA\r\nQUIT\r\n";

/// The reply codes MIXED_SESSION must get, in order.
const MIXED_CODES: &[&str] = &[
    "220", "250", "250", "250", "550", "250", "354", "250", "250", "503", "500", "250", "250",
    "250", "250", "503", "221",
];

#[test]
fn pipelined_session_one_write() {
    let mut setup = Setup::new("hostile-pipeline");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let _daemon = setup.start("");
    let out = one_shot(setup.port, MIXED_SESSION, false);
    assert_eq!(
        reply_codes(&out),
        MIXED_CODES,
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (_, body) = common::split_added_headers(&alice.messages()[0]);
    assert_eq!(body, b".a\n\r\n\n\n.\nMAIL FROM:<x@y>\n");
    let bodies: Vec<Vec<u8>> = bob
        .messages()
        .iter()
        .map(|m| common::split_added_headers(m).1)
        .collect();
    assert!(bodies.contains(&b"ab\r\nz".to_vec()), "{bodies:?}");
}

#[test]
fn pipelined_session_byte_by_byte() {
    let mut setup = Setup::new("hostile-bytewise");
    let alice = setup.add_account("alice@example.org");
    setup.add_account("bob@example.org");
    let _daemon = setup.start("");
    let out = one_shot(setup.port, MIXED_SESSION, true);
    assert_eq!(
        reply_codes(&out),
        MIXED_CODES,
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (_, body) = common::split_added_headers(&alice.messages()[0]);
    assert_eq!(body, b".a\n\r\n\n\n.\nMAIL FROM:<x@y>\n");
}

/// BDAT in every wrong place: each command gets one reply and the chunk is
/// always skipped, so the next command is read in step.
#[test]
fn bdat_out_of_sequence_in_step() {
    let mut setup = Setup::new("hostile-bdat");
    let alice = setup.add_account("alice@example.org");
    let _daemon = setup.start("");
    let wire = b"BDAT 4 LAST\r\nNOOPLHLO x\r\nBDAT 4 LAST\r\nNOOPMAIL FROM:<>\r\nBDAT 4\r\nNOOP\
RCPT TO:<alice@example.org>\r\nBDAT 6\r\nline\r\nDATA\r\nRCPT TO:<alice@example.org>\r\n\
MAIL FROM:<>\r\nBDAT 0 LAST\r\nBDAT 4 LAST\r\nNOOPQUIT\r\n";
    let out = one_shot(setup.port, wire, false);
    assert_eq!(
        reply_codes(&out),
        [
            "220", "503", "250", "503", "250", "503", "250", "250", "503", "503", "503", "250",
            "503", "221"
        ],
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (_, body) = common::split_added_headers(&alice.messages()[0]);
    assert_eq!(body, b"line\n");
}

/// A chunk size that is negative, signed, or too long to parse closes the
/// connection (the input can no longer be followed) after one 501.
#[test]
fn bdat_bad_sizes_close_cleanly() {
    let mut setup = Setup::new("hostile-bdat-size");
    setup.add_account("alice@example.org");
    let _daemon = setup.start("");
    for size in ["-1", "+5", "0x10", "99999999999999999999", "1e3", ""] {
        let wire = format!(
            "LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nBDAT {size} LAST\r\nNOOP\r\n"
        );
        let out = one_shot(setup.port, wire.as_bytes(), false);
        assert_eq!(
            reply_codes(&out),
            ["220", "250", "250", "250", "501"],
            "BDAT {size:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// Bare LF, bare CR and NUL variants of the end-of-data line stay message
/// content, and the client gets exactly one reply set.
#[test]
fn smuggled_commands_stay_content() {
    let mut setup = Setup::new("hostile-smuggle");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let _daemon = setup.start("");
    let mut client = Client::ready(setup.port);
    let body =
        b"a\n.\nMAIL FROM:<x@y>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n\r.\r\n\n.\r\nQUIT\r\n\
\r\n\x00.\r\n.\rRSET\r\n";
    let (_, replies) = transaction(&mut client, &["alice@example.org"], body);
    assert_code(&replies[0], 250, "delivery");
    assert_in_sync(&mut client);
    assert_eq!(alice.files("new").len(), 1);
    assert!(bob.files("new").is_empty());
}

/// Random mixes of CR, LF, dots and NULs through DATA, compared with the
/// RFC 5321 model: only CRLF ends a line, only CRLF.CRLF ends the data,
/// one leading dot is removed per line.
#[test]
fn random_dot_stuffing_matches_model() {
    let mut setup = Setup::new("hostile-dot-model");
    let alice = setup.add_account("alice@example.org");
    let _daemon = setup.start("fsync = no\n");
    let mut client = Client::ready(setup.port);
    let pieces: [&[u8]; 8] = [
        b"\r", b"\n", b".", b"a", b"\x00", b"\r\n", b"\r\n.", b".\r\n",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..150 {
        let mut body = Vec::new();
        for _ in 0..next() % 30 {
            body.extend_from_slice(pieces[(next() % 8) as usize]);
        }
        body.extend_from_slice(b"\r\n.\r\n");
        // The model: the data ends at the first CRLF.CRLF after the DATA line.
        let mut wire = b"\r\n".to_vec();
        wire.extend_from_slice(&body);
        let end = wire
            .windows(5)
            .position(|w| w == b"\r\n.\r\n")
            .expect("terminated");
        let mut expected = Vec::new();
        let mut rest = &wire[2..end + 2];
        while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
            let line = &rest[..pos];
            expected.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            expected.push(b'\n');
            rest = &rest[pos + 2..];
        }
        let sent = &wire[2..end + 5];
        assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");
        assert_code(
            &ask(&mut client, "RCPT TO:<alice@example.org>"),
            250,
            "RCPT",
        );
        assert_code(&ask(&mut client, "DATA"), 354, "DATA");
        client.send(sent);
        let reply = client.read_reply();
        assert_code(&reply, 250, "delivery");
        let id = reply.text().split(' ').nth(2).expect("id").to_string();
        let name = alice
            .files("new")
            .into_iter()
            .find(|n| n.starts_with(&format!("{id}.")))
            .expect("file");
        let stored = fs::read(alice.maildir().join("new").join(name)).expect("read");
        let (_, stored_body) = common::split_added_headers(&stored);
        assert_eq!(stored_body, expected, "round {round}: sent {sent:?}");
    }
}

/// Reads `n` replies from `reader` and returns their codes.
fn read_reply_codes(reader: &mut BufReader<TcpStream>, n: usize) -> Vec<u16> {
    let mut codes = Vec::with_capacity(n);
    let mut line = String::new();
    while codes.len() < n {
        line.clear();
        let got = reader.read_line(&mut line).expect("read reply");
        assert!(got > 0, "closed after {} replies", codes.len());
        if line.as_bytes().get(3) == Some(&b' ') {
            codes.push(line[..3].parse().expect("code"));
        }
    }
    codes
}

/// Many connections at once beyond `workers`, a client that never reads
/// its replies, and one that pipelines far too many recipients: the daemon
/// keeps serving, and its memory stays small.
#[test]
fn resource_attacks_leave_daemon_serving() {
    let mut setup = Setup::new("hostile-resources");
    let alice = setup.add_account("alice@example.org");
    let daemon = setup.start("workers = 4\ncommand_timeout = 2\nmax_recipients = 50\n");
    let before = peak_kib(&daemon);

    // Far more connections than workers, all at once.
    let crowd: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", setup.port)).ok())
        .collect();
    drop(crowd);

    // A client that writes megabytes of NOOPs and never reads: the daemon
    // gives up on it once its replies cannot be sent.
    let mut deaf = TcpStream::connect(("127.0.0.1", setup.port)).expect("connect");
    deaf.set_write_timeout(Some(WAIT)).expect("timeout");
    let noops = b"NOOP\r\n".repeat(100_000);
    for _ in 0..50 {
        if deaf.write_all(&noops).is_err() {
            break;
        }
    }
    drop(deaf);

    // 100,000 pipelined RCPTs: one reply each, in order, then one per
    // accepted recipient after the data. Sessions of the earlier attacks may
    // still hold workers for a moment, so retry until the greeting is 220.
    let (mut writer, mut reader) = loop {
        let stream = TcpStream::connect(("127.0.0.1", setup.port)).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        match read_reply_codes(&mut reader, 1)[0] {
            220 => break (stream, reader),
            code => assert_eq!(code, 421, "greeting"),
        }
    };
    let reader = std::thread::spawn(move || read_reply_codes(&mut reader, 2 + 100_000 + 1 + 50));
    let mut wire = b"LHLO x\r\nMAIL FROM:<>\r\n".to_vec();
    wire.extend_from_slice(&b"RCPT TO:<alice@example.org>\r\n".repeat(100_000));
    wire.extend_from_slice(b"DATA\r\nhi\r\n.\r\n");
    writer.write_all(&wire).expect("send");
    let codes = reader.join().expect("reader");
    assert_eq!(&codes[..2], [250, 250]);
    assert!(
        codes[2..52].iter().all(|&code| code == 250),
        "first 50 RCPTs"
    );
    assert!(
        codes[52..100_002].iter().all(|&code| code == 452),
        "RCPTs over the limit"
    );
    assert_eq!(codes[100_002], 354);
    assert!(
        codes[100_003..].iter().all(|&code| code == 250),
        "one reply per RCPT"
    );
    assert_eq!(alice.files("new").len(), 1, "duplicates share one file");

    let mut late = Client::ready(setup.port);
    assert_in_sync(&mut late);
    let grown = peak_kib(&daemon).saturating_sub(before);
    assert!(grown < 64 * 1024, "peak memory grew by {grown} KiB");
}

/// Local parts that try to name paths, control characters, invalid UTF-8
/// and very long names are rejected or unknown. The session goes on, and no
/// directory appears outside the accounts' homes.
#[test]
fn rcpt_path_tricks_refused() {
    let mut setup = Setup::new("hostile-paths");
    setup.add_account("alice@example.org");
    let _daemon = setup.start("detail_folders = create\n");
    let before = list_files(&setup.dir.path);
    let mut client = Client::ready(setup.port);
    assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");

    let long = "a".repeat(3000);
    let tricks: Vec<Vec<u8>> = vec![
        b"<../../etc@example.org>".to_vec(),
        b"<alice/../bob@example.org>".to_vec(),
        b"<\"../alice\"@example.org>".to_vec(),
        b"<\"alice/x\"@example.org>".to_vec(),
        b"<.hidden@example.org>".to_vec(),
        b"<alice+..@example.org>".to_vec(),
        b"<alice+a/b@example.org>".to_vec(),
        b"<\"alice+/etc\"@example.org>".to_vec(),
        b"<alice\x00@example.org>".to_vec(),
        b"<alice\x01@example.org>".to_vec(),
        b"<alice\xc0\xaf@example.org>".to_vec(),
        b"<alice\xef\xbf\xbd@example.org>".to_vec(),
        format!("<{long}@example.org>").into_bytes(),
        b"<alice@../../etc>".to_vec(),
        b"<alice@[127.0.0.1/x]>".to_vec(),
    ];

    for trick in &tricks {
        let mut line = b"RCPT TO:".to_vec();
        line.extend_from_slice(trick);
        line.extend_from_slice(b"\r\n");
        client.send(&line);
        let reply = client.read_reply();
        assert!(
            matches!(reply.code, 500 | 501 | 550),
            "{}: {reply:?}",
            String::from_utf8_lossy(trick)
        );
    }

    assert_in_sync(&mut client);
    assert_eq!(list_files(&setup.dir.path), before);
    assert_eq!(list_files(&setup.dir.path.join("home")), ["alice"]);
}

/// A Maildir whose `tmp` is a FIFO, whose `new` links elsewhere, whose
/// `tmp` links to /dev/null, and (as root) a home the account cannot
/// write: each recipient gets its own 4xx, nothing is written through a
/// link, and the other recipients still get their mail.
#[test]
fn maildir_traps_refused_nothing_written() {
    let mut setup = Setup::new("hostile-traps");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let carol = setup.add_account("carol@example.org");
    let dave = setup.add_account("dave@example.org");
    let outside = setup.dir.path.join("outside");
    fs::create_dir_all(&outside).expect("mkdir");

    fs::create_dir_all(alice.maildir().join("new")).expect("mkdir");
    mkfifo(&alice.maildir().join("tmp"));
    fs::create_dir_all(bob.maildir().join("tmp")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, bob.maildir().join("new")).expect("symlink");
    fs::create_dir_all(carol.maildir().join("new")).expect("mkdir");
    std::os::unix::fs::symlink("/dev/null", carol.maildir().join("tmp")).expect("symlink");
    for account in [&alice, &bob, &carol] {
        chown_tree(&account.maildir(), account.uid);
    }
    let mut recipients = vec![
        "alice@example.org".to_string(),
        "bob@example.org".to_string(),
        "carol@example.org".to_string(),
    ];
    let rootdir = setup.dir.path.join("rootdir");
    if is_root() {
        // A home that belongs to root: the account's uid cannot create its Maildir.
        fs::create_dir_all(&rootdir).expect("mkdir");
        setup.add_userdb_line(&format!(
            "eve@example.org\tuid={}|gid={}|home={}",
            dave.uid,
            dave.uid,
            rootdir.display()
        ));
        recipients.push("eve@example.org".to_string());
    }
    recipients.push("dave@example.org".to_string());
    let _daemon = setup.start("");
    let mut client = Client::ready(setup.port);
    assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");
    let mut accepted = 0;
    for r in &recipients {
        let reply = ask(&mut client, &format!("RCPT TO:<{r}>"));
        if r.starts_with("dave") {
            assert_code(&reply, 250, r);
            accepted += 1;
        } else if reply.code == 250 {
            accepted += 1;
        } else {
            assert_eq!(reply.code / 100, 4, "{r}: {reply:?}");
        }
    }
    assert_code(&ask(&mut client, "DATA"), 354, "DATA");
    client.send(b"hi\r\n.\r\n");
    let replies: Vec<Reply> = (0..accepted).map(|_| client.read_reply()).collect();
    assert_code(replies.last().expect("dave"), 250, "dave");
    for r in &replies[..accepted - 1] {
        assert_eq!(r.code / 100, 4, "{r:?}");
    }
    assert_in_sync(&mut client);
    assert!(
        list_files(&outside).is_empty(),
        "written through new -> outside"
    );
    assert!(
        list_files(&alice.maildir().join("new")).is_empty() && carol.files("new").is_empty(),
        "no message for a broken Maildir"
    );
    if is_root() {
        assert!(
            list_files(&rootdir).is_empty(),
            "created as root in a root-owned home"
        );
    }
    assert_eq!(dave.files("new").len(), 1);
    assert!(dave.files("tmp").is_empty());
}

/// Input that made a session panic (the spam header value above) gets a
/// normal reply or 421 4.3.0, and the daemon serves the next session.
#[test]
fn crash_input_leaves_daemon_serving() {
    let mut setup = Setup::new("hostile-panic");
    let alice = setup.add_account("alice@example.org");
    let _daemon = setup.start("spam_header = X-Spam-Flag: Y\n");
    let mut client = Client::ready(setup.port);
    assert_code(&ask(&mut client, "MAIL FROM:<>"), 250, "MAIL");
    assert_code(
        &ask(&mut client, "RCPT TO:<alice@example.org>"),
        250,
        "RCPT",
    );
    assert_code(&ask(&mut client, "DATA"), 354, "DATA");
    client.send("X-Spam-Flag: \u{fffd}\r\n\r\nhi\r\n.\r\n".as_bytes());
    let reply = client.read_reply();
    assert!(
        reply.code == 250 || (reply.code == 421 && reply.text().starts_with("4.3.0")),
        "{reply:?}"
    );
    let mut next = Client::ready(setup.port);
    let (_, replies) = transaction(&mut next, &["alice@example.org"], b"again\r\n");
    assert_code(&replies[0], 250, "delivery after the crash input");
    assert!(!alice.files("new").is_empty());
}

/// A client that closes in the middle of DATA or of a BDAT chunk, small
/// or spooled to a file: nothing in new/, nothing left in tmp/ or the spool.
#[test]
fn dropped_data_leaves_nothing() {
    let mut setup = Setup::new("hostile-drop");
    let alice = setup.add_account("alice@example.org");
    make_account_maildir(&alice);
    let _daemon = setup.start("");
    for body in [b"x".repeat(10_000), b"y\r\n".repeat(200_000)] {
        for command in ["DATA\r\n", "BDAT 9999999\r\n"] {
            let mut stream = TcpStream::connect(("127.0.0.1", setup.port)).expect("connect");
            let mut wire =
                format!("LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\n{command}")
                    .into_bytes();
            wire.extend_from_slice(&body);
            stream.write_all(&wire).expect("send");
            drop(stream);
        }
    }
    // Nothing of the dropped sessions may be visible at any time: spool
    // files have no name, and tmp/ is used only after the end of the data.
    let mut client = Client::ready(setup.port);
    let (_, replies) = transaction(&mut client, &["alice@example.org"], b"last\r\n");
    assert_code(&replies[0], 250, "delivery");
    assert_eq!(alice.files("new").len(), 1);
    assert!(alice.files("tmp").is_empty());
    assert!(list_files(&setup.dir.path.join("spool")).is_empty());
}
