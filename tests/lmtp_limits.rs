//! Size limits and large messages through the real daemon: SIZE at MAIL,
//! and the limit during DATA and BDAT with the session staying in sync.
//! A 20 MB message and a 10 MB message without a line end are stored
//! intact while the daemon's peak memory stays well below their size.

mod common;

use common::{assert_reply, peak_kib, start_data, start_two_accounts, Account, Client};

/// Bytes sent to the daemon per write when streaming a large message.
const SEND_BUFFER: usize = 64 * 1024;

/// Checks that a small transaction still works on `client` after RSET.
fn check_session_in_sync(client: &mut Client, account: &Account) {
    let before = account.files("new").len();
    let reply = client.command("RSET");
    assert_reply(&reply, 250, "2.0.0", "RSET after the oversized message");
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL after the oversized message");
    let reply = client.command(&format!("RCPT TO:<{}>", account.address));
    assert_reply(&reply, 250, "2.1.5", "RCPT after the oversized message");
    let reply = client.command("DATA");
    assert_eq!(
        reply.code, 354,
        "DATA after the oversized message: {reply:?}"
    );
    client.send(b"Subject: s\r\n\r\nok\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(
        &reply,
        250,
        "2.0.0",
        "small message after the oversized one",
    );
    assert_eq!(
        account.files("new").len(),
        before + 1,
        "{}'s message count after the small message",
        account.address
    );
}

/// 64-bit FNV-1a, enough to compare megabytes without keeping two copies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Streams `wire` bytes to the daemon in [`SEND_BUFFER`] writes.
struct Sender<'a> {
    client: &'a mut Client,
    buffer: Vec<u8>,
}

impl<'a> Sender<'a> {
    fn new(client: &'a mut Client) -> Sender<'a> {
        Sender {
            client,
            buffer: Vec::with_capacity(SEND_BUFFER),
        }
    }

    fn push(&mut self, wire: &[u8]) {
        self.buffer.extend_from_slice(wire);
        if self.buffer.len() >= SEND_BUFFER {
            self.client.send(&self.buffer);
            self.buffer.clear();
        }
    }

    fn finish(mut self) {
        self.client.send(&self.buffer);
        self.buffer.clear();
    }
}

#[test]
fn declared_size_over_limit_rejected() {
    let (setup, alice, _bob, _daemon) =
        start_two_accounts("size-mail", "max_message_size = 1000\n");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net> SIZE=1001");
    assert_reply(&reply, 552, "5.3.4", "MAIL with SIZE one over the limit");
    let reply = client.command("MAIL FROM:<s@example.net> SIZE=99999999999999999999");
    assert!(
        reply.code == 552 || reply.code == 501,
        "MAIL with a SIZE beyond 64 bits: {reply:?}"
    );
    let reply = client.command("MAIL FROM:<s@example.net> SIZE=1000");
    assert_reply(&reply, 250, "2.1.0", "MAIL with SIZE at the limit");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT after the accepted SIZE");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: sized\r\n\r\nsmall\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "end of data");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
}

#[test]
fn default_limit_advertised_and_enforced() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("size-default", "");
    let mut client = Client::connect(setup.port);
    let reply = client.command("LHLO client.test");
    assert!(
        reply.lines.iter().any(|l| l == "SIZE 52428800"),
        "LHLO advertises the default limit: {reply:?}"
    );
    let reply = client.command("MAIL FROM:<s@example.net> SIZE=52428801");
    assert_reply(
        &reply,
        552,
        "5.3.4",
        "MAIL one octet over the default limit",
    );
    let reply = client.command("MAIL FROM:<s@example.net> SIZE=52428800");
    assert_reply(&reply, 250, "2.1.0", "MAIL at the default limit");
}

#[test]
fn oversize_data_rejected_per_recipient() {
    let (setup, alice, bob, _daemon) = start_two_accounts("f06", "max_message_size = 50\n");
    let mut client = Client::ready(setup.port);

    start_data(&mut client, &["alice@example.org", "bob@example.org"]);
    // The third line looks like a command, but it must be read as content.
    client.send(
        b"Subject: too big\r\n\
          \r\n\
          MAIL FROM:<root@example.org>\r\n\
          RCPT TO:<bob@example.org>\r\n\
          DATA\r\n\
          .\r\n",
    );
    for address in ["alice@example.org", "bob@example.org"] {
        let reply = client.read_reply();
        assert_reply(&reply, 552, "5.3.4", &format!("{address} after DATA"));
        assert!(
            reply.text().contains(&format!("<{address}>")),
            "the 552 reply names {address}: {reply:?}"
        );
    }
    assert!(alice.files("new").is_empty(), "alice got the big message");
    assert!(bob.files("new").is_empty(), "bob got the big message");

    check_session_in_sync(&mut client, &alice);
}

#[test]
fn size_limit_boundary_exact() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("size-edge", "max_message_size = 100\n");
    let mut client = Client::ready(setup.port);
    let head = "Subject: edge\r\n\r\n";

    // 100 octets with CRLF line ends: accepted.
    start_data(&mut client, &["alice@example.org"]);
    let fill = "a".repeat(100 - head.len() - 2);
    client.send(format!("{head}{fill}\r\n.\r\n").as_bytes());
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "message of exactly max_message_size");

    // 101 octets: rejected.
    start_data(&mut client, &["alice@example.org"]);
    let fill = "a".repeat(101 - head.len() - 2);
    client.send(format!("{head}{fill}\r\n.\r\n").as_bytes());
    let reply = client.read_reply();
    assert_reply(&reply, 552, "5.3.4", "message one octet over the limit");
    assert_eq!(alice.files("new").len(), 1, "alice's message count");
}

#[test]
fn oversize_bdat_rejected_per_recipient() {
    let (setup, alice, bob, _daemon) = start_two_accounts("f06-bdat", "max_message_size = 50\n");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    for rcpt in ["alice@example.org", "bob@example.org"] {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
        assert_reply(&reply, 250, "2.1.5", rcpt);
    }
    let chunks: [&[u8]; 2] = [
        b"Subject: too big\r\n\r\n",
        b"MAIL FROM:<root@example.org>\r\nRCPT TO:<bob@example.org>\r\n",
    ];
    client.send(format!("BDAT {}\r\n", chunks[0].len()).as_bytes());
    client.send(chunks[0]);
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "first BDAT chunk");
    client.send(format!("BDAT {} LAST\r\n", chunks[1].len()).as_bytes());
    client.send(chunks[1]);
    for address in ["alice@example.org", "bob@example.org"] {
        let reply = client.read_reply();
        assert_reply(&reply, 552, "5.3.4", &format!("{address} after BDAT LAST"));
    }
    assert!(alice.files("new").is_empty(), "alice got the big message");
    assert!(bob.files("new").is_empty(), "bob got the big message");

    check_session_in_sync(&mut client, &bob);
}

#[test]
fn oversize_message_logs_received_size() {
    let (setup, _alice, _bob, daemon) = start_two_accounts("size-log", "max_message_size = 50\n");
    let mut client = Client::ready(setup.port);
    start_data(&mut client, &["alice@example.org"]);
    let data = format!("Subject: big\r\n\r\n{}\r\n", "b".repeat(200));
    client.send(data.as_bytes());
    client.send(b".\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 552, "5.3.4", "end of the oversized data");
    let reply = client.command("QUIT");
    assert_eq!(reply.code, 221, "QUIT: {reply:?}");

    let log = daemon.log();
    let from_line = log
        .lines()
        .find(|l| l.contains(": from=<s@example.net>, size="))
        .unwrap_or_else(|| panic!("no from= line; log:\n{log}"));
    let size: u64 = from_line
        .split(", size=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no size in {from_line:?}"));
    assert!(
        size > 50,
        "the from= line of a message over the limit should give the size \
         received ({} octets), not {size}: {from_line}",
        data.len()
    );
}

#[test]
fn large_message_delivered_intact() {
    const TARGET: usize = 20 * 1024 * 1024;
    let (setup, alice, _bob, daemon) = start_two_accounts("20mb", "");
    let mut client = Client::ready(setup.port);
    let baseline = peak_kib(&daemon) * 1024;
    start_data(&mut client, &["alice@example.org"]);

    // Lines have varying lengths, and every 17th starts with a dot, so it is stuffed.
    let mut expected = Fnv::new();
    let mut expected_len = 0usize;
    let mut sender = Sender::new(&mut client);
    let header = b"Subject: twenty megabytes\r\n\r\n";
    sender.push(header);
    expected.update(b"Subject: twenty megabytes\n\n");
    expected_len += header.len() - 2;
    let mut n = 0usize;
    while expected_len < TARGET {
        let text = format!("{n:08} {}", "abcdefghij".repeat(1 + n % 7));
        let stored = if n % 17 == 0 {
            format!(".{text}")
        } else {
            text
        };
        if stored.starts_with('.') {
            sender.push(b".");
        }
        sender.push(stored.as_bytes());
        sender.push(b"\r\n");
        expected.update(stored.as_bytes());
        expected.update(b"\n");
        expected_len += stored.len() + 1;
        n += 1;
    }
    sender.push(b".\r\n");
    sender.finish();
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "end of the 20 MB message");

    let messages = alice.messages();
    assert_eq!(messages.len(), 1, "alice's message count");
    let (_, body) = common::split_added_headers(&messages[0]);
    assert_eq!(body.len(), expected_len, "stored body length");
    let mut stored = Fnv::new();
    stored.update(&body);
    assert_eq!(
        stored, expected,
        "stored body hash differs from the expected bytes"
    );

    let peak = peak_kib(&daemon) * 1024;
    assert!(
        peak < baseline + (TARGET / 4) as u64,
        "the daemon's peak memory grew from {baseline} to {peak} bytes for a {TARGET}-byte message"
    );
}

#[test]
fn unterminated_long_line_message() {
    const BODY: usize = 10 * 1024 * 1024;
    let (setup, alice, bob, daemon) = start_two_accounts("f05", "");
    let mut client = Client::ready(setup.port);
    let baseline = peak_kib(&daemon) * 1024;
    start_data(&mut client, &["alice@example.org", "bob@example.org"]);

    let long_header = format!("X-Long: {}", "h".repeat(3000 - "X-Long: ".len()));
    let mut expected = Fnv::new();
    expected.update(long_header.as_bytes());
    expected.update(b"\nSubject: no line end\n\n");
    let mut sender = Sender::new(&mut client);
    sender.push(long_header.as_bytes());
    sender.push(b"\r\nSubject: no line end\r\n\r\n");
    let pattern: Vec<u8> = (0..SEND_BUFFER).map(|i| b'a' + (i % 26) as u8).collect();
    let mut sent = 0;
    while sent < BODY {
        let take = (BODY - sent).min(pattern.len());
        sender.push(&pattern[..take]);
        expected.update(&pattern[..take]);
        sent += take;
    }
    sender.finish();
    expected.update(b"\n");

    // A reply before the final dot would come first and fail the checks below.
    client.send(b"\r\n.\r\n");
    for address in ["alice@example.org", "bob@example.org"] {
        let reply = client.read_reply();
        assert_reply(
            &reply,
            250,
            "2.0.0",
            &format!("{address} after the final dot"),
        );
        assert!(
            reply.text().contains(&format!("<{address}>")),
            "the reply names {address}: {reply:?}"
        );
    }
    let reply = client.command("VRFY x");
    assert_reply(&reply, 252, "2.5.0", "VRFY on the kept connection");

    for account in [&alice, &bob] {
        let messages = account.messages();
        assert_eq!(messages.len(), 1, "{}'s message count", account.address);
        let (_, body) = common::split_added_headers(&messages[0]);
        assert_eq!(
            body.len(),
            long_header.len() + "\nSubject: no line end\n\n".len() + BODY + 1,
            "{}'s stored body length",
            account.address
        );
        let mut stored = Fnv::new();
        stored.update(&body);
        assert_eq!(
            stored, expected,
            "{}'s stored body hash differs from the expected bytes",
            account.address
        );
    }

    let peak = peak_kib(&daemon) * 1024;
    assert!(
        peak < baseline + (BODY / 4) as u64,
        "the daemon's peak memory grew from {baseline} to {peak} bytes for a {BODY}-byte line"
    );
}
