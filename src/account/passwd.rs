//! Account source `passwd`: the system user database.
//!
//! Answers for bare names and for addresses whose domain is in
//! `local_domains`: the local part is the login name (tried as given, then
//! lowercased), the Maildir is `home/Maildir`, and the supplementary groups
//! are the user's groups from the group database.
//!
//! Failures: an error from `getpwnam_r` (an unreachable NSS backend, for
//! example) is [`Lookup::Failed`]; a name not in the database, or a domain
//! not in `local_domains`, is [`Lookup::Unknown`].

use super::{resolve_maildir, Account, Lookup, Source};

/// The system user database source.
pub struct Passwd {
    local_domains: Vec<String>,
}

impl Passwd {
    /// Creates the source for the domains in `local_domains` (lowercased).
    pub fn new(local_domains: Vec<String>) -> Passwd {
        Passwd { local_domains }
    }

    fn lookup_name(&self, name: &str) -> Lookup {
        let entry = match crate::sys::getpwnam(name) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Lookup::Unknown,
            Err(e) => return Lookup::Failed(format!("getpwnam({name}) failed: {e}")),
        };
        let maildir = match resolve_maildir(&entry.home, None) {
            Ok(m) => m,
            Err(why) => return Lookup::Failed(format!("user {name}: {why}")),
        };
        let groups = match crate::sys::group_list(&entry.name, entry.gid) {
            Ok(g) => g,
            Err(e) => return Lookup::Failed(format!("group list of {name} failed: {e}")),
        };
        Lookup::Found(Box::new(Account {
            name: entry.name,
            uid: entry.uid,
            gid: entry.gid,
            groups,
            home: entry.home,
            maildir,
            quota: None,
            options: Vec::new(),
            source: "passwd".into(),
        }))
    }
}

impl Source for Passwd {
    fn lookup(&self, local: &str, domain: &str) -> Lookup {
        if !domain.is_empty() && !self.local_domains.iter().any(|d| d == domain) {
            return Lookup::Unknown;
        }
        match self.lookup_name(local) {
            Lookup::Unknown if local.to_lowercase() != local => {
                self.lookup_name(&local.to_lowercase())
            }
            other => other,
        }
    }

    fn describe(&self) -> String {
        "passwd".into()
    }

    fn check(&self) -> Vec<String> {
        if self.local_domains.is_empty() {
            return vec!["userdb = passwd answers only for local_domains, which is empty".into()];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_found_for_local_domain() {
        let source = Passwd::new(vec!["example.org".into()]);
        match source.lookup("root", "example.org") {
            Lookup::Found(a) => {
                assert_eq!(a.uid, 0);
                assert!(a.maildir.ends_with("Maildir"));
                assert!(a.groups.contains(&a.gid));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            source.lookup("ROOT", "example.org"),
            Lookup::Found(_)
        ));
    }

    #[test]
    fn foreign_domain_unknown() {
        let source = Passwd::new(vec!["example.org".into()]);
        assert_eq!(source.lookup("root", "elsewhere.example"), Lookup::Unknown);
        assert_eq!(
            source.lookup("no-such-user-zoha", "example.org"),
            Lookup::Unknown
        );
    }
}
