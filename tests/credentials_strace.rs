//! Traces the real daemon with strace and checks which uid every mailbox file call ran as.
//!
//! strace attaches to a running root-mode Zoha (`-p`, all threads) and
//! writes one trace file per thread (`-ff`), with the path behind every
//! descriptor argument (`-y`). Replaying each thread's file, the test tracks
//! the file system uid the thread last set, which `setresuid` changes
//! together with the effective uid. Every file call naming a path under the
//! mail root must have run as that mailbox's owner, never as root.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::{Account, Client, Setup, WAIT};

/// File calls that open, create, rename, link or remove a name. Status
/// calls (`newfstatat`, `statx`) are left out because they change nothing.
const CHANGING_CALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "rmdir",
    "chmod",
    "fchmodat",
    "chown",
    "lchown",
    "fchownat",
    "truncate",
];

/// strace attached to every thread of one process.
struct Tracer {
    child: Child,
    prefix: PathBuf,
}

impl Tracer {
    /// Attaches strace to `pid` and waits until every current thread is
    /// traced. Threads created later are traced through `-f`.
    fn attach(pid: u32, prefix: &Path) -> Tracer {
        let tasks = format!("/proc/{pid}/task");
        let mut untraced: Vec<String> = fs::read_dir(&tasks)
            .unwrap_or_else(|e| panic!("list {tasks}: {e}"))
            .map(|entry| {
                entry
                    .expect("task entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let mut child = Command::new("strace")
            .args([
                "-f",
                "-ff",
                "-y",
                "-s",
                "4096",
                "-e",
                "trace=%file,%creds",
                "-o",
            ])
            .arg(prefix)
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start strace");

        // strace 6.1 reports "Process <pid> attached with <n> threads" once
        // it has attached every thread. Per-thread "Process <tid> attached"
        // lines are accepted too. The reader drains standard error until
        // strace exits.
        let stderr = child.stderr.take().expect("strace standard error");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let mut output = String::new();
        while !untraced.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    if line.contains(&format!("Process {pid} attached with ")) {
                        untraced.clear();
                    }
                    untraced.retain(|tid| !line.contains(&format!("Process {tid} attached")));
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("strace did not attach to threads {untraced:?} of zoha; strace output:\n{output}");
                }
            }
        }
        Tracer {
            child,
            prefix: prefix.to_path_buf(),
        }
    }

    /// Detaches strace (SIGINT) and returns the trace file of each thread.
    fn finish(mut self) -> BTreeMap<String, String> {
        // SAFETY: kill has no memory preconditions; the pid is our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let status = self.child.wait().expect("wait for strace");
        assert!(
            status.success() || status.code() == Some(130) || status.code().is_none(),
            "strace exit status {status}"
        );
        let dir = self.prefix.parent().expect("trace directory");
        let stem = format!(
            "{}.",
            self.prefix
                .file_name()
                .expect("trace file name")
                .to_string_lossy()
        );
        let mut traces = BTreeMap::new();
        for entry in fs::read_dir(dir).expect("list trace directory") {
            let entry = entry.expect("trace entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(tid) = name.strip_prefix(&stem) {
                let text = fs::read_to_string(entry.path()).expect("read trace file");
                traces.insert(tid.to_string(), text);
            }
        }
        traces
    }
}

/// Returns the system call name of a trace line, or `None` for lines that
/// do not start a call (signals, exits, resumed halves).
fn call_name(line: &str) -> Option<&str> {
    let open = line.find('(')?;
    let name = &line[..open];
    let is_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    is_name.then_some(name)
}

/// Returns the arguments of a call line, split at every `, `. That is
/// enough for the integer arguments of the credential calls.
fn call_arguments(line: &str) -> Vec<String> {
    let start = line.find('(').map_or(0, |i| i + 1);
    let end = line.rfind(") =").unwrap_or(line.len());
    line[start..end]
        .split(", ")
        .map(|a| a.trim().to_string())
        .collect()
}

/// Reports whether a call line ended with a zero return value.
fn succeeded(line: &str) -> bool {
    line.trim_end().ends_with("= 0")
}

/// A file call under the mail root, with the file system uid it ran as.
#[derive(Debug)]
struct FileCall {
    tid: String,
    fsuid: u32,
    name: String,
    line: String,
}

/// Replays one thread's trace and returns its file calls under `mail_root`.
/// Each thread is assumed to start as root, as threads started by Zoha's
/// root accept and pool threads do. A wrong guess can only flag more calls.
fn file_calls(tid: &str, trace: &str, mail_root: &str) -> Vec<FileCall> {
    let mut fsuid: u32 = 0;
    let mut calls = Vec::new();
    for line in trace.lines() {
        let Some(name) = call_name(line) else {
            continue;
        };
        let arguments = call_arguments(line);
        let number = |i: usize| arguments.get(i).and_then(|a| a.parse::<i64>().ok());
        let new_fsuid = match name {
            "setresuid" | "setreuid" if succeeded(line) => number(1),
            "setuid" if succeeded(line) => number(0),
            // setfsuid returns the previous value, so success cannot be read.
            "setfsuid" => number(0),
            _ => None,
        };
        if let Some(uid) = new_fsuid.filter(|&u| u >= 0) {
            fsuid = uid as u32;
            continue;
        }
        if CHANGING_CALLS.contains(&name) && line.contains(mail_root) {
            calls.push(FileCall {
                tid: tid.to_string(),
                fsuid,
                name: name.to_string(),
                line: line.to_string(),
            });
        }
    }
    calls
}

/// Returns the account whose home a trace line names, if any.
fn owner_of<'a>(line: &str, accounts: &'a [Account]) -> Option<&'a Account> {
    accounts.iter().find(|account| {
        let home = account.home.display().to_string();
        ["/", "\"", ">"]
            .iter()
            .any(|end| line.contains(&format!("{home}{end}")))
    })
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one transaction on `client` and checks that every recipient got 250.
fn deliver(client: &mut Client, recipients: &[&str], test_id: &str) {
    assert_eq!(
        client.command("MAIL FROM:<sender@example.net>").code,
        250,
        "MAIL FROM"
    );
    for recipient in recipients {
        let reply = client.command(&format!("RCPT TO:<{recipient}>"));
        assert_eq!(reply.code, 250, "RCPT TO:<{recipient}>: {reply:?}");
    }
    assert_eq!(client.command("DATA").code, 354, "DATA");
    client.send(format!("Subject: traced\r\nX-Test-Id: {test_id}\r\n\r\nbody\r\n.\r\n").as_bytes());
    for recipient in recipients {
        let reply = client.read_reply();
        assert_eq!(
            reply.code, 250,
            "delivery to {recipient} ({test_id}): {reply:?}"
        );
    }
}

/// Checks that the trace contains `account`'s Maildir work, because without
/// it the uid check passes trivially.
fn check_trace_coverage(
    calls: &[FileCall],
    accounts: &[Account],
    account: &Account,
    messages: usize,
) {
    let own: Vec<&FileCall> = calls
        .iter()
        .filter(|c| owner_of(&c.line, accounts).is_some_and(|a| a.uid == account.uid))
        .collect();
    let count = |names: &[&str]| {
        own.iter()
            .filter(|c| names.contains(&c.name.as_str()))
            .count()
    };
    let creates = own
        .iter()
        .filter(|c| c.name.starts_with("open") && c.line.contains("O_CREAT"))
        .count();
    assert!(
        count(&["mkdir", "mkdirat"]) >= 4,
        "directory creations traced for {} (Maildir, tmp, new, cur): {own:#?}",
        account.address
    );
    assert!(
        creates >= messages,
        "files created for {} ({messages} messages): {own:#?}",
        account.address
    );
    assert!(
        count(&["rename", "renameat", "renameat2", "link", "linkat"]) >= messages,
        "moves into new/ traced for {} ({messages} messages): {own:#?}",
        account.address
    );
}

#[test]
fn file_calls_run_as_owner() {
    if common::skip_unless_root("file_calls_run_as_owner") {
        return;
    }
    if !strace_available() {
        eprintln!(
            "skipped file_calls_run_as_owner: strace is not installed (Debian package strace)"
        );
        return;
    }
    let mut setup = Setup::new("cred-strace");
    let alice = setup.add_account("alice@example.org");
    // bob has a Maildir++ quota, so deliveries to him also create and
    // append to `maildirsize`.
    let bob = setup.add_account_with_quota("bob@example.org", alice.uid + 1, "10000000S");
    let accounts = [alice.clone(), bob.clone()];
    let mut daemon = setup.start("detail_folders = create\n");

    let trace_dir = setup.dir.path.join("trace");
    fs::create_dir_all(&trace_dir).expect("create trace directory");
    let tracer = Tracer::attach(daemon.pid(), &trace_dir.join("zoha"));

    // Each owner gets three messages. The first RCPT of each owner creates
    // the Maildir, and bob+lists creates a folder.
    let mut client = Client::ready(setup.port);
    deliver(&mut client, &[&alice.address, &bob.address], "both-1");
    deliver(&mut client, &[&bob.address], "bob-1");
    deliver(&mut client, &[&alice.address], "alice-1");
    let mut second = Client::ready(setup.port);
    deliver(
        &mut second,
        &["bob+lists@example.org", &alice.address],
        "both-2",
    );
    assert_eq!(client.command("QUIT").code, 221, "QUIT");
    assert_eq!(
        second.command("QUIT").code,
        221,
        "QUIT of the second session"
    );
    let messages_per_owner = 3;

    let traces = tracer.finish();
    assert!(!traces.is_empty(), "strace wrote no trace files");
    let mail_root = setup.dir.path.join("home").display().to_string();
    let calls: Vec<FileCall> = traces
        .iter()
        .flat_map(|(tid, trace)| file_calls(tid, trace, &mail_root))
        .collect();

    let wrong: Vec<String> = calls
        .iter()
        .filter_map(|call| {
            let allowed = owner_of(&call.line, &accounts).map(|a| a.uid);
            let ok = call.fsuid != 0 && allowed.is_none_or(|uid| uid == call.fsuid);
            (!ok).then(|| format!("thread {} as uid {}: {}", call.tid, call.fsuid, call.line))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "file calls under {mail_root} ran with the wrong file system uid:\n{}",
        wrong.join("\n")
    );
    for account in &accounts {
        check_trace_coverage(&calls, &accounts, account, messages_per_owner);
    }
    assert!(daemon.stop().success(), "zoha exit status");
}
