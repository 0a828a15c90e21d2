//! Starting a process the way `posix_spawn` does — `clone(CLONE_VM | CLONE_VFORK)`, so the
//! cost does not grow with the engine's memory as `fork` does — plus what `posix_spawn`
//! cannot do: the parent-death signal and the move into the tree's cgroup, both made in
//! the child between clone and exec.
//!
//! Every clone happens on one long-lived thread. The kernel sends the parent-death signal
//! when the *thread* that created the child ends, not the process: a child started from a
//! tokio blocking thread would be killed when that thread idles out.

use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::RawFd;
use std::sync::{Mutex, OnceLock, mpsc};

/// The child runs on this much stack until exec; it only makes system calls.
const CHILD_STACK: usize = 64 * 1024;

/// What the child execs, as C strings prepared by the caller.
pub(crate) struct Image {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    /// The child's stdin, stdout and stderr: descriptors of 3 or above, close-on-exec.
    pub stdio: [RawFd; 3],
    /// The `cgroup.procs` (close-on-exec) of the cgroup the child moves into before exec.
    pub cgroup: Option<RawFd>,
}

/// A started child.
pub(crate) struct Spawned {
    pub pid: libc::pid_t,
    /// It moved into [`Image::cgroup`] before its exec (else it stayed in the engine's).
    pub joined: bool,
}

struct Job {
    image: Image,
    reply: mpsc::SyncSender<io::Result<Spawned>>,
}

/// Starts `image` and returns its pid once it has exec'd. Errors of the child before its
/// exec (a missing folder, a missing program) are returned here, as `posix_spawn` would.
pub(crate) fn spawn(image: Image) -> io::Result<Spawned> {
    let (reply, answer) = mpsc::sync_channel(1);
    let stopped = || io::Error::other("the process spawner thread has stopped");
    spawner()
        .lock()
        .map_err(|_| stopped())?
        .send(Job { image, reply })
        .map_err(|_| stopped())?;
    answer.recv().map_err(|_| stopped())?
}

/// Pids of killed children that were not reaped yet; the spawner reaps them as it goes.
pub(crate) fn reap_later(pid: libc::pid_t) {
    if let Ok(mut orphans) = orphans().lock() {
        orphans.push(pid);
    }
}

fn orphans() -> &'static Mutex<Vec<libc::pid_t>> {
    static ORPHANS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
    &ORPHANS
}

fn spawner() -> &'static Mutex<mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        // A failed thread start leaves a closed channel: every spawn then reports it.
        let _ = std::thread::Builder::new()
            .name("murmur-spawner".to_owned())
            .spawn(move || serve(queue));
        Mutex::new(jobs)
    })
}

fn serve(queue: mpsc::Receiver<Job>) {
    let mut stack = vec![0_u128; CHILD_STACK / 16];
    let parent = std::process::id() as libc::pid_t;
    for job in queue {
        let started = clone_exec(&job.image, &mut stack, parent);
        let _ = job.reply.send(started);
        reap_orphans();
    }
}

fn reap_orphans() {
    let Ok(mut orphans) = orphans().lock() else {
        return;
    };
    orphans.retain(|&pid| matches!(crate::child::reap(pid), Ok(None)));
}

/// What the child reads (and writes its error into): it shares our memory until it execs.
struct ChildArgs {
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdio: [RawFd; 3],
    /// `cgroup.procs` to write `0` (this process) into, or -1.
    cgroup_procs: RawFd,
    parent: libc::pid_t,
    errno: c_int,
    /// Set by the child once it is in the cgroup.
    joined: c_int,
}

#[allow(unsafe_code)]
fn clone_exec(image: &Image, stack: &mut [u128], parent: libc::pid_t) -> io::Result<Spawned> {
    let argv = null_terminated(&image.argv);
    let envp = null_terminated(&image.envp);
    let mut args = ChildArgs {
        path: image.path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: image.cwd.as_ptr(),
        stdio: image.stdio,
        cgroup_procs: image.cgroup.unwrap_or(-1),
        parent,
        errno: 0,
        joined: 0,
    };
    let top = stack.as_mut_ptr_range().end.cast::<c_void>();
    // SAFETY: all signals are blocked around the clone so that no handler of ours runs in
    // the child, which shares our memory (the child resets handlers before unblocking).
    // `top` is the 16-byte aligned end of a stack that nothing else uses while the child
    // runs: CLONE_VFORK suspends this thread until the child has exec'd or exited, and
    // `args`, `argv` and `envp` outlive that.
    let (pid, clone_error) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw mut args).cast::<c_void>(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        (pid, clone_error)
    };
    if pid == -1 {
        return Err(clone_error);
    }
    // SAFETY: the child wrote `errno` and `joined` (or not) before this thread resumed.
    let (errno, joined) = unsafe {
        (
            std::ptr::read_volatile(&raw const args.errno),
            std::ptr::read_volatile(&raw const args.joined),
        )
    };
    if errno != 0 {
        let _ = crate::child::reap_blocking(pid);
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(Spawned {
        pid,
        joined: joined != 0,
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child between clone and exec. It shares the engine's memory and runs on borrowed
/// stack, so it only makes system calls: no allocation, no locks, no panics.
#[allow(unsafe_code)]
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent thread keeps alive.
    let args = unsafe { &mut *arg.cast::<ChildArgs>() };
    // SAFETY: each call is a plain system call on values prepared by the parent; pointers
    // are valid C strings and null-terminated arrays owned by the suspended parent.
    unsafe {
        default_signals();
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
            fail(args);
        }
        // The engine died before the signal was armed: nobody would kill this child.
        if libc::getppid() != args.parent {
            libc::_exit(127);
        }
        if libc::setpgid(0, 0) == -1 || libc::chdir(args.cwd) == -1 {
            fail(args);
        }
        // Before exec, so that nothing the child starts is outside. A refusal (a cgroup
        // the engine may make but not move into) leaves the tree to its process group.
        if args.cgroup_procs >= 0 && libc::write(args.cgroup_procs, b"0".as_ptr().cast(), 1) == 1 {
            args.joined = 1;
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            if libc::dup2(fd, target as c_int) == -1 {
                fail(args);
            }
        }
        libc::execve(args.path, args.argv, args.envp);
        fail(args)
    }
}

/// Leaves the error for the parent and exits.
#[allow(unsafe_code)]
unsafe fn fail(args: &mut ChildArgs) -> ! {
    args.errno = io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    // SAFETY: _exit(2) ends the child without running anything of the parent's.
    unsafe { libc::_exit(127) }
}

/// Handlers back to default (they are the engine's code, and exec would reset them anyway),
/// SIGPIPE back to default (Rust ignores it; `std::process` resets it too), nothing blocked.
#[allow(unsafe_code)]
unsafe fn default_signals() {
    // SAFETY: sigaction(2) and sigprocmask(2) on this child's own copy of the signal table
    // (no CLONE_SIGHAND) and mask.
    unsafe {
        for signal in 1..65 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue;
            }
            let handled = current.sa_sigaction != libc::SIG_DFL
                && (current.sa_sigaction != libc::SIG_IGN || signal == libc::SIGPIPE);
            if handled {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}
