//! Signals sent to the real daemon.
//!
//! SIGTERM and SIGINT stop it. Idle sessions get `421 4.3.2`, and a
//! transaction in flight either completes or leaves nothing behind. SIGHUP
//! rereads the configuration and the account source, or keeps the running
//! configuration when the new file is bad.
//!
//! The tests wait for the daemon's log lines on standard error (`-f`)
//! to know that a signal was handled, never for a fixed time.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{assert_exit_success, wait_for_log, Account, Client, Daemon, Setup, WAIT};

/// Pause between two looks at the log file.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Counts the log lines that contain `needle`.
fn count_in_log(daemon: &Daemon, needle: &str) -> usize {
    daemon
        .log()
        .lines()
        .filter(|line| line.contains(needle))
        .count()
}

/// Sends MAIL and RCPT for `rcpt` on a ready session and returns the RCPT reply code.
fn start_transaction(client: &mut Client, rcpt: &str) -> u16 {
    let mail = client.command("MAIL FROM:<s@example.net>");
    assert_eq!(mail.code, 250, "MAIL: {mail:?}");
    client.command(&format!("RCPT TO:<{rcpt}>")).code
}

/// Runs a whole transaction to `rcpt` on a ready session and returns the
/// code after the body.
fn deliver(client: &mut Client, rcpt: &str) -> u16 {
    let rcpt_code = start_transaction(client, rcpt);
    assert_eq!(rcpt_code, 250, "RCPT TO:<{rcpt}>");
    let data = client.command("DATA");
    assert_eq!(data.code, 354, "DATA: {data:?}");
    client.send(b"Subject: signals\r\n\r\nbody\r\n.\r\n");
    client.read_reply().code
}

/// Writes a userdb file at `path` with one line per account.
fn write_userdb(path: &std::path::Path, accounts: &[Account]) {
    fs::write(path, common::userdb_text(accounts)).expect("write userdb");
}

// --- SIGTERM and SIGINT --------------------------------------------------

/// Checks that a stop signal sends `421 4.3.2` to an idle session and ends
/// the daemon with exit status 0.
fn check_idle_stop(tag: &str, signal: i32) {
    let mut setup = Setup::new(tag);
    setup.add_account("alice@example.org");
    let mut daemon = setup.start("shutdown_timeout = 2\n");
    let mut client = Client::ready(setup.port);
    daemon.signal(signal);
    let reply = client.read_reply();
    assert_eq!(reply.code, 421, "reply to the idle session: {reply:?}");
    assert!(
        reply.text().starts_with("4.3.2 "),
        "enhanced code for the idle session: {reply:?}"
    );
    assert!(client.is_closed(), "the session stayed open");
    let status = daemon.wait();
    assert_exit_success(&daemon, status);
    assert!(
        !setup.socket.exists(),
        "the UNIX socket {} was left behind",
        setup.socket.display()
    );
}

#[test]
fn sigterm_idle_session_gets_421() {
    check_idle_stop("term-idle", libc::SIGTERM);
}

#[test]
fn sigint_idle_session_gets_421() {
    check_idle_stop("int-idle", libc::SIGINT);
}

#[test]
fn sigterm_mid_data_completes_transaction() {
    let mut setup = Setup::new("term-data-done");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("shutdown_timeout = 30\n");
    let mut client = Client::ready(setup.port);
    assert_eq!(start_transaction(&mut client, &alice.address), 250, "RCPT");
    assert_eq!(client.command("DATA").code, 354, "DATA");
    client.send(b"Subject: half\r\n\r\nfirst half\r\n");

    daemon.signal(libc::SIGTERM);
    wait_for_log(&daemon, "SIGTERM received");
    // The client resumes within shutdown_timeout: the message is stored.
    client.send(b"second half\r\n.\r\n");
    let delivered = client.read_reply();
    assert_eq!(delivered.code, 250, "reply after the body: {delivered:?}");
    let closing = client.read_reply();
    assert_eq!(
        closing.code, 421,
        "reply after the transaction: {closing:?}"
    );
    assert!(
        closing.text().starts_with("4.3.2 "),
        "enhanced code after the transaction: {closing:?}"
    );
    let status = daemon.wait();
    assert_exit_success(&daemon, status);
    assert_eq!(alice.files("new").len(), 1, "messages in new/");
    assert_eq!(alice.files("tmp").len(), 0, "files left in tmp/");
    let message = &alice.messages()[0];
    let (_, body) = common::split_added_headers(message);
    assert_eq!(
        body, b"Subject: half\n\nfirst half\nsecond half\n",
        "stored message"
    );
}

#[test]
fn sigterm_stalled_data_leaves_nothing() {
    let mut setup = Setup::new("term-data-stall");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("shutdown_timeout = 2\n");
    let mut client = Client::ready(setup.port);
    assert_eq!(start_transaction(&mut client, &alice.address), 250, "RCPT");
    assert_eq!(client.command("DATA").code, 354, "DATA");
    client.send(b"Subject: stalled\r\n\r\nfirst half, then nothing\r\n");

    daemon.signal(libc::SIGTERM);
    // The client never finishes: after shutdown_timeout the session is
    // aborted, and whatever it receives must not be a 250.
    let status = daemon.wait();
    assert_exit_success(&daemon, status);
    let mut codes = Vec::new();
    while let Ok(reply) = client.try_read_reply() {
        codes.push(reply.code);
    }
    assert!(
        !codes.contains(&250),
        "the aborted transaction got a 250: {codes:?}"
    );
    assert_eq!(codes, vec![421], "replies after the abort");
    assert_eq!(alice.files("new").len(), 0, "messages in new/");
    assert_eq!(alice.files("tmp").len(), 0, "files left in tmp/");
    let spool = common::list_files(&setup.dir.path.join("spool"));
    assert!(spool.is_empty(), "files left in the spool: {spool:?}");
    assert_eq!(
        count_in_log(&daemon, "aborting them"),
        1,
        "log line about aborted sessions; log:\n{}",
        daemon.log()
    );
}

#[test]
fn sigterm_refuses_new_connections() {
    let mut setup = Setup::new("term-refuse");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("shutdown_timeout = 30\n");
    let mut busy = Client::ready(setup.port);
    assert_eq!(start_transaction(&mut busy, &alice.address), 250, "RCPT");
    daemon.signal(libc::SIGTERM);
    wait_for_log(&daemon, "SIGTERM received");
    // The listeners close once the stop is requested; the busy session
    // keeps the daemon alive until it ends.
    let deadline = Instant::now() + WAIT;
    while Client::tcp(setup.port).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(POLL_INTERVAL);
    }
    assert_eq!(busy.command("RSET").code, 250, "RSET on the busy session");
    let closing = busy.read_reply();
    assert_eq!(closing.code, 421, "reply once idle: {closing:?}");
    let status = daemon.wait();
    assert_exit_success(&daemon, status);
}

// --- SIGHUP --------------------------------------------------------------

#[test]
fn sighup_adds_account_keeps_sessions() {
    let mut setup = Setup::new("hup-add");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    let mut old_session = Client::ready(setup.port);

    let bob = setup.add_account("bob@example.org");
    let mut before = Client::ready(setup.port);
    assert_eq!(
        start_transaction(&mut before, &bob.address),
        550,
        "RCPT to bob before the reload"
    );
    assert_eq!(before.command("QUIT").code, 221, "QUIT");

    // Point userdb at a second file, so that the reload changes the
    // configuration and not only the file behind it.
    let second_userdb = setup.dir.path.join("userdb.second");
    write_userdb(&second_userdb, &setup.accounts);
    let config = setup.config_text("").replace(
        &format!("userdb = file:{}", setup.userdb_path().display()),
        &format!("userdb = file:{}", second_userdb.display()),
    );
    assert!(
        config.contains(&second_userdb.display().to_string()),
        "the test failed to switch userdb in:\n{config}"
    );
    fs::write(setup.config_path(), config).expect("write config");
    daemon.signal(libc::SIGHUP);
    wait_for_log(&daemon, "configuration reloaded");

    let mut new_session = Client::ready(setup.port);
    assert_eq!(
        deliver(&mut new_session, &bob.address),
        250,
        "delivery to bob in a new session"
    );
    assert_eq!(bob.files("new").len(), 1, "bob's messages in new/");
    assert_eq!(
        deliver(&mut old_session, &alice.address),
        250,
        "delivery in the session opened before the reload"
    );
    assert_eq!(alice.files("new").len(), 1, "alice's messages in new/");
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
}

#[test]
fn sighup_bad_config_keeps_old() {
    let mut setup = Setup::new("hup-bad");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    let mut config = setup.config_text("");
    config.push_str("bogus = 1\n");
    fs::write(setup.config_path(), config).expect("write config");
    daemon.signal(libc::SIGHUP);
    wait_for_log(&daemon, "reload failed");

    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("reload failed"))
        .unwrap_or_default();
    assert!(
        line.contains("bogus"),
        "the error names the setting: {line}"
    );
    assert!(
        line.contains("keeping the running configuration"),
        "the error says the old configuration stays: {line}"
    );
    assert_eq!(
        count_in_log(&daemon, "configuration reloaded"),
        0,
        "a reload was reported as done"
    );

    let mut client = Client::ready(setup.port);
    assert_eq!(
        deliver(&mut client, &alice.address),
        250,
        "delivery after the failed reload"
    );
    assert_eq!(alice.files("new").len(), 1, "messages in new/");
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
}

#[test]
fn sighup_listen_change_needs_restart() {
    let mut setup = Setup::new("hup-listen");
    setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    let other_port = common::free_port();
    let config = setup.config_text("").replace(
        &format!("listen = 127.0.0.1:{}", setup.port),
        &format!("listen = 127.0.0.1:{other_port}"),
    );
    fs::write(setup.config_path(), config).expect("write config");
    daemon.signal(libc::SIGHUP);
    wait_for_log(&daemon, "configuration reloaded");
    assert_eq!(
        count_in_log(&daemon, "listen changed"),
        1,
        "log line about the listen change; log:\n{}",
        daemon.log()
    );
    let mut client = Client::connect(setup.port);
    assert_eq!(
        client.command("QUIT").code,
        221,
        "the old address still serves"
    );
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
}

#[test]
fn sighup_twice_stays_serving() {
    let mut setup = Setup::new("hup-twice");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    daemon.signal(libc::SIGHUP);
    wait_for_log(&daemon, "configuration reloaded");
    daemon.signal(libc::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while count_in_log(&daemon, "configuration reloaded") < 2 {
        assert!(
            Instant::now() < deadline,
            "the second SIGHUP was not handled; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    let mut client = Client::ready(setup.port);
    assert_eq!(deliver(&mut client, &alice.address), 250, "delivery");
    let status = daemon.stop();
    assert_exit_success(&daemon, status);
}
