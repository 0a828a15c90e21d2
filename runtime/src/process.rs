//! Child processes that cannot outlive the engine or escape cancellation.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use crate::child::Child;
use crate::child::Pipes;
use crate::spawn::{self, Image};
use crate::tree::{self, Plan};

/// What to start, contained: see [`start`].
pub struct Start<'a> {
    /// A path, or a name looked up on PATH.
    pub program: &'a str,
    pub args: &'a [&'a OsStr],
    pub workdir: &'a Path,
    /// Set on top of the engine's own environment.
    pub env: &'a [(String, String)],
    /// A pipe for stdin; else the child reads `/dev/null`. Stdout and stderr are pipes.
    pub stdin: bool,
}

/// Starts a process that cannot outlive the engine: the kernel kills it if the engine dies,
/// and it leads a tree (see `tree`: its own process group, a cgroup where the machine
/// allows, `MURMUR_TREE` in its environment) that ends as a whole when it is killed, when
/// it exits, and on the next engine's [`kill_marked`] after a `kill -9` of this one.
///
/// Both are set in the child between clone and exec (see `spawn`): a `setpriv --pdeathsig`
/// in front of each agent cost a second exec, and a `pre_exec` hook forces a `fork` that
/// copies the engine's page tables (5 ms per agent at 10,000 agents when measured).
pub fn start(request: &Start<'_>) -> io::Result<Child> {
    let path = find_program(Path::new(request.program)).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("`{}` is not on PATH", request.program),
        )
    })?;
    let (stdio, pipes) = pipes(request.stdin)?;
    tree::tidy_leftovers();
    let plan = Plan::new();
    let image = Image {
        path: c_string(path.as_os_str())?,
        argv: std::iter::once(OsStr::new(request.program))
            .chain(request.args.iter().copied())
            .map(c_string)
            .collect::<io::Result<_>>()?,
        envp: environment(request.env, plan.mark())?,
        cwd: c_string(request.workdir.as_os_str())?,
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        cgroup: plan.procs().map(AsRawFd::as_raw_fd),
    };
    let spawned = match spawn::spawn(image) {
        Ok(spawned) => spawned,
        Err(error) => {
            plan.abandon();
            return Err(error);
        }
    };
    // The child has its copies now; ours of its ends must close, or reads never see EOF.
    drop(stdio);
    let tree = plan.started(spawned.pid, spawned.joined);
    Child::adopt(spawned.pid, pipes, tree)
}

fn c_string(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in a program, argument, folder or variable",
        )
    })
}

tokio::task_local! {
    /// Set while an attempt runs: its processes inherit nothing of this process's environment.
    static SEALED: ();
}

/// Runs `work` so that every process it starts gets exactly the variables its request lists,
/// none of this process's (an engine's or a worker's keys, database URLs, tokens). Scoped to
/// the task rather than a field of each request, so every way an attempt starts a process
/// (its script, a coding CLI, the prepare hook) is covered at once.
pub async fn sealed_environment<F: std::future::Future>(work: F) -> F::Output {
    SEALED.scope((), work).await
}

/// The engine's environment with `overrides` and then the tree's `mark` on top, as
/// `KEY=VALUE` strings; only `overrides` and the mark inside [`sealed_environment`].
fn environment(overrides: &[(String, String)], mark: (String, String)) -> io::Result<Vec<CString>> {
    let sealed = SEALED.try_with(|()| ()).is_ok();
    let overrides: Vec<&(String, String)> = overrides
        .iter()
        .filter(|(key, _)| *key != mark.0)
        .chain(std::iter::once(&mark))
        .collect();
    let overridden = |key: &OsStr| {
        overrides
            .iter()
            .any(|(k, _)| k.as_bytes() == key.as_bytes())
    };
    let inherited = std::env::vars_os()
        .filter(|_| !sealed)
        .filter(|(key, _)| !overridden(key))
        .map(|(key, value)| [key.as_bytes(), b"=", value.as_bytes()].concat());
    let added = overrides
        .iter()
        .map(|(key, value)| [key.as_bytes(), b"=", value.as_bytes()].concat());
    inherited
        .chain(added)
        .map(|entry| {
            CString::new(entry).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a variable")
            })
        })
        .collect()
}

/// The child's stdin, stdout and stderr, and the parent's ends of the pipes among them.
fn pipes(stdin: bool) -> io::Result<([OwnedFd; 3], Pipes)> {
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let (child_in, parent_in) = if stdin {
        let (read, write) = pipe()?;
        (read, Some(write))
    } else {
        (dev_null()?, None)
    };
    for parent_end in [Some(&out_read), Some(&err_read), parent_in.as_ref()]
        .into_iter()
        .flatten()
    {
        set_nonblocking(parent_end)?;
    }
    let pipes = Pipes {
        stdin: parent_in,
        stdout: out_read,
        stderr: err_read,
    };
    Ok(([child_in, out_write, err_write], pipes))
}

/// A close-on-exec pipe whose ends are 3 or above: the child moves them onto 0, 1 and 2,
/// which must not be overwritten on the way when the engine runs with those closed.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    #[allow(unsafe_code)]
    // SAFETY: pipe2(2) writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: both descriptors are new and ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    #[allow(unsafe_code)]
    // SAFETY: fcntl(2) duplicates a descriptor we own into a new one.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved == -1 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: the duplicate is new and ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// One `/dev/null` for every child's stdin, opened once.
fn dev_null() -> io::Result<OwnedFd> {
    static NULL: OnceLock<io::Result<OwnedFd>> = OnceLock::new();
    let opened = NULL.get_or_init(|| {
        let file = std::fs::File::open("/dev/null")?;
        above_stdio(file.into())
    });
    match opened {
        Ok(fd) => fd.try_clone(),
        Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: fcntl(2) reads and sets the flags of a descriptor we own.
    let done = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        flags != -1 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) != -1
    };
    if done {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Where `program` would be run from: itself when it is a path, else the first match on PATH.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// SIGKILL to the child's whole tree: its cgroup, or its process group and whatever
/// carries its `MURMUR_TREE`.
pub fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        tree::kill_group(pid);
    }
}

/// Whether started processes get a cgroup of their own here (a writable cgroup2), which
/// also holds the members of their tree that left its process group and cleared their
/// environment.
pub fn contained_by_cgroups() -> bool {
    crate::cgroup::engine().is_some()
}

/// Kills every other process whose environment has `key=value`, and the whole trees they
/// belong to; returns how many processes there were once all of them are gone.
///
/// The parent-death signal reaches only the engine's direct children: what an agent's
/// shell started (a background job, a daemon that called `setsid` and forked twice) is
/// re-parented and lives on after a `kill -9` of the engine, and cgroups do not die with
/// their maker either. Agents' processes carry the run id in their environment, so a new
/// engine can find and stop them before it starts their next attempt; through their tree
/// (cgroup and `MURMUR_TREE`) it also finds what cleared or changed that environment.
/// Processes of another user are not found. Linux only: elsewhere there is no `/proc`.
pub fn kill_marked(key: &str, value: &str) -> usize {
    tree::kill_marked(key, value)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    #[test]
    fn kill_marked_finds_processes_by_their_environment() {
        let mark = format!("kill-marked-{}", std::process::id());
        let spawn = |value: &str| {
            Command::new("sleep")
                .arg("300")
                .env("MURMUR_TEST_MARK", value)
                .spawn()
                .expect("sleep starts")
        };
        let mut marked = spawn(&mark);
        let mut other = spawn("something else");
        assert_eq!(super::kill_marked("MURMUR_TEST_MARK", &mark), 1);
        assert_eq!(marked.wait().expect("wait").signal(), Some(libc::SIGKILL));
        assert_eq!(other.try_wait().expect("try_wait"), None);
        other.kill().expect("kill");
        other.wait().expect("wait");
    }
}

/// Why a CLI did not start.
#[derive(Debug)]
pub enum StartError {
    /// Not on PATH, or no such file.
    Missing(String),
    Spawn(std::io::Error),
}

/// A headless agent CLI, started contained in its working folder with piped stdout and
/// stderr (and stdin when asked for).
pub struct Cli {
    pub child: Child,
}

impl Cli {
    pub fn start(
        binary: &Path,
        args: &[String],
        workdir: &Path,
        env: &[(String, String)],
        stdin: bool,
    ) -> Result<Self, StartError> {
        let resolved = find_program(binary)
            .ok_or_else(|| StartError::Missing(binary.display().to_string()))?;
        let resolved = resolved.display().to_string();
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let request = Start {
            program: &resolved,
            args: &args,
            workdir,
            env,
            stdin,
        };
        let child = start(&request).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StartError::Missing(resolved.clone()),
            _ => StartError::Spawn(e),
        })?;
        Ok(Self { child })
    }

    /// SIGKILL to the CLI and everything it started.
    pub fn kill_tree(&self) {
        self.child.kill_tree();
    }
}
