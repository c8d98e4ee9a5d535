//! Account source `file:/path`: a Courier userdb text file.
//!
//! One account a line: the name, a TAB, then `field=value` pairs joined by
//! `|`, as Courier's `userdb(8)` writes them. Fields used: `uid`, `gid`,
//! `home`, `mail` (the Maildir, default `home/Maildir`), `quota` and
//! `options`; other fields (`shell`, `systempw`, ...) are ignored. Blank lines
//! and lines starting with `#` are skipped.
//!
//! Names are full addresses, matched with the domain lowercased, or bare
//! login names, matched for the domains in `local_domains` and for the bare
//! `Postmaster` recipient. The local part is tried as given, then lowercased.
//! The file is read again whenever its inode, size or modification time
//! changes, so edits apply without a restart; replace it atomically (write a
//! new file, then rename it over the old one).
//!
//! Failures: an unreadable file is [`Lookup::Failed`] for every lookup; a
//! malformed line makes its own name [`Lookup::Failed`], and a line whose
//! name cannot be read makes every name the file does not know
//! [`Lookup::Failed`] instead of unknown, because that line might have been
//! the recipient's.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Account, Lookup, Record, Source};

/// The Courier userdb text file source.
pub struct UserdbFile {
    path: PathBuf,
    local_domains: Vec<String>,
    cache: Mutex<Option<Arc<Table>>>,
}

/// The identity of one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// One parsed version of the file.
#[derive(Debug, Default)]
struct Table {
    identity: Option<Identity>,
    accounts: HashMap<String, Account>,
    /// Names whose line could not be used, with the reason.
    broken: HashMap<String, String>,
    /// Problems of lines without a readable name, with line numbers.
    nameless: Vec<String>,
}

impl UserdbFile {
    /// Creates the source for the file at `path`; nothing is read yet.
    pub fn new(path: &Path, local_domains: Vec<String>) -> UserdbFile {
        UserdbFile {
            path: path.to_path_buf(),
            local_domains,
            cache: Mutex::new(None),
        }
    }

    /// Returns the current table, reading the file again if it changed.
    fn table(&self) -> Result<Arc<Table>, String> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let identity = Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(table) = cache.as_ref() {
            if table.identity == Some(identity) {
                return Ok(Arc::clone(table));
            }
        }
        let text = std::fs::read(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let mut table = parse_table(&text, &self.path.display().to_string());
        table.identity = Some(identity);
        let table = Arc::new(table);
        *cache = Some(Arc::clone(&table));
        Ok(table)
    }

    fn keys(&self, local: &str, domain: &str) -> Vec<String> {
        let lower = local.to_lowercase();
        let mut keys = Vec::with_capacity(4);
        if !domain.is_empty() {
            keys.push(format!("{local}@{domain}"));
            keys.push(format!("{lower}@{domain}"));
        }
        if domain.is_empty() || self.local_domains.iter().any(|d| d == domain) {
            keys.push(local.to_string());
            keys.push(lower);
        }
        keys.dedup();
        keys
    }
}

impl Source for UserdbFile {
    fn lookup(&self, local: &str, domain: &str) -> Lookup {
        let table = match self.table() {
            Ok(t) => t,
            Err(e) => return Lookup::Failed(e),
        };
        for key in self.keys(local, domain) {
            if let Some(account) = table.accounts.get(&key) {
                return Lookup::Found(Box::new(account.clone()));
            }
            if let Some(why) = table.broken.get(&key) {
                return Lookup::Failed(why.clone());
            }
        }
        match table.nameless.first() {
            Some(problem) => Lookup::Failed(format!("the file has unreadable lines ({problem})")),
            None => Lookup::Unknown,
        }
    }

    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn check(&self) -> Vec<String> {
        match self.table() {
            Err(e) => vec![e],
            Ok(table) => {
                let mut problems: Vec<String> = table.broken.values().cloned().collect();
                problems.sort();
                problems.extend(table.nameless.iter().cloned());
                problems
            }
        }
    }
}

/// Parses the whole file; `origin` names it in messages.
fn parse_table(text: &[u8], origin: &str) -> Table {
    let mut table = Table::default();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) || line.first() == Some(&b'#') {
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            table
                .nameless
                .push(format!("{origin}:{number}: the line is not valid UTF-8"));
            continue;
        };
        let Some((name, fields)) = line.split_once('\t') else {
            table.nameless.push(format!(
                "{origin}:{number}: no TAB between the name and the fields"
            ));
            continue;
        };
        let key = normalise_name(name);
        if key.is_empty() {
            table
                .nameless
                .push(format!("{origin}:{number}: empty account name"));
            continue;
        }
        if table.accounts.contains_key(&key) || table.broken.contains_key(&key) {
            table.broken.insert(
                key.clone(),
                format!("{origin}:{number}: account \"{name}\" is listed twice"),
            );
            table.accounts.remove(&key);
            continue;
        }
        match parse_record(&key, fields, origin) {
            Ok(account) => {
                table.accounts.insert(key, account);
            }
            Err(why) => {
                table
                    .broken
                    .insert(key, format!("{origin}:{number}: account \"{name}\": {why}"));
            }
        }
    }
    table
}

/// Lowercases the domain part of a name; the local part stays as written.
fn normalise_name(name: &str) -> String {
    match name.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => name.to_string(),
    }
}

/// Parses the `field=value|...` part of a line into an account.
fn parse_record(name: &str, fields: &str, origin: &str) -> Result<Account, String> {
    let mut values: HashMap<&str, &str> = HashMap::new();
    for pair in fields.split('|').filter(|p| !p.is_empty()) {
        let (field, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("field \"{pair}\" is not field=value"))?;
        values.insert(field.trim(), value);
    }
    let number = |field: &str| -> Result<u32, String> {
        let value = values
            .get(field)
            .ok_or_else(|| format!("the {field} field is missing"))?;
        value
            .trim()
            .parse()
            .map_err(|_| format!("{field}={value} is not a number"))
    };
    let uid = number("uid")?;
    let gid = number("gid")?;
    let record = Record {
        home: values.get("home").ok_or("the home field is missing")?,
        mail: values.get("mail").copied(),
        quota: values.get("quota").copied(),
        options: values.get("options").copied(),
    };
    Account::from_record(
        name,
        (uid, gid, vec![gid]),
        record,
        format!("file:{origin}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(text: &str) -> (UserdbFile, PathBuf) {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("zoha-userdb-{}-{n}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        (UserdbFile::new(&path, vec!["example.org".into()]), path)
    }

    fn found(lookup: Lookup) -> Account {
        match lookup {
            Lookup::Found(a) => *a,
            other => panic!("expected an account, got {other:?}"),
        }
    }

    #[test]
    fn full_record() {
        let (db, path) = file_with(
            "# accounts\n\nalice@Example.ORG\tuid=5000|gid=5001|home=/srv/mail/alice|quota=1073741824S|options=mailhost=node-a\n",
        );
        let a = found(db.lookup("alice", "example.org"));
        assert_eq!((a.uid, a.gid), (5000, 5001));
        assert_eq!(a.maildir, Path::new("/srv/mail/alice/Maildir"));
        assert_eq!(a.quota.as_deref(), Some("1073741824S"));
        assert_eq!(a.mailhost(), Some("node-a"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn case_of_local_part() {
        let (db, path) = file_with("alice@example.org\tuid=5000|gid=5000|home=/h/a\n");
        assert!(matches!(
            db.lookup("Alice", "example.org"),
            Lookup::Found(_)
        ));
        assert_eq!(db.lookup("bob", "example.org"), Lookup::Unknown);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn bare_names_for_local_domains_only() {
        let (db, path) = file_with("carol\tuid=5000|gid=5000|home=/h/c|mail=/m/c\n");
        assert_eq!(
            found(db.lookup("carol", "example.org")).maildir,
            Path::new("/m/c")
        );
        assert_eq!(db.lookup("carol", "other.example"), Lookup::Unknown);
        assert!(matches!(db.lookup("carol", ""), Lookup::Found(_)));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn broken_line_fails_its_name() {
        let (db, path) = file_with(
            "bad@example.org\tuid=abc|gid=1|home=/h\nok@example.org\tuid=5000|gid=5000|home=/h/o\n",
        );
        match db.lookup("bad", "example.org") {
            Lookup::Failed(why) => assert!(why.contains(":1:") && why.contains("uid=abc"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(db.lookup("ok", "example.org"), Lookup::Found(_)));
        assert_eq!(db.lookup("nobody", "example.org"), Lookup::Unknown);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn nameless_line_makes_unknowns_fail() {
        let (db, path) = file_with("no tab here\nok@example.org\tuid=5000|gid=5000|home=/h/o\n");
        assert!(matches!(db.lookup("ok", "example.org"), Lookup::Found(_)));
        assert!(matches!(
            db.lookup("nobody", "example.org"),
            Lookup::Failed(_)
        ));
        assert_eq!(db.check().len(), 1);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_file_fails() {
        let db = UserdbFile::new(Path::new("/nonexistent/zoha/userdb"), Vec::new());
        assert!(matches!(db.lookup("a", "example.org"), Lookup::Failed(_)));
        assert_eq!(db.check().len(), 1);
    }

    #[test]
    fn duplicate_name_fails() {
        let (db, path) = file_with("a@example.org\tuid=5000|gid=5000|home=/h/a\na@example.org\tuid=5001|gid=5001|home=/h/b\n");
        assert!(matches!(db.lookup("a", "example.org"), Lookup::Failed(_)));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn dotdot_maildir_fails() {
        let (db, path) = file_with("a@example.org\tuid=5000|gid=5000|home=/h/a|mail=../b\n");
        assert!(matches!(db.lookup("a", "example.org"), Lookup::Failed(_)));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn reload_after_change() {
        let (db, path) = file_with("a@example.org\tuid=5000|gid=5000|home=/h/a\n");
        assert!(matches!(db.lookup("a", "example.org"), Lookup::Found(_)));
        let next = path.with_extension("new");
        std::fs::write(&next, "b@example.org\tuid=5000|gid=5000|home=/h/b\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(db.lookup("a", "example.org"), Lookup::Unknown);
        assert!(matches!(db.lookup("b", "example.org"), Lookup::Found(_)));
        std::fs::remove_file(path).unwrap();
    }
}
