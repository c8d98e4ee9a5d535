//! Account lookup: finds the uid, gid and Maildir of a recipient address.
//!
//! A recipient's local part first loses its `+detail` (each character of
//! `recipient_delimiter` is a delimiter; a local part that starts with one is
//! not split), then the sources named in `userdb` are queried in order. The
//! first source that has an account for the address decides, an unknown
//! address goes on to the next source, and a source failure stops the
//! search, because a later source must not deliver mail for an address that
//! an earlier one might own.
//!
//! Exports [`Account`], [`Accounts`] (the ordered list of sources),
//! [`Source`] (one backend), [`Lookup`] (the result) and [`Recipient`].
//! Backends: [`userdb`] (Courier userdb text file), [`passwd`] (system user
//! database) and [`authdaemon`] (courier-authlib socket).
//!
//! Failures: [`Lookup::Unknown`] becomes `550 5.1.1` at RCPT and
//! [`Lookup::Failed`] (a source that cannot answer, or a broken record)
//! becomes `451 4.3.0`.

pub mod authdaemon;
pub mod passwd;
pub mod userdb;

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::config::{Config, SourceSpec};

/// Everything delivery needs to know about one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The name the source matched (an address or a bare login name).
    pub name: String,
    /// Owner uid of the Maildir.
    pub uid: u32,
    /// Owner gid of the Maildir.
    pub gid: u32,
    /// Supplementary groups to hold while delivering (at least `gid`).
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: PathBuf,
    /// The Maildir (INBOX), absolute.
    pub maildir: PathBuf,
    /// Maildir++ quota string such as `10485760S,5000C`, if the account has one.
    pub quota: Option<String>,
    /// Courier account options, as `name=value` pairs in the order given.
    pub options: Vec<(String, String)>,
    /// The source that returned the account, for logs and `-l`.
    pub source: String,
}

impl Account {
    /// Returns the value of the Courier account option `name`, if set.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Returns the node that stores this mailbox (Courier's `mailhost` option).
    pub fn mailhost(&self) -> Option<&str> {
        self.option("mailhost").filter(|h| !h.is_empty())
    }
}

/// The text fields of an account record, as a userdb line or an
/// authdaemon reply gives them.
pub struct Record<'a> {
    /// Home directory.
    pub home: &'a str,
    /// The Maildir, absolute or relative to `home`; empty or absent means `home/Maildir`.
    pub mail: Option<&'a str>,
    /// Maildir++ quota string.
    pub quota: Option<&'a str>,
    /// Courier options, `name=value` pairs separated by commas.
    pub options: Option<&'a str>,
}

impl Account {
    /// Builds an account from a record's ids and text fields.
    pub fn from_record(
        name: &str,
        ids: (u32, u32, Vec<u32>),
        record: Record<'_>,
        source: String,
    ) -> Result<Account, String> {
        let (uid, gid, groups) = ids;
        let home = PathBuf::from(record.home);
        let maildir = resolve_maildir(&home, record.mail)?;
        Ok(Account {
            name: name.to_string(),
            uid,
            gid,
            groups,
            home,
            maildir,
            quota: record
                .quota
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_string),
            options: record.options.map(parse_options).unwrap_or_default(),
            source,
        })
    }
}

/// Parses Courier's `options` field: `name=value` pairs separated by commas.
pub fn parse_options(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (item.to_string(), "1".to_string()),
        })
        .collect()
}

/// Resolves a Maildir path from an account record: `mail` if given (relative
/// paths are relative to `home`), else `home/Maildir`. The result must be
/// absolute and free of `.` and `..` components.
pub fn resolve_maildir(home: &Path, mail: Option<&str>) -> Result<PathBuf, String> {
    if !home.is_absolute() {
        return Err(format!(
            "home directory \"{}\" is not an absolute path",
            home.display()
        ));
    }
    let path = match mail.filter(|m| !m.is_empty()) {
        Some(m) => home.join(m),
        None => home.join("Maildir"),
    };
    check_clean_path(&path)?;
    check_clean_path(home)?;
    Ok(path)
}

fn check_clean_path(path: &Path) -> Result<(), String> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.contains(&0) {
        return Err(format!("path \"{}\" contains a NUL byte", path.display()));
    }
    // Path::components hides "." components, so look at the raw text too.
    let dirty = path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || bytes
            .split(|&b| b == b'/')
            .any(|part| part == b"." || part == b"..");
    if dirty {
        return Err(format!(
            "path \"{}\" contains a . or .. component",
            path.display()
        ));
    }
    Ok(())
}

/// The result of looking an address up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A source has an account for the address.
    Found(Box<Account>),
    /// No source has an account for the address.
    Unknown,
    /// A source could not be queried; the text gives the reason.
    Failed(String),
}

/// One account backend.
pub trait Source: Send + Sync {
    /// Looks up the recipient whose local part (without detail) is `local`
    /// and whose lowercased domain is `domain` (empty for a bare name).
    fn lookup(&self, local: &str, domain: &str) -> Lookup;

    /// Returns the source as written in `userdb`, for logs.
    fn describe(&self) -> String;

    /// Checks the source for `zoha -t`; returns the problems found.
    fn check(&self) -> Vec<String>;
}

/// An address split into what lookups use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Local part without `+detail`.
    pub local: String,
    /// The detail after the delimiter, if any (possibly empty, for `alice+@`).
    pub detail: Option<String>,
    /// The domain, lowercased.
    pub domain: String,
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.domain.is_empty() {
            write!(f, "{}", self.local)
        } else {
            write!(f, "{}@{}", self.local, self.domain)
        }
    }
}

impl Recipient {
    /// Splits `local_part` at the first delimiter character that is not the
    /// first character, and lowercases `domain`.
    pub fn new(local_part: &str, domain: &str, delimiters: &str) -> Recipient {
        let split = local_part
            .char_indices()
            .skip(1)
            .find(|(_, c)| delimiters.contains(*c))
            .map(|(i, c)| (&local_part[..i], &local_part[i + c.len_utf8()..]));
        let (local, detail) = match split {
            Some((local, detail)) => (local.to_string(), Some(detail.to_string())),
            None => (local_part.to_string(), None),
        };
        Recipient {
            local,
            detail,
            domain: domain.to_lowercase(),
        }
    }
}

/// Checks that a local part cannot name a path outside a mailbox when used
/// as an account or folder name: no `/`, no NUL or control characters, no
/// leading dot, no `..`.
pub fn check_local_part(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("the local part is empty");
    }
    if local.starts_with('.') {
        return Err("the local part starts with a dot");
    }
    if local.contains("..") {
        return Err("the local part contains \"..\"");
    }
    if local.contains('/') {
        return Err("the local part contains \"/\"");
    }
    if local.chars().any(|c| c.is_control()) {
        return Err("the local part contains a control character");
    }
    Ok(())
}

/// The ordered list of account sources from `userdb`.
pub struct Accounts {
    sources: Vec<Box<dyn Source>>,
}

impl Accounts {
    /// Builds the sources named in `config.userdb`.
    pub fn from_config(config: &Config) -> Accounts {
        let sources = config
            .userdb
            .iter()
            .map(|spec| -> Box<dyn Source> {
                match spec {
                    SourceSpec::Passwd => {
                        Box::new(passwd::Passwd::new(config.local_domains.clone()))
                    }
                    SourceSpec::File(path) => {
                        Box::new(userdb::UserdbFile::new(path, config.local_domains.clone()))
                    }
                    SourceSpec::Authdaemon(path) => Box::new(authdaemon::Authdaemon::new(
                        path,
                        &config.authdaemon_service,
                        config.authdaemon_timeout,
                    )),
                }
            })
            .collect();
        Accounts { sources }
    }

    /// Builds a list from explicit sources (for tests).
    pub fn from_sources(sources: Vec<Box<dyn Source>>) -> Accounts {
        Accounts { sources }
    }

    /// Looks `recipient` up in each source in turn.
    pub fn lookup(&self, recipient: &Recipient) -> Lookup {
        for source in &self.sources {
            match source.lookup(&recipient.local, &recipient.domain) {
                Lookup::Unknown => continue,
                Lookup::Failed(why) => {
                    return Lookup::Failed(format!("{}: {why}", source.describe()))
                }
                found @ Lookup::Found(_) => return found,
            }
        }
        Lookup::Unknown
    }

    /// Checks every source for `zoha -t`.
    pub fn check(&self) -> Vec<String> {
        self.sources.iter().flat_map(|s| s.check()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_detail_variants() {
        // alice+tag, alice+, alice++x all go to alice; +x is not split.
        let r = Recipient::new("alice+tag", "Example.ORG", "+");
        assert_eq!(
            (r.local.as_str(), r.detail.as_deref(), r.domain.as_str()),
            ("alice", Some("tag"), "example.org")
        );
        let r = Recipient::new("alice+", "example.org", "+");
        assert_eq!((r.local.as_str(), r.detail.as_deref()), ("alice", Some("")));
        let r = Recipient::new("alice++x", "example.org", "+");
        assert_eq!(
            (r.local.as_str(), r.detail.as_deref()),
            ("alice", Some("+x"))
        );
        let r = Recipient::new("+x", "example.org", "+");
        assert_eq!((r.local.as_str(), r.detail.as_deref()), ("+x", None));
    }

    #[test]
    fn recipient_no_delimiter_configured() {
        let r = Recipient::new("alice+tag", "example.org", "");
        assert_eq!((r.local.as_str(), r.detail), ("alice+tag", None));
    }

    #[test]
    fn recipient_multiple_delimiters() {
        let r = Recipient::new("alice-x+y", "example.org", "+-");
        assert_eq!(
            (r.local.as_str(), r.detail.as_deref()),
            ("alice", Some("x+y"))
        );
    }

    #[test]
    fn local_part_checks() {
        assert!(check_local_part("alice").is_ok());
        assert!(check_local_part("jörg").is_ok());
        assert!(check_local_part("../../etc").is_err());
        assert!(check_local_part("alice/../bob").is_err());
        assert!(check_local_part(".hidden").is_err());
        assert!(check_local_part("a\u{0}b").is_err());
        assert!(check_local_part("a\u{7f}b").is_err());
        assert!(check_local_part("").is_err());
    }

    #[test]
    fn maildir_resolution() {
        let home = Path::new("/srv/mail/alice");
        assert_eq!(
            resolve_maildir(home, None).unwrap(),
            Path::new("/srv/mail/alice/Maildir")
        );
        assert_eq!(
            resolve_maildir(home, Some("")).unwrap(),
            Path::new("/srv/mail/alice/Maildir")
        );
        assert_eq!(
            resolve_maildir(home, Some("/var/mail/a")).unwrap(),
            Path::new("/var/mail/a")
        );
        assert_eq!(
            resolve_maildir(home, Some("mdir")).unwrap(),
            Path::new("/srv/mail/alice/mdir")
        );
        assert!(resolve_maildir(home, Some("../bob/Maildir")).is_err());
        assert!(resolve_maildir(home, Some("/srv/./x")).is_err());
        assert!(resolve_maildir(Path::new("relative"), None).is_err());
    }

    #[test]
    fn options_parsing() {
        let opts = parse_options("mailhost=node-a, disableimap=1,wbnochangepass");
        assert_eq!(opts[0], ("mailhost".to_string(), "node-a".to_string()));
        assert_eq!(opts[1], ("disableimap".to_string(), "1".to_string()));
        assert_eq!(opts[2], ("wbnochangepass".to_string(), "1".to_string()));
    }

    struct Fixed(Lookup);
    impl Source for Fixed {
        fn lookup(&self, _: &str, _: &str) -> Lookup {
            self.0.clone()
        }
        fn describe(&self) -> String {
            "fixed".into()
        }
        fn check(&self) -> Vec<String> {
            Vec::new()
        }
    }

    #[test]
    fn chain_failure_stops_search() {
        let account = Account {
            name: "a".into(),
            uid: 1000,
            gid: 1000,
            groups: vec![1000],
            home: "/h".into(),
            maildir: "/h/Maildir".into(),
            quota: None,
            options: Vec::new(),
            source: "x".into(),
        };
        let chain = Accounts::from_sources(vec![
            Box::new(Fixed(Lookup::Unknown)),
            Box::new(Fixed(Lookup::Failed("down".into()))),
            Box::new(Fixed(Lookup::Found(Box::new(account)))),
        ]);
        let r = Recipient::new("a", "example.org", "+");
        assert_eq!(chain.lookup(&r), Lookup::Failed("fixed: down".into()));
    }
}
