//! Account lookups through courier-authlib's authdaemon protocol.
//!
//! Most tests run Zoha with `userdb = authdaemon:<socket>` against a fake
//! authdaemond: a thread in the test that accepts UNIX connections, records
//! each request line and replies as the test sets up (a reply, `FAIL`, a
//! silent close, no reply at all). The protocol, as Debian's
//! courier-authdaemon 0.71 speaks it: the client sends
//! `PRE . <service> <address>\n`; the daemon answers `KEY=value` lines ended
//! by a line holding `.`, or the single line `FAIL`, and closes the
//! connection. It omits MAILDIR, QUOTA and OPTIONS when the account has none.
//!
//! `real_authdaemon_userdb_delivers` runs the real daemon with the userdb
//! module in a private mount namespace (root only, see
//! `tests/courier/authdaemon-namespace.sh`) and reads the result back through
//! Courier IMAP.

mod common;
#[path = "courier/support.rs"]
mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

use common::{AcceptThread, Account, Client, Daemon, Reply, Setup, WAIT, ZOHA};
use support::Owner;

/// What the fake authdaemond does with one request.
#[derive(Debug, Clone)]
enum Answer {
    /// Send this text, then close the connection.
    Text(String),
    /// Close the connection without sending anything.
    Close,
    /// Send nothing and keep the connection open until the client closes it.
    Hold,
}

type Responder = dyn Fn(&str) -> Answer + Send + Sync;

/// A fake authdaemond listening on a UNIX socket in a test directory.
struct FakeAuthdaemon {
    path: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    /// Number of held connections that the client has closed, and its signal.
    released: Arc<(Mutex<usize>, Condvar)>,
    _server: AcceptThread,
}

impl FakeAuthdaemon {
    /// Listens on `path`; `respond` gets each request line (without its LF).
    fn start(path: &Path, respond: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Self {
        let listener = UnixListener::bind(path).expect("bind fake authdaemon socket");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let released = Arc::new((Mutex::new(0), Condvar::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let server = {
            let (requests, released) = (requests.clone(), released.clone());
            AcceptThread::start(listener, move |stream| {
                let (requests, released, respond) =
                    (requests.clone(), released.clone(), respond.clone());
                std::thread::spawn(move || {
                    serve_connection(stream, &requests, &released, respond.as_ref())
                });
            })
        };
        FakeAuthdaemon {
            path: path.to_path_buf(),
            requests,
            released,
            _server: server,
        }
    }

    /// Returns the request lines received so far, in arrival order.
    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// Waits until the client has closed `count` held connections.
    fn wait_released(&self, count: usize) {
        let (lock, signal) = &*self.released;
        let guard = lock.lock().expect("released lock");
        let (guard, timeout) = signal
            .wait_timeout_while(guard, WAIT, |n| *n < count)
            .expect("released wait");
        assert!(
            !timeout.timed_out(),
            "only {} of {count} held connections were closed by zoha",
            *guard
        );
    }
}

fn serve_connection(
    stream: UnixStream,
    requests: &Mutex<Vec<String>>,
    released: &(Mutex<usize>, Condvar),
    respond: &Responder,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let request = line.trim_end_matches('\n').to_string();
    requests
        .lock()
        .expect("requests lock")
        .push(request.clone());
    let mut stream = reader.into_inner();
    match respond(&request) {
        Answer::Text(text) => {
            let _ = stream.write_all(text.as_bytes());
        }
        Answer::Close => {}
        Answer::Hold => {
            // Zoha gives up after authdaemon_timeout and closes its end.
            let mut buf = [0u8; 64];
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            let (lock, signal) = released;
            *lock.lock().expect("released lock") += 1;
            signal.notify_all();
        }
    }
}

/// Returns the address of a `PRE . <service> <address>` request.
fn requested_address(request: &str) -> &str {
    request
        .strip_prefix("PRE . ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(_, address)| address)
        .unwrap_or("")
}

/// Builds the reply the real daemon sends for a userdb account with `mail=` set.
fn reply_for(account: &Account, maildir: &Path) -> String {
    format!(
        "UID={}\nGID={}\nHOME={}\nADDRESS={}\nMAILDIR={}\n.\n",
        account.uid,
        account.gid,
        account.home.display(),
        account.address,
        maildir.display()
    )
}

/// Writes the configuration with `userdb = authdaemon:<socket>` and starts zoha.
fn start_with_authdaemon(setup: &Setup, socket: &Path, extra: &str) -> Daemon {
    write_authdaemon_config(setup, socket, extra);
    Daemon::start(&setup.config_path(), setup.port, &setup.dir.path)
}

/// Writes the userdb file and the configuration with `userdb = authdaemon:<socket>`.
fn write_authdaemon_config(setup: &Setup, socket: &Path, extra: &str) {
    setup.write_userdb();
    let text = common::authdaemon_config(setup, socket, extra);
    fs::write(setup.config_path(), text).expect("write config");
}

/// Sends one message from sender@example.net to `recipients`.
fn transaction(port: u16, recipients: &[&str], message: &[u8]) -> (Vec<Reply>, Vec<Reply>) {
    support::transaction(port, "MAIL FROM:<sender@example.net>", recipients, message)
}

const MESSAGE: &[u8] = b"From: sender@example.net\r\nSubject: authdaemon\r\n\r\nhello\r\n";

#[test]
fn authdaemon_reply_delivers() {
    let mut setup = Setup::new("ad-reply");
    let alice = setup.add_account("alice@example.org");
    let maildir = alice.home.join("Mail.d");
    let answer = reply_for(&alice, &maildir);
    let socket = setup.dir.path.join("authdaemon.sock");
    let fake = FakeAuthdaemon::start(&socket, move |_| Answer::Text(answer.clone()));
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (rcpt, data) = transaction(setup.port, &["alice@example.org"], MESSAGE);

    assert_eq!(rcpt[0].code, 250, "RCPT: {rcpt:?}");
    assert_eq!(data[0].code, 250, "after DATA: {data:?}");
    let files = common::list_files(&maildir.join("new"));
    assert_eq!(files.len(), 1, "files in the reply's MAILDIR: {files:?}");
    let (uid, mode) = common::owner_and_mode(&maildir.join("new").join(&files[0]));
    assert_eq!(uid, alice.uid, "owner of the delivered file");
    assert_eq!(mode, 0o600, "mode of the delivered file");
    assert!(
        alice.files("new").is_empty(),
        "HOME/Maildir used although MAILDIR was given"
    );
    assert_eq!(
        fake.requests(),
        vec!["PRE . login alice@example.org".to_string()],
        "one lookup per transaction, with the service Courier's maildrop uses"
    );
}

#[test]
fn authdaemon_request_strips_detail() {
    let mut setup = Setup::new("ad-detail");
    let alice = setup.add_account("alice@example.org");
    let answer = reply_for(&alice, &alice.maildir());
    let socket = setup.dir.path.join("authdaemon.sock");
    let fake = FakeAuthdaemon::start(&socket, move |_| Answer::Text(answer.clone()));
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (rcpt, data) = transaction(setup.port, &["alice+lists@Example.ORG"], MESSAGE);

    assert_eq!(rcpt[0].code, 250, "RCPT: {rcpt:?}");
    assert_eq!(data[0].code, 250, "after DATA: {data:?}");
    assert_eq!(
        fake.requests(),
        vec!["PRE . login alice@example.org".to_string()],
        "detail stripped and domain lowercased before the lookup"
    );
}

#[test]
fn authdaemon_service_configurable() {
    let mut setup = Setup::new("ad-service");
    let alice = setup.add_account("alice@example.org");
    let answer = reply_for(&alice, &alice.maildir());
    let socket = setup.dir.path.join("authdaemon.sock");
    let fake = FakeAuthdaemon::start(&socket, move |_| Answer::Text(answer.clone()));
    let _daemon = start_with_authdaemon(&setup, &socket, "authdaemon_service = courier\n");

    let (rcpt, _) = transaction(setup.port, &["alice@example.org"], MESSAGE);

    assert_eq!(rcpt[0].code, 250, "RCPT: {rcpt:?}");
    assert_eq!(
        fake.requests(),
        vec!["PRE . courier alice@example.org".to_string()]
    );
}

#[test]
fn authdaemon_fail_is_unknown() {
    let setup = Setup::new("ad-fail");
    let socket = setup.dir.path.join("authdaemon.sock");
    let _fake = FakeAuthdaemon::start(&socket, |_| Answer::Text("FAIL\n".into()));
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (rcpt, _) = transaction(setup.port, &["nosuch@example.org"], MESSAGE);

    assert_eq!(rcpt[0].code, 550, "RCPT: {rcpt:?}");
    assert!(rcpt[0].text().starts_with("5.1.1"), "RCPT: {rcpt:?}");
}

/// Checks that a lookup that gets `answer` defers the recipient with 451 4.3.0.
fn assert_lookup_defers(tag: &str, answer: Answer, extra: &str) -> FakeAuthdaemon {
    let mut setup = Setup::new(tag);
    let alice = setup.add_account("alice@example.org");
    let socket = setup.dir.path.join("authdaemon.sock");
    let fake = FakeAuthdaemon::start(&socket, move |_| answer.clone());
    let _daemon = start_with_authdaemon(&setup, &socket, extra);

    let (rcpt, _) = transaction(setup.port, &["alice@example.org"], MESSAGE);

    assert_eq!(rcpt[0].code, 451, "{tag}: RCPT: {rcpt:?}");
    assert!(rcpt[0].text().starts_with("4.3.0"), "{tag}: RCPT: {rcpt:?}");
    assert!(
        alice.files("new").is_empty(),
        "{tag}: a message was delivered"
    );
    fake
}

#[test]
fn authdaemon_silent_close_defers() {
    assert_lookup_defers("ad-close", Answer::Close, "");
}

#[test]
fn authdaemon_slow_answer_defers() {
    let fake = assert_lookup_defers("ad-slow", Answer::Hold, "authdaemon_timeout = 1\n");
    // The 451 came because zoha gave up, not because the fake replied.
    fake.wait_released(1);
}

#[test]
fn authdaemon_missing_dot_defers() {
    let answer =
        Answer::Text("UID=59001\nGID=59001\nHOME=/tmp\nADDRESS=alice@example.org\n".into());
    assert_lookup_defers("ad-nodot", answer, "");
}

#[test]
fn authdaemon_partial_fail_defers() {
    // "FAIL" without its newline, then a close: a torn reply, not an answer.
    assert_lookup_defers("ad-torn", Answer::Text("FAIL".into()), "");
}

#[test]
fn authdaemon_line_without_equals_defers() {
    let answer = Answer::Text("UID=59001\nGID=59001\ngarbage\nHOME=/tmp\n.\n".into());
    assert_lookup_defers("ad-garbage", answer, "");
}

#[test]
fn authdaemon_reply_without_uid_defers() {
    let answer = Answer::Text("HOME=/tmp\nADDRESS=alice@example.org\n.\n".into());
    assert_lookup_defers("ad-nouid", answer, "");
}

#[test]
fn authdaemon_refused_connection_defers() {
    let mut setup = Setup::new("ad-refused");
    let alice = setup.add_account("alice@example.org");
    // A socket file without a listening process, as after authdaemond stops.
    let socket = setup.dir.path.join("authdaemon.sock");
    drop(UnixListener::bind(&socket).expect("bind socket"));
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (rcpt, _) = transaction(setup.port, &["alice@example.org"], MESSAGE);

    assert_eq!(rcpt[0].code, 451, "RCPT: {rcpt:?}");
    assert!(rcpt[0].text().starts_with("4.3.0"), "RCPT: {rcpt:?}");
    assert!(alice.files("new").is_empty(), "a message was delivered");
}

#[test]
fn authdaemon_unknown_keys_ignored() {
    let mut setup = Setup::new("ad-extra");
    let alice = setup.add_account("alice@example.org");
    let answer = format!(
        "USERNAME=nobody\nUID={uid}\nGID={uid}\nHOME={home}\nADDRESS=alice@example.org\nNAME=Alice Liddell\nPASSWD=$1$xyz\nPASSWD2=secret\nX-UNKNOWN=a=b=c\nSHELL=/bin/sh\n.\n",
        uid = alice.uid,
        home = alice.home.display()
    );
    let socket = setup.dir.path.join("authdaemon.sock");
    let _fake = FakeAuthdaemon::start(&socket, move |_| Answer::Text(answer.clone()));
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (rcpt, data) = transaction(setup.port, &["alice@example.org"], MESSAGE);

    assert_eq!(rcpt[0].code, 250, "RCPT: {rcpt:?}");
    assert_eq!(data[0].code, 250, "after DATA: {data:?}");
    assert_eq!(alice.files("new").len(), 1, "delivered to HOME/Maildir");
    let file = alice.maildir().join("new").join(&alice.files("new")[0]);
    assert_eq!(
        common::owner_and_mode(&file).0,
        alice.uid,
        "UID wins over USERNAME when both are given"
    );
}

#[test]
fn authdaemon_empty_maildir_uses_home() {
    let mut setup = Setup::new("ad-empty");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let socket = setup.dir.path.join("authdaemon.sock");
    let (a, b) = (alice.clone(), bob.clone());
    let _fake = FakeAuthdaemon::start(&socket, move |request| {
        // alice: MAILDIR present but empty; bob: MAILDIR left out, as the
        // real daemon does for a userdb account without mail=.
        let text = match requested_address(request) {
            "alice@example.org" => format!(
                "UID={}\nGID={}\nHOME={}\nADDRESS=alice@example.org\nMAILDIR=\n.\n",
                a.uid,
                a.gid,
                a.home.display()
            ),
            "bob@example.org" => format!(
                "UID={}\nGID={}\nHOME={}\nADDRESS=bob@example.org\n.\n",
                b.uid,
                b.gid,
                b.home.display()
            ),
            _ => "FAIL\n".to_string(),
        };
        Answer::Text(text)
    });
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (rcpt, data) = transaction(
        setup.port,
        &["alice@example.org", "bob@example.org"],
        MESSAGE,
    );

    assert_eq!(rcpt.iter().map(|r| r.code).collect::<Vec<_>>(), [250, 250]);
    assert_eq!(data.iter().map(|r| r.code).collect::<Vec<_>>(), [250, 250]);
    assert_eq!(
        alice.files("new").len(),
        1,
        "alice: HOME/Maildir for MAILDIR="
    );
    assert_eq!(
        bob.files("new").len(),
        1,
        "bob: HOME/Maildir without MAILDIR"
    );
}

#[test]
fn authdaemon_relative_maildir_joins_home() {
    // authuserdb passes a relative mail= field through unchanged.
    let mut setup = Setup::new("ad-relative");
    let alice = setup.add_account("alice@example.org");
    let answer = format!(
        "UID={uid}\nGID={uid}\nHOME={home}\nADDRESS=alice@example.org\nMAILDIR=Maildir.alice\n.\n",
        uid = alice.uid,
        home = alice.home.display()
    );
    let socket = setup.dir.path.join("authdaemon.sock");
    let _fake = FakeAuthdaemon::start(&socket, move |_| Answer::Text(answer.clone()));
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (_, data) = transaction(setup.port, &["alice@example.org"], MESSAGE);

    assert_eq!(data[0].code, 250, "after DATA: {data:?}");
    let files = common::list_files(&alice.home.join("Maildir.alice/new"));
    assert_eq!(files.len(), 1, "HOME/Maildir.alice/new: {files:?}");
}

#[test]
fn authdaemon_quota_enforced() {
    let mut setup = Setup::new("ad-quota");
    let alice = setup.add_account("alice@example.org");
    let answer = format!(
        "UID={uid}\nGID={uid}\nHOME={home}\nADDRESS=alice@example.org\nQUOTA=1000S,5C\nOPTIONS=disableimap=1\n.\n",
        uid = alice.uid,
        home = alice.home.display()
    );
    let socket = setup.dir.path.join("authdaemon.sock");
    let _fake = FakeAuthdaemon::start(&socket, move |_| Answer::Text(answer.clone()));
    let _daemon = start_with_authdaemon(&setup, &socket, "");
    let small = support::message_of_length("small", 200);
    let large = support::message_of_length("large", 700);

    let (_, first) = transaction(setup.port, &["alice@example.org"], &small);
    let (_, second) = transaction(setup.port, &["alice@example.org"], &large);

    assert_eq!(first[0].code, 250, "first message: {first:?}");
    assert_eq!(second[0].code, 452, "second message: {second:?}");
    assert!(second[0].text().starts_with("4.2.2"), "{second:?}");
    assert_eq!(alice.files("new").len(), 1, "only the first message stored");
    let size_file = fs::read_to_string(alice.maildir().join("maildirsize"))
        .expect("maildirsize written from QUOTA");
    assert_eq!(
        size_file.lines().next(),
        Some("1000S,5C"),
        "maildirsize: {size_file}"
    );
}

#[test]
fn authdaemon_quota_checked_at_rcpt() {
    let mut setup = Setup::new("ad-quota-rcpt");
    let alice = setup.add_account("alice@example.org");
    let answer = format!(
        "UID={uid}\nGID={uid}\nHOME={home}\nADDRESS=alice@example.org\nQUOTA=1000S\n.\n",
        uid = alice.uid,
        home = alice.home.display()
    );
    let socket = setup.dir.path.join("authdaemon.sock");
    let _fake = FakeAuthdaemon::start(&socket, move |_| Answer::Text(answer.clone()));
    let _daemon = start_with_authdaemon(&setup, &socket, "");
    // Courier's maildirmake makes the Maildir before any delivery.
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(alice.maildir().join(sub)).expect("create Maildir");
    }
    common::chown_tree(&alice.maildir(), alice.uid);

    let mut c = Client::ready(setup.port);
    assert_eq!(c.command("MAIL FROM:<s@example.net> SIZE=5000").code, 250);
    let reply = c.command("RCPT TO:<alice@example.org>");

    assert_eq!(
        reply.code, 452,
        "RCPT with a declared size over quota: {reply:?}"
    );
    assert!(reply.text().starts_with("4.2.2"), "{reply:?}");
}

#[test]
fn authdaemon_options_reach_delivery() {
    let mut setup = Setup::new("ad-options");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let socket = setup.dir.path.join("authdaemon.sock");
    let (a, b) = (alice.clone(), bob.clone());
    let _fake = FakeAuthdaemon::start(&socket, move |request| {
        // Options as authdaemond sends them: the account's, then DEFAULTOPTIONS.
        let (account, options) = match requested_address(request) {
            "alice@example.org" => (&a, "disableimap=1,mailhost=zoha.test,disablewebmail=1"),
            "bob@example.org" => (&b, "mailhost=node-b.test"),
            _ => return Answer::Text("FAIL\n".into()),
        };
        Answer::Text(format!(
            "UID={uid}\nGID={uid}\nHOME={home}\nADDRESS={address}\nOPTIONS={options}\n.\n",
            uid = account.uid,
            home = account.home.display(),
            address = account.address,
        ))
    });
    let _daemon = start_with_authdaemon(&setup, &socket, "");

    let (rcpt, data) = transaction(
        setup.port,
        &["alice@example.org", "bob@example.org"],
        MESSAGE,
    );

    assert_eq!(rcpt[0].code, 250, "alice, mailhost is this node: {rcpt:?}");
    assert_ne!(rcpt[1].code, 250, "bob, mailhost is another node: {rcpt:?}");
    assert_eq!(data.len(), 1, "one reply after DATA: {data:?}");
    assert_eq!(alice.files("new").len(), 1, "alice's copy stored here");
    assert!(bob.files("new").is_empty(), "bob's mailbox lives on node-b");
}

/// Runs `zoha -c <config> -l <address>` and returns its exit status and output.
fn lookup_output(setup: &Setup, address: &str) -> (i32, String) {
    let output = Command::new(ZOHA)
        .arg("-c")
        .arg(setup.config_path())
        .arg("-l")
        .arg(address)
        .output()
        .expect("run zoha -l");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// Returns the value of the `name: value` line of `-l` output.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// Starts a fake authdaemond with an account for alice, with a quota and options.
fn quota_account_fake(setup: &mut Setup) -> (Account, FakeAuthdaemon) {
    let alice = setup.add_account("alice@example.org");
    let answer = format!(
        "UID={uid}\nGID={uid}\nHOME={home}\nADDRESS=alice@example.org\nQUOTA=100000S,50C\nOPTIONS=disableimap=1,mailhost=zoha.test\n.\n",
        uid = alice.uid,
        home = alice.home.display()
    );
    let socket = setup.dir.path.join("authdaemon.sock");
    let fake = FakeAuthdaemon::start(&socket, move |request| {
        if requested_address(request) == "alice@example.org" {
            Answer::Text(answer.clone())
        } else {
            Answer::Text("FAIL\n".into())
        }
    });
    (alice, fake)
}

#[test]
fn lookup_shows_delivery_plan() {
    let mut setup = Setup::new("ad-lookup");
    let (alice, fake) = quota_account_fake(&mut setup);
    write_authdaemon_config(&setup, &fake.path, "detail_folders = create\n");

    let (status, text) = lookup_output(&setup, "alice+lists@example.org");

    assert_eq!(status, 0, "exit status; output:\n{text}");
    assert_eq!(
        field(&text, "uid"),
        Some(alice.uid.to_string().as_str()),
        "{text}"
    );
    assert_eq!(
        field(&text, "gid"),
        Some(alice.gid.to_string().as_str()),
        "{text}"
    );
    let maildir = alice.maildir().display().to_string();
    assert_eq!(field(&text, "maildir"), Some(maildir.as_str()), "{text}");
    assert_eq!(field(&text, "quota"), Some("100000S,50C"), "{text}");
    assert_eq!(field(&text, "mailhost"), Some("zoha.test"), "{text}");
    assert!(
        field(&text, "folder").is_some_and(|f| f.starts_with(".lists")),
        "folder line: {text}"
    );
    assert_eq!(field(&text, "verdict"), Some("deliver"), "{text}");
    assert_eq!(
        fake.requests(),
        vec!["PRE . login alice@example.org".to_string()]
    );
}

#[test]
fn lookup_shows_unknown_verdict() {
    let mut setup = Setup::new("ad-lookup-unknown");
    let (_alice, fake) = quota_account_fake(&mut setup);
    write_authdaemon_config(&setup, &fake.path, "");

    let (status, text) = lookup_output(&setup, "nosuch@example.org");

    assert_eq!(status, 1, "exit status; output:\n{text}");
    assert!(
        field(&text, "verdict").is_some_and(|v| v.starts_with("550 5.1.1")),
        "verdict line: {text}"
    );
}

#[test]
fn lookup_shows_quota_in_use() {
    let mut setup = Setup::new("ad-lookup-usage");
    let (alice, fake) = quota_account_fake(&mut setup);
    let mut daemon = start_with_authdaemon(&setup, &fake.path, "");
    let (_, data) = transaction(
        setup.port,
        &["alice@example.org"],
        &support::message_of_length("usage", 300),
    );
    assert_eq!(data[0].code, 250, "delivery before -l: {data:?}");
    assert!(daemon.stop().success());
    let name = alice.files("new").pop().expect("delivered file");
    let size = support::size_from_name(&name).expect("S= in the file name");

    let (status, text) = lookup_output(&setup, "alice@example.org");

    assert_eq!(status, 0, "exit status; output:\n{text}");
    let usage = field(&text, "quota in use").unwrap_or_else(|| {
        panic!("no \"quota in use: <bytes> bytes in <n> messages\" line in:\n{text}")
    });
    assert!(
        usage.starts_with(&format!("{size} bytes in 1 message")),
        "quota in use: {usage}"
    );
}

/// The real courier-authdaemon, run by `tests/courier/authdaemon-namespace.sh`
/// in a private mount namespace, with zoha inside that namespace.
struct RealAuthdaemon {
    child: Child,
    log_path: PathBuf,
    /// The script's standard output, kept open so that no later write gets SIGPIPE.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl RealAuthdaemon {
    /// Starts the script with `accounts` (one `userdb ... set` argument list a
    /// line), then zoha with `config`; waits for both to be ready.
    fn start(setup: &Setup, accounts: &str, config: &Path) -> RealAuthdaemon {
        let accounts_path = setup.dir.path.join("accounts");
        fs::write(&accounts_path, accounts).expect("write accounts");

        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/courier/authdaemon-namespace.sh");
        let log_path = setup.dir.path.join("namespace.stderr");
        let log = fs::File::create(&log_path).expect("create log");
        let private = setup.dir.path.join("courier");
        let mut child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "bash"])
            .arg(&script)
            .arg(&private)
            .arg(&accounts_path)
            .arg("--")
            .arg(ZOHA)
            .arg("-f")
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start unshare");

        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("script stdout"));
        stdout.read_line(&mut line).expect("read script output");

        let mut real = RealAuthdaemon {
            child,
            log_path,
            _stdout: stdout,
        };
        assert_eq!(
            line.trim_end(),
            "authdaemond ready",
            "authdaemon-namespace.sh failed; log:\n{}",
            real.log()
        );
        real.wait_for_zoha(setup.port);
        real
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_for_zoha(&mut self, port: u16) {
        common::wait_for_greeting(port, &mut self.child, &self.log_path);
    }

    /// Stops zoha and authdaemond; returns the script's exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().expect("wait for the namespace script")
    }
}

impl Drop for RealAuthdaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Reports whether the real-authdaemon test can run here; prints why not.
fn real_authdaemon_available(test: &str) -> bool {
    if common::skip_unless_root(test) || !support::courier_available(test) {
        return false;
    }
    support::programs_available(
        test,
        &[
            "/usr/sbin/authdaemond",
            "/usr/sbin/userdb",
            "/usr/sbin/makeuserdb",
        ],
        "install courier-authdaemon and courier-authlib-userdb",
    )
}

/// Checks that Courier IMAP serves alice's one message in `maildir` as
/// `message` after Zoha's three header fields, with RFC822.SIZE equal to W=.
fn assert_served_unchanged(alice: &Account, maildir: &Path, message: &[u8]) {
    let names = common::list_files(&maildir.join("new"));
    assert_eq!(names.len(), 1, "alice's mail= Maildir: {names:?}");
    let rfc822_size = support::rfc822_size_from_name(&names[0]).expect("W= in the name");
    let fetched = Owner::of(alice).fetch_all(maildir, "INBOX");
    assert_eq!(fetched.len(), 1, "messages Courier IMAP serves to alice");
    assert_eq!(fetched[0].size, rfc822_size, "RFC822.SIZE against W=");
    let (added, rest) = common::split_added_headers(&fetched[0].body);
    assert!(
        added.starts_with(
            "Return-Path: <sender@example.net>\r\nDelivered-To: alice@example.org\r\nReceived: "
        ),
        "added header fields: {added}"
    );
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(message),
        "message as Courier IMAP serves it, less zoha's three fields"
    );
}

/// Checks that bob's one message went to HOME/Maildir under his userdb quota.
fn assert_userdb_quota(bob: &Account) {
    assert_eq!(bob.files("new").len(), 1, "bob's HOME/Maildir");
    let size = support::size_from_name(&bob.files("new")[0]).expect("S= in the name");
    let quota = Owner::of(bob).quota_root(&bob.maildir());
    assert_eq!(
        quota.storage,
        Some((size.div_ceil(1024), 100_000u64.div_ceil(1024))),
        "STORAGE in KB"
    );
    assert_eq!(quota.messages, Some((1, 10)), "MESSAGE count and limit");
}

#[test]
fn real_authdaemon_userdb_delivers() {
    if !real_authdaemon_available("real_authdaemon_userdb_delivers") {
        return;
    }
    let mut setup = Setup::new("ad-real");
    let alice = setup.add_account("alice@example.org");
    let bob = setup.add_account("bob@example.org");
    let alice_maildir = alice.home.join("Mail.d");
    // alice names her Maildir with mail=; bob has none, options and a quota.
    let accounts = format!(
        "alice@example.org uid={} gid={} home={} mail={}\n\
         bob@example.org uid={} gid={} home={} options=disableimap=1,mailhost=zoha.test quota=100000S,10C\n",
        alice.uid,
        alice.gid,
        alice.home.display(),
        alice_maildir.display(),
        bob.uid,
        bob.gid,
        bob.home.display(),
    );
    write_authdaemon_config(
        &setup,
        Path::new("/run/courier/authdaemon/socket"),
        "authdaemon_timeout = 5\n",
    );
    let mut real = RealAuthdaemon::start(&setup, &accounts, &setup.config_path());
    let message = b"From: Sender <sender@example.net>\r\nTo: alice@example.org\r\nSubject: real authdaemon\r\n\r\nfirst line\r\n\r\n..a line that starts with a dot\r\nlast line\r\n";

    let (rcpt, data) = transaction(
        setup.port,
        &["alice@example.org", "bob@example.org", "nosuch@example.org"],
        &support::dot_stuff(message),
    );

    assert_eq!(rcpt[0].code, 250, "alice: {rcpt:?}; log:\n{}", real.log());
    assert_eq!(rcpt[1].code, 250, "bob: {rcpt:?}; log:\n{}", real.log());
    assert_eq!(rcpt[2].code, 550, "unknown address: {rcpt:?}");
    assert!(rcpt[2].text().starts_with("5.1.1"), "{rcpt:?}");
    let codes: Vec<u16> = data.iter().map(|r| r.code).collect();
    assert_eq!(codes, [250, 250], "after DATA: {data:?}");
    let stopped = real.stop();
    assert!(stopped.success(), "namespace script; log:\n{}", real.log());
    assert_served_unchanged(&alice, &alice_maildir, message);
    assert_userdb_quota(&bob);
}
