//! Maildir++ quota, compatible with Courier's maildirquota(7) and deliverquota.
//!
//! A quota string such as `10485760S,5000C` limits bytes (`S`) and messages
//! (`C`). The `maildirsize` file in the Maildir root contains the quota string on
//! its first line and then `<bytes> <count>` lines (negative after deletions)
//! whose sums are the usage. A delivery is allowed when usage plus the new
//! message stays within every limit; afterwards one `<size> 1` line is
//! appended with a single `O_APPEND` write, so concurrent writers never
//! interleave.
//!
//! The file is rebuilt from the Maildir itself when it is missing, cannot be
//! read or parsed, names a different quota than the account, is 5120 bytes
//! or larger, or has negative totals. When a delivery would go over quota,
//! it is also rebuilt first if it has more than one size line or is 15
//! minutes old or older, because its sums may then be stale (Courier's rule). Rebuilding sums the `,S=` sizes
//! (or the file sizes) of `new/` and `cur/` in the root and in every folder
//! except `.Trash`, writes the new file under `tmp/` and renames it into place.
//!
//! Exports [`QuotaLimit`], [`Usage`], [`Verdict`], [`check`] and [`record`].
//!
//! Failures: I/O errors while rebuilding are [`DeliveryError`]s with step
//! [`Step::Quota`]; a corrupt `maildirsize` is never an error (it is
//! rebuilt), and an invalid quota string disables the quota with a warning.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};

use super::{name, DeliveryError, Maildir, Step, FILE_MODE};
use crate::sys;

/// The name of the quota file in the Maildir root.
pub const QUOTA_FILE: &str = "maildirsize";
/// A `maildirsize` this large or larger is rebuilt (maildirquota(7)).
const REBUILD_SIZE: u64 = 5120;
/// An over-quota verdict from a file older than this is checked by rebuilding.
const STALE_SECONDS: i64 = 15 * 60;
/// Read at most this much of `maildirsize`; a larger file is rebuilt anyway.
const MAX_READ: u64 = 64 * 1024;

/// Limits from a quota string; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaLimit {
    /// Maximum bytes (`S`).
    pub bytes: Option<u64>,
    /// Maximum messages (`C`).
    pub count: Option<u64>,
}

impl QuotaLimit {
    /// Parses a quota string such as `10485760S,5000C`; `None` if malformed
    /// or empty. A limit of 0 means no limit of that kind, as in Courier.
    pub fn parse(text: &str) -> Option<QuotaLimit> {
        let mut limit = QuotaLimit::default();
        let mut items = 0;
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            items += 1;
            let (digits, slot) = if let Some(digits) = item.strip_suffix('S') {
                (digits, &mut limit.bytes)
            } else if let Some(digits) = item.strip_suffix('C') {
                (digits, &mut limit.count)
            } else {
                return None;
            };
            let value: u64 = digits.trim().parse().ok()?;
            *slot = (value > 0).then_some(value);
        }
        (items > 0).then_some(limit)
    }

    /// Reports whether the quota sets no limit at all (such as `0S`).
    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.count.is_none()
    }

    /// Reports whether `usage` plus one message of `size` bytes stays within
    /// every limit.
    pub fn allows(&self, usage: Usage, size: u64) -> bool {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let bytes_ok = self.bytes.is_none_or(|max| {
            usage.bytes.saturating_add(size) <= i64::try_from(max).unwrap_or(i64::MAX)
        });
        let count_ok = self.count.is_none_or(|max| {
            usage.count.saturating_add(1) <= i64::try_from(max).unwrap_or(i64::MAX)
        });
        bytes_ok && count_ok
    }
}

/// Bytes and messages in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Total bytes.
    pub bytes: i64,
    /// Total messages.
    pub count: i64,
}

/// The outcome of a quota check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The mailbox has no quota.
    Unlimited,
    /// The message fits.
    Fits {
        /// The quota string in effect.
        quota: String,
        /// Usage before this message.
        usage: Usage,
    },
    /// The message would go over quota.
    Over {
        /// The quota string in effect.
        quota: String,
        /// Usage before this message.
        usage: Usage,
    },
}

/// The contents of a usable `maildirsize`.
struct QuotaFile {
    quota: String,
    usage: Usage,
    size: u64,
    mtime: i64,
    /// Number of `<bytes> <count>` lines after the quota line.
    lines: usize,
}

/// Decides whether a message of `size` bytes may go into the Maildir whose
/// root is `root`; `account_quota` is the account's quota string, if any.
pub fn check(
    root: &Maildir,
    account_quota: Option<&str>,
    size: u64,
) -> Result<Verdict, DeliveryError> {
    let file = read_quota_file(root.dir.as_fd());
    let quota_text = match (account_quota, &file) {
        (Some(q), _) => q.to_string(),
        (None, Some(f)) => f.quota.clone(),
        (None, None) => match read_first_line(root.dir.as_fd()) {
            Some(q) => q,
            None => return Ok(Verdict::Unlimited),
        },
    };
    let Some(limit) = QuotaLimit::parse(&quota_text) else {
        log::warn!(
            "ignoring invalid quota \"{}\" of {}",
            quota_text.escape_default(),
            root.path.display()
        );
        return Ok(Verdict::Unlimited);
    };
    if limit.is_unlimited() {
        return Ok(Verdict::Unlimited);
    }

    // Negative totals mean the file lost track (deletions counted twice).
    let usable = file.filter(|f| {
        f.quota == quota_text && f.size < REBUILD_SIZE && f.usage.bytes >= 0 && f.usage.count >= 0
    });
    let (usage, recheck) = match usable {
        // As Courier does: an over-quota verdict is checked by recounting
        // when the file has several size lines (deletions may have been
        // missed) or is 15 minutes old or older.
        Some(f) => (
            f.usage,
            f.lines > 1 || crate::clock::now_secs() - f.mtime >= STALE_SECONDS,
        ),
        None => (rebuild(root, &quota_text)?, false),
    };
    let usage = if recheck && !limit.allows(usage, size) {
        rebuild(root, &quota_text)?
    } else {
        usage
    };
    Ok(verdict(limit, quota_text, usage, size))
}

/// Compares `usage` plus a message of `size` bytes with `limit`.
fn verdict(limit: QuotaLimit, quota: String, usage: Usage, size: u64) -> Verdict {
    if limit.allows(usage, size) {
        Verdict::Fits { quota, usage }
    } else {
        Verdict::Over { quota, usage }
    }
}

/// Decides for a mailbox that contains no mail yet (its Maildir does not
/// exist): only the account's own quota applies, with nothing in use.
pub fn check_empty(account_quota: Option<&str>, size: u64) -> Verdict {
    let parsed = account_quota.and_then(|q| QuotaLimit::parse(q).map(|l| (q, l)));
    let Some((quota, limit)) = parsed.filter(|(_, l)| !l.is_unlimited()) else {
        return Verdict::Unlimited;
    };
    verdict(limit, quota.to_string(), Usage::default(), size)
}

/// Appends `<size> 1` to `maildirsize` after a delivery, if the file exists.
pub fn record(root: &Maildir, size: u64) -> Result<(), DeliveryError> {
    let path = root.path.join(QUOTA_FILE);
    match sys::stat_at(root.dir.as_fd(), OsStr::new(QUOTA_FILE)) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(DeliveryError::io(Step::Quota, &path, e)),
    }
    // The owner may swap the file for a FIFO after the check above; the
    // open does not block and the type is checked on the descriptor.
    let file = super::open_regular_for_append(root.dir.as_fd(), OsStr::new(QUOTA_FILE))
        .map_err(|e| DeliveryError::io(Step::Quota, &path, e))?;
    let line = format!("{size} 1\n");
    // One write call, so lines from concurrent deliveries never interleave.
    let written = (&file)
        .write(line.as_bytes())
        .map_err(|e| DeliveryError::io(Step::Quota, &path, e))?;
    if written != line.len() {
        return Err(DeliveryError::io(
            Step::Quota,
            &path,
            std::io::Error::other("short write"),
        ));
    }
    Ok(())
}

/// Reads and parses `maildirsize`; `None` when missing or unusable.
fn read_quota_file(root: BorrowedFd<'_>) -> Option<QuotaFile> {
    let (status, text) = super::read_regular_file(root, OsStr::new(QUOTA_FILE), MAX_READ).ok()?;
    let text = String::from_utf8(text).ok()?;
    let mut lines = text.split('\n');
    let quota = lines.next()?.trim().to_string();
    let mut usage = Usage::default();
    let mut size_lines = 0;
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        size_lines += 1;
        let mut fields = line.split_whitespace();
        let bytes: i64 = fields.next()?.parse().ok()?;
        let count: i64 = fields.next()?.parse().ok()?;
        if fields.next().is_some() {
            return None;
        }
        usage.bytes = usage.bytes.checked_add(bytes)?;
        usage.count = usage.count.checked_add(count)?;
    }
    if !text.ends_with('\n') {
        // A line being appended right now, or a torn file: rebuild.
        return None;
    }
    Some(QuotaFile {
        quota,
        usage,
        size: status.size,
        mtime: status.mtime,
        lines: size_lines,
    })
}

/// Returns the first line of `maildirsize` even when the rest is corrupt,
/// so a quota kept only there survives a rebuild.
fn read_first_line(root: BorrowedFd<'_>) -> Option<String> {
    let (_, head) = super::read_regular_file(root, OsStr::new(QUOTA_FILE), 1024).ok()?;
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim();
    QuotaLimit::parse(line).map(|_| line.to_string())
}

/// Recomputes usage from the Maildir and writes a new `maildirsize`.
fn rebuild(root: &Maildir, quota: &str) -> Result<Usage, DeliveryError> {
    let usage = measure(root)?;
    let unique = name::UniqueName::next("quota");
    let tmp_name = unique.base;
    let tmp_path = root.path.join("tmp").join(&tmp_name);
    let fd = sys::create_exclusive_at(root.tmp(), OsStr::new(&tmp_name), FILE_MODE, false)
        .map_err(|e| DeliveryError::io(Step::Quota, &tmp_path, e))?;
    let mut file = File::from(fd);
    let text = format!("{quota}\n{} {}\n", usage.bytes, usage.count);
    let written = file.write_all(text.as_bytes());
    drop(file);
    let renamed = written.and_then(|()| {
        sys::rename_at(
            root.tmp(),
            OsStr::new(&tmp_name),
            root.dir.as_fd(),
            OsStr::new(QUOTA_FILE),
        )
    });
    if let Err(e) = renamed {
        let _ = sys::unlink_at(root.tmp(), OsStr::new(&tmp_name));
        return Err(DeliveryError::io(
            Step::Quota,
            &root.path.join(QUOTA_FILE),
            e,
        ));
    }
    Ok(usage)
}

/// Sums message sizes in `new/` and `cur/` of the root and every folder except Trash.
fn measure(root: &Maildir) -> Result<Usage, DeliveryError> {
    let error = |e| DeliveryError::io(Step::Quota, &root.path, e);
    let mut usage = Usage::default();
    add_directory_usage(root.dir.as_fd(), &mut usage).map_err(error)?;
    for entry in sys::read_dir_names(root.dir.as_fd()).map_err(error)? {
        let Some(text) = entry.to_str() else { continue };
        if !text.starts_with('.') || text.strip_prefix('.') == Some(super::folder::TRASH) {
            continue;
        }
        let folder = match sys::open_dir_at(root.dir.as_fd(), &entry) {
            Ok(fd) => fd,
            // Files such as .hidden, or links: not folders.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTDIR) | Some(libc::ELOOP) | Some(libc::ENOENT)
                ) =>
            {
                continue
            }
            Err(e) => return Err(error(e)),
        };
        add_directory_usage(folder.as_fd(), &mut usage).map_err(error)?;
    }
    Ok(usage)
}

/// Reports whether a Maildir file name carries the `T` (trashed) flag in
/// its `:2,` info; Courier leaves such messages out of the quota.
fn is_marked_deleted(name: &str) -> bool {
    name.split_once(":2,").is_some_and(|(_, flags)| {
        flags
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .any(|b| b == b'T')
    })
}

/// Adds the messages of `dir/new` and `dir/cur` to `usage`.
fn add_directory_usage(dir: BorrowedFd<'_>, usage: &mut Usage) -> std::io::Result<()> {
    for sub in ["new", "cur"] {
        let fd = match sys::open_dir_at(dir, OsStr::new(sub)) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        for entry in sys::read_dir_names(fd.as_fd())? {
            let Some(text) = entry.to_str() else { continue };
            if text.starts_with('.') || is_marked_deleted(text) {
                continue;
            }
            let size = match name::size_from_name(text) {
                Some(size) => size,
                None => match sys::stat_at(fd.as_fd(), &entry) {
                    Ok(st) if st.is_file() => st.size,
                    // Removed meanwhile, or not a message file.
                    _ => continue,
                },
            };
            usage.bytes = usage
                .bytes
                .saturating_add(i64::try_from(size).unwrap_or(i64::MAX));
            usage.count = usage.count.saturating_add(1);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn maildir(tag: &str) -> (Maildir, PathBuf) {
        let base = std::env::temp_dir().join(format!("zoha-quota-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let md = Maildir::open_root(&base.join("Maildir"), sys::geteuid()).unwrap();
        (md, base)
    }

    fn put(base: &std::path::Path, rel: &str, bytes: usize) {
        let p = base.join("Maildir").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![b'x'; bytes]).unwrap();
    }

    #[test]
    fn parse_quota_strings() {
        assert_eq!(
            QuotaLimit::parse("1000S,5C"),
            Some(QuotaLimit {
                bytes: Some(1000),
                count: Some(5)
            })
        );
        assert_eq!(
            QuotaLimit::parse("1000S"),
            Some(QuotaLimit {
                bytes: Some(1000),
                count: None
            })
        );
        assert_eq!(
            QuotaLimit::parse("5C"),
            Some(QuotaLimit {
                bytes: None,
                count: Some(5)
            })
        );
        assert_eq!(QuotaLimit::parse("1000X"), None);
        assert_eq!(
            QuotaLimit::parse("0S,10C"),
            Some(QuotaLimit {
                bytes: None,
                count: Some(10)
            })
        );
        assert!(QuotaLimit::parse("0S").unwrap().is_unlimited());
        assert_eq!(QuotaLimit::parse(""), None);
        assert_eq!(QuotaLimit::parse("S"), None);
    }

    #[test]
    fn limits_inclusive() {
        let q = QuotaLimit {
            bytes: Some(100),
            count: Some(2),
        };
        assert!(q.allows(
            Usage {
                bytes: 50,
                count: 1
            },
            50
        ));
        assert!(!q.allows(
            Usage {
                bytes: 50,
                count: 1
            },
            51
        ));
        assert!(!q.allows(Usage { bytes: 0, count: 2 }, 1));
    }

    #[test]
    fn rebuild_sums_sizes_except_trash() {
        let (md, base) = maildir("rebuild");
        put(&base, "new/1.M1P1Q1.h,S=100,W=104", 3);
        put(&base, "cur/1.M1P1Q2.h,S=200,W=210:2,S", 3);
        put(&base, ".lists/cur/1.M1P1Q3.h", 50);
        put(&base, ".Trash/cur/1.M1P1Q4.h,S=999", 1);
        let v = check(&md, Some("1000S,10C"), 10).unwrap();
        assert_eq!(
            v,
            Verdict::Fits {
                quota: "1000S,10C".into(),
                usage: Usage {
                    bytes: 350,
                    count: 3
                }
            }
        );
        let text = std::fs::read_to_string(base.join("Maildir/maildirsize")).unwrap();
        assert_eq!(text, "1000S,10C\n350 3\n");
        record(&md, 10).unwrap();
        let text = std::fs::read_to_string(base.join("Maildir/maildirsize")).unwrap();
        assert_eq!(text, "1000S,10C\n350 3\n10 1\n");
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn trashed_flag_detected() {
        assert!(is_marked_deleted("1.M1P1Q1.h,S=10:2,ST"));
        assert!(is_marked_deleted("1.M1P1Q1.h:2,T"));
        assert!(!is_marked_deleted("1.M1P1Q1.h,S=10:2,S"));
        assert!(!is_marked_deleted("1.M1P1Q1.h,S=10"));
    }

    #[test]
    fn over_quota_reported() {
        let (md, base) = maildir("over");
        put(&base, "new/1.M1P1Q1.h,S=900", 1);
        let v = check(&md, Some("1000S"), 200).unwrap();
        assert!(matches!(v, Verdict::Over { .. }), "{v:?}");
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn quota_from_existing_file() {
        let (md, base) = maildir("fromfile");
        std::fs::write(base.join("Maildir/maildirsize"), "500S\n400 4\n").unwrap();
        let v = check(&md, None, 200).unwrap();
        assert_eq!(
            v,
            Verdict::Over {
                quota: "500S".into(),
                usage: Usage {
                    bytes: 400,
                    count: 4
                }
            }
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn garbage_file_rebuilt() {
        let (md, base) = maildir("garbage");
        std::fs::write(base.join("Maildir/maildirsize"), "500S\nnot numbers\n").unwrap();
        put(&base, "new/1.M1P1Q1.h,S=100", 1);
        let v = check(&md, None, 10).unwrap();
        assert_eq!(
            v,
            Verdict::Fits {
                quota: "500S".into(),
                usage: Usage {
                    bytes: 100,
                    count: 1
                }
            }
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn changed_quota_rebuilds() {
        let (md, base) = maildir("changed");
        std::fs::write(base.join("Maildir/maildirsize"), "500S\n400 4\n").unwrap();
        let v = check(&md, Some("2000S"), 10).unwrap();
        assert_eq!(
            v,
            Verdict::Fits {
                quota: "2000S".into(),
                usage: Usage { bytes: 0, count: 0 }
            }
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn empty_mailbox_uses_account_quota() {
        assert_eq!(check_empty(None, 5000), Verdict::Unlimited);
        assert!(matches!(
            check_empty(Some("1000S"), 5000),
            Verdict::Over { .. }
        ));
        assert!(matches!(
            check_empty(Some("1000S"), 1000),
            Verdict::Fits { .. }
        ));
    }

    #[test]
    fn no_quota_anywhere() {
        let (md, base) = maildir("none");
        assert_eq!(check(&md, None, 10).unwrap(), Verdict::Unlimited);
        record(&md, 10).unwrap();
        assert!(!base.join("Maildir/maildirsize").exists());
        std::fs::remove_dir_all(base).unwrap();
    }
}
