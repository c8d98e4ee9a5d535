//! Account source `authdaemon:/path`: courier-authlib's authdaemond socket.
//!
//! One UNIX stream connection per lookup: Zoha sends
//! `PRE . <service> <address>` and reads `KEY=value` lines up to a line
//! holding a single `.`, or the single line `FAIL` for an unknown account.
//! Keys used: `UID` and `GID` (or `USERNAME`, a system user whose uid and
//! gid are taken from the user database), `HOME`, `MAILDIR` (empty means
//! `HOME/Maildir`), `QUOTA` and `OPTIONS`; other keys (`ADDRESS`, `NAME`,
//! `PASSWD`, ...) are ignored. The service name is `authdaemon_service`,
//! `login` by default, the same one Courier's maildrop asks for.
//!
//! Failures: `FAIL` is [`Lookup::Unknown`]; a refused or dropped connection, a
//! reply that does not arrive within `authdaemon_timeout`, a reply without
//! the `.` line, and a reply without uid, gid or home are [`Lookup::Failed`].
//! After a timeout, lookups fail at once for 30 seconds, so that the
//! recipients of one transaction do not each wait for a stalled daemon.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Account, Lookup, Record, Source};

/// Longest reply accepted; authdaemond replies are a few hundred bytes.
const MAX_REPLY: usize = 64 * 1024;

/// How long lookups fail at once after authdaemond did not answer in time,
/// so that a transaction with many recipients does not wait for each one.
const TIMEOUT_BACKOFF: Duration = Duration::from_secs(30);

/// The courier-authlib authdaemon source.
pub struct Authdaemon {
    socket: PathBuf,
    service: String,
    timeout: Duration,
    /// When a request last timed out.
    last_timeout: Mutex<Option<Instant>>,
}

/// The reason a request got no usable reply.
enum AskError {
    /// authdaemond did not accept, read or answer within the timeout.
    TimedOut(String),
    /// Any other failure.
    Failed(String),
}

impl Authdaemon {
    /// Creates the source for the socket at `socket`.
    pub fn new(socket: &Path, service: &str, timeout: Duration) -> Authdaemon {
        Authdaemon {
            socket: socket.to_path_buf(),
            service: service.to_string(),
            timeout,
            last_timeout: Mutex::new(None),
        }
    }

    fn timed_out(&self, step: &str) -> AskError {
        AskError::TimedOut(format!(
            "{step}: no reply within {} s",
            self.timeout.as_secs()
        ))
    }

    /// Sends the request and returns the raw reply text.
    fn ask(&self, address: &str) -> Result<String, AskError> {
        use std::io::ErrorKind::{TimedOut, WouldBlock};
        let deadline = Instant::now() + self.timeout;
        let mut stream = match crate::sys::unix_connect(&self.socket, self.timeout) {
            Ok(stream) => stream,
            Err(e) if e.kind() == TimedOut => return Err(self.timed_out("connect")),
            Err(e) => {
                return Err(AskError::Failed(format!(
                    "cannot connect to {}: {e}",
                    self.socket.display()
                )))
            }
        };
        let request = format!("PRE . {} {}\n", self.service, address);
        let sent = stream
            .set_write_timeout(Some(self.timeout))
            .and_then(|()| stream.write_all(request.as_bytes()));
        match sent {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
                return Err(self.timed_out("request"))
            }
            Err(e) => return Err(AskError::Failed(format!("sending the request failed: {e}"))),
        }
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while !is_complete(&reply) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out("reply"));
            }
            let read = stream
                .set_read_timeout(Some(left))
                .and_then(|()| stream.read(&mut buf));
            let n = match read {
                Ok(0) => {
                    return Err(AskError::Failed(
                        "the connection closed before the end of the reply".into(),
                    ))
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
                    return Err(self.timed_out("reply"))
                }
                Err(e) => return Err(AskError::Failed(format!("reading the reply failed: {e}"))),
            };
            reply.extend_from_slice(&buf[..n]);
            if reply.len() > MAX_REPLY {
                return Err(AskError::Failed(format!(
                    "the reply is longer than {MAX_REPLY} bytes"
                )));
            }
        }
        String::from_utf8(reply)
            .map_err(|_| AskError::Failed("the reply is not valid UTF-8".into()))
    }
}

/// Reports whether `reply` is complete: `FAIL`, or lines ending in `.`.
fn is_complete(reply: &[u8]) -> bool {
    reply.starts_with(b"FAIL\n") || reply == b".\n" || reply.ends_with(b"\n.\n")
}

/// Turns a complete reply into a lookup result.
fn parse_reply(reply: &str, address: &str, origin: &str) -> Lookup {
    if reply.starts_with("FAIL\n") {
        return Lookup::Unknown;
    }
    let mut get = std::collections::HashMap::new();
    for line in reply.lines() {
        if line == "." {
            break;
        }
        match line.split_once('=') {
            Some((key, value)) => {
                get.insert(key.to_string(), value.to_string());
            }
            None => {
                return Lookup::Failed(format!(
                    "malformed reply line \"{}\"",
                    line.escape_default()
                ))
            }
        }
    }
    match account_from_reply(&get, address, origin) {
        Ok(account) => Lookup::Found(Box::new(account)),
        Err(why) => Lookup::Failed(why),
    }
}

fn account_from_reply(
    get: &std::collections::HashMap<String, String>,
    address: &str,
    origin: &str,
) -> Result<Account, String> {
    let number = |key: &str| -> Result<Option<u32>, String> {
        match get.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{key}={v} is not a number")),
        }
    };
    let (uid, gid, groups) = match (number("UID")?, number("GID")?, get.get("USERNAME")) {
        (Some(uid), Some(gid), _) => (uid, gid, vec![gid]),
        (_, _, Some(user)) => {
            let entry = crate::sys::getpwnam(user)
                .map_err(|e| format!("getpwnam({user}) failed: {e}"))?
                .ok_or_else(|| format!("USERNAME={user} is not a system user"))?;
            let groups =
                crate::sys::group_list(&entry.name, entry.gid).unwrap_or_else(|_| vec![entry.gid]);
            (entry.uid, entry.gid, groups)
        }
        _ => return Err("the reply has neither UID and GID nor USERNAME".into()),
    };
    let record = Record {
        home: get.get("HOME").ok_or("the reply has no HOME")?,
        mail: get.get("MAILDIR").map(String::as_str),
        quota: get.get("QUOTA").map(String::as_str),
        options: get.get("OPTIONS").map(String::as_str),
    };
    Account::from_record(address, (uid, gid, groups), record, origin.to_string())
}

impl Source for Authdaemon {
    fn lookup(&self, local: &str, domain: &str) -> Lookup {
        let address = if domain.is_empty() {
            local.to_string()
        } else {
            format!("{local}@{domain}")
        };
        if address
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Lookup::Unknown;
        }
        let mut last_timeout = self.last_timeout.lock().unwrap_or_else(|p| p.into_inner());
        if last_timeout.is_some_and(|t| t.elapsed() < TIMEOUT_BACKOFF) {
            return Lookup::Failed("authdaemond did not answer a request moments ago".into());
        }
        drop(last_timeout);
        match self.ask(&address) {
            Ok(reply) => parse_reply(&reply, &address, &self.describe()),
            Err(AskError::TimedOut(why)) => {
                last_timeout = self.last_timeout.lock().unwrap_or_else(|p| p.into_inner());
                *last_timeout = Some(Instant::now());
                Lookup::Failed(why)
            }
            Err(AskError::Failed(why)) => Lookup::Failed(why),
        }
    }

    fn describe(&self) -> String {
        format!("authdaemon:{}", self.socket.display())
    }

    fn check(&self) -> Vec<String> {
        match crate::sys::unix_connect(&self.socket, self.timeout) {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("cannot connect to {}: {e}", self.socket.display())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_full() {
        let reply = "USERNAME=alice\nUID=5000\nGID=5001\nHOME=/srv/alice\nMAILDIR=/srv/alice/Mail\nQUOTA=100S\nOPTIONS=disableimap=1,mailhost=b\nADDRESS=alice@example.org\n.\n";
        match parse_reply(reply, "alice@example.org", "authdaemon:/s") {
            Lookup::Found(a) => {
                assert_eq!((a.uid, a.gid), (5000, 5001));
                assert_eq!(a.maildir, Path::new("/srv/alice/Mail"));
                assert_eq!(a.quota.as_deref(), Some("100S"));
                assert_eq!(a.option("disableimap"), Some("1"));
                assert_eq!(a.mailhost(), Some("b"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reply_empty_maildir_means_home() {
        let reply = "UID=5000\nGID=5000\nHOME=/srv/bob\nMAILDIR=\n.\n";
        match parse_reply(reply, "bob@example.org", "x") {
            Lookup::Found(a) => assert_eq!(a.maildir, Path::new("/srv/bob/Maildir")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reply_fail_is_unknown() {
        assert_eq!(parse_reply("FAIL\n", "x@example.org", "x"), Lookup::Unknown);
    }

    #[test]
    fn reply_without_uid_fails() {
        assert!(matches!(
            parse_reply("HOME=/h\n.\n", "x@example.org", "x"),
            Lookup::Failed(_)
        ));
        assert!(matches!(
            parse_reply("UID=x\nGID=1\nHOME=/h\n.\n", "x@example.org", "x"),
            Lookup::Failed(_)
        ));
    }

    #[test]
    fn completeness() {
        assert!(is_complete(b"FAIL\n"));
        assert!(is_complete(b"UID=1\n.\n"));
        assert!(!is_complete(b"UID=1\n"));
        assert!(!is_complete(b"UID=1\n."));
    }
}
