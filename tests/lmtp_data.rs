//! Message content through the real daemon: DATA decoding (line ends,
//! dot-stuffing, smuggled commands), 8-bit bytes, the null sender, and the
//! stored file's name, mode and added header fields.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{assert_reply, start_data_with, start_two_accounts, Account, Client, Reply};

/// Runs MAIL with `mail_arguments`, one RCPT for alice and DATA, then sends
/// `data` exactly as given, so `data` must end with CRLF "." CRLF itself.
/// Returns the reply for alice.
fn send_raw_data(client: &mut Client, mail_arguments: &str, data: &[u8]) -> Reply {
    start_data_with(
        client,
        &format!("MAIL FROM:{mail_arguments}"),
        &["alice@example.org"],
    );
    client.send(data);
    client.read_reply()
}

/// Returns the only stored message of `account`, split into the added
/// header fields and the rest.
fn only_message(account: &Account) -> (String, Vec<u8>) {
    let messages = account.messages();
    assert_eq!(messages.len(), 1, "{}'s message count", account.address);
    common::split_added_headers(&messages[0])
}

/// Escapes control characters in `bytes` for failure messages.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// The parts of a Maildir file name `<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<size>`.
#[derive(Debug)]
struct FileName {
    id: String,
    host: String,
    size: u64,
    rfc822_size: u64,
}

/// Parses a name in `new/`, or returns `None` when it has another shape.
fn parse_file_name(name: &str) -> Option<FileName> {
    let (base, sizes) = name.split_once(',')?;
    let (size, rfc822_size) = sizes.split_once(",W=")?;
    let size = size.strip_prefix("S=")?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(size) || !all_digits(rfc822_size) {
        return None;
    }

    // <sec>.M<usec>P<pid>Q<n>.<host>
    let (secs, rest) = base.split_once(".M")?;
    let (micros, rest) = rest.split_once('P')?;
    let (pid, rest) = rest.split_once('Q')?;
    let (counter, host) = rest.split_once('.')?;
    if ![secs, micros, pid, counter].into_iter().all(all_digits) {
        return None;
    }
    Some(FileName {
        id: format!("{secs}.M{micros}P{pid}Q{counter}"),
        host: host.to_string(),
        size: size.parse().ok()?,
        rfc822_size: rfc822_size.parse().ok()?,
    })
}

#[test]
fn bare_lf_dots_stay_content() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("f01", "");
    let mut client = Client::ready(setup.port);

    let reply = send_raw_data(
        &mut client,
        "<s@example.net>",
        b"this is a test of dot\n...\n\r\n.\r\n",
    );
    assert_reply(&reply, 250, "2.0.0", "end of data");
    let reply = client.command("VRFY x");
    assert_eq!(reply.code, 252, "extra reply after the data: {reply:?}");

    let (_, body) = only_message(&alice);
    assert_eq!(
        show(&body),
        show(b"this is a test of dot\n...\n\n"),
        "a dot after a bare LF is neither stuffing nor the end of the data"
    );
}

#[test]
fn smuggled_commands_stay_content() {
    let (setup, alice, bob, _daemon) = start_two_accounts("f02", "");
    let mut client = Client::ready(setup.port);

    // Every sequence here ends a line in some other server's view, but only
    // CRLF "." CRLF ends the data.
    let data: &[u8] = b"Subject: smuggle\r\n\r\n\
        a\n.\nMAIL FROM:<evil@example.net>\r\n\
        RCPT TO:<bob@example.org>\r\n\
        DATA\r\n\
        b\r.\rMAIL FROM:<evil@example.net>\r\n\
        c\r\n.\nRCPT TO:<bob@example.org>\r\n\
        d\n.\r\nDATA\r\n\
        e\r\n\x00.\r\nRSET\r\n\
        QUIT\r\n\
        .\r\n";
    let reply = send_raw_data(&mut client, "<s@example.net>", data);
    assert_reply(&reply, 250, "2.0.0", "end of data");
    let reply = client.command("VRFY x");
    assert_eq!(
        reply.code, 252,
        "a smuggled command got its own reply: {reply:?}"
    );

    let (_, body) = only_message(&alice);
    let expected: &[u8] = b"Subject: smuggle\n\n\
        a\n.\nMAIL FROM:<evil@example.net>\n\
        RCPT TO:<bob@example.org>\n\
        DATA\n\
        b\r.\rMAIL FROM:<evil@example.net>\n\
        c\n\nRCPT TO:<bob@example.org>\n\
        d\n.\nDATA\n\
        e\n\x00.\nRSET\n\
        QUIT\n";
    assert_eq!(
        show(&body),
        show(expected),
        "stored content (the dot at the start of the line \".\\nRCPT\" is stuffing)"
    );
    assert!(bob.messages().is_empty(), "a smuggled RCPT reached bob");
}

#[test]
fn dot_stuffed_first_lines_unstuffed() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("f03", "");
    let mut client = Client::ready(setup.port);

    let reply = send_raw_data(
        &mut client,
        "<s@example.net>",
        b"..test\r\n..\r\n..\r\n.\r\n",
    );
    assert_reply(&reply, 250, "2.0.0", "end of data");

    let (_, body) = only_message(&alice);
    assert_eq!(
        show(&body),
        show(b".test\n.\n.\n"),
        "every stuffed line loses exactly one dot, the first line too"
    );
}

#[test]
fn empty_data_replies_at_once() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("f04", "");
    let mut client = Client::ready(setup.port);

    // DATA, then at once the end of the data after one empty line.
    let reply = send_raw_data(&mut client, "<s@example.net>", b"\r\n.\r\n");
    assert_reply(&reply, 250, "2.0.0", "DATA with one empty line");

    // DATA and an empty message in one write.
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "second MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "second RCPT");
    client.send(b"DATA\r\n.\r\n");
    let reply = client.read_reply();
    assert_eq!(reply.code, 354, "second DATA: {reply:?}");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "empty message");

    let messages = alice.messages();
    assert_eq!(messages.len(), 2, "alice's message count");
    let mut bodies: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| common::split_added_headers(m).1)
        .collect();
    bodies.sort();
    assert_eq!(show(&bodies[0]), "", "the empty message's stored content");
    assert_eq!(
        show(&bodies[1]),
        "\\n",
        "the one-empty-line message's stored content"
    );
}

#[test]
fn null_sender_stored_with_empty_return_path() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("f10", "");
    let mut client = Client::ready(setup.port);

    let reply = send_raw_data(
        &mut client,
        "<> SIZE=20785 BODY=8BITMIME",
        b"Subject: Undelivered Mail Returned to Sender\r\n\r\nbounce\r\n.\r\n",
    );
    assert_reply(&reply, 250, "2.0.0", "end of data");

    let (added, _) = only_message(&alice);
    assert!(
        added.starts_with("Return-Path: <>\n"),
        "the null sender's Return-Path: {added}"
    );
}

#[test]
fn latin1_bytes_stored_unchanged() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("f14", "");
    let mut client = Client::ready(setup.port);
    let data: &[u8] = b"Subject: caf\xe9\r\n\r\n8-bit body \xe0\xff\x80 and a NUL \x00.\r\n.\r\n";
    let stored: &[u8] = b"Subject: caf\xe9\n\n8-bit body \xe0\xff\x80 and a NUL \x00.\n";

    for mail_arguments in ["<s@example.net> BODY=8BITMIME", "<s@example.net>"] {
        let reply = send_raw_data(&mut client, mail_arguments, data);
        assert_reply(&reply, 250, "2.0.0", mail_arguments);
    }

    let messages = alice.messages();
    assert_eq!(messages.len(), 2, "alice's message count");
    for message in &messages {
        let (_, body) = common::split_added_headers(message);
        assert_eq!(
            show(&body),
            show(stored),
            "8-bit content must be stored byte for byte"
        );
    }
}

#[test]
fn stored_file_has_lf_only() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("f25", "");
    let mut client = Client::ready(setup.port);
    let reply = send_raw_data(
        &mut client,
        "<s@example.net>",
        b"From: s@example.net\r\nSubject: line ends\r\n\r\none\r\ntwo\r\n\r\nthree\r\n.\r\n",
    );
    assert_reply(&reply, 250, "2.0.0", "end of data");

    let messages = alice.messages();
    assert_eq!(messages.len(), 1, "alice's message count");
    let message = &messages[0];
    assert!(
        !message.contains(&b'\r'),
        "the stored file contains a CR: {}",
        show(message)
    );
    let (_, body) = common::split_added_headers(message);
    assert_eq!(
        show(&body),
        show(b"From: s@example.net\nSubject: line ends\n\none\ntwo\n\nthree\n"),
        "stored content"
    );
}

#[test]
fn bare_cr_and_lf_kept() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("bare-cr", "");
    let mut client = Client::ready(setup.port);
    let reply = send_raw_data(
        &mut client,
        "<s@example.net>",
        b"Subject: bare\r\n\r\na\rb\nc\r\r\n.\r\n",
    );
    assert_reply(&reply, 250, "2.0.0", "end of data");

    let (_, body) = only_message(&alice);
    assert_eq!(
        show(&body),
        show(b"Subject: bare\n\na\rb\nc\r\n"),
        "only CRLF becomes LF; bare CR and bare LF stay as they are"
    );
}

#[test]
fn stored_file_name_and_headers() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("stored-file", "");
    let mut client = Client::ready(setup.port);
    let data: &[u8] = b"Subject: shape\r\nX-Bare: a\nb\r\n\r\nbody\r\n.\r\n";
    let reply = send_raw_data(&mut client, "<s@example.net>", data);
    assert_reply(&reply, 250, "2.0.0", "end of data");

    // "2.0.0 <alice@example.org> <id> Saved"
    let words: Vec<&str> = reply.text().split(' ').collect();
    assert_eq!(words.len(), 4, "delivery reply shape: {reply:?}");
    assert_eq!(words[1], "<alice@example.org>", "reply names the recipient");
    assert_eq!(words[3], "Saved", "last word of the delivery reply");
    let id = words[2];

    let names = alice.files("new");
    assert_eq!(names.len(), 1, "files in new/: {names:?}");
    let name = &names[0];
    let parsed = parse_file_name(name).unwrap_or_else(|| {
        panic!("file name {name:?} does not match <sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<size>")
    });
    assert_eq!(parsed.id, id, "file name prefix and reply id differ");
    assert_eq!(parsed.host, "zoha.test", "host part of the file name");

    let path: PathBuf = alice.maildir().join("new").join(name);
    let content = fs::read(&path).expect("read the stored message");
    assert_eq!(
        parsed.size,
        content.len() as u64,
        "S= differs from the file size"
    );
    let line_ends = content.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(
        parsed.rfc822_size,
        content.len() as u64 + line_ends,
        "W= differs from the size with CRLF line ends"
    );

    let (owner, mode) = common::owner_and_mode(&path);
    assert_eq!(mode, 0o600, "mode of the stored file");
    assert_eq!(owner, alice.uid, "owner of the stored file");
    assert!(alice.files("tmp").is_empty(), "tmp/ is not empty");

    let (added, body) = common::split_added_headers(&content);
    let lines: Vec<&str> = added.lines().collect();
    assert_eq!(
        lines[0], "Return-Path: <s@example.net>",
        "first line: {added}"
    );
    assert_eq!(
        lines[1], "Delivered-To: alice@example.org",
        "second line: {added}"
    );
    assert!(
        lines[2].starts_with("Received: from client.test ([127.0.0.1])"),
        "Received names the LHLO and the peer: {added}"
    );
    let expected_by = format!("by zoha.test (Zoha) with LMTP id {id}");
    assert!(
        added.contains(&expected_by),
        "Received lacks {expected_by:?}: {added}"
    );
    assert!(
        added.contains("for <alice@example.org>;"),
        "Received names the recipient: {added}"
    );
    assert_eq!(
        show(&body),
        show(b"Subject: shape\nX-Bare: a\nb\n\nbody\n"),
        "stored content"
    );
}

#[test]
fn return_path_in_input_removed() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("return-path", "");
    let mut client = Client::ready(setup.port);
    let data: &[u8] = b"Return-Path: <forged@example.net>\r\n\
        Subject: forged\r\n\
        return-path:\r\n <folded@example.net>\r\n\
        \r\n\
        Return-Path: <in-body@example.net>\r\n\
        .\r\n";
    let reply = send_raw_data(&mut client, "<s@example.net>", data);
    assert_reply(&reply, 250, "2.0.0", "end of data");

    let (added, body) = only_message(&alice);
    assert!(
        added.starts_with("Return-Path: <s@example.net>\n"),
        "Zoha's Return-Path comes first: {added}"
    );
    assert_eq!(
        show(&body),
        show(b"Subject: forged\n\nReturn-Path: <in-body@example.net>\n"),
        "header Return-Path fields (folded ones too) are removed, the body is kept"
    );
}

#[test]
fn each_recipient_gets_own_headers() {
    let (setup, alice, bob, _daemon) = start_two_accounts("own-headers", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    for rcpt in ["alice@example.org", "bob@example.org"] {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
        assert_reply(&reply, 250, "2.1.5", rcpt);
    }
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: two\r\n\r\nshared body\r\n.\r\n");
    let first = client.read_reply();
    assert_reply(&first, 250, "2.0.0", "alice after DATA");
    let second = client.read_reply();
    assert_reply(&second, 250, "2.0.0", "bob after DATA");

    for account in [&alice, &bob] {
        let (added, body) = only_message(account);
        let delivered_to = format!("\nDelivered-To: {}\n", account.address);
        assert!(
            added.contains(&delivered_to),
            "{}'s copy lacks its Delivered-To: {added}",
            account.address
        );
        let received_for = format!("for <{}>;", account.address);
        assert!(
            added.contains(&received_for),
            "{}'s copy lacks its Received for: {added}",
            account.address
        );
        assert_eq!(
            show(&body),
            show(b"Subject: two\n\nshared body\n"),
            "{}'s stored content",
            account.address
        );
    }
}
