//! Child processes that cannot outlive the engine or escape cancellation.

use tokio::process::Command;

/// Puts the child in its own process group (so the whole tree can be signalled) and asks
/// the kernel to kill it if the engine dies: after a `kill -9` of the engine, a resumed
/// run must not race an orphan of the previous attempt.
pub fn contain(command: &mut Command) {
    command.process_group(0).kill_on_drop(true);
    #[allow(unsafe_code)]
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends SIGKILL to the child's whole process group.
pub fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}
