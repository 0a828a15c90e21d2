//! Watching a process that is not the test's own child (an agent's grandchild, an agent of a
//! killed engine) until it exits, without polling.

/// A pidfd for the process: readable once the process has exited.
pub struct ExitWatch(Option<i32>);

impl ExitWatch {
    #[allow(unsafe_code)]
    pub fn new(pid: i32) -> Self {
        // SAFETY: pidfd_open(2) takes two integers and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        Self(i32::try_from(fd).ok().filter(|&fd| fd >= 0))
    }

    /// Blocks until the process exits (at most 10 s); true when it did. A process that was
    /// already gone when the watch began counts as exited.
    #[allow(unsafe_code)]
    pub fn wait(self) -> bool {
        let Some(fd) = self.0 else { return true };
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll` points at one valid pollfd for the duration of the call, and the
        // fd is ours; it is closed right after.
        let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
        unsafe { libc::close(fd) };
        ready == 1
    }
}
