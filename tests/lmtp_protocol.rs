//! LMTP protocol behaviour of the real daemon: command order, reply codes,
//! limits on lines, errors and recipients, BDAT, pipelining, timeouts, and
//! the recipient address field cases (null path, `+detail`, UTF-8, path
//! traversal).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_reply, start_data_with, start_two_accounts, Account, Client, Reply, Setup};

/// Sends a small message from MAIL to the final dot for `recipients`, which
/// must all be accepted, and returns the replies after the data.
fn deliver_small(client: &mut Client, recipients: &[&str], body: &[u8]) -> Vec<Reply> {
    start_data_with(client, "MAIL FROM:<sender@example.net>", recipients);
    client.send(body);
    client.send(b".\r\n");
    recipients.iter().map(|_| client.read_reply()).collect()
}

/// Returns the message body after Zoha's three added header fields.
fn stored_body(message: &[u8]) -> Vec<u8> {
    common::split_added_headers(message).1
}

/// Lists every path below `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap_or(&path).to_path_buf());
        }
    }
    found.sort();
    found
}

#[test]
fn greeting_and_lhlo_extensions() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("lhlo", "");
    let mut client = Client::tcp(setup.port).expect("connect");

    let greeting = client.read_reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    assert_eq!(
        greeting.text(),
        "zoha.test LMTP ready",
        "greeting names the configured hostname"
    );

    let reply = client.command("LHLO client.test");
    assert_eq!(reply.code, 250, "LHLO: {reply:?}");
    assert_eq!(reply.lines[0], "zoha.test", "first LHLO line: {reply:?}");
    for extension in [
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
        "SIZE 52428800",
    ] {
        assert!(
            reply.lines.iter().any(|l| l == extension),
            "LHLO does not advertise {extension}: {reply:?}"
        );
    }
    assert!(
        !reply.lines.iter().any(|l| l.starts_with("BINARYMIME")),
        "BINARYMIME must not be offered, Maildir stores LF line ends: {reply:?}"
    );
}

#[test]
fn helo_and_ehlo_rejected() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("helo", "");
    let mut client = Client::connect(setup.port);

    let reply = client.command("HELO client.test");
    assert_reply(&reply, 500, "5.5.1", "HELO");
    let reply = client.command("EHLO client.test");
    assert_reply(&reply, 500, "5.5.1", "EHLO");
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 503, "5.5.1", "MAIL after a rejected EHLO");

    let reply = client.command("LHLO client.test");
    assert_eq!(reply.code, 250, "LHLO after HELO and EHLO: {reply:?}");
}

#[test]
fn mail_before_lhlo_rejected() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("mail-first", "");
    let mut client = Client::connect(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 503, "5.5.1", "MAIL before LHLO");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 503, "5.5.1", "RCPT before LHLO");
    let reply = client.command("DATA");
    assert_reply(&reply, 503, "5.5.1", "DATA before LHLO");
}

#[test]
fn rcpt_before_mail_rejected() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("rcpt-first", "");
    let mut client = Client::ready(setup.port);

    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 503, "5.5.1", "RCPT before MAIL");
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL after the rejected RCPT");
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 503, "5.5.1", "nested MAIL");
}

#[test]
fn data_without_recipients_rejected() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("data-norcpt", "");
    let mut client = Client::ready(setup.port);

    let reply = client.command("DATA");
    assert_reply(&reply, 503, "5.5.1", "DATA before MAIL");

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("DATA");
    assert_reply(&reply, 503, "5.5.1", "DATA with no RCPT");

    let reply = client.command("RCPT TO:<nobody@example.org>");
    assert_reply(&reply, 550, "5.1.1", "RCPT of an unknown user");
    let reply = client.command("DATA");
    assert_reply(&reply, 503, "5.5.1", "DATA with only rejected RCPTs");

    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT after the rejected DATA");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA with one accepted RCPT: {reply:?}");
    client.send(b"Subject: late\r\n\r\nbody\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "end of data");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
}

#[test]
fn unknown_command_rejected() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("unknown-cmd", "");
    let mut client = Client::ready(setup.port);

    let reply = client.command("FROBNICATE now");
    assert_reply(&reply, 500, "5.5.2", "unknown verb");
    let reply = client.command("");
    assert_reply(&reply, 500, "5.5.2", "empty line");
    let reply = client.command("NOOP");
    assert_reply(&reply, 250, "2.0.0", "NOOP after unknown commands");
}

#[test]
fn long_command_line_rejected() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("long-line", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");

    // The long line and the next command arrive in one write, so a server
    // that lost its place in the input would reply to the RCPT wrongly.
    let mut batch = format!("RCPT TO:<{}@example.org>\r\n", "x".repeat(5000)).into_bytes();
    batch.extend_from_slice(b"RCPT TO:<alice@example.org>\r\n");
    client.send(&batch);
    let reply = client.read_reply();
    assert_reply(&reply, 500, "5.5.2", "5000-octet command line");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.1.5", "RCPT after the long line");

    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: after long line\r\n\r\nok\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "end of data");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
}

#[test]
fn too_many_errors_close_session() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("max-errors", "max_errors = 3\n");
    let mut client = Client::ready(setup.port);

    let reply = client.command("FROB 1");
    assert_reply(&reply, 500, "5.5.2", "first bad command");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 503, "5.5.1", "second bad command");
    let reply = client.command("FROB 3");
    assert_reply(&reply, 500, "5.5.2", "third bad command");
    let reply = client.read_reply();
    assert_reply(&reply, 421, "4.7.0", "after max_errors bad commands");
    assert!(
        client.is_closed(),
        "the connection stays open after 421 4.7.0"
    );
}

#[test]
fn max_recipients_limit_enforced() {
    let mut setup = Setup::new("max-rcpt");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let carol = setup.add_account("carol@example.org");
    let _daemon = setup.start("max_recipients = 2\n");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "first RCPT");
    let reply = client.command("RCPT TO:<bob@example.org>");
    assert_reply(&reply, 250, "2.1.5", "second RCPT");
    let reply = client.command("RCPT TO:<carol@example.org>");
    assert_reply(&reply, 452, "4.5.3", "third RCPT over max_recipients = 2");

    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: limit\r\n\r\nbody\r\n.\r\n");
    let first = client.read_reply();
    assert_reply(&first, 250, "2.0.0", "alice after DATA");
    let second = client.read_reply();
    assert_reply(&second, 250, "2.0.0", "bob after DATA");
    let reply = client.command("VRFY carol");
    assert_eq!(
        reply.code, 252,
        "a reply for the refused third recipient came after DATA: {reply:?}"
    );
    assert_eq!(alice.messages().len(), 1, "alice's message count");
    assert_eq!(bob.messages().len(), 1, "bob's message count");
    assert!(carol.messages().is_empty(), "carol got the message");
}

#[test]
fn rset_noop_vrfy_quit_codes() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("simple-cmds", "");
    let mut client = Client::ready(setup.port);

    let reply = client.command("RSET");
    assert_reply(&reply, 250, "2.0.0", "RSET");
    let reply = client.command("NOOP");
    assert_reply(&reply, 250, "2.0.0", "NOOP");
    let reply = client.command("NOOP with some text");
    assert_reply(&reply, 250, "2.0.0", "NOOP with an argument");
    let reply = client.command("VRFY alice");
    assert_reply(&reply, 252, "2.5.0", "VRFY");
    let reply = client.command("quit");
    assert_reply(&reply, 221, "2.0.0", "QUIT in lower case");
    assert!(client.is_closed(), "the connection stays open after QUIT");
}

#[test]
fn rset_discards_transaction() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("rset", "");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");
    let reply = client.command("RSET");
    assert_reply(&reply, 250, "2.0.0", "RSET");
    let reply = client.command("DATA");
    assert_reply(&reply, 503, "5.5.1", "DATA after RSET");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 503, "5.5.1", "RCPT after RSET");

    let replies = deliver_small(
        &mut client,
        &["alice@example.org"],
        b"Subject: after rset\r\n\r\nx\r\n",
    );
    assert_reply(&replies[0], 250, "2.0.0", "delivery after RSET");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
}

#[test]
fn bdat_chunks_with_last_delivered() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("bdat-last", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net> BODY=8BITMIME");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");

    let first: &[u8] = b"Subject: chunks\r\n\r\n";
    client.send(format!("BDAT {}\r\n", first.len()).as_bytes());
    client.send(first);
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "first BDAT chunk");

    // BDAT carries no dot-stuffing, so a leading dot is content.
    let last: &[u8] = b"..not stuffed\r\n.\r\nend\r\n";
    client.send(format!("BDAT {} LAST\r\n", last.len()).as_bytes());
    client.send(last);
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "BDAT LAST");

    let reply = client.command("NOOP");
    assert_reply(&reply, 250, "2.0.0", "NOOP after BDAT LAST");
    let messages = alice.messages();
    assert_eq!(messages.len(), 1, "alice's message count");
    assert_eq!(
        stored_body(&messages[0]),
        b"Subject: chunks\n\n..not stuffed\n.\nend\n".to_vec(),
        "stored BDAT content"
    );
}

#[test]
fn bdat_zero_last_ends_message() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("bdat-zero", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");

    let chunk: &[u8] = b"Subject: zero\r\n\r\nbody\r\n";
    client.send(format!("BDAT {}\r\n", chunk.len()).as_bytes());
    client.send(chunk);
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "BDAT chunk");
    let reply = client.command("BDAT 0 LAST");
    assert_reply(&reply, 250, "2.0.0", "BDAT 0 LAST");

    let messages = alice.messages();
    assert_eq!(messages.len(), 1, "alice's message count");
    assert_eq!(
        stored_body(&messages[0]),
        b"Subject: zero\n\nbody\n".to_vec(),
        "stored content"
    );
}

#[test]
fn bdat_crlf_split_across_chunks() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("bdat-split", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");

    // The CR of a CRLF ends one chunk and its LF starts the next. The last
    // chunk ends with a lone CR.
    let chunks: [&[u8]; 3] = [b"Subject: split\r", b"\n\r", b"\nline\r\n\r"];
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() { " LAST" } else { "" };
        client.send(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        client.send(chunk);
        let reply = client.read_reply();
        assert_reply(&reply, 250, "2.0.0", &format!("BDAT chunk {i}"));
    }

    let messages = alice.messages();
    assert_eq!(messages.len(), 1, "alice's message count");
    let body = stored_body(&messages[0]);
    assert_eq!(
        body,
        b"Subject: split\n\nline\n\r".to_vec(),
        "a CRLF split across chunks is one line end; a final lone CR is content"
    );
}

#[test]
fn bdat_without_mail_consumes_chunk() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("bdat-nomail", "");
    let mut client = Client::ready(setup.port);

    // The chunk looks like a command, but it must be read and discarded.
    let chunk: &[u8] = b"MAIL FROM:<x@example.net>\r\n";
    client.send(format!("BDAT {}\r\n", chunk.len()).as_bytes());
    client.send(chunk);
    let reply = client.read_reply();
    assert_reply(&reply, 503, "5.5.1", "BDAT without MAIL");
    let reply = client.command("VRFY alice");
    assert_reply(
        &reply,
        252,
        "2.5.0",
        "next command after the discarded chunk",
    );

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let chunk: &[u8] = b"RSET\r\n";
    client.send(format!("BDAT {} LAST\r\n", chunk.len()).as_bytes());
    client.send(chunk);
    let reply = client.read_reply();
    assert_reply(&reply, 503, "5.5.1", "BDAT LAST without an accepted RCPT");
    let reply = client.command("VRFY alice");
    assert_reply(&reply, 252, "2.5.0", "next command after the second chunk");
}

#[test]
fn data_after_bdat_rejected() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("bdat-data", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");
    let chunk: &[u8] = b"Subject: mixed\r\n\r\n";
    client.send(format!("BDAT {}\r\n", chunk.len()).as_bytes());
    client.send(chunk);
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "BDAT chunk");

    let reply = client.command("DATA");
    assert_reply(&reply, 503, "5.5.1", "DATA after BDAT");
    let last: &[u8] = b"body\r\n";
    client.send(format!("BDAT {} LAST\r\n", last.len()).as_bytes());
    client.send(last);
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "BDAT LAST after the rejected DATA");
    let messages = alice.messages();
    assert_eq!(messages.len(), 1, "alice's message count");
    assert_eq!(
        stored_body(&messages[0]),
        b"Subject: mixed\n\nbody\n".to_vec(),
        "stored content"
    );
}

/// Sends a whole transaction in one write on `client` and checks every reply.
fn check_pipelined_transaction(client: &mut Client, alice: &Account, bob: &Account) {
    let batch: &[u8] = b"LHLO client.test\r\n\
        MAIL FROM:<s@example.net>\r\n\
        RCPT TO:<alice@example.org>\r\n\
        RCPT TO:<nobody@example.org>\r\n\
        RCPT TO:<bob@example.org>\r\n\
        DATA\r\n\
        Subject: pipelined\r\n\
        \r\n\
        all in one write\r\n\
        .\r\n\
        QUIT\r\n";
    client.send(batch);

    let reply = client.read_reply();
    assert_eq!(reply.code, 250, "LHLO: {reply:?}");
    assert!(reply.lines.len() > 1, "LHLO reply is multi-line: {reply:?}");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.1.5", "RCPT alice");
    let reply = client.read_reply();
    assert_reply(&reply, 550, "5.1.1", "RCPT nobody");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.1.5", "RCPT bob");
    let reply = client.read_reply();
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "alice after DATA");
    assert!(
        reply.text().contains("<alice@example.org>"),
        "first reply after DATA names alice: {reply:?}"
    );
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "bob after DATA");
    assert!(
        reply.text().contains("<bob@example.org>"),
        "second reply after DATA names bob: {reply:?}"
    );
    let reply = client.read_reply();
    assert_reply(&reply, 221, "2.0.0", "QUIT");
    assert!(client.is_closed(), "the connection stays open after QUIT");

    for account in [alice, bob] {
        let messages = account.messages();
        assert_eq!(messages.len(), 1, "{}'s message count", account.address);
        assert_eq!(
            stored_body(&messages[0]),
            b"Subject: pipelined\n\nall in one write\n".to_vec(),
            "{}'s stored content",
            account.address
        );
    }
}

#[test]
fn pipelined_transaction_over_tcp() {
    let (setup, alice, bob, _daemon) = start_two_accounts("pipe-tcp", "");
    let mut client = Client::tcp(setup.port).expect("connect over TCP");
    let greeting = client.read_reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    check_pipelined_transaction(&mut client, &alice, &bob);
}

#[test]
fn pipelined_transaction_over_unix_socket() {
    let (setup, alice, bob, _daemon) = start_two_accounts("pipe-unix", "");
    let mut client = Client::unix(&setup.socket).expect("connect over the UNIX socket");
    let greeting = client.read_reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    check_pipelined_transaction(&mut client, &alice, &bob);
}

#[test]
fn pipelined_mail_rcpt_data_batch() {
    let (setup, alice, bob, _daemon) = start_two_accounts("pipe-batch", "");
    let mut client = Client::ready(setup.port);

    client.send(
        b"MAIL FROM:<s@example.net>\r\n\
          RCPT TO:<alice@example.org>\r\n\
          RCPT TO:<bob@example.org>\r\n\
          DATA\r\n",
    );
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.1.5", "RCPT alice");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.1.5", "RCPT bob");
    let reply = client.read_reply();
    assert_eq!(reply.code, 354, "DATA: {reply:?}");

    client.send(b"Subject: batch\r\n\r\nbody\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "alice after DATA");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "bob after DATA");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
    assert_eq!(bob.messages().len(), 1, "bob's message count");
}

#[test]
fn null_recipient_rejected() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("null-rcpt", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");

    let reply = client.command("RCPT TO:<>");
    assert_reply(&reply, 501, "5.1.3", "RCPT TO:<>");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT after the null recipient");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: after null rcpt\r\n\r\nx\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "alice after DATA");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
}

#[test]
fn detail_addresses_reach_base_account() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("detail", "");
    let mut client = Client::ready(setup.port);
    let detailed = [
        "alice+tag@example.org",
        "alice+@example.org",
        "alice++x@example.org",
    ];

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    for address in detailed {
        let reply = client.command(&format!("RCPT TO:<{address}>"));
        assert_reply(&reply, 250, "2.1.5", &format!("RCPT TO:<{address}>"));
    }
    let reply = client.command("RCPT TO:<+x@example.org>");
    assert_reply(&reply, 550, "5.1.1", "RCPT TO:<+x@example.org>");
    assert!(
        reply.text().contains("<+x@example.org>"),
        "the 550 reply names the address as given: {reply:?}"
    );

    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: detail\r\n\r\nx\r\n.\r\n");
    for address in detailed {
        let reply = client.read_reply();
        assert_reply(&reply, 250, "2.0.0", &format!("{address} after DATA"));
        assert!(
            reply.text().contains(&format!("<{address}>")),
            "the reply names the address as given ({address}): {reply:?}"
        );
    }

    let messages = alice.messages();
    assert_eq!(
        messages.len(),
        detailed.len(),
        "every +detail address is delivered to alice's INBOX"
    );
    for address in detailed {
        let needle = format!("\nDelivered-To: {address}\n");
        assert!(
            messages
                .iter()
                .any(|m| m.windows(needle.len()).any(|w| w == needle.as_bytes())),
            "no stored message has Delivered-To: {address}"
        );
    }
}

#[test]
fn utf8_recipient_delivered() {
    let mut setup = Setup::new("smtputf8");
    let jorg = setup.add_account("jörg@example.org");
    let _daemon = setup.start("");
    let mut client = Client::connect(setup.port);
    let reply = client.command("LHLO client.test");
    assert!(
        reply.lines.iter().any(|l| l == "SMTPUTF8"),
        "SMTPUTF8 is not advertised: {reply:?}"
    );

    let reply = client.command("MAIL FROM:<t@example.net> SMTPUTF8");
    assert_reply(&reply, 250, "2.1.0", "MAIL with SMTPUTF8");
    let reply = client.command("RCPT TO:<jörg@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT with a UTF-8 local part");
    let reply = client.command("RCPT TO:<jürgen@example.org>");
    assert_reply(&reply, 550, "5.1.1", "RCPT of an unknown UTF-8 local part");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send("Subject: grüße\r\n\r\nhallo\r\n.\r\n".as_bytes());
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "jörg after DATA");
    assert!(
        reply.text().contains("<jörg@example.org>"),
        "the reply names the UTF-8 address: {reply:?}"
    );

    let messages = jorg.messages();
    assert_eq!(messages.len(), 1, "jörg's message count");
    assert_eq!(
        stored_body(&messages[0]),
        "Subject: grüße\n\nhallo\n".as_bytes().to_vec(),
        "stored content"
    );
}

#[test]
fn path_traversal_local_parts_rejected() {
    let (setup, alice, bob, _daemon) = start_two_accounts("traversal", "");
    let before = tree(&setup.dir.path);
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");

    let hostile = [
        "RCPT TO:<../../etc@example.org>",
        "RCPT TO:<alice/../bob@example.org>",
        "RCPT TO:<.hidden@example.org>",
        "RCPT TO:<\"../../etc\"@example.org>",
        "RCPT TO:<\"alice/../bob\"@example.org>",
        "RCPT TO:<\".hidden\"@example.org>",
        "RCPT TO:<\"alice/\"@example.org>",
    ];
    for line in hostile {
        let reply = client.command(line);
        assert!(
            is_recipient_refusal(&reply),
            "{line}: expected 550 5.1.1 or 501 5.1.3, got {reply:?}"
        );
    }

    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT alice after the hostile ones");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: traversal\r\n\r\nx\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "alice after DATA");
    let reply = client.command("QUIT");
    assert_reply(&reply, 221, "2.0.0", "QUIT");

    assert_eq!(alice.messages().len(), 1, "alice's message count");
    assert!(bob.messages().is_empty(), "bob got a message");
    let alice_maildir = alice
        .maildir()
        .strip_prefix(&setup.dir.path)
        .expect("alice's Maildir is inside the setup")
        .to_path_buf();
    let created: Vec<PathBuf> = tree(&setup.dir.path)
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter(|p| !p.starts_with(&alice_maildir))
        .filter(|p| p.file_name().is_none_or(|n| n != "zoha.stderr"))
        .collect();
    assert!(
        created.is_empty(),
        "paths created outside alice's Maildir: {created:?}"
    );
}

/// Reports whether `reply` refuses a recipient as unknown or malformed.
fn is_recipient_refusal(reply: &Reply) -> bool {
    matches!(
        (reply.code, reply.text().get(..5)),
        (550, Some("5.1.1")) | (501, Some("5.1.3"))
    )
}

#[test]
fn nul_in_local_part_rejected() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("nul-local", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");

    let lines: [&[u8]; 2] = [
        b"RCPT TO:<ali\x00ce@example.org>\r\n",
        b"RCPT TO:<\"ali\x00ce\"@example.org>\r\n",
    ];
    for line in lines {
        let printable = String::from_utf8_lossy(line).replace('\0', "\\x00");
        client.send(line);
        let reply = client.read_reply();
        assert!(
            is_recipient_refusal(&reply),
            "{}: a NUL in the local part is an address syntax error, expected \
             550 5.1.1 or 501 5.1.3, got {reply:?}",
            printable.trim_end()
        );
    }

    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT alice after the NUL addresses");
}

#[test]
fn idle_client_gets_timeout_reply() {
    let (setup, _alice, _bob, daemon) =
        start_two_accounts("idle", "command_timeout = 1\ndata_timeout = 1\n");
    let mut client = Client::ready(setup.port);

    // The client sends nothing more, so the next reply is the timeout.
    let reply = client.read_reply();
    assert_reply(&reply, 421, "4.4.2", "idle session");
    assert!(client.is_closed(), "the connection stays open after 421");

    let mut next = Client::ready(daemon.port);
    let reply = next.command("NOOP");
    assert_reply(&reply, 250, "2.0.0", "NOOP on a new connection");
}

#[test]
fn lhlo_without_domain_rejected() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("lhlo-empty", "");
    let mut client = Client::connect(setup.port);

    let reply = client.command("LHLO");
    assert_reply(&reply, 501, "5.5.4", "LHLO without a domain");
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 503, "5.5.1", "MAIL after the rejected LHLO");
    let reply = client.command("LHLO client.test");
    assert_eq!(reply.code, 250, "LHLO with a domain: {reply:?}");
}

#[test]
fn lhlo_again_discards_transaction() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("lhlo-again", "");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");
    let reply = client.command("LHLO client.test");
    assert_eq!(reply.code, 250, "second LHLO: {reply:?}");
    let reply = client.command("DATA");
    assert_reply(&reply, 503, "5.5.1", "DATA after a second LHLO");
}

#[test]
fn bad_mail_and_rcpt_arguments_rejected() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("bad-args", "");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<no-domain>");
    assert_reply(&reply, 501, "5.1.7", "MAIL with a path without @domain");
    let reply = client.command("MAIL FROM:s@example.net");
    assert_reply(&reply, 501, "5.1.7", "MAIL without angle brackets");
    let reply = client.command("MAIL FROM:<s@example.net> FOO=bar");
    assert_reply(&reply, 555, "5.5.4", "MAIL with an unknown parameter");
    let reply = client.command("MAIL FROM:<s@example.net> BODY=BINARYMIME");
    assert_reply(
        &reply,
        555,
        "5.5.4",
        "MAIL with BODY=BINARYMIME, not offered",
    );

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org> NOTIFY=NEVER");
    assert_reply(
        &reply,
        555,
        "5.5.4",
        "RCPT with DSN parameters, not offered",
    );
    let reply = client.command("RCPT TO:<no-domain>");
    assert_reply(&reply, 501, "5.1.3", "RCPT with a path without @domain");
    let reply = client.command("RCPT TO:alice@example.org");
    assert_reply(&reply, 501, "5.1.3", "RCPT without angle brackets");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT after the rejected ones");
}

#[test]
fn unknown_recipients_not_counted_as_errors() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("unknown-count", "max_errors = 3\n");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    for n in 0..6 {
        let reply = client.command(&format!("RCPT TO:<nobody{n}@example.org>"));
        assert_reply(&reply, 550, "5.1.1", &format!("unknown recipient {n}"));
    }
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT alice after six unknown users");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: many unknown\r\n\r\nx\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "alice after DATA");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
}

#[test]
fn address_forms_found_for_lookup() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("address-forms", "");
    let mut client = Client::ready(setup.port);
    let forms = [
        "alice@EXAMPLE.ORG",
        "ALICE@example.org",
        "\"alice\"@example.org",
        "@relay.example.net:alice@example.org",
    ];

    let reply = client.command("mail from:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL in lower case");
    for form in forms {
        let reply = client.command(&format!("rcpt to:<{form}>"));
        assert_reply(&reply, 250, "2.1.5", &format!("RCPT TO:<{form}>"));
    }
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: forms\r\n\r\nx\r\n.\r\n");
    for form in forms {
        let reply = client.read_reply();
        assert_reply(&reply, 250, "2.0.0", &format!("{form} after DATA"));
    }
    assert_eq!(
        alice.messages().len(),
        forms.len(),
        "every form of alice's address is delivered to alice"
    );
}

#[test]
fn two_transactions_in_one_write() {
    let (setup, alice, bob, _daemon) = start_two_accounts("pipe-two", "");
    let mut client = Client::ready(setup.port);

    client.send(
        b"MAIL FROM:<s@example.net>\r\n\
          RCPT TO:<alice@example.org>\r\n\
          DATA\r\n\
          Subject: first\r\n\r\none\r\n.\r\n\
          MAIL FROM:<s@example.net>\r\n\
          RCPT TO:<bob@example.org>\r\n\
          DATA\r\n\
          Subject: second\r\n\r\ntwo\r\n.\r\n\
          QUIT\r\n",
    );
    let codes = client.read_codes(9);
    assert_eq!(
        codes,
        vec![250, 250, 354, 250, 250, 250, 354, 250, 221],
        "replies to two pipelined transactions"
    );
    assert!(client.is_closed(), "the connection stays open after QUIT");
    assert_eq!(
        stored_body(&alice.messages()[0]),
        b"Subject: first\n\none\n".to_vec(),
        "alice's stored content"
    );
    assert_eq!(
        stored_body(&bob.messages()[0]),
        b"Subject: second\n\ntwo\n".to_vec(),
        "bob's stored content"
    );
}

#[test]
fn pipelined_bdat_chunks() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("pipe-bdat", "");
    let mut client = Client::ready(setup.port);

    client.send(
        b"MAIL FROM:<s@example.net>\r\n\
          RCPT TO:<alice@example.org>\r\n\
          BDAT 20\r\n\
          Subject: chunked\r\n\r\n\
          BDAT 5 LAST\r\n\
          body\n\
          NOOP\r\n",
    );
    let codes = client.read_codes(5);
    assert_eq!(
        codes,
        vec![250, 250, 250, 250, 250],
        "replies to MAIL, RCPT, two BDAT chunks and NOOP"
    );
    let reply = client.command("VRFY x");
    assert_eq!(
        reply.code, 252,
        "extra reply after the pipelined BDAT: {reply:?}"
    );
    let messages = alice.messages();
    assert_eq!(messages.len(), 1, "alice's message count");
    assert_eq!(
        stored_body(&messages[0]),
        b"Subject: chunked\n\nbody\n".to_vec(),
        "stored content"
    );
}

#[test]
fn bdat_bad_size_closes_connection() {
    let (setup, _alice, _bob, daemon) = start_two_accounts("bdat-bad", "");
    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");

    // Without a chunk size the rest of the input cannot be parsed.
    let reply = client.command("BDAT lots");
    assert_reply(&reply, 501, "5.5.4", "BDAT without a numeric size");
    assert!(
        client.is_closed(),
        "the connection stays open after a bad BDAT"
    );

    let mut next = Client::ready(daemon.port);
    let reply = next.command("NOOP");
    assert_reply(&reply, 250, "2.0.0", "NOOP on a new connection");
}

/// Connects and reads a 220 greeting, retrying while every worker is busy,
/// because a session that just ended may still hold its worker for a moment.
fn connect_when_free(port: u16) -> Client {
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let mut client = Client::tcp(port).expect("connect");
        if let Ok(greeting) = client.try_read_reply() {
            if greeting.code == 220 {
                return client;
            }
            assert_reply(&greeting, 421, "4.3.2", "greeting while workers are busy");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker became free within {:?}",
            common::WAIT
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn excess_connection_gets_busy_reply() {
    let (setup, _alice, _bob, _daemon) = start_two_accounts("workers", "workers = 2\n");
    let mut first = connect_when_free(setup.port);
    let _second = connect_when_free(setup.port);

    let mut third = Client::tcp(setup.port).expect("connect a third client");
    let reply = third.try_read_reply().unwrap_or_else(|e| {
        panic!("the connection beyond workers = 2 got no 421 4.3.2 reply: {e}")
    });
    assert_reply(&reply, 421, "4.3.2", "connection beyond workers = 2");
    assert!(third.is_closed(), "the excess connection stays open");

    let reply = first.command("QUIT");
    assert_reply(&reply, 221, "2.0.0", "QUIT of the first client");
    let mut fourth = connect_when_free(setup.port);
    let reply = fourth.command("LHLO client.test");
    assert_eq!(reply.code, 250, "LHLO once a worker is free: {reply:?}");
}

/// Asserts that every line of `reply` fits the 512 octets RFC 5321 section
/// 4.5.3.1.5 allows for a reply line, code and CRLF included.
fn assert_reply_lines_fit(reply: &Reply, context: &str) {
    for line in &reply.lines {
        let octets = "250 ".len() + line.len() + "\r\n".len();
        assert!(
            octets <= 512,
            "{context}: a reply line of {octets} octets is over the 512 allowed: {:?}...",
            &line[..line.len().min(60)]
        );
    }
}

#[test]
fn long_address_replies_within_512_octets() {
    let (setup, alice, _bob, _daemon) = start_two_accounts("long-address", "");
    let mut client = Client::ready(setup.port);
    let unknown = format!("{}@example.org", "u".repeat(1000));
    let detailed = format!("alice+{}@example.org", "d".repeat(1000));

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command(&format!("RCPT TO:<{unknown}>"));
    assert!(
        reply.code >= 500,
        "RCPT of a long unknown address: {reply:?}"
    );
    assert_reply_lines_fit(&reply, "RCPT of a long unknown address");
    let reply = client.command(&format!("RCPT TO:<{detailed}>"));
    assert_reply_lines_fit(&reply, "RCPT of alice with a long +detail");
    let detailed_accepted = reply.code == 250;
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT alice");

    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: long address\r\n\r\nx\r\n.\r\n");
    if detailed_accepted {
        let reply = client.read_reply();
        assert_reply(&reply, 250, "2.0.0", "alice with a long +detail after DATA");
        assert_reply_lines_fit(&reply, "delivery reply for a long +detail");
    }
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "alice after DATA");
    assert!(!alice.messages().is_empty(), "alice got no message");
}
