//! Credentials: acts as a mailbox owner on one worker thread, or drops the whole process to one user.
//!
//! Root mode (`user` empty, started as root): [`act_as`] switches only the
//! calling thread's supplementary groups, effective gid and effective uid,
//! in that order, through the raw system calls (glibc's `setuid` family and
//! `setgroups` change every thread of the process). The real and saved uids
//! stay 0, so the thread can switch back, and a local user cannot signal the
//! daemon while a thread acts for them (`kill` checks the target's real and
//! saved uid). The returned [`ActingAs`] guard restores root in `Drop`, also
//! during a panic. A switch that cannot be verified is undone by the guard.
//! If switching back fails, the thread is marked unusable
//! ([`thread_is_tainted`]): it refuses every further delivery and the worker
//! pool retires it.
//!
//! Single-user mode (`user = name`): [`drop_privileges`] sets groups, gid and
//! uid for good after the listeners are bound, then checks that `setuid(0)`
//! fails.
//!
//! Failures: [`CredentialError`] names the operation, the ids and the OS error.

use std::cell::Cell;
use std::fmt;
use std::io;

use crate::sys;

thread_local! {
    static TAINTED: Cell<bool> = const { Cell::new(false) };
}

/// Reports whether this thread failed to restore its credentials and must
/// not deliver again.
pub fn thread_is_tainted() -> bool {
    TAINTED.with(Cell::get)
}

fn taint_thread() {
    TAINTED.with(|t| t.set(true));
}

/// A failed credential operation.
#[derive(Debug)]
pub struct CredentialError {
    /// The operation attempted, with the ids.
    pub operation: String,
    /// The OS error, or a description of the mismatch.
    pub source: io::Error,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.source)
    }
}

impl std::error::Error for CredentialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn failed(operation: String, source: io::Error) -> CredentialError {
    CredentialError { operation, source }
}

/// While alive, the calling thread acts as a mailbox owner; dropping it
/// switches back to root.
#[must_use = "the credentials are restored when the guard is dropped"]
pub struct ActingAs {
    uid: u32,
    original_gid: u32,
    original_groups: Vec<u32>,
    /// A guard is tied to the thread that created it.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Switches the calling thread to `uid`, `gid` and `groups` (root mode only).
pub fn act_as(uid: u32, gid: u32, groups: &[u32]) -> Result<ActingAs, CredentialError> {
    if uid == 0 || gid == 0 || groups.contains(&0) {
        return Err(failed(
            format!("switch to uid {uid} gid {gid} groups {groups:?}"),
            io::Error::other("uid 0, gid 0 and group 0 are never used for a delivery"),
        ));
    }
    if thread_is_tainted() {
        return Err(failed(
            "switch credentials".into(),
            io::Error::other("this thread could not restore its credentials earlier"),
        ));
    }
    let (uids, gids) = sys::thread_credentials().map_err(|e| failed("getresuid".into(), e))?;
    if uids.effective != 0 {
        return Err(failed(
            format!("switch to uid {uid}"),
            io::Error::other("the thread is not running as root"),
        ));
    }
    let original_groups = sys::thread_groups().map_err(|e| failed("getgroups".into(), e))?;
    let guard = ActingAs {
        uid,
        original_gid: gids.effective,
        original_groups,
        _not_send: std::marker::PhantomData,
    };

    // Groups first and uid last: once the uid changes, the rest cannot.
    sys::set_thread_groups(groups).map_err(|e| failed(format!("setgroups({groups:?})"), e))?;
    sys::set_thread_gids(u32::MAX, gid, u32::MAX)
        .map_err(|e| failed(format!("setresgid(-1, {gid}, -1)"), e))?;
    sys::set_thread_uids(u32::MAX, uid, u32::MAX)
        .map_err(|e| failed(format!("setresuid(-1, {uid}, -1)"), e))?;

    // Read the ids back; the guard restores root if they are wrong.
    let (uids, gids) = sys::thread_credentials().map_err(|e| failed("getresuid".into(), e))?;
    let held = sys::thread_groups().map_err(|e| failed("getgroups".into(), e))?;
    let mut wanted = groups.to_vec();
    // The kernel keeps the group list sorted.
    wanted.sort_unstable();
    let ids_ok =
        uids.effective == uid && gids.effective == gid && uids.real == 0 && uids.saved == 0;
    if !ids_ok || held != wanted {
        return Err(failed(
            format!("switch to uid {uid} gid {gid}"),
            io::Error::other(format!(
                "read back uid {uids:?} gid {gids:?} groups {held:?}"
            )),
        ));
    }
    Ok(guard)
}

impl ActingAs {
    /// Returns the uid the thread acts as.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    fn restore(&self) -> Result<(), CredentialError> {
        sys::set_thread_uids(u32::MAX, 0, u32::MAX)
            .map_err(|e| failed("setresuid(-1, 0, -1)".into(), e))?;
        let gid = self.original_gid;
        sys::set_thread_gids(u32::MAX, gid, u32::MAX)
            .map_err(|e| failed(format!("setresgid(-1, {gid}, -1)"), e))?;
        sys::set_thread_groups(&self.original_groups)
            .map_err(|e| failed("setgroups (restore)".into(), e))?;
        let (uids, gids) = sys::thread_credentials().map_err(|e| failed("getresuid".into(), e))?;
        let groups = sys::thread_groups().map_err(|e| failed("getgroups".into(), e))?;
        if uids.effective != 0 || gids.effective != gid || groups != self.original_groups {
            return Err(failed(
                "restore root credentials".into(),
                io::Error::other(format!(
                    "read back uid {uids:?} gid {gids:?} groups {groups:?}"
                )),
            ));
        }
        Ok(())
    }
}

impl Drop for ActingAs {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            taint_thread();
            log::error!(
                "cannot switch back from uid {} to root: {e}; retiring this worker thread",
                self.uid
            );
        }
    }
}

/// Drops the whole process to `uid`, `gid` and `groups` for good and checks
/// that root cannot be regained. Call before starting worker threads.
pub fn drop_privileges(uid: u32, gid: u32, groups: &[u32]) -> Result<(), CredentialError> {
    sys::drop_process_privileges(uid, gid, groups)
        .map_err(|e| failed(format!("drop privileges to uid {uid} gid {gid}"), e))?;
    if uid != 0 && sys::try_regain_root() {
        return Err(failed(
            format!("drop privileges to uid {uid}"),
            io::Error::other("setuid(0) still succeeds after the drop"),
        ));
    }
    let (uids, gids) = sys::thread_credentials().map_err(|e| failed("getresuid".into(), e))?;
    let all_uid = uids.real == uid && uids.effective == uid && uids.saved == uid;
    let all_gid = gids.real == gid && gids.effective == gid && gids.saved == gid;
    if !all_uid || !all_gid {
        return Err(failed(
            format!("drop privileges to uid {uid} gid {gid}"),
            io::Error::other(format!("read back uid {uids:?} gid {gids:?}")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn act_as_switches_only_this_thread() {
        if sys::geteuid() != 0 {
            eprintln!("skipped: act_as needs root");
            return;
        }
        let switched = std::sync::Arc::new(std::sync::Barrier::new(2));
        let checked = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (s, c) = (
            std::sync::Arc::clone(&switched),
            std::sync::Arc::clone(&checked),
        );
        let other = std::thread::spawn(move || {
            let guard = act_as(54321, 54322, &[54322]).unwrap();
            assert_eq!(sys::geteuid(), 54321);
            assert_eq!(sys::getegid(), 54322);
            s.wait();
            // The test thread checks its own ids while this one is switched.
            c.wait();
            drop(guard);
            assert_eq!(sys::geteuid(), 0);
            assert!(!thread_is_tainted());
        });
        switched.wait();
        assert_eq!(
            sys::geteuid(),
            0,
            "another thread's switch changed this thread"
        );
        assert_eq!(sys::getegid(), 0);
        checked.wait();
        other.join().unwrap();
    }

    #[test]
    fn act_as_restored_after_panic() {
        if sys::geteuid() != 0 {
            eprintln!("skipped: act_as needs root");
            return;
        }
        let result = std::thread::spawn(|| {
            let caught = std::panic::catch_unwind(|| {
                let _guard = act_as(54321, 54321, &[]).unwrap();
                panic!("delivery bug");
            });
            assert!(caught.is_err());
            sys::geteuid()
        })
        .join()
        .unwrap();
        assert_eq!(result, 0);
    }
}
