//! Child processes that cannot outlive the engine or escape cancellation.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokio::process::Command;

/// A command for `program` that cannot outlive the engine: it runs in its own process group
/// (so the whole tree can be signalled) and the kernel kills it if the engine dies, so after
/// a `kill -9` of the engine a resumed run never races an orphan of the previous attempt.
///
/// The parent-death signal is set by util-linux's `setpriv`, which keeps the spawn on the
/// fast `posix_spawn` path; a `pre_exec` hook would force a `fork` that copies the engine's
/// page tables for every agent (a third of the time of a 1,000-agent run when measured).
/// Without `setpriv`, the hook is the fallback.
pub fn contained(program: &str, args: &[&OsStr]) -> Command {
    let mut command = match setpriv() {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "KILL", "--", program]);
            command
        }
        None => {
            let mut command = Command::new(program);
            die_with_parent(&mut command);
            command
        }
    };
    command.args(args).process_group(0).kill_on_drop(true);
    command
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

fn setpriv() -> Option<&'static PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|dir| dir.join("setpriv"))
                .find(|candidate| candidate.is_file())
        })
        .as_ref()
}

fn die_with_parent(command: &mut Command) {
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

/// Kills every other process whose environment has `key=value`, and returns how many.
///
/// The parent-death signal reaches only the engine's direct children: a command an agent's
/// shell started (a foreground `cat`, a tool of a coding agent) is re-parented and lives on
/// after a `kill -9` of the engine. Agents' processes carry the run id in their environment,
/// so a new engine can find and stop them before it starts their next attempt. Processes
/// that replaced their environment, or belong to another user, are not found. Linux only:
/// elsewhere there is no `/proc` and nothing is killed.
pub fn kill_marked(key: &str, value: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mark = format!("{key}={value}");
    let me = std::process::id();
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ.split(|&b| b == 0).any(|var| var == mark.as_bytes()) {
            continue;
        }
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on one pid; no memory is shared.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        killed += 1;
    }
    killed
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
    pub child: tokio::process::Child,
    pid: Option<u32>,
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
        let arg_refs: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let mut command = contained(&resolved, &arg_refs);
        command
            .current_dir(workdir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StartError::Missing(resolved.clone()),
            _ => StartError::Spawn(e),
        })?;
        let pid = child.id();
        Ok(Self { child, pid })
    }

    /// SIGKILL to the CLI and everything it started.
    pub fn kill_tree(&self) {
        if let Some(pid) = self.pid {
            kill_group(pid);
        }
    }
}
