//! Maildir file names: `<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<size with CRLF>`.
//!
//! The unique part combines the time, the process id and a per-process
//! counter, so two deliveries in the same microsecond by two threads of one
//! process, or by two processes, never share a name; the host name (with
//! `/` written as `\057` and `:` as `\072`, as Maildir readers expect)
//! separates nodes that share storage. `S=` is the file's size on disk
//! (Courier's quota code reads it) and `W=` its size with CRLF line ends
//! (Courier IMAP reports it as RFC822.SIZE without reading the file).
//!
//! Failures: none.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The unique part of a Maildir file name, before the `,S=` suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueName {
    /// `<sec>.M<usec>P<pid>Q<n>`: also the delivery id in replies and logs.
    pub id: String,
    /// `<id>.<escaped host>`: the name of the file in `tmp/`.
    pub base: String,
}

impl UniqueName {
    /// Makes a new name for `host` from the clock, the pid and the counter.
    pub fn next(host: &str) -> UniqueName {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        UniqueName::from_parts(
            now.as_secs(),
            now.subsec_micros(),
            crate::sys::getpid(),
            n,
            host,
        )
    }

    /// Builds a name from explicit parts.
    pub fn from_parts(secs: u64, micros: u32, pid: u32, counter: u64, host: &str) -> UniqueName {
        let id = format!("{secs}.M{micros}P{pid}Q{counter}");
        let base = format!("{id}.{}", escape_host(host));
        UniqueName { id, base }
    }

    /// Returns the name in `new/`: the base plus the size attributes.
    pub fn with_sizes(&self, size: u64, rfc822_size: u64) -> String {
        format!("{},S={size},W={rfc822_size}", self.base)
    }
}

/// Escapes a host name for a Maildir file name: `/` as `\057`, `:` as `\072`.
pub fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            c => out.push(c),
        }
    }
    out
}

/// Reads the `,S=<size>` attribute from a Maildir file name.
pub fn size_from_name(name: &str) -> Option<u64> {
    let attributes = name.split(':').next()?;
    attributes
        .split(',')
        .skip(1)
        .find_map(|attr| attr.strip_prefix("S="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_format_exact() {
        let n = UniqueName::from_parts(1733343384, 12, 4242, 7, "mx1.example.org");
        assert_eq!(n.id, "1733343384.M12P4242Q7");
        assert_eq!(n.base, "1733343384.M12P4242Q7.mx1.example.org");
        assert_eq!(
            n.with_sizes(2048, 2100),
            "1733343384.M12P4242Q7.mx1.example.org,S=2048,W=2100"
        );
    }

    #[test]
    fn host_escaping() {
        assert_eq!(escape_host("a/b:c"), "a\\057b\\072c");
    }

    #[test]
    fn names_distinct_across_threads() {
        // 8 threads, 1000 names each, in the same second: all distinct.
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..1000)
                        .map(|_| UniqueName::next("h").base)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for h in handles {
            for name in h.join().unwrap() {
                assert!(all.insert(name));
            }
        }
        assert_eq!(all.len(), 8000);
    }

    #[test]
    fn size_attribute_parsed() {
        assert_eq!(size_from_name("1.M2P3Q4.h,S=2048,W=2100:2,S"), Some(2048));
        assert_eq!(size_from_name("1.M2P3Q4.h,W=2100,S=99"), Some(99));
        assert_eq!(size_from_name("1.M2P3Q4.h"), None);
        assert_eq!(size_from_name("1.M2P3Q4.h:2,S"), None);
    }
}
