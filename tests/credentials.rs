//! Credential switching and safe Maildir paths, checked against the real binary.
//!
//! In root mode Zoha writes every file and directory of a mailbox as the
//! mailbox owner and never follows a symbolic link inside a mailbox. It
//! rejects owners below `min_uid`, keeps worker threads apart when they act
//! for different owners, and returns each thread to root afterwards. In
//! single-user mode (`user = nobody`) it drops every id for good and rejects
//! mailboxes of other uids. Every test here needs root: it creates accounts
//! with uids that have no passwd entry and starts Zoha as root.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{make_maildir, Account, Client, Daemon, Reply, Setup, WAIT};

/// The uid and gid of `nobody` on Debian, the user for single-user mode.
const NOBODY: u32 = 65534;

/// The replies one recipient got: at RCPT, and after the data when RCPT
/// was accepted.
#[derive(Debug)]
struct RecipientReplies {
    rcpt: Reply,
    data: Option<Reply>,
}

impl RecipientReplies {
    /// Returns the reply that decided this recipient's fate.
    fn outcome(&self) -> &Reply {
        self.data.as_ref().unwrap_or(&self.rcpt)
    }
}

/// Reports whether `reply` has the basic code `code` and the enhanced code
/// `enhanced`.
fn has_code(reply: &Reply, code: u16, enhanced: &str) -> bool {
    reply.code == code && reply.text().starts_with(&format!("{enhanced} "))
}

/// Builds a small message whose `X-Test-Id` header identifies it.
fn message(test_id: &str) -> String {
    format!("Subject: credentials\r\nX-Test-Id: {test_id}\r\n\r\nbody of {test_id}\r\n")
}

/// Runs one transaction on `client`: MAIL, one RCPT per recipient, then
/// `before_data`, then DATA with `body` when any recipient was accepted.
fn transaction(
    client: &mut Client,
    recipients: &[&str],
    body: &str,
    before_data: impl FnOnce(),
) -> Vec<RecipientReplies> {
    let mail = client.command("MAIL FROM:<sender@example.net>");
    assert_eq!(mail.code, 250, "MAIL FROM: {mail:?}");
    let rcpt_replies: Vec<Reply> = recipients
        .iter()
        .map(|r| client.command(&format!("RCPT TO:<{r}>")))
        .collect();
    before_data();

    let accepted = rcpt_replies.iter().filter(|r| r.code == 250).count();
    if accepted == 0 {
        let rset = client.command("RSET");
        assert_eq!(rset.code, 250, "RSET: {rset:?}");
        return rcpt_replies
            .into_iter()
            .map(|rcpt| RecipientReplies { rcpt, data: None })
            .collect();
    }
    let data = client.command("DATA");
    assert_eq!(data.code, 354, "DATA: {data:?}");
    client.send(body.as_bytes());
    client.send(b".\r\n");
    rcpt_replies
        .into_iter()
        .map(|rcpt| {
            let data = (rcpt.code == 250).then(|| client.read_reply());
            RecipientReplies { rcpt, data }
        })
        .collect()
}

/// Connects, runs one transaction and quits.
fn deliver(port: u16, recipients: &[&str], test_id: &str) -> Vec<RecipientReplies> {
    deliver_with(port, recipients, test_id, || {})
}

/// Like [`deliver`], with `before_data` run between the RCPTs and DATA.
fn deliver_with(
    port: u16,
    recipients: &[&str],
    test_id: &str,
    before_data: impl FnOnce(),
) -> Vec<RecipientReplies> {
    let mut client = Client::ready(port);
    let replies = transaction(&mut client, recipients, &message(test_id), before_data);
    let quit = client.command("QUIT");
    assert_eq!(quit.code, 221, "QUIT: {quit:?}");
    replies
}

/// Waits until the daemon's log has a line containing every one of
/// `parts`, and returns that line (`None` after [`WAIT`]). Log lines are
/// written just before the reply is sent, so this rarely waits at all.
fn wait_for_log_line(daemon: &Daemon, parts: &[&str]) -> Option<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = daemon.log();
        let found = log
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)));
        if let Some(line) = found {
            return Some(line.to_string());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Returns `path` and everything below it, without following symbolic links.
fn walk(path: &Path) -> Vec<PathBuf> {
    let mut found = vec![path.to_path_buf()];
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(meta) = fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.file_type().is_dir() {
            continue;
        }
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        for entry in entries {
            let child = entry.expect("read directory entry").path();
            found.push(child.clone());
            pending.push(child);
        }
    }
    found.sort();
    found
}

/// Returns the regular files at or below `path`.
fn regular_files(path: &Path) -> Vec<PathBuf> {
    walk(path)
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
        .collect()
}

/// Returns the value of the `Delivered-To` header of a stored message.
fn delivered_to(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .find_map(|line| line.strip_prefix("Delivered-To: "))
        .unwrap_or_default()
        .to_string()
}

/// Returns the value of the `X-Test-Id` header of a stored message.
fn test_id_of(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .find_map(|line| line.strip_prefix("X-Test-Id: "))
        .unwrap_or_default()
        .to_string()
}

/// Returns the numbers of the `key` line (`Uid:`, `Gid:`, `Groups:`) of a
/// `/proc/.../status` file.
fn status_numbers(status_path: &Path, key: &str) -> Vec<u32> {
    common::status_field(status_path, key)
        .split_whitespace()
        .map(|n| n.parse().expect("number in a status line"))
        .collect()
}

/// Returns the status file of every thread of process `pid`.
fn thread_status_files(pid: u32) -> Vec<PathBuf> {
    let tasks = PathBuf::from(format!("/proc/{pid}/task"));
    let mut files: Vec<PathBuf> = fs::read_dir(&tasks)
        .unwrap_or_else(|e| panic!("list {}: {e}", tasks.display()))
        .map(|entry| entry.expect("task entry").path().join("status"))
        .collect();
    files.sort();
    files
}

#[test]
fn three_owners_one_transaction() {
    if common::skip_unless_root("three_owners_one_transaction") {
        return;
    }
    let mut setup = Setup::new("cred-owners");
    let accounts: Vec<Account> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| setup.add_account(&format!("{name}@example.org")))
        .collect();
    let mut daemon = setup.start("");
    let addresses: Vec<&str> = accounts.iter().map(|a| a.address.as_str()).collect();

    let replies = deliver(setup.port, &addresses, "owners-1");

    for (account, reply) in accounts.iter().zip(&replies) {
        assert!(
            has_code(reply.outcome(), 250, "2.0.0"),
            "delivery to {}: {reply:?}",
            account.address
        );
    }
    for account in &accounts {
        let maildir = account.maildir();
        for sub in ["tmp", "new", "cur"] {
            assert!(
                maildir.join(sub).is_dir(),
                "{} was not created",
                maildir.join(sub).display()
            );
        }
        assert_eq!(
            account.files("new").len(),
            1,
            "messages in {}/new",
            maildir.display()
        );
        assert!(
            account.files("tmp").is_empty(),
            "files left in {}/tmp",
            maildir.display()
        );
        for path in walk(&maildir) {
            let meta = fs::symlink_metadata(&path).expect("stat Maildir entry");
            let expected_mode = if meta.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(meta.uid(), account.uid, "owner uid of {}", path.display());
            assert_eq!(meta.gid(), account.gid, "owner gid of {}", path.display());
            assert_eq!(
                meta.mode() & 0o7777,
                expected_mode,
                "mode of {}",
                path.display()
            );
            assert!(
                meta.is_dir() || meta.is_file(),
                "{} is neither a directory nor a regular file",
                path.display()
            );
        }
    }
    assert!(daemon.stop().success(), "zoha exit status");
}

/// The moment a symbolic link replaces part of a Maildir.
#[derive(Debug, Clone, Copy)]
enum Swap {
    /// Before the transaction starts.
    BeforeRcpt,
    /// After RCPT was accepted, before DATA.
    AfterRcpt,
}

/// Replaces `part` of bob's Maildir (`new`, `tmp`, or "" for the Maildir
/// itself) by a symbolic link to a directory outside that bob can write.
/// Then checks that bob gets `451 4.3.0`, nothing lands outside, the log
/// names the link, and alice, in the same transaction, gets the message.
fn check_symlink_rejected(part: &str, swap: Swap) {
    let tag = format!("cred-link-{}", if part.is_empty() { "root" } else { part });
    let mut setup = Setup::new(&tag);
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let mut daemon = setup.start("");

    // The outside directory is a complete Maildir writable by bob, so
    // following the link would succeed. Only rejecting the link keeps it empty.
    let outside = setup.dir.path.join("outside");
    make_maildir(&outside, bob.uid);
    let link = if part.is_empty() {
        bob.maildir()
    } else {
        bob.maildir().join(part)
    };
    let target = if part.is_empty() {
        outside.clone()
    } else {
        outside.join(part)
    };
    // Zoha may or may not have created bob's Maildir at RCPT, so it is
    // completed here before the part is moved away.
    let replace_with_link = || {
        make_maildir(&bob.maildir(), bob.uid);
        fs::rename(&link, setup.dir.path.join("moved-away")).expect("move the directory away");
        std::os::unix::fs::symlink(&target, &link).expect("create the symbolic link");
    };
    let outside_before = walk(&outside);

    let recipients = [alice.address.as_str(), bob.address.as_str()];
    let replies = match swap {
        Swap::BeforeRcpt => {
            replace_with_link();
            deliver(setup.port, &recipients, "link-1")
        }
        Swap::AfterRcpt => deliver_with(setup.port, &recipients, "link-1", replace_with_link),
    };

    assert!(
        has_code(replies[0].outcome(), 250, "2.0.0"),
        "delivery to alice beside the link ({part:?}, {swap:?}): {:?}",
        replies[0]
    );
    assert_eq!(alice.files("new").len(), 1, "messages in alice's new/");
    assert!(
        has_code(replies[1].outcome(), 451, "4.3.0"),
        "delivery through the link at {} ({swap:?}): {:?}",
        link.display(),
        replies[1]
    );
    assert_eq!(
        walk(&outside),
        outside_before,
        "entries under {} after a delivery through {}",
        outside.display(),
        link.display()
    );
    assert!(
        fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "{} is no longer the symbolic link",
        link.display()
    );
    let link_text = link.display().to_string();
    assert!(
        wait_for_log_line(&daemon, &[&bob.address, &link_text]).is_some(),
        "no log line names {} and {}; log:\n{}",
        bob.address,
        link_text,
        daemon.log()
    );
    if !part.is_empty() {
        assert!(
            regular_files(&bob.maildir()).is_empty(),
            "files in bob's Maildir: {:?}",
            regular_files(&bob.maildir())
        );
    }
    assert!(daemon.stop().success(), "zoha exit status");
}

#[test]
fn symlinked_new_rejected() {
    if common::skip_unless_root("symlinked_new_rejected") {
        return;
    }
    check_symlink_rejected("new", Swap::BeforeRcpt);
}

#[test]
fn symlinked_tmp_rejected() {
    if common::skip_unless_root("symlinked_tmp_rejected") {
        return;
    }
    check_symlink_rejected("tmp", Swap::BeforeRcpt);
}

#[test]
fn symlinked_maildir_rejected() {
    if common::skip_unless_root("symlinked_maildir_rejected") {
        return;
    }
    check_symlink_rejected("", Swap::BeforeRcpt);
}

#[test]
fn symlink_swapped_in_after_rcpt() {
    if common::skip_unless_root("symlink_swapped_in_after_rcpt") {
        return;
    }
    for part in ["new", "tmp", ""] {
        check_symlink_rejected(part, Swap::AfterRcpt);
    }
}

#[test]
fn regular_file_cur_rejected() {
    if common::skip_unless_root("regular_file_cur_rejected") {
        return;
    }
    let mut setup = Setup::new("cred-cur-file");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let mut daemon = setup.start("");
    make_maildir(&bob.maildir(), bob.uid);
    let cur = bob.maildir().join("cur");
    fs::remove_dir(&cur).expect("remove cur");
    fs::write(&cur, b"not a directory\n").expect("write cur as a file");
    std::os::unix::fs::chown(&cur, Some(bob.uid), Some(bob.gid)).expect("chown cur");

    let replies = deliver(setup.port, &[&alice.address, &bob.address], "cur-1");

    assert!(
        has_code(replies[0].outcome(), 250, "2.0.0"),
        "delivery to alice: {:?}",
        replies[0]
    );
    assert!(
        has_code(replies[1].outcome(), 451, "4.3.0"),
        "delivery to bob with a regular file as cur: {:?}",
        replies[1]
    );
    assert_eq!(
        fs::read(&cur).expect("read cur"),
        b"not a directory\n",
        "content of the regular file {}",
        cur.display()
    );
    assert!(bob.files("new").is_empty(), "messages in bob's new/");
    assert!(bob.files("tmp").is_empty(), "files in bob's tmp/");
    let cur_text = cur.display().to_string();
    assert!(
        wait_for_log_line(&daemon, &[&bob.address, &cur_text]).is_some(),
        "no log line names {} and {}; log:\n{}",
        bob.address,
        cur_text,
        daemon.log()
    );
    assert!(daemon.stop().success(), "zoha exit status");
}

#[test]
fn low_uids_rejected_at_rcpt() {
    if common::skip_unless_root("low_uids_rejected_at_rcpt") {
        return;
    }
    let mut setup = Setup::new("cred-min-uid");
    let root = setup.add_account_with_uid("root@example.org", 0);
    let system = setup.add_account_with_uid("system@example.org", 50);
    let below = setup.add_account_with_uid("below@example.org", 99);
    let lowest = setup.add_account_with_uid("lowest@example.org", 100);

    // A normal uid with root's group: the harness gives every account gid =
    // uid, so this one is written to the userdb file by hand.
    let wheel = Account {
        address: "wheel@example.org".into(),
        uid: 59050,
        gid: 0,
        home: setup.dir.path.join("home").join("wheel"),
    };
    fs::create_dir_all(&wheel.home).expect("create wheel's home");
    std::os::unix::fs::chown(&wheel.home, Some(wheel.uid), Some(0)).expect("chown wheel's home");
    setup.add_userdb_line(&format!(
        "{}\tuid={}|gid=0|home={}",
        wheel.address,
        wheel.uid,
        wheel.home.display()
    ));
    let mut daemon = setup.start("");

    for account in [&root, &system, &below, &wheel] {
        let replies = deliver(setup.port, &[&account.address], "low-uid");
        assert!(
            has_code(&replies[0].rcpt, 451, "4.3.5"),
            "RCPT for uid {} gid {}: {:?}",
            account.uid,
            account.gid,
            replies[0]
        );
        assert_eq!(
            common::list_files(&account.home),
            Vec::<String>::new(),
            "entries created in the home of {}",
            account.address
        );
        assert!(
            wait_for_log_line(&daemon, &[&account.address, "451 4.3.5"]).is_some(),
            "no log line for {}; log:\n{}",
            account.address,
            daemon.log()
        );
    }

    // min_uid itself is allowed.
    let replies = deliver(setup.port, &[&lowest.address], "min-uid");
    assert!(
        has_code(replies[0].outcome(), 250, "2.0.0"),
        "delivery to uid 100 (equal to min_uid): {:?}",
        replies[0]
    );
    assert!(daemon.stop().success(), "zoha exit status");
}

#[test]
fn concurrent_owners_stay_isolated() {
    if common::skip_unless_root("concurrent_owners_stay_isolated") {
        return;
    }
    const CLIENTS: usize = 6;
    const MESSAGES: usize = 40;
    let mut setup = Setup::new("cred-concurrent");
    let accounts: Vec<Account> = (0..CLIENTS)
        .map(|i| setup.add_account(&format!("user{i}@example.org")))
        .collect();
    let mut daemon = setup.start("");

    // Client c sends message m to two neighbouring accounts, so every
    // worker thread switches between owners all the time.
    let recipients_of = |c: usize, m: usize| [(c + m) % CLIENTS, (c + m + 1) % CLIENTS];
    let port = setup.port;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addresses: Vec<String> = accounts.iter().map(|a| a.address.clone()).collect();
            std::thread::spawn(move || {
                let mut client = Client::ready(port);
                for m in 0..MESSAGES {
                    let [first, second] = recipients_of(c, m);
                    let recipients = [addresses[first].as_str(), addresses[second].as_str()];
                    let body = message(&format!("c{c}-m{m}"));
                    for reply in transaction(&mut client, &recipients, &body, || {}) {
                        assert!(
                            has_code(reply.outcome(), 250, "2.0.0"),
                            "client {c} message {m}: {reply:?}"
                        );
                    }
                }
                assert_eq!(client.command("QUIT").code, 221, "QUIT of client {c}");
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("client thread");
    }

    let mut expected: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for c in 0..CLIENTS {
        for m in 0..MESSAGES {
            for account in recipients_of(c, m) {
                expected
                    .entry(account)
                    .or_default()
                    .insert(format!("c{c}-m{m}"));
            }
        }
    }
    for (index, account) in accounts.iter().enumerate() {
        let mut found = BTreeSet::new();
        for path in regular_files(&account.maildir()) {
            let meta = fs::symlink_metadata(&path).expect("stat message");
            assert_eq!(meta.uid(), account.uid, "owner uid of {}", path.display());
            assert_eq!(meta.gid(), account.gid, "owner gid of {}", path.display());
            let content = fs::read(&path).expect("read message");
            assert_eq!(
                delivered_to(&content),
                account.address,
                "Delivered-To of {}",
                path.display()
            );
            found.insert(test_id_of(&content));
        }
        assert_eq!(
            found,
            expected.remove(&index).unwrap_or_default(),
            "messages in the Maildir of {}",
            account.address
        );
        assert!(
            account.files("tmp").is_empty(),
            "files left in tmp/ of {}",
            account.address
        );
    }
    assert!(daemon.stop().success(), "zoha exit status");
}

#[test]
fn maildir_of_other_uid_rejected() {
    if common::skip_unless_root("maildir_of_other_uid_rejected") {
        return;
    }
    let mut setup = Setup::new("cred-other-uid");
    let alice = setup.add_account("alice@example.org");
    let mut daemon = setup.start("");
    let first = deliver(setup.port, &[&alice.address], "other-1");
    assert!(
        has_code(first[0].outcome(), 250, "2.0.0"),
        "first delivery as uid {}: {:?}",
        alice.uid,
        first[0]
    );

    // The administrator changes the account's uid in the userdb file but
    // not the owner of its files, so the home and the Maildir Zoha created
    // (mode 0700) still belong to the old uid. The new uid cannot even open
    // that Maildir, yet the reply and the log must still name its owner.
    // Zoha reads the userdb file again when it changes.
    let old_uid = alice.uid;
    let new_uid = old_uid + 100;
    setup.accounts[0].uid = new_uid;
    setup.accounts[0].gid = new_uid;
    setup.write_userdb();

    let replies = deliver(setup.port, &[&alice.address], "other-2");

    assert!(
        has_code(replies[0].outcome(), 451, "4.3.5"),
        "delivery as uid {new_uid} into a Maildir of uid {old_uid}: {:?}",
        replies[0]
    );
    assert_eq!(alice.files("new").len(), 1, "messages in alice's new/");
    let belongs = format!("belongs to uid {old_uid}");
    assert!(
        wait_for_log_line(&daemon, &[&alice.address, &belongs]).is_some(),
        "no log line with \"{belongs}\"; log:\n{}",
        daemon.log()
    );
    assert!(daemon.stop().success(), "zoha exit status");
}

#[test]
fn readable_maildir_of_other_uid() {
    if common::skip_unless_root("readable_maildir_of_other_uid") {
        return;
    }
    let mut setup = Setup::new("cred-other-readable");
    let alice = setup.add_account("alice@example.org");
    let old_uid = alice.uid;
    let new_uid = old_uid + 100;
    make_maildir(&alice.maildir(), old_uid);
    fs::set_permissions(alice.maildir(), fs::Permissions::from_mode(0o755)).expect("chmod Maildir");
    setup.accounts[0].uid = new_uid;
    setup.accounts[0].gid = new_uid;
    let mut daemon = setup.start("");

    let replies = deliver(setup.port, &[&alice.address], "readable-1");

    assert!(
        has_code(replies[0].outcome(), 451, "4.3.5"),
        "delivery as uid {new_uid} into a readable Maildir of uid {old_uid}: {:?}",
        replies[0]
    );
    assert!(
        regular_files(&alice.maildir()).is_empty(),
        "files in the Maildir of uid {old_uid}"
    );
    let belongs = format!("belongs to uid {old_uid}");
    assert!(
        wait_for_log_line(&daemon, &[&alice.address, &belongs]).is_some(),
        "no log line with \"{belongs}\"; log:\n{}",
        daemon.log()
    );
    assert!(daemon.stop().success(), "zoha exit status");
}

/// Starts Zoha as root with `user = nobody` and two accounts: one owned by
/// `nobody`, one by another uid. The test directory must let nobody read the
/// configuration and write the spool, which the harness already allows.
fn start_single_user(tag: &str) -> (Setup, Daemon, Account, Account) {
    let mut setup = Setup::new(tag);
    let own = setup.add_account_with_uid("box@example.org", NOBODY);
    let other = setup.add_account("other@example.org");
    let spool = setup.dir.path.join("spool");
    let spool_mode = fs::metadata(&spool).expect("stat spool").mode();
    assert_eq!(spool_mode & 0o1777, 0o1777, "mode of {}", spool.display());
    let daemon = setup.start("user = nobody\n");
    (setup, daemon, own, other)
}

#[test]
fn single_user_drops_for_good() {
    if common::skip_unless_root("single_user_drops_for_good") {
        return;
    }
    let (setup, mut daemon, own, _other) = start_single_user("cred-single-ids");

    let replies = deliver(setup.port, &[&own.address], "single-1");

    assert!(
        has_code(replies[0].outcome(), 250, "2.0.0"),
        "delivery to uid {NOBODY}: {:?}",
        replies[0]
    );
    for path in walk(&own.maildir()) {
        let meta = fs::symlink_metadata(&path).expect("stat Maildir entry");
        assert_eq!(meta.uid(), NOBODY, "owner uid of {}", path.display());
        assert_eq!(meta.gid(), NOBODY, "owner gid of {}", path.display());
    }
    for status in thread_status_files(daemon.pid()) {
        assert_eq!(
            status_numbers(&status, "Uid:"),
            vec![NOBODY; 4],
            "real, effective, saved and file system uid in {}",
            status.display()
        );
        assert_eq!(
            status_numbers(&status, "Gid:"),
            vec![NOBODY; 4],
            "real, effective, saved and file system gid in {}",
            status.display()
        );
        assert!(
            !status_numbers(&status, "Groups:").contains(&0),
            "supplementary groups in {} include root's group",
            status.display()
        );
    }
    assert!(daemon.stop().success(), "zoha exit status");
}

#[test]
fn single_user_rejects_other_uid() {
    if common::skip_unless_root("single_user_rejects_other_uid") {
        return;
    }
    let (setup, mut daemon, _own, other) = start_single_user("cred-single-other");

    let replies = deliver(setup.port, &[&other.address], "single-2");

    assert!(
        has_code(&replies[0].rcpt, 451, "4.3.5"),
        "RCPT for uid {} while running as uid {NOBODY}: {:?}",
        other.uid,
        replies[0]
    );
    assert!(
        common::list_files(&other.home).is_empty(),
        "entries created in the home of uid {}",
        other.uid
    );
    assert!(
        wait_for_log_line(&daemon, &[&other.address, "451 4.3.5"]).is_some(),
        "no log line for {}; log:\n{}",
        other.address,
        daemon.log()
    );
    assert!(daemon.stop().success(), "zoha exit status");
}

#[test]
fn idle_threads_back_to_root() {
    if common::skip_unless_root("idle_threads_back_to_root") {
        return;
    }
    let mut setup = Setup::new("cred-restore");
    let accounts: Vec<Account> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| setup.add_account(&format!("{name}@example.org")))
        .collect();
    let mut daemon = setup.start("");
    let main_status = PathBuf::from(format!("/proc/{}/status", daemon.pid()));
    let root_gids = status_numbers(&main_status, "Gid:");
    let root_groups = status_numbers(&main_status, "Groups:");

    // Three sessions deliver to every owner and then stay connected, idle.
    let mut clients = Vec::new();
    for (c, _) in accounts.iter().enumerate() {
        let mut client = Client::ready(setup.port);
        for (m, account) in accounts.iter().enumerate() {
            let body = message(&format!("c{c}-m{m}"));
            let replies = transaction(&mut client, &[&account.address], &body, || {});
            assert!(
                has_code(replies[0].outcome(), 250, "2.0.0"),
                "session {c} delivery to {}: {:?}",
                account.address,
                replies[0]
            );
        }
        clients.push(client);
    }

    let statuses = thread_status_files(daemon.pid());
    assert!(
        statuses.len() > 1,
        "zoha has only {} thread(s) while {} sessions are open",
        statuses.len(),
        clients.len()
    );
    for status in &statuses {
        assert_eq!(
            status_numbers(status, "Uid:"),
            vec![0; 4],
            "real, effective, saved and file system uid in {}",
            status.display()
        );
        assert_eq!(
            status_numbers(status, "Gid:"),
            root_gids,
            "gids in {}",
            status.display()
        );
        assert_eq!(
            status_numbers(status, "Groups:"),
            root_groups,
            "supplementary groups in {}",
            status.display()
        );
    }
    for mut client in clients {
        assert_eq!(client.command("QUIT").code, 221, "QUIT");
    }
    assert!(daemon.stop().success(), "zoha exit status");
}
