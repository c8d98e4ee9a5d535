//! `+detail` folders and spam routing, as Courier IMAP shows them afterwards.
//!
//! Each test delivers over LMTP and checks the Maildir on disk. When Courier
//! IMAP is installed, the test also reads the mailbox back as its owner in
//! pre-authenticated mode (LIST, LSUB, SELECT and FETCH).
//!
//! Folder names on disk: Courier-IMAP 5 and maildrop 3 (Debian 12 ships
//! courier-imap 5.0.13) store a folder `Résumé` as the directory `.Résumé`
//! in UTF-8; the modified-UTF-7 form `.R&AOk-sum&AOk-` is the pre-Unicode
//! layout that `maildirmake --convutf8` converts (maildirmake(1), "Converting
//! pre-unicode format maildirs"). IMAP clients that have not enabled
//! UTF8=ACCEPT still see the modified-UTF-7 name on the wire.

mod common;
#[path = "courier/support.rs"]
mod support;

use std::fs;
use std::path::Path;

use common::{Account, Daemon, Reply, Setup};
use support::Owner;

const MESSAGE: &[u8] = b"From: Sender <s@example.net>\r\nSubject: folders\r\n\r\nbody line\r\n";

/// Starts zoha with `extra` settings and one account, `address`.
fn start(tag: &str, address: &str, extra: &str) -> (Setup, Daemon, Account) {
    let mut setup = Setup::new(tag);
    let account = setup.add_account(address);
    let daemon = setup.start(extra);
    (setup, daemon, account)
}

/// Delivers `message` to `recipient`; returns the reply after the data.
fn deliver(port: u16, mail: &str, recipient: &str, message: &[u8]) -> Reply {
    let (rcpt, data) = support::transaction(port, mail, &[recipient], message);
    assert_eq!(rcpt[0].code, 250, "RCPT TO:<{recipient}>: {rcpt:?}");
    data.into_iter().next().expect("reply after DATA")
}

fn deliver_plain(port: u16, recipient: &str, message: &[u8]) -> Reply {
    deliver(port, "MAIL FROM:<s@example.net>", recipient, message)
}

/// Names of the messages in `<maildir>/<folder>/new` (`folder` "" for INBOX).
fn new_files(account: &Account, folder: &str) -> Vec<String> {
    common::list_files(&account.maildir().join(folder).join("new"))
}

/// Checks that Courier IMAP serves exactly `count` messages in `folder`, the
/// first of them `sent` after Zoha's three header fields.
fn assert_courier_folder(account: &Account, folder: &str, count: usize, sent: &[u8]) {
    let fetched = Owner::of(account).fetch_all(&account.maildir(), folder);
    assert_eq!(
        fetched.len(),
        count,
        "messages Courier IMAP shows in {folder}"
    );
    if let Some(first) = fetched.first() {
        let (added, rest) = common::split_added_headers(&first.body);
        assert!(
            added.starts_with("Return-Path: "),
            "{folder}: added fields: {added}"
        );
        assert_eq!(
            String::from_utf8_lossy(&rest),
            String::from_utf8_lossy(sent),
            "{folder}: the message as Courier IMAP serves it"
        );
    }
}

/// Courier IMAP's `LIST "" "*"` or `LSUB "" "*"` names for `account`.
fn courier_folders(account: &Account, verb: &str) -> Vec<String> {
    Owner::of(account).folders(&account.maildir(), verb)
}

/// Creates the Maildir++ folder `name` of `account`'s Maildir as Courier does.
fn make_courier_folder(account: &Account, name: &str) {
    let owner = Owner::of(account);
    let maildir = account.maildir();
    let maildir = maildir.to_str().expect("UTF-8 path");
    owner.maildirmake(&[maildir]);
    owner.maildirmake(&["-f", name, maildir]);
}

#[test]
fn detail_folder_existing_receives() {
    if !support::courier_available("detail_folder_existing_receives") {
        return;
    }
    let (setup, _daemon, alice) =
        start("folder-yes", "alice@example.org", "detail_folders = yes\n");
    make_courier_folder(&alice, "lists");

    let reply = deliver_plain(setup.port, "alice+lists@example.org", MESSAGE);

    assert_eq!(reply.code, 250, "after DATA: {reply:?}");
    assert_eq!(new_files(&alice, ".lists").len(), 1, "files in .lists/new");
    assert!(new_files(&alice, "").is_empty(), "files in INBOX new/");
    assert_courier_folder(&alice, "INBOX.lists", 1, MESSAGE);
    assert_courier_folder(&alice, "INBOX", 0, MESSAGE);
}

#[test]
fn detail_folder_missing_uses_inbox() {
    let (setup, _daemon, alice) = start(
        "folder-missing",
        "alice@example.org",
        "detail_folders = yes\n",
    );

    let reply = deliver_plain(setup.port, "alice+lists@example.org", MESSAGE);

    assert_eq!(reply.code, 250, "after DATA: {reply:?}");
    assert_eq!(new_files(&alice, "").len(), 1, "files in INBOX new/");
    assert!(
        !alice.maildir().join(".lists").exists(),
        "detail_folders = yes created .lists"
    );
    if support::courier_available("detail_folder_missing_uses_inbox") {
        assert_eq!(courier_folders(&alice, "LIST"), ["INBOX"], "Courier LIST");
        assert_courier_folder(&alice, "INBOX", 1, MESSAGE);
    }
}

#[test]
fn detail_folder_create_subscribes() {
    let (setup, _daemon, alice) = start(
        "folder-create",
        "alice@example.org",
        "detail_folders = create\n",
    );

    let first = deliver_plain(setup.port, "alice+lists@example.org", MESSAGE);
    let second = deliver_plain(setup.port, "alice+lists@example.org", MESSAGE);

    assert_eq!(first.code, 250, "first delivery: {first:?}");
    assert_eq!(second.code, 250, "second delivery: {second:?}");
    let folder = alice.maildir().join(".lists");
    assert_eq!(new_files(&alice, ".lists").len(), 2, "files in .lists/new");
    for sub in ["", "cur", "new", "tmp"] {
        let (uid, mode) = common::owner_and_mode(&folder.join(sub));
        assert_eq!(uid, alice.uid, "owner of .lists/{sub}");
        assert_eq!(mode, 0o700, "mode of .lists/{sub}");
    }
    let marker = folder.join("maildirfolder");
    assert_eq!(
        fs::metadata(&marker).map(|m| m.len()).ok(),
        Some(0),
        "empty maildirfolder"
    );
    assert_eq!(
        common::owner_and_mode(&marker),
        (alice.uid, 0o600),
        "maildirfolder owner and mode"
    );
    let subscribed = fs::read_to_string(alice.maildir().join("courierimapsubscribed"))
        .expect("courierimapsubscribed");
    assert_eq!(
        subscribed.lines().filter(|l| *l == "INBOX.lists").count(),
        1,
        "courierimapsubscribed: {subscribed}"
    );
    if support::courier_available("detail_folder_create_subscribes") {
        assert_eq!(
            courier_folders(&alice, "LIST"),
            ["INBOX", "INBOX.lists"],
            "Courier LIST"
        );
        let lsub = courier_folders(&alice, "LSUB");
        assert!(
            lsub.contains(&"INBOX.lists".to_string()),
            "Courier LSUB: {lsub:?}"
        );
        assert_courier_folder(&alice, "INBOX.lists", 2, MESSAGE);
    }
}

#[test]
fn detail_folder_hierarchy_created() {
    let (setup, _daemon, alice) = start(
        "folder-levels",
        "alice@example.org",
        "detail_folders = create\n",
    );

    let reply = deliver_plain(setup.port, "alice+lists.rust@example.org", MESSAGE);

    assert_eq!(reply.code, 250, "after DATA: {reply:?}");
    assert_eq!(
        new_files(&alice, ".lists.rust").len(),
        1,
        "files in .lists.rust/new"
    );
    if support::courier_available("detail_folder_hierarchy_created") {
        let list = courier_folders(&alice, "LIST");
        assert!(
            list.contains(&"INBOX.lists.rust".to_string()),
            "Courier LIST: {list:?}"
        );
        assert_courier_folder(&alice, "INBOX.lists.rust", 1, MESSAGE);
    }
}

#[test]
fn detail_folder_unusable_names_use_inbox() {
    let (setup, _daemon, alice) = start(
        "folder-names",
        "alice@example.org",
        "detail_folders = create\n",
    );

    for recipient in [
        "alice+@example.org",
        "alice+INBOX@example.org",
        "alice+inbox@example.org",
        "alice+.hidden@example.org",
    ] {
        let reply = deliver_plain(setup.port, recipient, MESSAGE);
        assert_eq!(reply.code, 250, "{recipient}: {reply:?}");
    }

    assert_eq!(new_files(&alice, "").len(), 4, "files in INBOX new/");
    let hidden: Vec<String> = common::list_files(&alice.maildir())
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "folders created: {hidden:?}");
    if support::courier_available("detail_folder_unusable_names_use_inbox") {
        assert_eq!(courier_folders(&alice, "LIST"), ["INBOX"], "Courier LIST");
    }
}

#[test]
fn spam_header_routes_to_junk() {
    let (setup, _daemon, alice) = start(
        "folder-spam",
        "alice@example.org",
        "spam_header = X-Spam-Flag: YES\n",
    );
    let spam = b"X-Spam-Flag: yes\r\nSubject: buy now\r\n\r\nspam\r\n".as_slice();
    let lowercase_name = b"x-spam-flag: YES\r\nSubject: buy later\r\n\r\nspam\r\n".as_slice();
    let ham = b"X-Spam-Flag: NO\r\nSubject: hello\r\n\r\nham\r\n".as_slice();
    let plain = b"Subject: plain\r\n\r\nham\r\n".as_slice();

    for (name, message) in [
        ("spam", spam),
        ("lowercase name", lowercase_name),
        ("ham", ham),
        ("plain", plain),
    ] {
        let reply = deliver_plain(setup.port, "alice@example.org", message);
        assert_eq!(reply.code, 250, "{name}: {reply:?}");
    }

    assert_eq!(new_files(&alice, ".Junk").len(), 2, "files in .Junk/new");
    assert_eq!(new_files(&alice, "").len(), 2, "files in INBOX new/");
    assert!(
        alice.maildir().join(".Junk/maildirfolder").exists(),
        ".Junk lacks its maildirfolder file"
    );
    if support::courier_available("spam_header_routes_to_junk") {
        assert_eq!(
            courier_folders(&alice, "LIST"),
            ["INBOX", "INBOX.Junk"],
            "Courier LIST"
        );
        let lsub = courier_folders(&alice, "LSUB");
        assert!(
            lsub.contains(&"INBOX.Junk".to_string()),
            "Courier LSUB: {lsub:?}"
        );
        let junk = Owner::of(&alice).fetch_all(&alice.maildir(), "INBOX.Junk");
        assert_eq!(junk.len(), 2, "messages in INBOX.Junk");
    }
}

#[test]
fn spam_header_beats_detail_folder() {
    let (setup, _daemon, alice) = start(
        "folder-spam-detail",
        "alice@example.org",
        "spam_header = X-Spam: Yes\nspam_folder = .Spam\ndetail_folders = create\n",
    );
    let spam = b"X-Spam: Yes\r\nSubject: rspamd says spam\r\n\r\nspam\r\n".as_slice();

    let reply = deliver_plain(setup.port, "alice+lists@example.org", spam);

    assert_eq!(reply.code, 250, "after DATA: {reply:?}");
    assert_eq!(new_files(&alice, ".Spam").len(), 1, "files in .Spam/new");
    assert!(
        !alice.maildir().join(".lists").exists(),
        ".lists created for a spam message"
    );
    if support::courier_available("spam_header_beats_detail_folder") {
        assert_courier_folder(&alice, "INBOX.Spam", 1, spam);
    }
}

/// The IMAP (modified UTF-7) name of the folder `Entwürfe` below INBOX.
const DRAFTS_IMAP: &str = "INBOX.Entw&APw-rfe";
/// Its directory in a Courier 5 Maildir (UTF-8).
const DRAFTS_DIR: &str = ".Entwürfe";

#[test]
fn utf8_detail_folder_created() {
    let (setup, _daemon, jorg) = start(
        "folder-utf8",
        "jörg@example.org",
        "detail_folders = create\n",
    );

    let reply = deliver(
        setup.port,
        "MAIL FROM:<s@example.net> SMTPUTF8",
        "jörg+Entwürfe@example.org",
        MESSAGE,
    );

    assert_eq!(reply.code, 250, "after DATA: {reply:?}");
    if support::courier_available("utf8_detail_folder_created") {
        // Courier IMAP shows a modified-UTF-7 directory name as the literal
        // text, with its "&" escaped: INBOX.Entw&-APw-rfe.
        assert_eq!(
            courier_folders(&jorg, "LIST"),
            ["INBOX", DRAFTS_IMAP],
            "Courier LIST"
        );
        let lsub = courier_folders(&jorg, "LSUB");
        assert!(
            lsub.contains(&DRAFTS_IMAP.to_string()),
            "Courier LSUB: {lsub:?}"
        );
        assert_courier_folder(&jorg, DRAFTS_IMAP, 1, MESSAGE);
    }
    let folders: Vec<String> = common::list_files(&jorg.maildir())
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(
        folders,
        [DRAFTS_DIR],
        "folder directories in jörg's Maildir"
    );
}

#[test]
fn utf8_detail_folder_made_by_courier() {
    if !support::courier_available("utf8_detail_folder_made_by_courier") {
        return;
    }
    let (setup, _daemon, jorg) = start(
        "folder-utf8-yes",
        "jörg@example.org",
        "detail_folders = yes\n",
    );
    let owner = Owner::of(&jorg);
    let maildir = jorg.maildir();
    owner.maildirmake(&[maildir.to_str().expect("UTF-8 path")]);
    let created = owner.imap(&maildir, &[&format!("CREATE \"{DRAFTS_IMAP}\"")]);
    assert!(
        String::from_utf8_lossy(&created).contains("t1 OK"),
        "Courier IMAP CREATE: {}",
        String::from_utf8_lossy(&created)
    );
    assert!(
        maildir.join(DRAFTS_DIR).is_dir(),
        "Courier's directory for {DRAFTS_IMAP}"
    );

    let reply = deliver(
        setup.port,
        "MAIL FROM:<s@example.net> SMTPUTF8",
        "jörg+Entwürfe@example.org",
        MESSAGE,
    );

    assert_eq!(reply.code, 250, "after DATA: {reply:?}");
    assert_eq!(
        new_files(&jorg, DRAFTS_DIR).len(),
        1,
        "files in {DRAFTS_DIR}/new"
    );
    assert_courier_folder(&jorg, DRAFTS_IMAP, 1, MESSAGE);
    assert!(
        !Path::new(&maildir.join(".Entw&APw-rfe")).exists(),
        "a second, modified-UTF-7 folder"
    );
}
