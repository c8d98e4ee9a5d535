//! Courier's own programs as test references: running them as a mailbox owner.
//!
//! The Courier tests compare Zoha with Debian's Courier packages: `maildirmake`
//! and `deliverquota` from maildrop, and Courier IMAP's `imapd` in its
//! pre-authenticated mode (it reads one Maildir on standard input and output,
//! with no daemon and no password). Every program runs with the mailbox
//! owner's uid and gid, through `setpriv` when the tests run as root.
//!
//! [`courier_available`] decides whether a test can use them: when they are
//! missing, the test is skipped with a message, unless the environment
//! variable `ZOHA_REQUIRE_COURIER` is set (as `tests/courier/run.sh` does),
//! which turns a missing program into a failure.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{Client, Reply};

/// Courier IMAP's server binary; with `AUTHENTICATED` set it serves one session on stdio.
pub const IMAPD: &str = "/usr/bin/imapd";
/// maildrop's quota-aware delivery program: exit 0 delivered, 77 over quota.
pub const DELIVERQUOTA: &str = "/usr/bin/deliverquota";
/// maildrop's Maildir creation program (`-q` sets a quota, `-f` makes a folder).
pub const MAILDIRMAKE: &str = "/usr/bin/maildirmake";

/// Exit status of `deliverquota` when the message would go over quota (EX_NOPERM).
pub const OVER_QUOTA_EXIT: i32 = 77;

/// Reports whether Courier's programs are installed. When one is missing,
/// prints why `test` is skipped and returns false, or panics when
/// `ZOHA_REQUIRE_COURIER` is set.
pub fn courier_available(test: &str) -> bool {
    programs_available(
        test,
        &[IMAPD, DELIVERQUOTA, MAILDIRMAKE],
        "install courier-imap and maildrop, or run tests/courier/run.sh",
    )
}

/// Reports whether every one of `programs` exists. When one is missing,
/// prints why `test` is skipped, with `install` as the remedy, and returns
/// false, or panics when `ZOHA_REQUIRE_COURIER` is set.
pub fn programs_available(test: &str, programs: &[&str], install: &str) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} missing; {install}", missing.join(", "));
    if std::env::var_os("ZOHA_REQUIRE_COURIER").is_some() {
        panic!("{test}: {why}");
    }
    eprintln!("skipped {test}: {why}");
    false
}

/// A mailbox owner: the uid and gid Courier's programs run with, and the home.
#[derive(Debug, Clone)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl Owner {
    /// Returns the owner of a test account's mailbox.
    pub fn of(account: &crate::common::Account) -> Owner {
        Owner {
            uid: account.uid,
            gid: account.gid,
            home: account.home.clone(),
        }
    }

    /// Builds a command that runs `program` as this owner with a clean environment.
    fn command(&self, program: &str, env: &[(&str, &str)]) -> Command {
        let mut command = if crate::common::is_root() {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.uid))
                .arg(format!("--regid={}", self.gid))
                .arg("--clear-groups")
                .arg("env")
                .arg("-i");
            c.arg(format!("HOME={}", self.home.display()));
            c.arg("PATH=/usr/bin:/bin");
            for (name, value) in env {
                c.arg(format!("{name}={value}"));
            }
            c.arg(program);
            c
        } else {
            let mut c = Command::new(program);
            c.env_clear()
                .env("HOME", &self.home)
                .env("PATH", "/usr/bin:/bin");
            for (name, value) in env {
                c.env(name, value);
            }
            c
        };
        command.current_dir(&self.home);
        command
    }

    /// Runs `program args` as this owner, with `input` on standard input;
    /// returns its output without checking the exit status.
    pub fn run(&self, program: &str, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(program, &[])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut stdin = child.stdin.take().expect("stdin of child");
        stdin.write_all(input).expect("write to child");
        drop(stdin);
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for {program}: {e}"))
    }

    /// Runs `maildirmake args` as this owner and panics when it fails.
    pub fn maildirmake(&self, args: &[&str]) {
        let output = self.run(MAILDIRMAKE, args, b"");
        assert!(
            output.status.success(),
            "maildirmake {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Creates the Maildir `dir` and, when `quota` is given, sets it with
    /// `maildirmake -q` (which needs the Maildir to exist first).
    pub fn make_maildir(&self, dir: &Path, quota: Option<&str>) {
        let text = dir.to_str().expect("UTF-8 path");
        self.maildirmake(&[text]);
        if let Some(quota) = quota {
            self.maildirmake(&["-q", quota, text]);
        }
    }

    /// Delivers `message` into `dir` with `deliverquota`, which reads it from
    /// a regular file as under a mail server. Returns the exit status (0
    /// delivered, [`OVER_QUOTA_EXIT`] over quota) and panics on any other.
    pub fn deliverquota(&self, dir: &Path, message: &[u8], quota: Option<&str>) -> i32 {
        let spool = self.home.join(".deliverquota-input");
        fs::write(&spool, message).expect("write deliverquota input");
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o644)).expect("chmod input");
        let input = fs::File::open(&spool).expect("open deliverquota input");
        let mut args = vec![dir.to_str().expect("UTF-8 path").to_string()];
        args.extend(quota.map(str::to_string));
        let output = self
            .command(DELIVERQUOTA, &[])
            .args(&args)
            .stdin(Stdio::from(input))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run deliverquota");
        fs::remove_file(&spool).expect("remove deliverquota input");
        let code = output.status.code().unwrap_or(-1);
        assert!(
            code == 0 || code == OVER_QUOTA_EXIT,
            "deliverquota {args:?} exited with {:?}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        code
    }

    /// Runs one pre-authenticated Courier IMAP session on `maildir`: sends
    /// `commands` tagged `t1`, `t2`, ... and then LOGOUT; returns everything
    /// the server wrote.
    pub fn imap(&self, maildir: &Path, commands: &[&str]) -> Vec<u8> {
        let mut script = Vec::new();
        for (i, command) in commands.iter().enumerate() {
            script.extend_from_slice(format!("t{} {command}\r\n", i + 1).as_bytes());
        }
        script.extend_from_slice(b"tz LOGOUT\r\n");
        let maildir = maildir.to_str().expect("UTF-8 path");
        let mut child = self
            .command(IMAPD, &[("AUTHENTICATED", "tester")])
            .arg(maildir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Courier complains about the missing FAM daemon on stderr; that is noise here.
            .stderr(Stdio::null())
            .spawn()
            .expect("start imapd");
        let mut stdin = child.stdin.take().expect("stdin of imapd");
        stdin.write_all(&script).expect("write to imapd");
        drop(stdin);
        let output = child.wait_with_output().expect("wait for imapd");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("* PREAUTH"),
            "imapd did not start a session on {maildir}: {text}"
        );
        output.stdout
    }

    /// Returns Courier IMAP's GETQUOTAROOT INBOX response for `maildir`.
    pub fn quota_root(&self, maildir: &Path) -> ImapQuota {
        let out = self.imap(maildir, &["GETQUOTAROOT INBOX"]);
        let text = String::from_utf8_lossy(&out);
        parse_quota(&text).unwrap_or_else(|| panic!("no QUOTA line in: {text}"))
    }

    /// Returns the folder names of `LIST "" "*"` or `LSUB "" "*"` (`verb`).
    pub fn folders(&self, maildir: &Path, verb: &str) -> Vec<String> {
        let out = self.imap(maildir, &[&format!("{verb} \"\" \"*\"")]);
        let text = String::from_utf8_lossy(&out);
        let prefix = format!("* {verb} ");
        let mut names: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| rest.trim_end().rsplit_once(' '))
            .map(|(_, name)| name.trim_matches('"').to_string())
            .collect();
        names.sort();
        names
    }

    /// Selects `folder` (an IMAP name such as `INBOX.lists`) and fetches
    /// every message's RFC822.SIZE and content as Courier IMAP serves them.
    pub fn fetch_all(&self, maildir: &Path, folder: &str) -> Vec<Fetched> {
        let out = self.imap(
            maildir,
            &[
                &format!("SELECT \"{folder}\""),
                "FETCH 1:* (RFC822.SIZE BODY.PEEK[])",
            ],
        );
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(
            text.contains("t1 OK"),
            "SELECT {folder} failed in {}: {text}",
            maildir.display()
        );
        parse_fetches(&out)
    }
}

/// Usage and limits from `* QUOTA "ROOT" (STORAGE used max MESSAGE used max)`;
/// STORAGE is in kilobytes as Courier reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImapQuota {
    pub storage: Option<(u64, u64)>,
    pub messages: Option<(u64, u64)>,
}

fn parse_quota(text: &str) -> Option<ImapQuota> {
    let line = text.lines().find(|l| l.starts_with("* QUOTA "))?;
    let inner = line.split_once('(')?.1.trim_end().trim_end_matches(')');
    let words: Vec<&str> = inner.split_whitespace().collect();
    let mut quota = ImapQuota::default();
    for triple in words.chunks(3) {
        let [name, used, max] = triple else {
            return None;
        };
        let pair = (used.parse().ok()?, max.parse().ok()?);
        match *name {
            "STORAGE" => quota.storage = Some(pair),
            "MESSAGE" => quota.messages = Some(pair),
            _ => return None,
        }
    }
    Some(quota)
}

/// One message as Courier IMAP serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// RFC822.SIZE
    pub size: u64,
    /// BODY[], with the CRLF line ends IMAP uses.
    pub body: Vec<u8>,
}

/// Parses the `* n FETCH (RFC822.SIZE s BODY[] {len}...)` responses.
fn parse_fetches(out: &[u8]) -> Vec<Fetched> {
    let mut fetched = Vec::new();
    let mut pos = 0;
    while let Some(start) = find(out, pos, b" FETCH (") {
        let mut p = start + b" FETCH (".len();
        let (mut size, mut body) = (None, None);
        loop {
            match out.get(p) {
                Some(b')') => {
                    p += 1;
                    break;
                }
                Some(b' ') => p += 1,
                Some(_) => {
                    let end = find(out, p, b" ").expect("FETCH item without value");
                    let name = &out[p..end];
                    p = end + 1;
                    match name {
                        b"RFC822.SIZE" => {
                            let digits = out[p..].iter().take_while(|b| b.is_ascii_digit()).count();
                            size = std::str::from_utf8(&out[p..p + digits])
                                .ok()
                                .and_then(|s| s.parse().ok());
                            p += digits;
                        }
                        b"BODY[]" => {
                            let close = find(out, p, b"}\r\n").expect("literal length");
                            let length: usize = std::str::from_utf8(&out[p + 1..close])
                                .expect("literal digits")
                                .parse()
                                .expect("literal length number");
                            p = close + 3;
                            body = Some(out[p..p + length].to_vec());
                            p += length;
                        }
                        b"FLAGS" => {
                            p = find(out, p, b")").expect("end of FLAGS") + 1;
                        }
                        other => panic!("unexpected FETCH item {}", String::from_utf8_lossy(other)),
                    }
                }
                None => panic!("FETCH response cut short"),
            }
        }
        fetched.push(Fetched {
            size: size.expect("RFC822.SIZE in FETCH"),
            body: body.expect("BODY[] in FETCH"),
        });
        pos = p;
    }
    fetched
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Reads the `W=` attribute (size with CRLF line ends) from a Maildir file name.
pub fn rfc822_size_from_name(name: &str) -> Option<u64> {
    size_attribute(name, "W=")
}

/// Reads the `S=` attribute (size on disk) from a Maildir file name.
pub fn size_from_name(name: &str) -> Option<u64> {
    size_attribute(name, "S=")
}

/// Reads the number after `prefix` (`S=` or `W=`) from a Maildir file name.
fn size_attribute(name: &str, prefix: &str) -> Option<u64> {
    name.split(':')
        .next()?
        .split(',')
        .find_map(|a| a.strip_prefix(prefix))
        .and_then(|v| v.parse().ok())
}

/// Turns LF line ends into CRLF, as IMAP serves a Maildir file.
pub fn to_crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Builds a message whose LF form is exactly `length` bytes: a Subject line,
/// a blank line and lines of `x`. Returns the CRLF form that goes over LMTP.
pub fn message_of_length(subject: &str, length: usize) -> Vec<u8> {
    let head = format!("Subject: {subject}\n\n");
    assert!(
        length >= head.len() + 2,
        "message length {length} too short"
    );
    let mut lf = head.into_bytes();
    let mut left = length - lf.len();
    while left > 0 {
        let line = left.min(72);
        // A line of `line` bytes including its LF.
        lf.extend(std::iter::repeat_n(b'x', line - 1));
        lf.push(b'\n');
        left -= line;
    }
    assert_eq!(lf.len(), length);
    to_crlf(&lf)
}

/// Sends `message` (CRLF line ends, already dot-stuffed) in one transaction
/// that starts with the `mail` command line. Returns the RCPT replies and the
/// replies after the data, one per accepted recipient.
pub fn transaction(
    port: u16,
    mail: &str,
    recipients: &[&str],
    message: &[u8],
) -> (Vec<Reply>, Vec<Reply>) {
    let mut c = Client::ready(port);
    let reply = c.command(mail);
    assert_eq!(reply.code, 250, "{mail}: {reply:?}");
    let rcpt: Vec<Reply> = recipients
        .iter()
        .map(|r| c.command(&format!("RCPT TO:<{r}>")))
        .collect();
    let accepted = rcpt.iter().filter(|r| r.code == 250).count();
    let mut data = Vec::new();
    if accepted > 0 {
        assert_eq!(c.command("DATA").code, 354);
        c.send(message);
        c.send(b".\r\n");
        data = (0..accepted).map(|_| c.read_reply()).collect();
    }
    assert_eq!(c.command("QUIT").code, 221);
    (rcpt, data)
}

/// Returns the delivery id of a `250 2.0.0 <address> <id> Saved` reply.
pub fn delivery_id(reply: &Reply) -> String {
    let words: Vec<&str> = reply.text().split_whitespace().collect();
    assert!(
        reply.code == 250 && words.len() == 4 && words[3] == "Saved",
        "not a delivery reply: {reply:?}"
    );
    words[2].to_string()
}

/// Returns the file in `dir` whose name starts with the delivery `id`.
pub fn file_for_id(dir: &Path, id: &str) -> PathBuf {
    let prefix = format!("{id}.");
    let name = crate::common::list_files(dir)
        .into_iter()
        .find(|n| n.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no file for {id} in {}", dir.display()));
    dir.join(name)
}

/// Applies the client side of RFC 5321 dot-stuffing to a CRLF message.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}
