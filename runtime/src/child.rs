//! A started process as tokio sees it: its pipes, and its exit through a pidfd.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use crate::tree::Tree;

/// A running child. Dropping it before it was waited for kills it and its tree (SIGKILL),
/// as tokio's `kill_on_drop` did for the child alone.
pub struct Child {
    pid: libc::pid_t,
    exit: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
    tree: Tree,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// The parent's ends of a new child's pipes (stdin absent when it reads `/dev/null`).
pub(crate) struct Pipes {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Child {
    /// Takes over a started child; needs a tokio runtime (the pipes and the pidfd register
    /// with its reactor).
    pub(crate) fn adopt(pid: libc::pid_t, pipes: Pipes, mut tree: Tree) -> io::Result<Self> {
        let exit = match pidfd_open(pid).and_then(watch_exit) {
            Ok(exit) => exit,
            Err(error) => {
                tree.abort();
                kill_and_reap(pid);
                return Err(error);
            }
        };
        let mut child = Self {
            pid,
            exit,
            status: None,
            tree,
            stdin: None,
            stdout: None,
            stderr: None,
        };
        child.stdin = pipes
            .stdin
            .map(pipe::Sender::from_owned_fd_unchecked)
            .transpose()?;
        child.stdout = Some(pipe::Receiver::from_owned_fd_unchecked(pipes.stdout)?);
        child.stderr = Some(pipe::Receiver::from_owned_fd_unchecked(pipes.stderr)?);
        Ok(child)
    }

    pub fn id(&self) -> Option<u32> {
        u32::try_from(self.pid).ok()
    }

    /// Waits for the child to exit and reaps it, then ends what is left of its tree (what
    /// it started and left running) and waits until that is gone. Closes its stdin first,
    /// as tokio does, so a child reading to the end of its input cannot wait for us forever.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.stdin = None;
        loop {
            if let Some(status) = self.status {
                self.tree.end().await;
                return Ok(status);
            }
            let mut ready = self.exit.readable().await?;
            match reap(self.pid)? {
                Some(status) => self.status = Some(status),
                None => ready.clear_ready(),
            }
        }
    }

    /// SIGKILL to the child and its whole tree; [`Child::wait`] then reaps them.
    pub fn kill_tree(&self) {
        self.tree.kill();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.tree.abort();
        if self.status.is_none() {
            kill_and_reap(self.pid);
        }
    }
}

fn kill_and_reap(pid: libc::pid_t) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own unreaped child: the pid cannot have been reused.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    if !matches!(reap(pid), Ok(Some(_))) {
        crate::spawn::reap_later(pid);
    }
}

/// The exit status if the child has exited (and is now reaped), else `None`.
pub(crate) fn reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    wait_for(pid, libc::WNOHANG)
}

/// Reaps a child that has exited or is about to.
pub(crate) fn reap_blocking(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    wait_for(pid, 0)
}

fn wait_for(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    loop {
        let mut status = 0;
        #[allow(unsafe_code)]
        // SAFETY: waitpid(2) writes one int we own.
        let reaped = unsafe { libc::waitpid(pid, &mut status, flags) };
        match reaped {
            0 => return Ok(None),
            -1 => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            _ => return Ok(Some(ExitStatus::from_raw(status))),
        }
    }
}

/// Registers a pidfd with the reactor: it turns readable when the process exits.
pub(crate) fn watch_exit(pidfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    #[allow(unsafe_code)]
    // SAFETY: an `OwnedFd` stays open and keeps its descriptor until the `AsyncFd` drops it.
    let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
    registered.map_err(|error| error.into_parts().1)
}

pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    #[allow(unsafe_code)]
    // SAFETY: pidfd_open(2) takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).unwrap_or(-1);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: the descriptor is new and ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
