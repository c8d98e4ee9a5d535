//! Maildir writing: opens a mailbox safely and stores one message durably.
//!
//! Every function here runs with the mailbox owner's credentials (the caller
//! switches them) and works relative to directory descriptors: the Maildir
//! root is opened with `O_NOFOLLOW | O_DIRECTORY`, and `tmp`, `new`, `cur`
//! and folders are opened relative to it the same way, so no symbolic link
//! inside a mailbox is ever followed. Missing directories are created with
//! mode 0700; the root must belong to the account's uid, as Courier requires.
//!
//! [`deliver`] stores one message: create in `tmp/` with `O_CREAT | O_EXCL |
//! O_NOFOLLOW` and mode 0600, write the added header lines and the spooled
//! message, fsync, close, rename into `new/` without replacing anything, and
//! fsync `new/`. A guard removes the `tmp/` file on every failure.
//!
//! Exports [`Maildir`], [`deliver`], [`Delivered`], [`DeliveryError`] and
//! the submodules [`name`], [`folder`] and [`quota`].
//!
//! Failures: [`DeliveryError`] names the step, the path and the OS error, and
//! carries the reply status: `452 4.3.1` for a full disk, `452 4.2.2` for a
//! file system quota, `451 4.3.5` for a root owned by another uid, and
//! `451 4.3.0` for everything else (a symbolic link or non-directory where a
//! Maildir directory belongs, a permission problem, an I/O error).

pub mod folder;
pub mod name;
pub mod quota;

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::data::Spool;
use crate::status::{classify_io_error, Status};
use crate::sys;
use name::UniqueName;

/// Mode of directories Zoha creates.
pub const DIRECTORY_MODE: u32 = 0o700;
/// Mode of message files.
pub const FILE_MODE: u32 = 0o600;
/// Attempts at a fresh `tmp/` name before giving up.
const NAME_ATTEMPTS: usize = 20;

/// A delivery step, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Opening the Maildir root or one of its directories.
    Open,
    /// Creating a missing directory.
    CreateDirectory,
    /// Checking the owner of the Maildir root.
    CheckOwner,
    /// Creating the file in `tmp/`.
    CreateTemporary,
    /// Writing the message.
    Write,
    /// Flushing the file to disk.
    SyncFile,
    /// Closing the file.
    Close,
    /// Moving the file from `tmp/` to `new/`.
    Rename,
    /// Flushing `new/` to disk.
    SyncDirectory,
    /// Reading or updating the Maildir++ quota.
    Quota,
    /// Creating a folder's `maildirfolder` file or the subscription entry.
    CreateFolder,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Open => "open",
            Step::CreateDirectory => "create directory",
            Step::CheckOwner => "check owner of",
            Step::CreateTemporary => "create",
            Step::Write => "write",
            Step::SyncFile => "fsync",
            Step::Close => "close",
            Step::Rename => "rename into",
            Step::SyncDirectory => "fsync directory",
            Step::Quota => "update quota of",
            Step::CreateFolder => "create folder",
        })
    }
}

/// A failed delivery step.
#[derive(Debug)]
pub struct DeliveryError {
    /// The step that failed.
    pub step: Step,
    /// The file or directory involved.
    pub path: PathBuf,
    /// The OS error, or a synthetic one describing the problem.
    pub source: io::Error,
    /// The reply status for the recipient.
    pub status: Status,
}

impl DeliveryError {
    /// Builds an error whose status follows from the errno.
    pub fn io(step: Step, path: &Path, source: io::Error) -> DeliveryError {
        let status = classify_io_error(&source, Status::StorageFailed);
        DeliveryError {
            step,
            path: path.to_path_buf(),
            source,
            status,
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.step, self.path.display(), self.source)
    }
}

impl std::error::Error for DeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// An opened Maildir (the root or a folder) with its three directories.
#[derive(Debug)]
pub struct Maildir {
    /// Path of the directory, for messages.
    pub path: PathBuf,
    /// The directory itself.
    pub dir: OwnedFd,
    tmp: OwnedFd,
    new: OwnedFd,
}

impl Maildir {
    /// Opens the Maildir root at `path`, creating it (and missing parent
    /// directories) when absent, and checks that it belongs to `owner_uid`.
    pub fn open_root(path: &Path, owner_uid: u32) -> Result<Maildir, DeliveryError> {
        let dir = match sys::open_dir(path) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                create_directories(path)?;
                sys::open_dir(path).map_err(|e| subdirectory_error(path, e))?
            }
            // A Maildir of another uid is usually mode 0700, so its owner can
            // only be read from the path, which needs no read permission.
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                return Err(match sys::stat_path_nofollow(path) {
                    Ok(status) if status.uid != owner_uid => {
                        wrong_owner(path, status.uid, owner_uid)
                    }
                    _ => subdirectory_error(path, e),
                });
            }
            Err(e) => return Err(subdirectory_error(path, e)),
        };
        let status =
            sys::fstat(dir.as_fd()).map_err(|e| DeliveryError::io(Step::CheckOwner, path, e))?;
        if status.uid != owner_uid {
            return Err(wrong_owner(path, status.uid, owner_uid));
        }
        Maildir::with_subdirectories(path.to_path_buf(), dir)
    }

    /// Opens the folder `.name` below this root; with `create`, a missing
    /// folder is created as Courier's `maildirmake -f` does. `Ok(None)` means
    /// the folder does not exist and `create` is false.
    pub fn open_folder(&self, name: &str, create: bool) -> Result<Option<Maildir>, DeliveryError> {
        let dirname = format!(".{name}");
        let Some((fd, created)) =
            open_directory_at(self.dir.as_fd(), &self.path, &dirname, create)?
        else {
            return Ok(None);
        };
        let path = self.path.join(&dirname);
        let folder = Maildir::with_subdirectories(path.clone(), fd)?;
        if create {
            // Also for an existing folder: an earlier attempt may have
            // stopped before the marker was written.
            mark_folder(&folder)?;
        }
        // The folder is usable without the subscription; IMAP clients can
        // subscribe it themselves, so a failure here does not defer mail.
        if created {
            if let Err(e) = subscribe(self, name) {
                log::warn!("folder {} created, but not subscribed: {e}", path.display());
            }
        }
        Ok(Some(folder))
    }

    /// Opens (creating when missing) `tmp`, `new` and `cur` inside `dir`.
    fn with_subdirectories(path: PathBuf, dir: OwnedFd) -> Result<Maildir, DeliveryError> {
        let tmp = open_or_create_subdirectory(dir.as_fd(), &path, "tmp")?;
        let new = open_or_create_subdirectory(dir.as_fd(), &path, "new")?;
        drop(open_or_create_subdirectory(dir.as_fd(), &path, "cur")?);
        Ok(Maildir {
            path,
            dir,
            tmp,
            new,
        })
    }

    /// Returns the `tmp/` directory descriptor.
    pub fn tmp(&self) -> BorrowedFd<'_> {
        self.tmp.as_fd()
    }
}

/// Builds the error for a Maildir root that belongs to `found_uid` instead
/// of the account's `owner_uid`.
fn wrong_owner(path: &Path, found_uid: u32, owner_uid: u32) -> DeliveryError {
    DeliveryError {
        step: Step::CheckOwner,
        path: path.to_path_buf(),
        source: io::Error::other(format!(
            "the Maildir belongs to uid {found_uid}, not to the account's uid {owner_uid}; \
             Courier IMAP would refuse it too"
        )),
        status: Status::Misconfigured,
    }
}

/// Maps an open error of a Maildir directory; a symbolic link or a
/// non-directory gets a message naming the problem.
fn subdirectory_error(path: &Path, e: io::Error) -> DeliveryError {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => DeliveryError {
            step: Step::Open,
            path: path.to_path_buf(),
            source: io::Error::new(
                e.kind(),
                format!("refusing a symbolic link or non-directory where a Maildir directory belongs ({e})"),
            ),
            status: Status::StorageFailed,
        },
        _ => DeliveryError::io(Step::Open, path, e),
    }
}

fn open_or_create_subdirectory(
    dir: BorrowedFd<'_>,
    parent: &Path,
    name: &str,
) -> Result<OwnedFd, DeliveryError> {
    match open_directory_at(dir, parent, name, true)? {
        Some((fd, _)) => Ok(fd),
        None => Err(DeliveryError::io(
            Step::Open,
            &parent.join(name),
            io::Error::from_raw_os_error(libc::ENOENT),
        )),
    }
}

/// Opens the directory `name` in `dir` without following a symbolic link.
/// When it is missing: `Ok(None)`, or with `create`, creates it (mode 0700),
/// flushes `dir` so the new entry survives a crash, and opens it. The flag
/// tells whether this call created it.
fn open_directory_at(
    dir: BorrowedFd<'_>,
    parent: &Path,
    name: &str,
    create: bool,
) -> Result<Option<(OwnedFd, bool)>, DeliveryError> {
    let path = parent.join(name);
    match sys::open_dir_at(dir, OsStr::new(name)) {
        Ok(fd) => return Ok(Some((fd, false))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(subdirectory_error(&path, e)),
    }
    let created = match sys::mkdir_at(dir, OsStr::new(name), DIRECTORY_MODE) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
        Err(e) => return Err(DeliveryError::io(Step::CreateDirectory, &path, e)),
    };
    if created {
        sys::fsync(dir).map_err(|e| DeliveryError::io(Step::SyncDirectory, parent, e))?;
    }
    let fd = sys::open_dir_at(dir, OsStr::new(name)).map_err(|e| subdirectory_error(&path, e))?;
    Ok(Some((fd, created)))
}

/// Creates `path` and any missing parents with mode 0700, like `mkdir -p`,
/// flushing each parent that gets a new entry.
fn create_directories(path: &Path) -> Result<(), DeliveryError> {
    match make_directory(path) {
        Err(e) if e.source.raw_os_error() == Some(libc::ENOENT) => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty() && *p != Path::new("/"))
                .ok_or(e)?;
            create_directories(parent)?;
            make_directory(path)
        }
        other => other,
    }
}

/// Creates one directory (an existing one is fine) and flushes its parent.
fn make_directory(path: &Path) -> Result<(), DeliveryError> {
    match sys::mkdir(path, DIRECTORY_MODE) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(()),
        Err(e) => return Err(DeliveryError::io(Step::CreateDirectory, path, e)),
    }
    // The parent is on the administrator's path, which may contain links.
    let parent = path.parent().unwrap_or(Path::new("/"));
    File::open(parent)
        .and_then(|dir| sys::fsync(dir.as_fd()))
        .map_err(|e| DeliveryError::io(Step::SyncDirectory, parent, e))
}

/// Creates the empty `maildirfolder` file that marks a Maildir++ folder.
fn mark_folder(folder: &Maildir) -> Result<(), DeliveryError> {
    let path = folder.path.join("maildirfolder");
    match sys::create_exclusive_at(
        folder.dir.as_fd(),
        OsStr::new("maildirfolder"),
        FILE_MODE,
        false,
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(DeliveryError::io(Step::CreateFolder, &path, e)),
    }
}

/// Maximum part of `courierimapsubscribed` searched for an entry; an entry
/// beyond it is not found and gets added again, which is harmless.
const MAX_SUBSCRIPTIONS_READ: u64 = 64 * 1024;

/// Adds `INBOX.<name>` to `courierimapsubscribed` unless it is listed.
fn subscribe(root: &Maildir, name: &str) -> Result<(), DeliveryError> {
    const FILE: &str = "courierimapsubscribed";
    let path = root.path.join(FILE);
    let entry = format!("INBOX.{name}");
    match read_regular_file(root.dir.as_fd(), OsStr::new(FILE), MAX_SUBSCRIPTIONS_READ) {
        Ok((_, text)) => {
            if text
                .split(|&b| b == b'\n')
                .any(|line| line == entry.as_bytes())
            {
                return Ok(());
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(DeliveryError::io(Step::CreateFolder, &path, e)),
    }
    let mut file = open_regular_for_append(root.dir.as_fd(), OsStr::new(FILE))
        .map_err(|e| DeliveryError::io(Step::CreateFolder, &path, e))?;
    file.write_all(format!("{entry}\n").as_bytes())
        .map_err(|e| DeliveryError::io(Step::CreateFolder, &path, e))
}

/// Reads at most `max` bytes of the regular file `name` in `dir`, with its
/// status; a FIFO, device or other special file is an error, never waited on.
pub fn read_regular_file(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    max: u64,
) -> io::Result<(sys::FileStatus, Vec<u8>)> {
    use std::io::Read;
    let fd = sys::open_file_at(dir, name)?;
    let status = sys::fstat(fd.as_fd())?;
    if !status.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    File::from(fd).take(max).read_to_end(&mut bytes)?;
    Ok((status, bytes))
}

/// Opens (creating if needed) the regular file `name` in `dir` for
/// appending; a FIFO, device or other special file is an error.
pub fn open_regular_for_append(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let fd = sys::open_append_at(dir, name, FILE_MODE)?;
    if !sys::fstat(fd.as_fd())?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(File::from(fd))
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Full path of the file in `new/`.
    pub path: PathBuf,
    /// The unique id (`<sec>.M<usec>P<pid>Q<n>`), also used in replies.
    pub id: String,
    /// Size on disk (the `S=` value).
    pub size: u64,
    /// Size with CRLF line ends (the `W=` value).
    pub rfc822_size: u64,
}

/// The message to store: the header lines Zoha adds (built once the unique id is
/// known) and the spooled message.
pub struct Message<'a> {
    /// Builds the added header lines (LF line ends) for a delivery id.
    pub headers: &'a dyn Fn(&str) -> Vec<u8>,
    /// The decoded message.
    pub spool: &'a mut Spool,
}

/// Removes a `tmp/` file unless disarmed after the rename.
struct TemporaryFile<'a> {
    dir: BorrowedFd<'a>,
    name: String,
    armed: bool,
}

impl Drop for TemporaryFile<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = sys::unlink_at(self.dir, OsStr::new(&self.name)) {
                log::warn!("cannot remove temporary file tmp/{}: {e}", self.name);
            }
        }
    }
}

/// Stores `message` in `maildir` durably; see the module documentation for
/// the steps. `host` goes into the file name; `fsync = false` skips both
/// flushes (benchmarks only).
pub fn deliver(
    maildir: &Maildir,
    name: UniqueName,
    host: &str,
    message: Message<'_>,
    fsync: bool,
) -> Result<Delivered, DeliveryError> {
    // Create the file in tmp/ under `name`, or a fresh name if it is taken.
    let (unique, fd) = create_temporary(maildir, name, host)?;
    let mut guard = TemporaryFile {
        dir: maildir.tmp(),
        name: unique.base.clone(),
        armed: true,
    };
    let tmp_path = maildir.path.join("tmp").join(&unique.base);
    let mut file = File::from(fd);

    // Write the added header lines, then the message.
    let headers = (message.headers)(&unique.id);
    let write = |e| DeliveryError::io(Step::Write, &tmp_path, e);
    file.write_all(&headers).map_err(write)?;
    message.spool.copy_to(&mut file).map_err(write)?;
    let size = headers.len() as u64 + message.spool.len();
    let lines = headers.iter().filter(|&&b| b == b'\n').count() as u64 + message.spool.lines();

    // Flush the data, then close, checking both (NFS reports errors on close).
    if fsync {
        sys::fsync(file.as_fd()).map_err(|e| DeliveryError::io(Step::SyncFile, &tmp_path, e))?;
    }
    sys::close(OwnedFd::from(file)).map_err(|e| DeliveryError::io(Step::Close, &tmp_path, e))?;

    // Move into new/ without replacing an existing file.
    let final_name = unique.with_sizes(size, size + lines);
    let new_path = maildir.path.join("new").join(&final_name);
    move_into_new(maildir, &unique.base, &final_name)
        .map_err(|e| DeliveryError::io(Step::Rename, &new_path, e))?;
    guard.armed = false;

    // Make the new directory entry durable before the reply is sent.
    if fsync {
        if let Err(e) = sys::fsync(maildir.new.as_fd()) {
            // The client gets a 4xx and sends again, so the file must go.
            if let Err(unlink) = sys::unlink_at(maildir.new.as_fd(), OsStr::new(&final_name)) {
                log::warn!(
                    "cannot remove {} after a failed fsync: {unlink}",
                    new_path.display()
                );
            }
            return Err(DeliveryError::io(Step::SyncDirectory, &new_path, e));
        }
    }
    Ok(Delivered {
        path: new_path,
        id: unique.id,
        size,
        rfc822_size: size + lines,
    })
}

fn create_temporary(
    maildir: &Maildir,
    first: UniqueName,
    host: &str,
) -> Result<(UniqueName, OwnedFd), DeliveryError> {
    let mut last_error = None;
    let mut candidate = Some(first);
    for _ in 0..NAME_ATTEMPTS {
        let unique = candidate.take().unwrap_or_else(|| UniqueName::next(host));
        match sys::create_exclusive_at(maildir.tmp(), OsStr::new(&unique.base), FILE_MODE, false) {
            Ok(fd) => return Ok((unique, fd)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => last_error = Some(e),
            Err(e) => {
                return Err(DeliveryError::io(
                    Step::CreateTemporary,
                    &maildir.path.join("tmp").join(&unique.base),
                    e,
                ))
            }
        }
    }
    let e = last_error.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EEXIST));
    Err(DeliveryError::io(
        Step::CreateTemporary,
        &maildir.path.join("tmp"),
        e,
    ))
}

/// Renames `tmp/<from>` to `new/<to>`, never replacing a file; falls back
/// to link and unlink on file systems without `RENAME_NOREPLACE`.
fn move_into_new(maildir: &Maildir, from: &str, to: &str) -> io::Result<()> {
    match sys::rename_noreplace_at(
        maildir.tmp(),
        OsStr::new(from),
        maildir.new.as_fd(),
        OsStr::new(to),
    ) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            sys::link_at(
                maildir.tmp(),
                OsStr::new(from),
                maildir.new.as_fd(),
                OsStr::new(to),
            )?;
            if let Err(e) = sys::unlink_at(maildir.tmp(), OsStr::new(from)) {
                log::warn!("cannot remove tmp/{from} after linking it into new/: {e}");
            }
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Spool;

    fn temp_root(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("zoha-maildir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn spool_with(bytes: &[u8]) -> Spool {
        let mut s = Spool::new(&std::env::temp_dir());
        s.write(bytes).unwrap();
        s
    }

    #[test]
    fn deliver_writes_file_with_sizes() {
        let root = temp_root("deliver");
        let md = Maildir::open_root(&root.join("Maildir"), sys::geteuid()).unwrap();
        let mut spool = spool_with(b"Subject: x\n\nbody\n");
        let headers = |id: &str| format!("X-Id: {id}\n").into_bytes();
        let d = deliver(
            &md,
            UniqueName::next("host:a/b"),
            "host:a/b",
            Message {
                headers: &headers,
                spool: &mut spool,
            },
            true,
        )
        .unwrap();
        let content = std::fs::read(&d.path).unwrap();
        assert_eq!(
            content,
            format!("X-Id: {}\nSubject: x\n\nbody\n", d.id).into_bytes()
        );
        assert_eq!(d.size, content.len() as u64);
        assert_eq!(d.rfc822_size, d.size + 4);
        let name = d.path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.contains(".host\\072a\\057b,S="), "{name}");
        assert!(
            name.ends_with(&format!(",S={},W={}", d.size, d.rfc822_size)),
            "{name}"
        );
        assert_eq!(
            std::fs::read_dir(root.join("Maildir/tmp")).unwrap().count(),
            0
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&d.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for sub in ["", "/tmp", "/new", "/cur"] {
            let m = std::fs::metadata(format!("{}/Maildir{sub}", root.display())).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o700, "{sub}");
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn symlinked_new_refused() {
        let root = temp_root("symlink");
        let outside = root.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(root.join("Maildir/tmp")).unwrap();
        std::fs::create_dir_all(root.join("Maildir/cur")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("Maildir/new")).unwrap();
        let err = Maildir::open_root(&root.join("Maildir"), sys::geteuid()).unwrap_err();
        assert_eq!(err.status, Status::StorageFailed);
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn symlinked_root_refused() {
        let root = temp_root("symroot");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("Maildir")).unwrap();
        let err = Maildir::open_root(&root.join("Maildir"), sys::geteuid()).unwrap_err();
        assert_eq!(err.status, Status::StorageFailed);
        assert_eq!(std::fs::read_dir(root.join("real")).unwrap().count(), 0);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn wrong_owner_refused() {
        let root = temp_root("owner");
        let err = Maildir::open_root(&root.join("Maildir"), sys::geteuid() + 1).unwrap_err();
        assert_eq!(err.status, Status::Misconfigured);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn folder_created_like_courier() {
        let root = temp_root("folder");
        let md = Maildir::open_root(&root.join("Maildir"), sys::geteuid()).unwrap();
        assert!(md.open_folder("lists", false).unwrap().is_none());
        let f = md.open_folder("lists", true).unwrap().unwrap();
        assert!(root.join("Maildir/.lists/maildirfolder").exists());
        assert!(root.join("Maildir/.lists/new").is_dir());
        assert!(!root.join("Maildir/maildirfolder").exists());
        drop(f);
        md.open_folder("lists", true).unwrap().unwrap();
        let subscribed =
            std::fs::read_to_string(root.join("Maildir/courierimapsubscribed")).unwrap();
        assert_eq!(subscribed, "INBOX.lists\n");
        std::fs::remove_dir_all(root).unwrap();
    }
}
