//! Maildir++ quota, with Courier's deliverquota and IMAP server as the reference.
//!
//! The oracle tests deliver the same sequence of messages into two Maildirs
//! that carry the same quota: one through Zoha over LMTP, one with maildrop's
//! `deliverquota` run as the owner. Each step must get the same decision
//! (Zoha's `250` against exit status 0, Zoha's `452 4.2.2` against exit
//! status 77), and at the end Courier IMAP's GETQUOTAROOT must report the
//! same usage for both. `deliverquota` receives the very bytes Zoha stored
//! (or, when Zoha refused, the copy it stored for a second recipient without
//! a quota whose address has the same length), so both Maildirs hold
//! identical files.
//!
//! Courier's rules (courier-libs `maildir/maildirquota.c` and
//! `README.maildirquota.html`): a missing `maildirsize` means no quota unless
//! the account names one. A file of 5120 bytes or more, or with negative
//! totals, is recounted. A message fits while usage plus its size stays at
//! or below each limit. When the totals in the file are over quota, the file
//! is recounted if it has more than one size line or is at least 15 minutes
//! old. Recounting skips `.Trash` and messages flagged deleted (`:2,...T`).
//!
//! The tests of over-quota replies at RCPT and after DATA need no Courier
//! program and run everywhere.

mod common;
#[path = "courier/support.rs"]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{make_maildir, Account, Client, Daemon, Reply, Setup};
use support::{Owner, OVER_QUOTA_EXIT};

/// First uid for the accounts these tests add by hand (the harness counts up from 59001).
const MANUAL_UID: u32 = 59500;

/// Writes `bytes` to `path` as a file of `uid` with mode 0644, as Courier does.
fn write_owned(path: &Path, bytes: &[u8], uid: u32) {
    fs::write(path, bytes).expect("write file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod");
    common::chown_if_root(path, uid);
}

/// A decision for one message: delivered or refused as over quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Delivered,
    OverQuota,
}

/// Two Maildirs with the same quota: alice's, written by Zoha, and one
/// beside it written by deliverquota. The recipient scrat@ has no quota, so
/// its copies stand in for the messages Zoha rejected for alice.
struct Oracle {
    setup: Setup,
    _daemon: Daemon,
    alice: Account,
    scratch: Account,
    owner: Owner,
    zoha: PathBuf,
    courier: PathBuf,
    /// The account quota passed to deliverquota, as maildrop passes it.
    account_quota: Option<String>,
    /// Zoha's stored size minus the LF length of the message, measured once.
    overhead: usize,
    /// Files each side stored, in delivery order: (Zoha's, deliverquota's).
    stored: Vec<(PathBuf, PathBuf)>,
}

impl Oracle {
    /// Sets up both Maildirs (with `maildirmake`, plus `-q maildir_quota`
    /// when given); alice's userdb line carries `account_quota` when given.
    /// Returns `None` when Courier's programs are missing.
    fn new(
        test: &str,
        maildir_quota: Option<&str>,
        account_quota: Option<&str>,
        extra_config: &str,
    ) -> Option<Oracle> {
        if !support::courier_available(test) {
            return None;
        }
        let mut setup = Setup::new(test);
        let scratch = setup.add_account("scrat@example.org");
        let alice = match account_quota {
            Some(quota) => setup.add_account_with_quota("alice@example.org", MANUAL_UID, quota),
            None => setup.add_account("alice@example.org"),
        };
        let owner = Owner::of(&alice);
        let zoha = alice.maildir();
        let courier = alice.home.join("Courier");
        owner.make_maildir(&zoha, maildir_quota);
        owner.make_maildir(&courier, maildir_quota);
        let daemon = setup.start(extra_config);
        let mut oracle = Oracle {
            setup,
            _daemon: daemon,
            alice,
            scratch,
            owner,
            zoha,
            courier,
            account_quota: account_quota.map(str::to_string),
            overhead: 0,
            stored: Vec::new(),
        };
        oracle.overhead = oracle.measure_overhead();
        Some(oracle)
    }

    /// Delivers a probe to scrat@ alone and returns its stored size less its length.
    fn measure_overhead(&self) -> usize {
        let length = 200;
        let message = support::message_of_length("probe", length);
        let (_, data) = self.send(&[self.scratch.address.as_str()], &message);
        let id = support::delivery_id(&data[0]);
        let file = support::file_for_id(&self.scratch.maildir().join("new"), &id);
        fs::metadata(file).expect("probe file").len() as usize - length
    }

    fn send(&self, recipients: &[&str], message: &[u8]) -> (Vec<Reply>, Vec<Reply>) {
        support::transaction(
            self.setup.port,
            "MAIL FROM:<s@example.net>",
            recipients,
            message,
        )
    }

    /// Delivers a message that Zoha stores in about `stored_size` bytes to
    /// both sides; returns (Zoha's decision, deliverquota's decision).
    fn deliver(&mut self, step: &str, stored_size: usize) -> (Decision, Decision) {
        let message = support::message_of_length(step, stored_size - self.overhead);
        let recipients = [self.scratch.address.as_str(), self.alice.address.as_str()];
        let (rcpt, data) = self.send(&recipients, &message);
        assert_eq!(rcpt[0].code, 250, "{step}: scrat@ RCPT: {rcpt:?}");
        let alice_reply = if rcpt[1].code == 250 {
            &data[1]
        } else {
            &rcpt[1]
        };
        let zoha = decision_of(step, alice_reply);

        // The bytes deliverquota gets: alice's copy, or the stand-in copy.
        let zoha_file = match zoha {
            Decision::Delivered => Some(support::file_for_id(
                &self.zoha.join("new"),
                &support::delivery_id(alice_reply),
            )),
            Decision::OverQuota => None,
        };
        let scratch_file = support::file_for_id(
            &self.scratch.maildir().join("new"),
            &support::delivery_id(&data[0]),
        );
        let bytes = fs::read(zoha_file.as_ref().unwrap_or(&scratch_file)).expect("read copy");

        let before = common::list_files(&self.courier.join("new"));
        let code = self
            .owner
            .deliverquota(&self.courier, &bytes, self.account_quota.as_deref());
        let courier = if code == OVER_QUOTA_EXIT {
            Decision::OverQuota
        } else {
            Decision::Delivered
        };
        let added: Vec<String> = common::list_files(&self.courier.join("new"))
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        if let (Some(zoha_file), [name]) = (zoha_file, added.as_slice()) {
            self.stored
                .push((zoha_file, self.courier.join("new").join(name)));
        }
        (zoha, courier)
    }

    /// Delivers `steps` (name, stored size) and checks each decision against deliverquota.
    fn run(&mut self, steps: &[(&str, usize)], expected: &[Decision]) {
        for (&(step, size), &want) in steps.iter().zip(expected) {
            let (zoha, courier) = self.deliver(step, size);
            assert_eq!(
                courier, want,
                "{step}: deliverquota's decision (expected by the test)"
            );
            assert_eq!(zoha, courier, "{step}: zoha against deliverquota");
        }
    }

    /// Removes the `index`th message both sides stored, behind the quota file's back.
    fn remove_stored(&self, index: usize) {
        let (zoha, courier) = &self.stored[index];
        fs::remove_file(zoha).expect("remove zoha's copy");
        fs::remove_file(courier).expect("remove deliverquota's copy");
    }

    /// Applies `change` to both Maildirs' roots.
    fn both(&self, change: impl Fn(&Path)) {
        change(&self.zoha);
        change(&self.courier);
    }

    /// Checks that Courier IMAP reports the same usage for both Maildirs.
    fn assert_same_usage(&self) {
        let zoha = self.owner.quota_root(&self.zoha);
        let courier = self.owner.quota_root(&self.courier);
        assert_eq!(
            zoha, courier,
            "GETQUOTAROOT INBOX: zoha's Maildir against deliverquota's"
        );
    }
}

/// Maps alice's reply (at RCPT or after DATA) to a decision.
fn decision_of(step: &str, reply: &Reply) -> Decision {
    match reply.code {
        250 => Decision::Delivered,
        452 if reply.text().starts_with("4.2.2") => Decision::OverQuota,
        _ => panic!("{step}: unexpected reply {reply:?}"),
    }
}

use Decision::{Delivered, OverQuota};

#[test]
fn quota_bytes_match_deliverquota() {
    let Some(mut oracle) = Oracle::new("quota-bytes", Some("3000S,10C"), None, "") else {
        return;
    };
    oracle.run(
        &[
            ("first", 1000),
            ("second", 1000),
            ("crosses", 1400),
            ("fits", 600),
            ("crosses again", 500),
            ("nearly full", 370),
            ("no room", 300),
        ],
        &[
            Delivered, Delivered, OverQuota, Delivered, OverQuota, Delivered, OverQuota,
        ],
    );
    oracle.assert_same_usage();
}

#[test]
fn quota_count_matches_deliverquota() {
    let Some(mut oracle) = Oracle::new("quota-count", Some("1000000S,3C"), None, "") else {
        return;
    };
    oracle.run(
        &[("one", 300), ("two", 300), ("three", 300), ("four", 300)],
        &[Delivered, Delivered, Delivered, OverQuota],
    );
    oracle.assert_same_usage();
}

#[test]
fn quota_account_overrides_file() {
    // maildrop passes the account's quota to the Maildir++ code, which
    // rewrites maildirsize when it differs; deliverquota's second argument
    // does the same.
    let Some(mut oracle) = Oracle::new("quota-account", Some("3000S,10C"), Some("5000S,10C"), "")
    else {
        return;
    };
    oracle.run(&[("big", 4000)], &[Delivered]);
    let first_line = fs::read_to_string(oracle.zoha.join("maildirsize"))
        .expect("maildirsize")
        .lines()
        .next()
        .map(str::to_string);
    assert_eq!(
        first_line.as_deref(),
        Some("5000S,10C"),
        "quota line of zoha's maildirsize"
    );
    oracle.assert_same_usage();
}

#[test]
fn quota_deleted_file_recounted() {
    // After several deliveries maildirsize has several size lines. When its
    // totals then go over quota, Courier recounts at once and finds the room
    // a removed message left. (A recount leaves a single line, which Courier
    // trusts for 15 minutes: see the next test.)
    let Some(mut oracle) = Oracle::new("quota-deleted", Some("3000S,10C"), None, "") else {
        return;
    };
    oracle.run(
        &[("one", 1000), ("two", 1000), ("three", 900)],
        &[Delivered, Delivered, Delivered],
    );
    oracle.remove_stored(0);
    oracle.run(&[("after removal", 600)], &[Delivered]);
    oracle.assert_same_usage();
}

/// Writes `text` as maildirsize into `root`, owned by `uid`.
fn write_size_file(root: &Path, text: &[u8], uid: u32) {
    write_owned(&root.join("maildirsize"), text, uid);
}

/// Sets the modification time of `root`'s maildirsize `age` into the past.
fn age_size_file(root: &Path, age: Duration) {
    let file = fs::File::options()
        .write(true)
        .open(root.join("maildirsize"))
        .expect("open maildirsize");
    file.set_modified(SystemTime::now() - age)
        .expect("set mtime");
}

#[test]
fn quota_single_line_file_trusted_until_stale() {
    // One size line claiming 2900 bytes in an empty Maildir: Courier trusts
    // it for 15 minutes, then recounts.
    let Some(mut oracle) = Oracle::new("quota-stale", Some("3000S,10C"), None, "") else {
        return;
    };
    let uid = oracle.alice.uid;
    oracle.both(|root| write_size_file(root, b"3000S,10C\n2900 3\n", uid));
    oracle.run(&[("fresh file", 600)], &[OverQuota]);

    oracle.both(|root| age_size_file(root, Duration::from_secs(16 * 60)));
    oracle.run(&[("stale file", 600)], &[Delivered]);
    oracle.assert_same_usage();
}

/// Puts a message file of `size` bytes named `name` into `dir`, owned by `uid`.
fn put_message(dir: &Path, name: &str, size: usize, uid: u32) {
    let mut body = b"Subject: old\n\n".to_vec();
    body.resize(size, b'x');
    write_owned(&dir.join(name), &body, uid);
}

/// 5200 bytes that Courier and Zoha both treat as a file to recount.
fn oversized_size_file(quota: &str) -> Vec<u8> {
    let mut text = format!("{quota}\n").into_bytes();
    while text.len() < 5200 {
        text.extend_from_slice(b"          12            1\n");
    }
    text
}

#[test]
fn quota_garbage_file_matches_deliverquota() {
    // Each maildirsize below makes Courier either recount (usage 2400 in
    // two existing messages) or see no quota at all.
    let cases: [(&str, Vec<u8>, [Decision; 2]); 4] = [
        (
            "oversized",
            oversized_size_file("3000S,10C"),
            [Delivered, OverQuota],
        ),
        (
            "torn last line",
            b"3000S,10C\n2400 2\n12".to_vec(),
            [Delivered, OverQuota],
        ),
        (
            "binary quota line",
            b"\x00\xff\xfe\n2400 2\n".to_vec(),
            [Delivered, Delivered],
        ),
        ("empty", Vec::new(), [Delivered, Delivered]),
    ];
    for (case, text, expected) in cases {
        let Some(mut oracle) = Oracle::new("quota-garbage", None, None, "") else {
            return;
        };
        let uid = oracle.alice.uid;
        oracle.both(|root| {
            put_message(
                &root.join("cur"),
                "1000000001.M1P1.old,S=1200:2,S",
                1200,
                uid,
            );
            put_message(
                &root.join("cur"),
                "1000000002.M1P1.old,S=1200:2,S",
                1200,
                uid,
            );
            write_size_file(root, &text, uid);
        });
        for (step, (size, want)) in [(400, expected[0]), (700, expected[1])]
            .into_iter()
            .enumerate()
        {
            let (zoha, courier) = oracle.deliver(&format!("{case} {step}"), size);
            assert_eq!(
                courier, want,
                "{case}, step {step}: deliverquota (expected by the test)"
            );
            assert_eq!(
                zoha, courier,
                "{case}, step {step}: zoha against deliverquota"
            );
        }
    }
}

#[test]
fn quota_negative_totals_recounted() {
    // Courier recounts a maildirsize whose totals are negative.
    let Some(mut oracle) = Oracle::new("quota-negative", None, None, "") else {
        return;
    };
    let uid = oracle.alice.uid;
    oracle.both(|root| {
        put_message(
            &root.join("cur"),
            "1000000001.M1P1.old,S=1200:2,S",
            1200,
            uid,
        );
        put_message(
            &root.join("cur"),
            "1000000002.M1P1.old,S=1200:2,S",
            1200,
            uid,
        );
        write_size_file(root, b"3000S,10C\n-9000 -9\n", uid);
    });
    oracle.run(&[("fits", 400), ("crosses", 700)], &[Delivered, OverQuota]);
    oracle.assert_same_usage();
}

#[test]
fn quota_trash_not_counted() {
    let Some(mut oracle) = Oracle::new("quota-trash", None, None, "") else {
        return;
    };
    let uid = oracle.alice.uid;
    oracle.both(|root| {
        make_maildir(&root.join(".Trash"), uid);
        put_message(
            &root.join(".Trash/cur"),
            "1000000001.M1P1.old,S=5000:2,S",
            5000,
            uid,
        );
        make_maildir(&root.join(".lists"), uid);
        put_message(
            &root.join(".lists/cur"),
            "1000000002.M1P1.old,S=1000:2,S",
            1000,
            uid,
        );
        write_size_file(root, &oversized_size_file("3000S,10C"), uid);
    });
    oracle.run(&[("fits", 1500), ("crosses", 700)], &[Delivered, OverQuota]);
    oracle.assert_same_usage();
}

#[test]
fn quota_deleted_flag_not_counted() {
    // Courier IMAP marks an expunge candidate with the T flag; the recount
    // skips such messages.
    let Some(mut oracle) = Oracle::new("quota-tflag", None, None, "") else {
        return;
    };
    let uid = oracle.alice.uid;
    oracle.both(|root| {
        put_message(
            &root.join("cur"),
            "1000000001.M1P1.old,S=2500:2,ST",
            2500,
            uid,
        );
        write_size_file(root, &oversized_size_file("3000S,10C"), uid);
    });
    oracle.run(&[("fits", 1000)], &[Delivered]);
    oracle.assert_same_usage();
}

#[test]
fn quota_exact_fit_accepted() {
    let Some(oracle) = Oracle::new("quota-exact", None, None, "") else {
        return;
    };

    // Courier: a delivery that brings usage exactly to the limit fits; one byte more does not.
    let bytes: Vec<u8> = support::message_of_length("exact", 500)
        .into_iter()
        .filter(|&b| b != b'\r')
        .collect();
    let exact = oracle.alice.home.join("Exact");
    let short = oracle.alice.home.join("Short");
    oracle
        .owner
        .make_maildir(&exact, Some(&format!("{}S", bytes.len())));
    oracle
        .owner
        .make_maildir(&short, Some(&format!("{}S", bytes.len() - 1)));
    assert_eq!(
        oracle.owner.deliverquota(&exact, &bytes, None),
        0,
        "deliverquota, exact fit"
    );
    assert_eq!(
        oracle.owner.deliverquota(&short, &bytes, None),
        OVER_QUOTA_EXIT,
        "deliverquota, one byte over"
    );

    // Zoha: the same message to scrat@ shows the stored size. The next file
    // name may have a longer microsecond field and delivery counter, so the
    // quota leaves room for those, and Zoha must accept the message.
    let lf_length = 500;
    let probe = support::message_of_length("exact", lf_length);
    let (_, data) = oracle.send(&[oracle.scratch.address.as_str()], &probe);
    let id = support::delivery_id(&data[0]);
    let size = fs::metadata(support::file_for_id(
        &oracle.scratch.maildir().join("new"),
        &id,
    ))
    .expect("probe copy")
    .len();
    let micros = id
        .split(".M")
        .nth(1)
        .and_then(|r| r.split('P').next())
        .expect("usec field");
    let room = size + (6 - micros.len() as u64) + 1;
    let uid = oracle.alice.uid;
    write_size_file(&oracle.zoha, format!("{room}S\n0 0\n").as_bytes(), uid);
    let (rcpt, data) = oracle.send(&[oracle.alice.address.as_str()], &probe);
    assert_eq!(rcpt[0].code, 250, "RCPT: {rcpt:?}");
    assert_eq!(
        data[0].code, 250,
        "a message of about {size} bytes into a quota of {room} bytes: {data:?}"
    );
    let stored = fs::metadata(support::file_for_id(
        &oracle.zoha.join("new"),
        &support::delivery_id(&data[0]),
    ))
    .expect("stored copy")
    .len();
    assert!(
        stored <= room,
        "stored {stored} bytes into a quota of {room}"
    );
}

/// One account with a Maildir whose maildirsize contains `size_file`, and one
/// without a quota; zoha started with `extra` settings.
fn quota_setup(tag: &str, size_file: &[u8], extra: &str) -> (Setup, Daemon, Account, Account) {
    let mut setup = Setup::new(tag);
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    make_maildir(&bob.maildir(), bob.uid);
    write_size_file(&bob.maildir(), size_file, bob.uid);
    let daemon = setup.start(extra);
    (setup, daemon, alice, bob)
}

#[test]
fn quota_full_refused_at_rcpt() {
    // maildirsize already at its byte limit, or at its count limit.
    for (case, file) in [
        ("bytes", b"1000S,10C\n1000 2\n".as_slice()),
        ("count", b"300000S,2C\n500 2\n".as_slice()),
    ] {
        let (setup, _daemon, _, bob) = quota_setup("quota-full", file, "");
        let mut c = Client::ready(setup.port);
        assert_eq!(c.command("MAIL FROM:<s@example.net>").code, 250);
        let reply = c.command("RCPT TO:<bob@example.org>");
        assert_eq!(reply.code, 452, "{case}: RCPT: {reply:?}");
        assert!(reply.text().starts_with("4.2.2"), "{case}: RCPT: {reply:?}");
        assert!(bob.files("new").is_empty(), "{case}: files in new/");
    }
}

#[test]
fn quota_declared_size_refused_at_rcpt() {
    let (setup, _daemon, _, _) = quota_setup("quota-size", b"3000S,10C\n2500 2\n", "");
    let mut c = Client::ready(setup.port);
    assert_eq!(c.command("MAIL FROM:<s@example.net> SIZE=800").code, 250);
    let reply = c.command("RCPT TO:<bob@example.org>");
    assert_eq!(reply.code, 452, "RCPT: {reply:?}");
    assert!(reply.text().starts_with("4.2.2"), "RCPT: {reply:?}");
    assert_eq!(c.command("RSET").code, 250);
    assert_eq!(c.command("MAIL FROM:<s@example.net> SIZE=400").code, 250);
    let reply = c.command("RCPT TO:<bob@example.org>");
    assert_eq!(reply.code, 250, "RCPT with a size that fits: {reply:?}");
}

#[test]
fn quota_declared_size_before_first_delivery() {
    // The account quota applies before the Maildir exists: usage is zero.
    let mut setup = Setup::new("quota-size-new");
    setup.add_account_with_quota("carol@example.org", MANUAL_UID, "1000S");
    let _daemon = setup.start("");
    let mut c = Client::ready(setup.port);
    assert_eq!(c.command("MAIL FROM:<s@example.net> SIZE=5000").code, 250);
    let reply = c.command("RCPT TO:<carol@example.org>");
    assert_eq!(
        reply.code, 452,
        "RCPT with a size over the account quota: {reply:?}"
    );
    assert!(reply.text().starts_with("4.2.2"), "RCPT: {reply:?}");
}

#[test]
fn quota_crossing_message_refused_after_data() {
    // Room for a small message at RCPT, not for the one that follows.
    let (setup, _daemon, _, bob) = quota_setup("quota-cross", b"3000S,10C\n2500 2\n", "");
    let message = support::message_of_length("crossing", 800);
    let (rcpt, data) = support::transaction(
        setup.port,
        "MAIL FROM:<s@example.net>",
        &["bob@example.org"],
        &message,
    );
    assert_eq!(rcpt[0].code, 250, "RCPT: {rcpt:?}");
    assert_eq!(data[0].code, 452, "after DATA: {data:?}");
    assert!(data[0].text().starts_with("4.2.2"), "after DATA: {data:?}");
    assert!(bob.files("new").is_empty(), "files in new/");
    assert!(bob.files("tmp").is_empty(), "files left in tmp/");
}

/// Alice without a quota, then bob whose quota the message crosses.
fn second_recipient_over(tag: &str, extra: &str) -> Vec<Reply> {
    let (setup, _daemon, alice, bob) = quota_setup(tag, b"3000S,10C\n2500 2\n", extra);
    let message = support::message_of_length("two recipients", 800);
    let (rcpt, data) = support::transaction(
        setup.port,
        "MAIL FROM:<s@example.net>",
        &["alice@example.org", "bob@example.org"],
        &message,
    );
    assert_eq!(rcpt.iter().map(|r| r.code).collect::<Vec<_>>(), [250, 250]);
    assert_eq!(data.len(), 2, "one reply per recipient: {data:?}");
    assert_eq!(data[0].code, 250, "alice: {data:?}");
    assert!(
        data[0].text().starts_with("2.0.0 <alice@example.org> "),
        "{data:?}"
    );
    assert_eq!(alice.files("new").len(), 1, "alice's copy");
    assert!(bob.files("new").is_empty(), "bob's new/");
    assert!(bob.files("tmp").is_empty(), "bob's tmp/");
    data
}

#[test]
fn quota_second_recipient_over_defers() {
    let data = second_recipient_over("quota-f09", "");
    assert_eq!(data[1].code, 452, "bob: {data:?}");
    assert!(
        data[1].text().starts_with("4.2.2 <bob@example.org> "),
        "{data:?}"
    );
}

#[test]
fn quota_second_recipient_over_rejects() {
    let data = second_recipient_over("quota-f09-reject", "quota_reply = reject\n");
    assert_eq!(data[1].code, 552, "bob: {data:?}");
    assert!(
        data[1].text().starts_with("5.2.2 <bob@example.org> "),
        "{data:?}"
    );
}

#[test]
fn quota_corrupt_file_rebuilt() {
    // A size line that is not two numbers: Zoha recounts instead of trusting
    // the rest. (Courier counts such a line as zero, so it is no oracle here.)
    let (setup, _daemon, _, bob) = quota_setup("quota-corrupt", b"3000S,10C\nnot numbers\n", "");
    put_message(
        &bob.maildir().join("cur"),
        "1000000001.M1P1.old,S=2400:2,S",
        2400,
        bob.uid,
    );
    let small = support::message_of_length("small", 300);
    let large = support::message_of_length("large", 700);

    let (_, first) = support::transaction(
        setup.port,
        "MAIL FROM:<s@example.net>",
        &["bob@example.org"],
        &small,
    );
    let (_, second) = support::transaction(
        setup.port,
        "MAIL FROM:<s@example.net>",
        &["bob@example.org"],
        &large,
    );

    assert_eq!(first[0].code, 250, "a message that fits: {first:?}");
    assert_eq!(second[0].code, 452, "a message that crosses: {second:?}");
    let stored = support::size_from_name(&bob.files("new")[0]).expect("S= of the stored file");
    let text = fs::read_to_string(bob.maildir().join("maildirsize")).expect("maildirsize");
    let (bytes, count) = text.lines().skip(1).fold((0i64, 0i64), |(b, c), line| {
        let mut words = line
            .split_whitespace()
            .map(|w| w.parse::<i64>().expect("number"));
        (
            b + words.next().expect("bytes"),
            c + words.next().expect("count"),
        )
    });
    assert_eq!(
        text.lines().next(),
        Some("3000S,10C"),
        "quota line kept: {text}"
    );
    assert_eq!(
        bytes,
        2400 + stored as i64,
        "byte total in maildirsize: {text}"
    );
    assert_eq!(count, 2, "message total in maildirsize: {text}");
}
