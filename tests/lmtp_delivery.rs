//! Delivery through the real daemon: per-recipient outcomes after the data,
//! storage failures, clients that vanish or stall mid-message, concurrent
//! deliveries into one Maildir, and the log lines for each recipient.

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{assert_reply, make_maildir, wait_for_log, Client, Daemon, Setup};

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

#[test]
fn mixed_outcomes_replied_in_rcpt_order() {
    let mut setup = Setup::new("mixed");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    setup.add_userdb_line("broken@example.org\tuid=abc|gid=1|home=/x");
    let _daemon = setup.start("");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let rcpts = [
        ("alice@example.org", 250, "2.1.5"),
        ("nobody@example.org", 550, "5.1.1"),
        ("broken@example.org", 451, "4.3.0"),
        ("bob@example.org", 250, "2.1.5"),
        ("alice@example.org", 250, "2.1.5"),
    ];
    for (address, code, enhanced) in rcpts {
        let reply = client.command(&format!("RCPT TO:<{address}>"));
        assert_reply(&reply, code, enhanced, &format!("RCPT TO:<{address}>"));
        if code >= 400 {
            assert!(
                reply.text().contains(&format!("<{address}>")),
                "the refusal names the address: {reply:?}"
            );
        }
    }

    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: mixed\r\n\r\nbody\r\n.\r\n");
    let accepted = ["alice@example.org", "bob@example.org", "alice@example.org"];
    for (position, address) in accepted.iter().enumerate() {
        let reply = client.read_reply();
        assert_reply(
            &reply,
            250,
            "2.0.0",
            &format!("reply {position} after DATA"),
        );
        assert!(
            reply.text().contains(&format!("<{address}>")),
            "reply {position} after DATA should name {address}: {reply:?}"
        );
    }
    let reply = client.command("VRFY x");
    assert_eq!(
        reply.code, 252,
        "more replies after DATA than accepted RCPTs: {reply:?}"
    );

    assert_eq!(
        alice.messages().len(),
        1,
        "a duplicate RCPT shares the first one's copy"
    );
    assert_eq!(bob.messages().len(), 1, "bob's message count");
}

#[test]
fn unwritable_tmp_defers_one_recipient() {
    let mut setup = Setup::new("f18");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    make_maildir(&alice.maildir(), alice.uid);
    let alice_tmp = alice.maildir().join("tmp");
    // In root mode Zoha writes as alice's uid, so 0500 stops it too.
    set_mode(&alice_tmp, 0o500);
    let _daemon = setup.start("");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let alice_rcpt = client.command("RCPT TO:<alice@example.org>");
    let reply = client.command("RCPT TO:<bob@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT bob");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: f18\r\n\r\nbody\r\n.\r\n");

    // Refusing alice at RCPT or deferring her after DATA are both correct.
    if alice_rcpt.code == 250 {
        let reply = client.read_reply();
        assert_reply(&reply, 451, "4.3.0", "alice after DATA");
        assert!(
            reply.text().contains("<alice@example.org>"),
            "the deferral names alice: {reply:?}"
        );
    } else {
        assert_reply(&alice_rcpt, 451, "4.3.0", "RCPT alice");
    }
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "bob after DATA");
    assert!(
        reply.text().contains("<bob@example.org>"),
        "bob's reply names bob: {reply:?}"
    );

    set_mode(&alice_tmp, 0o700);
    assert!(alice.files("new").is_empty(), "alice's new/ is not empty");
    assert!(alice.files("tmp").is_empty(), "alice's tmp/ is not empty");
    assert_eq!(bob.messages().len(), 1, "bob's message count");
}

#[test]
fn missing_tmp_created_again() {
    let mut setup = Setup::new("no-tmp");
    let alice = setup.add_account("alice@example.org");
    make_maildir(&alice.maildir(), alice.uid);
    fs::remove_dir(alice.maildir().join("tmp")).expect("remove tmp/");
    let _daemon = setup.start("");
    let mut client = Client::ready(setup.port);

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: no tmp\r\n\r\nbody\r\n.\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "end of data");

    assert_eq!(alice.messages().len(), 1, "alice's message count");
    let (owner, mode) = common::owner_and_mode(&alice.maildir().join("tmp"));
    assert_eq!(mode, 0o700, "mode of the created tmp/");
    assert_eq!(owner, alice.uid, "owner of the created tmp/");
}

#[test]
fn vanished_client_leaves_no_file() {
    let mut setup = Setup::new("f16");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let daemon = setup.start("");
    let spool = setup.dir.path.join("spool");

    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    for rcpt in ["alice@example.org", "bob@example.org"] {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
        assert_reply(&reply, 250, "2.1.5", rcpt);
    }
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: vanishing\r\n\r\n");
    // 400 000 octets: more than the 256 KiB the spool keeps in memory, so
    // the spool has moved to a file.
    let line = format!("{}\r\n", "v".repeat(78));
    for _ in 0..5000 {
        client.send(line.as_bytes());
    }
    drop(client);
    let log = wait_for_log(&daemon, "lost connection after DATA");

    for account in [&alice, &bob] {
        assert!(
            account.files("new").is_empty(),
            "{}'s new/ is not empty; log:\n{log}",
            account.address
        );
        assert!(
            account.files("tmp").is_empty(),
            "{}'s tmp/ is not empty; log:\n{log}",
            account.address
        );
    }
    assert!(
        common::list_files(&spool).is_empty(),
        "the spool directory is not empty"
    );

    let mut next = Client::ready(setup.port);
    let reply = next.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL on a new connection");
    let reply = next.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT on a new connection");
    let reply = next.command("DATA");
    assert_eq!(reply.code, 354, "DATA on a new connection: {reply:?}");
    next.send(b"Subject: after\r\n\r\nbody\r\n.\r\n");
    let reply = next.read_reply();
    assert_reply(&reply, 250, "2.0.0", "delivery on a new connection");
    assert_eq!(alice.messages().len(), 1, "alice's message count");
}

#[test]
fn vanished_bdat_client_leaves_no_file() {
    let mut setup = Setup::new("f16-bdat");
    let alice = setup.add_account("alice@example.org");
    let daemon = setup.start("");

    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");
    let chunk: &[u8] = b"Subject: first chunk\r\n\r\n";
    client.send(format!("BDAT {}\r\n", chunk.len()).as_bytes());
    client.send(chunk);
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "first BDAT chunk");

    // Announce 1 MB, send 10 KB of it, and vanish.
    client.send(b"BDAT 1000000 LAST\r\n");
    client.send(&[b'b'; 10 * 1024]);
    drop(client);
    let log = wait_for_log(&daemon, "lost connection after BDAT");

    assert!(
        alice.files("new").is_empty(),
        "alice's new/ is not empty; log:\n{log}"
    );
    assert!(
        alice.files("tmp").is_empty(),
        "alice's tmp/ is not empty; log:\n{log}"
    );
    let mut next = Client::ready(setup.port);
    let reply = next.command("NOOP");
    assert_reply(&reply, 250, "2.0.0", "NOOP on a new connection");
}

#[test]
fn stalled_data_times_out() {
    let mut setup = Setup::new("stall");
    let alice = setup.add_account("alice@example.org");
    let _daemon = setup.start("command_timeout = 1\ndata_timeout = 1\n");

    let mut client = Client::ready(setup.port);
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "RCPT");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(b"Subject: stalled\r\n\r\npart of a body");

    // The client sends nothing more, so the next reply is the timeout.
    let reply = client.read_reply();
    assert_reply(&reply, 421, "4.4.2", "stalled DATA");
    assert!(client.is_closed(), "the connection stays open after 421");
    assert!(alice.files("new").is_empty(), "alice's new/ is not empty");
    assert!(alice.files("tmp").is_empty(), "alice's tmp/ is not empty");
}

/// Delivers `count` messages to alice on one connection, each with a
/// distinct `X-Sequence` value, and returns the ids from the delivery replies.
fn deliver_sequence(port: u16, client_number: usize, count: usize) -> Vec<String> {
    let mut client = Client::ready(port);
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        client.send(b"MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
        let codes = client.read_codes(3);
        assert_eq!(
            codes,
            vec![250, 250, 354],
            "client {client_number}, message {n}: MAIL, RCPT, DATA"
        );
        client.send(
            format!("X-Sequence: {client_number}-{n}\r\nSubject: load\r\n\r\nbody\r\n.\r\n")
                .as_bytes(),
        );
        let reply = client.read_reply();
        assert_eq!(
            reply.code, 250,
            "client {client_number}, message {n}: {reply:?}"
        );
        // "2.0.0 <alice@example.org> <id> Saved"
        let id = reply.text().split(' ').nth(2).unwrap_or("").to_string();
        ids.push(id);
    }
    let reply = client.command("QUIT");
    assert_eq!(reply.code, 221, "client {client_number}: QUIT: {reply:?}");
    ids
}

#[test]
fn concurrent_clients_no_collision() {
    const CLIENTS: usize = 8;
    const MESSAGES: usize = 50;
    let mut setup = Setup::new("f21");
    let alice = setup.add_account("alice@example.org");
    let _daemon = setup.start("");
    let port = setup.port;

    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| std::thread::spawn(move || deliver_sequence(port, c, MESSAGES)))
        .collect();
    let mut ids = Vec::new();
    for worker in workers {
        ids.extend(worker.join().expect("client thread panicked"));
    }

    let total = CLIENTS * MESSAGES;
    let distinct_ids: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), total, "delivery replies received");
    assert_eq!(distinct_ids.len(), total, "distinct ids in the replies");
    let names = alice.files("new");
    assert_eq!(names.len(), total, "files in new/");
    assert!(alice.files("tmp").is_empty(), "tmp/ is not empty");

    let mut sequences = HashSet::new();
    for message in alice.messages() {
        let text = String::from_utf8_lossy(&message).into_owned();
        let sequence = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Sequence: "))
            .expect("a stored message lacks X-Sequence")
            .to_string();
        sequences.insert(sequence);
    }
    assert_eq!(
        sequences.len(),
        total,
        "distinct messages stored (a file was overwritten)"
    );
}

/// Returns the lines of `log` that belong to session `id`, without the
/// timestamp and process prefix.
fn session_lines<'a>(log: &'a str, id: &str) -> Vec<&'a str> {
    let prefix = format!("{id}: ");
    log.lines()
        .filter_map(|l| l.split_once("]: ").map(|(_, rest)| rest))
        .map(|rest| rest.strip_prefix("warning: ").unwrap_or(rest))
        .filter(|rest| rest.starts_with(&prefix))
        .collect()
}

/// Returns the id of the only session that sent LHLO, because the harness's
/// readiness probe sends none.
fn session_id(daemon: &Daemon) -> String {
    let log = wait_for_log(daemon, ": client=client.test [127.0.0.1]");
    let client_line = log
        .lines()
        .find(|l| l.contains(": client=client.test [127.0.0.1]"))
        .unwrap_or_default();
    client_line
        .split_once("]: ")
        .and_then(|(_, rest)| rest.split_once(':'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no session id in {client_line:?}"))
}

/// Runs the session that `log_lines_per_recipient` checks: a message that
/// alice gets and carol's quota defers, then one over the size limit for
/// alice. Returns the first message as sent.
fn send_logged_transactions(client: &mut Client) -> String {
    let body = format!("Subject: logged\r\n\r\n{}\r\n", "x".repeat(200));
    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "MAIL");
    for rcpt in ["alice@example.org", "carol@example.org"] {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
        assert_reply(&reply, 250, "2.1.5", rcpt);
    }
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "DATA: {reply:?}");
    client.send(body.as_bytes());
    client.send(b".\r\n");
    let reply = client.read_reply();
    assert_reply(&reply, 250, "2.0.0", "alice after DATA");
    let reply = client.read_reply();
    assert_reply(&reply, 452, "4.2.2", "carol over quota after DATA");

    let reply = client.command("MAIL FROM:<s@example.net>");
    assert_reply(&reply, 250, "2.1.0", "second MAIL");
    let reply = client.command("RCPT TO:<alice@example.org>");
    assert_reply(&reply, 250, "2.1.5", "second RCPT");
    let reply = client.command("DATA");
    assert_eq!(reply.code, 354, "second DATA: {reply:?}");
    client.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(2000)).as_bytes());
    let reply = client.read_reply();
    assert_reply(&reply, 552, "5.3.4", "alice after the oversized DATA");
    let reply = client.command("QUIT");
    assert_eq!(reply.code, 221, "QUIT: {reply:?}");
    body
}

/// Asserts that `line`, the `ordinal` to= line of the session, names
/// `name`@example.org and contains `status=<status> (<reply> `.
#[track_caller]
fn assert_to_line(line: &str, ordinal: &str, name: &str, status: &str, reply: &str) {
    assert!(
        line.contains(&format!("to=<{name}@example.org>")),
        "{ordinal} to= line names {name}: {line}"
    );
    assert!(
        line.contains(&format!("status={status} ({reply} ")),
        "{ordinal} to= line has status={status}: {line}"
    );
}

#[test]
fn log_lines_per_recipient() {
    let mut setup = Setup::new("log-lines");
    let alice = setup.add_account("alice@example.org");
    setup.add_account_with_quota("carol@example.org", 59100, "100S");
    let daemon = setup.start("max_message_size = 1000\n");
    let mut client = Client::ready(setup.port);
    let body = send_logged_transactions(&mut client);

    let id = session_id(&daemon);
    let log = wait_for_log(&daemon, &format!("{id}: disconnect"));
    let lines = session_lines(&log, &id);

    let from_lines: Vec<&&str> = lines.iter().filter(|l| l.contains(": from=<")).collect();
    assert_eq!(from_lines.len(), 2, "from= lines; log:\n{log}");
    let expected_from = format!("{id}: from=<s@example.net>, size={}, nrcpt=2", body.len());
    assert_eq!(
        *from_lines[0], expected_from,
        "first from= line (size is the message size with CRLF line ends)"
    );
    assert!(
        from_lines[1].ends_with(", nrcpt=1"),
        "second from= line: {}",
        from_lines[1]
    );

    let to_lines: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(": to=<") && l.contains(", status="))
        .collect();
    assert_eq!(to_lines.len(), 3, "one to= line per recipient; log:\n{log}");
    assert_to_line(to_lines[0], "first", "alice", "sent", "250 2.0.0");
    let alice_file = alice.files("new");
    assert_eq!(alice_file.len(), 1, "alice's files in new/");
    assert!(
        to_lines[0].contains(&format!(
            "path={}",
            alice.maildir().join("new").join(&alice_file[0]).display()
        )),
        "the sent line names the stored file: {}",
        to_lines[0]
    );
    assert_to_line(to_lines[1], "second", "carol", "deferred", "452 4.2.2");
    assert_to_line(to_lines[2], "third", "alice", "bounced", "552 5.3.4");
    for line in &to_lines {
        assert!(
            line.starts_with(&format!("{id}: to=<")),
            "a to= line does not start with the session id {id}: {line}"
        );
    }

    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{id}: disconnect"))),
        "no disconnect line for session {id}; log:\n{log}"
    );
}
