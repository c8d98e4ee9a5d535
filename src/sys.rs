//! Thin safe wrappers around every libc call Zoha makes.
//!
//! Each function wraps one system call, or the few calls one operation
//! needs (creating a listening socket, reading a directory), turns a `-1`
//! return into [`io::Error::last_os_error`], and documents why each call is
//! sound. The rest of the crate is `#![deny(unsafe_code)]`; this module is
//! the only place allowed to use `unsafe`.
//!
//! Exports: file and directory operations relative to directory descriptors
//! (`open_dir`, `open_dir_at`, `mkdir_at`, `create_exclusive_at`,
//! `rename_noreplace_at`, `unlink_at`, `fsync`), per-thread credential calls
//! (`set_thread_groups`, `set_thread_gids`, `set_thread_uids`,
//! `thread_credentials`), process-wide credential calls, user database
//! lookups, `poll`, raw `read`/`write`, signal handlers that record the
//! signal and write to a pipe, and daemon helpers (`fork`, `setsid`,
//! `lock_exclusive`).
//!
//! Failures: every function returns `io::Result`; the error is the OS error of
//! the failed call, unchanged, so callers can classify it by errno.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Converts a path or name into a C string, rejecting interior NUL bytes.
fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))
}

fn c_path(path: &Path) -> io::Result<CString> {
    c_string(path.as_os_str().as_bytes())
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    c_string(name.as_bytes())
}

/// Maps a C return value of `-1` to the thread's errno.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned_fd(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by a successful open-like call, so it is a
    // valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory at `path` without following a symbolic link in its
/// last component (`O_DIRECTORY | O_NOFOLLOW`).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    owned_fd(unsafe { libc::open(c.as_ptr(), flags) })
}

/// Opens the directory `name` inside `dir`, never following a symbolic link.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `dir` is a live descriptor and `c` a valid C string for the call.
    owned_fd(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) })
}

/// Opens the regular file `name` inside `dir` for reading, without following
/// a symbolic link.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: `dir` is a live descriptor and `c` a valid C string for the call.
    owned_fd(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) })
}

/// Opens (creating if needed) `name` inside `dir` for appending, without
/// following a symbolic link, and without blocking if it is a FIFO (callers
/// check the file type on the descriptor).
pub fn open_append_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | libc::O_NONBLOCK;
    // SAFETY: `dir` is a live descriptor and `c` a valid C string for the call.
    owned_fd(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) })
}

/// Creates the directory `name` inside `dir` with `mode` (before the umask).
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `dir` is a live descriptor and `c` a valid C string for the call.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Creates the directory at `path` with `mode`.
pub fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    check(unsafe { libc::mkdir(c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Creates the new file `name` inside `dir` for writing (and reading, if
/// `readable`) with `O_CREAT | O_EXCL | O_NOFOLLOW`, so an existing file or
/// link is never reused.
pub fn create_exclusive_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode: u32,
    readable: bool,
) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let access = if readable {
        libc::O_RDWR
    } else {
        libc::O_WRONLY
    };
    let flags = access | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `dir` is a live descriptor and `c` a valid C string for the call.
    owned_fd(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) })
}

/// Creates an unnamed temporary file in the directory `dir` (`O_TMPFILE`); it
/// disappears when its last descriptor is closed.
pub fn create_unnamed_temp(dir: &Path) -> io::Result<OwnedFd> {
    let c = c_path(dir)?;
    let flags = libc::O_RDWR | libc::O_TMPFILE | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    owned_fd(unsafe { libc::open(c.as_ptr(), flags, 0o600 as libc::c_uint) })
}

/// Renames `from` in `from_dir` to `to` in `to_dir`, failing with `EEXIST`
/// instead of replacing an existing file (`renameat2` with `RENAME_NOREPLACE`).
pub fn rename_noreplace_at(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    let from_c = c_name(from)?;
    let to_c = c_name(to)?;
    // SAFETY: both descriptors are live and both names are valid C strings for
    // the duration of the call; renameat2 takes no other pointers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            from_dir.as_raw_fd(),
            from_c.as_ptr(),
            to_dir.as_raw_fd(),
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    check_long(ret).map(drop)
}

/// Hard-links `from` in `from_dir` to `to` in `to_dir` without following
/// symbolic links; fails with `EEXIST` if `to` exists.
pub fn link_at(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    let from_c = c_name(from)?;
    let to_c = c_name(to)?;
    // SAFETY: both descriptors are live and both names are valid C strings.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            from_c.as_ptr(),
            to_dir.as_raw_fd(),
            to_c.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// Renames `from` in `from_dir` to `to` in `to_dir`, replacing `to` if it exists.
pub fn rename_at(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    let from_c = c_name(from)?;
    let to_c = c_name(to)?;
    // SAFETY: both descriptors are live and both names are valid C strings.
    check(unsafe {
        libc::renameat(
            from_dir.as_raw_fd(),
            from_c.as_ptr(),
            to_dir.as_raw_fd(),
            to_c.as_ptr(),
        )
    })
    .map(drop)
}

/// Closes `fd` and reports the error `close` returns (NFS reports delayed
/// write errors there). `EINTR` counts as success: Linux has closed the
/// descriptor by then.
pub fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from an OwnedFd given up above, so it is open and
    // closed exactly once.
    match check(unsafe { libc::close(raw) }) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other.map(drop),
    }
}

/// Status of `name` inside `dir` without following a symbolic link (`fstatat`).
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<FileStatus> {
    let c = c_name(name)?;
    status_with(|st| {
        // SAFETY: `c` is a valid C string and `st` writable memory of the right size.
        unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), st, libc::AT_SYMLINK_NOFOLLOW) }
    })
}

/// Status of the file at `path` without following a symbolic link in its
/// last component (`lstat`).
pub fn stat_path_nofollow(path: &Path) -> io::Result<FileStatus> {
    let c = c_path(path)?;
    status_with(|st| {
        // SAFETY: `c` is a valid C string and `st` writable memory of the right size.
        unsafe { libc::lstat(c.as_ptr(), st) }
    })
}

/// Runs a stat-like `call` on a fresh `struct stat` and converts the result.
fn status_with(call: impl FnOnce(*mut libc::stat) -> libc::c_int) -> io::Result<FileStatus> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    check(call(st.as_mut_ptr()))?;
    // SAFETY: the call returned 0, so it filled the whole structure.
    Ok(file_status(&unsafe { st.assume_init() }))
}

fn file_status(st: &libc::stat) -> FileStatus {
    FileStatus {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode,
        size: st.st_size as u64,
        mtime: st.st_mtime,
    }
}

/// Lists the names in the directory `dir` (without `.` and `..`).
pub fn read_dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    // A duplicate, because closedir closes the descriptor it was given.
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument.
    let dup = owned_fd(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `dup` is a fresh directory descriptor; fdopendir takes ownership
    // of it on success, so it is released with into_raw_fd only then.
    let stream = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    let _ = dup.into_raw_fd();
    // SAFETY: `stream` is a valid DIR pointer; rewinddir resets the shared offset.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    let mut failure = None;
    loop {
        // readdir returns null both at the end and on an error; only an
        // error sets errno, so it is cleared first.
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is valid; readdir returns null at the end or on error.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(0) {
                failure = Some(err);
            }
            break;
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(OsStr::from_bytes(bytes).to_os_string());
        }
    }
    // SAFETY: `stream` came from fdopendir and is closed once.
    unsafe { libc::closedir(stream) };
    match failure {
        Some(err) => Err(err),
        None => Ok(names),
    }
}

/// Removes the file `name` from `dir`.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `dir` is a live descriptor and `c` a valid C string for the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
}

/// Flushes the file or directory behind `fd` to stable storage.
pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fsync takes only a descriptor, which `fd` keeps open.
    check(unsafe { libc::fsync(fd.as_raw_fd()) }).map(drop)
}

/// File status as returned by `fstatat` without following symbolic links.
#[derive(Debug, Clone, Copy)]
pub struct FileStatus {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// File type and permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl FileStatus {
    /// Reports whether the file is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// Reports whether the file is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// Returns the status of the file behind `fd`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStatus> {
    status_with(|st| {
        // SAFETY: `st` points to writable memory of the right size.
        unsafe { libc::fstat(fd.as_raw_fd(), st) }
    })
}

/// Reads into `buf` from `fd`, retrying on `EINTR`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid writable memory of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Writes from `buf` to `fd` once, retrying on `EINTR`; returns the count.
/// On sockets it uses `send` with `MSG_NOSIGNAL | MSG_DONTWAIT`, so a closed
/// peer gives `EPIPE` instead of `SIGPIPE` and a full buffer gives
/// `WouldBlock` instead of blocking; other descriptors use plain `write`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
        // SAFETY: `buf` is valid readable memory of `buf.len()` bytes.
        let mut n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
            // SAFETY: as above; `fd` is not a socket, so plain write is used.
            n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        }
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Waits until one of `fds` is ready for `events` or `timeout` passes, and
/// returns the `revents` of each descriptor in order. `None` waits forever.
pub fn poll(fds: &[(RawFd, i16)], timeout: Option<Duration>) -> io::Result<Vec<i16>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let millis = match timeout {
        None => -1,
        Some(t) => t.as_millis().min(i32::MAX as u128) as libc::c_int,
    };
    loop {
        // SAFETY: `pollfds` is a valid array of `pollfds.len()` entries.
        let ret =
            unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, millis) };
        if ret >= 0 {
            return Ok(pollfds.iter().map(|p| p.revents).collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL takes an integer argument.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(drop)
}

/// Creates a pipe with both ends close-on-exec; returns (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// --- credentials -----------------------------------------------------------

/// Real, effective and saved ids of the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResIds {
    /// Real id.
    pub real: u32,
    /// Effective id.
    pub effective: u32,
    /// Saved set-id.
    pub saved: u32,
}

/// Returns the calling thread's real, effective and saved uids and gids.
pub fn thread_credentials() -> io::Result<(ResIds, ResIds)> {
    let (mut ru, mut eu, mut su) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: the six pointers refer to distinct live locals.
    check(unsafe { libc::getresuid(&mut ru, &mut eu, &mut su) })?;
    // SAFETY: as above.
    check(unsafe { libc::getresgid(&mut rg, &mut eg, &mut sg) })?;
    Ok((
        ResIds {
            real: ru,
            effective: eu,
            saved: su,
        },
        ResIds {
            real: rg,
            effective: eg,
            saved: sg,
        },
    ))
}

/// Returns the calling thread's supplementary group list.
pub fn thread_groups() -> io::Result<Vec<u32>> {
    // SAFETY: a size of 0 with a null pointer only asks for the count.
    let n = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut groups = vec![0 as libc::gid_t; n as usize];
    // SAFETY: `groups` has room for `n` entries.
    let n = check(unsafe { libc::getgroups(n, groups.as_mut_ptr()) })?;
    groups.truncate(n as usize);
    Ok(groups)
}

/// Sets the supplementary groups of the calling thread only, using the raw
/// system call: glibc's `setgroups` changes every thread of the process.
pub fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a valid array of `groups.len()` gid_t values.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            groups.len() as libc::size_t,
            groups.as_ptr(),
        )
    };
    check_long(ret).map(drop)
}

/// Sets the calling thread's real, effective and saved gid with the raw
/// system call (per thread, unlike glibc's wrapper). `u32::MAX` leaves one unchanged.
pub fn set_thread_gids(real: u32, effective: u32, saved: u32) -> io::Result<()> {
    // SAFETY: setresgid takes three integers and no pointers.
    check_long(unsafe { libc::syscall(libc::SYS_setresgid, real, effective, saved) }).map(drop)
}

/// Sets the calling thread's real, effective and saved uid with the raw
/// system call (per thread, unlike glibc's wrapper). `u32::MAX` leaves one unchanged.
pub fn set_thread_uids(real: u32, effective: u32, saved: u32) -> io::Result<()> {
    // SAFETY: setresuid takes three integers and no pointers.
    check_long(unsafe { libc::syscall(libc::SYS_setresuid, real, effective, saved) }).map(drop)
}

/// Drops the whole process to `uid`, `gid` and `groups` for good, through
/// glibc, which applies the change to every thread.
pub fn drop_process_privileges(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a valid array of `groups.len()` gid_t values.
    check(unsafe { libc::setgroups(groups.len() as libc::size_t, groups.as_ptr()) })?;
    // SAFETY: setgid takes one integer.
    check(unsafe { libc::setgid(gid) })?;
    // SAFETY: setuid takes one integer.
    check(unsafe { libc::setuid(uid) }).map(drop)
}

/// Tries to become root again; succeeds only if privileges were not dropped
/// for good. Used to verify a drop.
pub fn try_regain_root() -> bool {
    // SAFETY: setuid takes one integer; on success the caller is root again.
    unsafe { libc::setuid(0) == 0 }
}

/// Returns the effective uid of the calling thread.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
/// Returns the effective gid of the calling thread.
pub fn getegid() -> u32 {
    // SAFETY: getegid cannot fail and takes no arguments.
    unsafe { libc::getegid() }
}

/// Returns the process id.
pub fn getpid() -> u32 {
    // SAFETY: getpid cannot fail and takes no arguments.
    unsafe { libc::getpid() as u32 }
}

/// Sets the file mode creation mask and returns the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask takes one integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

// --- user database ---------------------------------------------------------

/// An entry of the system user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: std::path::PathBuf,
}

/// Runs a reentrant lookup such as `getpwnam_r` with a buffer that grows
/// while the call fails with `ERANGE`, up to `max` bytes. `call` returns
/// the lookup's result or its error number.
fn with_growing_buffer<T>(
    start: usize,
    max: usize,
    mut call: impl FnMut(&mut [libc::c_char]) -> Result<T, libc::c_int>,
) -> io::Result<T> {
    let mut buf = vec![0 as libc::c_char; start];
    loop {
        match call(&mut buf) {
            Ok(value) => return Ok(value),
            Err(libc::ERANGE) if buf.len() < max => buf.resize(buf.len() * 4, 0),
            Err(err) => return Err(io::Error::from_raw_os_error(err)),
        }
    }
}

/// Looks `name` up with `getpwnam_r`; `Ok(None)` means no such user.
pub fn getpwnam(name: &str) -> io::Result<Option<PasswdEntry>> {
    let c = c_string(name.as_bytes())?;
    with_growing_buffer(1024, 1 << 20, |buf| {
        let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers refer to live, writable memory of the stated
        // sizes; getpwnam_r stores strings inside `buf`, which outlives their use.
        let err = unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if err != 0 {
            return Err(err);
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: getpwnam_r returned an entry, so `pwd` is initialised and its
        // string pointers point into `buf` as NUL-terminated strings.
        let entry = unsafe {
            let pwd = pwd.assume_init();
            PasswdEntry {
                name: CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
                home: OsStr::from_bytes(CStr::from_ptr(pwd.pw_dir).to_bytes()).into(),
            }
        };
        Ok(Some(entry))
    })
}

/// Looks the group `name` up with `getgrnam_r`; returns its gid.
pub fn getgrnam(name: &str) -> io::Result<Option<u32>> {
    let c = c_string(name.as_bytes())?;
    with_growing_buffer(4096, 1 << 22, |buf| {
        let mut grp = std::mem::MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: all pointers refer to live, writable memory of the stated sizes.
        let err = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if err != 0 {
            return Err(err);
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: getgrnam_r returned an entry, so `grp` is initialised.
        Ok(Some(unsafe { grp.assume_init() }.gr_gid))
    })
}

/// Returns the groups `user` belongs to, including `gid` (`getgrouplist`).
pub fn group_list(user: &str, gid: u32) -> io::Result<Vec<u32>> {
    let c = c_string(user.as_bytes())?;
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `count` entries and `count` is a live int
        // that getgrouplist updates with the number needed.
        let ret = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if ret >= 0 {
            groups.truncate(count.max(0) as usize);
            return Ok(groups);
        }
        if count as usize <= groups.len() || groups.len() >= 1 << 16 {
            return Err(io::Error::other("getgrouplist failed"));
        }
        groups.resize(count as usize, 0);
    }
}

/// Returns the system's host name (`gethostname`).
pub fn hostname() -> io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its full length, which is passed.
    check(unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) })?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Broken-down local time and its offset from UTC in seconds.
#[derive(Debug, Clone, Copy)]
pub struct LocalTime {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month 1 to 12.
    pub month: u32,
    /// Day of the month 1 to 31.
    pub day: u32,
    /// Hour 0 to 23.
    pub hour: u32,
    /// Minute 0 to 59.
    pub minute: u32,
    /// Second 0 to 60.
    pub second: u32,
    /// Day of the week, 0 is Sunday.
    pub weekday: u32,
    /// Offset east of UTC in seconds.
    pub utc_offset: i64,
}

/// Converts seconds since the epoch to local time (`localtime_r`).
pub fn local_time(secs: i64) -> io::Result<LocalTime> {
    let t = secs as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::uninit();
    // SAFETY: both pointers refer to live memory of the right types.
    let ret = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if ret.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: localtime_r returned non-null, so `tm` is initialised.
    let tm = unsafe { tm.assume_init() };
    Ok(LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        weekday: tm.tm_wday as u32,
        utc_offset: tm.tm_gmtoff,
    })
}

// --- sockets -----------------------------------------------------------------

/// Creates a listening TCP socket bound to `addr`; IPv6 sockets are set to
/// IPv6 only so that `0.0.0.0` and `[::]` can be bound side by side.
pub fn tcp_listen(addr: &std::net::SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket takes only integers.
    let fd = owned_fd(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    set_int_option(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if addr.is_ipv6() {
        set_int_option(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    let (storage, len) = socket_address(addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for the socket's family.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    // SAFETY: listen takes only integers.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points to a live int of the passed size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn socket_address(addr: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Connects a UNIX stream socket to `path`, waiting at most `timeout` when
/// the server's backlog is full: Linux applies the send timeout
/// (`SO_SNDTIMEO`) to a blocking `connect` on UNIX sockets. A zero timeout
/// makes the socket non-blocking: the connect fails at once on a full
/// backlog, and the returned stream stays non-blocking.
pub fn unix_connect(path: &Path, timeout: Duration) -> io::Result<std::os::unix::net::UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or with a NUL byte",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let nonblocking = if timeout.is_zero() {
        libc::SOCK_NONBLOCK
    } else {
        0
    };
    // SAFETY: socket takes only integers.
    let fd = owned_fd(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | nonblocking,
            0,
        )
    })?;
    if !timeout.is_zero() {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: the option value points to a live timeval of the passed size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    loop {
        // SAFETY: `addr` is an initialised sockaddr_un of at least `len` bytes.
        let ret = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        };
        if ret == 0 {
            return Ok(std::os::unix::net::UnixStream::from(fd));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            }
            _ => return Err(err),
        }
    }
}

/// Peer of a connected socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An IPv4 or IPv6 peer.
    Inet(std::net::SocketAddr),
    /// A UNIX-domain peer (usually unnamed).
    Unix,
    /// Not a socket (a pipe or terminal), or the peer is unknown.
    Unknown,
}

/// Returns the peer address of `fd` (`getpeername`).
pub fn peer_of(fd: RawFd) -> Peer {
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes and `len` is a live variable.
    let ret = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Peer::Unknown;
    }
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Peer::Inet(std::net::SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Peer::Inet(std::net::SocketAddr::from((
                ip,
                u16::from_be(sin6.sin6_port),
            )))
        }
        libc::AF_UNIX => Peer::Unix,
        _ => Peer::Unknown,
    }
}

/// Reports whether `fd` is a listening socket (`SO_ACCEPTCONN`).
pub fn is_listening_socket(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and sized as getsockopt expects.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    ret == 0 && value != 0
}

/// Returns the address family of the socket `fd` (`SO_DOMAIN`).
pub fn socket_family(fd: RawFd) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and sized as getsockopt expects.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Sets the close-on-exec flag on `fd` (inherited descriptors lack it).
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD takes an integer argument.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Takes ownership of an inherited descriptor number.
///
/// The caller must make sure nothing else in the process owns `fd`: it is
/// used for descriptors passed by inetd or systemd.
pub fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller guarantees `fd` is open and owned by nobody else in
    // this process, which is what OwnedFd requires.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Reports whether `fd` is an open descriptor.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer and fails harmlessly on a closed fd.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

// --- signals and daemon helpers -----------------------------------------------

static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Signals received and not yet taken, one bit per signal number. The pipe
/// byte only wakes the reader: a full pipe drops bytes, the set does not.
static PENDING_SIGNALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Returns and clears the set of signals received since the last call, as
/// a bit mask with bit `n` for signal `n`.
pub fn take_pending_signals() -> u64 {
    PENDING_SIGNALS.swap(0, std::sync::atomic::Ordering::SeqCst)
}

extern "C" fn write_signal_to_pipe(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        // The interrupted code may be about to read errno, so keep it.
        // SAFETY: __errno_location returns this thread's errno slot, valid
        // for the thread's lifetime and async-signal-safe to access.
        let saved = unsafe { *libc::__errno_location() };
        // Atomic operations are async-signal-safe.
        let bit = 1u64 << (signal as u32 % 64);
        PENDING_SIGNALS.fetch_or(bit, std::sync::atomic::Ordering::SeqCst);
        let byte = signal as u8;
        // SAFETY: write is async-signal-safe; `byte` lives for the call. The
        // result is ignored because a full pipe already has a pending wake-up.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved };
    }
}

/// Installs a handler for each of `signals` that writes the signal number as
/// one byte to `pipe_write`, and nothing else (the self-pipe pattern).
pub fn forward_signals_to_pipe(signals: &[i32], pipe_write: RawFd) -> io::Result<()> {
    set_nonblocking(pipe_write, true)?;
    SIGNAL_PIPE.store(pipe_write, std::sync::atomic::Ordering::Relaxed);
    for &signal in signals {
        // SAFETY: sigaction is plain data; all-zero is a valid empty action.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = write_signal_to_pipe as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a live sigset_t.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised; the handler only calls write.
        check(unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) })?;
    }
    Ok(())
}

/// Result of [`fork`].
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(u32),
    /// In the child.
    Child,
}

/// Forks the process. Only call it while the process has a single thread.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: callers fork before starting threads, so the child owns
    // consistent copies of all locks and allocator state.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid as u32)
    })
}

/// Starts a new session, detaching from the controlling terminal.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Duplicates `from` onto `to` (`dup2`).
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes two integers; it closes `to` first if open.
    check(unsafe { libc::dup2(from, to) }).map(drop)
}

/// Takes an exclusive, non-blocking `flock` on `fd`; `EWOULDBLOCK` means
/// another process holds it.
pub fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: flock takes only integers.
    check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }).map(drop)
}

/// Exits the process at once without running destructors (`_exit`); used by
/// the parent after a fork.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and takes one integer.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn open_dir_refuses_symlink() {
        let base = std::env::temp_dir().join(format!("zoha-sys-{}", getpid()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        // Linux reports ENOTDIR for O_DIRECTORY | O_NOFOLLOW on a link.
        let refused = [Some(libc::ELOOP), Some(libc::ENOTDIR)];
        let err = open_dir(&base.join("link")).unwrap_err();
        assert!(refused.contains(&err.raw_os_error()), "{err}");
        let dir = open_dir(&base).unwrap();
        let err = open_dir_at(dir.as_fd(), OsStr::new("link")).unwrap_err();
        assert!(refused.contains(&err.raw_os_error()), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn rename_noreplace_keeps_target() {
        let base = std::env::temp_dir().join(format!("zoha-sys-rn-{}", getpid()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("a"), b"a").unwrap();
        std::fs::write(base.join("b"), b"b").unwrap();
        let dir = open_dir(&base).unwrap();
        let err = rename_noreplace_at(dir.as_fd(), OsStr::new("a"), dir.as_fd(), OsStr::new("b"))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        assert_eq!(std::fs::read(base.join("b")).unwrap(), b"b");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn local_time_of_epoch() {
        let t = local_time(0).unwrap();
        assert!(t.year == 1970 || t.year == 1969);
    }
}
