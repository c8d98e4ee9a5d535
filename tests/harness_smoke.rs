//! Checks the test harness itself against the real binary: one delivery.

mod common;

use common::{Client, Setup};

#[test]
fn harness_delivers_one_message() {
    let mut setup = Setup::new("smoke");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    let mut c = Client::ready(setup.port);
    assert_eq!(c.command("MAIL FROM:<s@example.net>").code, 250);
    assert_eq!(c.command("RCPT TO:<alice@example.org>").code, 250);
    assert_eq!(c.command("DATA").code, 354);
    c.send(b"Subject: smoke\r\n\r\nhello\r\n.\r\n");
    let reply = c.read_reply();
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(c.command("QUIT").code, 221);
    let messages = alice.messages();
    assert_eq!(messages.len(), 1);
    let (added, rest) = common::split_added_headers(&messages[0]);
    assert!(
        added.starts_with(
            "Return-Path: <s@example.net>\nDelivered-To: alice@example.org\nReceived: "
        ),
        "{added}"
    );
    assert_eq!(rest, b"Subject: smoke\n\nhello\n");
    assert!(daemon.stop().success());
}
