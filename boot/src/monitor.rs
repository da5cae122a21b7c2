//! Watching a running emulator: follow its serial output, enforce the timeout.
//!
//! Both emulators write the machine's COM1 into a file. While the emulator
//! runs, [`watch`] polls that file, hands new bytes to the terminal (when
//! streaming) and looks for the verdict line. The watch ends when
//!
//! - the emulator exits (normally because the kernel powered the machine off),
//! - the verdict appeared but the emulator is still running after a grace
//!   period (a kernel that forgot to power off): the runner kills it,
//! - the timeout expires: the runner kills it.
//!
//! The emulator is a single process (neither Bochs nor QEMU forks), so killing
//! it means `SIGKILL` to that process. [`EmulatorProcess`] also kills it when
//! dropped, so a panicking test or an error never leaves an emulator behind.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use crate::terminal::{printable_text, ControlFilter};
use crate::verdict::{find_verdict_in_complete_lines, Verdict};

/// How often the serial file and the process are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long an emulator may keep running after the verdict line appeared.
/// The kernel powers off right after printing it, so this is only reached
/// when the power-off failed.
pub const VERDICT_GRACE: Duration = Duration::from_secs(10);

/// How the emulator stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself, normally because the kernel powered off. `code` is
    /// its exit status (`None` when a signal ended it). The code is *not* the
    /// verdict: Bochs exits with 1 after a clean power-off.
    Exited {
        /// The exit status.
        code: Option<i32>,
    },
    /// The verdict appeared but the emulator did not exit within the grace
    /// period ([`VERDICT_GRACE`]); the runner killed it.
    KilledAfterVerdict,
    /// No verdict within the timeout; the runner killed the emulator.
    TimedOut {
        /// The timeout that expired.
        after: Duration,
    },
}

/// A running emulator that is killed when dropped.
#[derive(Debug)]
pub struct EmulatorProcess {
    child: Child,
    /// The program's name, for messages.
    pub program: String,
}

impl EmulatorProcess {
    /// Takes ownership of a started emulator.
    pub fn new(child: Child, program: impl Into<String>) -> Self {
        EmulatorProcess { child, program: program.into() }
    }

    /// The operating system's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Kills it (`SIGKILL`) and reaps it. Killing a process that already
    /// exited is not an error.
    pub fn kill(&mut self) -> io::Result<()> {
        if self.child.try_wait()?.is_none() {
            // `kill` fails only when the process is already gone, which is fine.
            let _ = self.child.kill();
        }
        self.child.wait().map(drop)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Follows a file that another process appends to.
#[derive(Debug)]
pub struct FileFollower {
    path: PathBuf,
    file: Option<File>,
    bytes: Vec<u8>,
    /// With echo on: removes terminal control sequences from what is echoed.
    echo: Option<ControlFilter>,
    /// Where the first line not yet looked at starts (for [`Self::first_guest_line`]).
    line_start: usize,
    /// When the first guest line arrived.
    first_guest_line: Option<Instant>,
}

impl FileFollower {
    /// Follows `path`, which may not exist yet (Bochs creates COM1's file at
    /// the first byte). With `echo`, new bytes are copied to stdout as they
    /// come, without terminal control sequences ([`crate::terminal`]).
    pub fn new(path: PathBuf, echo: bool) -> Self {
        FileFollower {
            path,
            file: None,
            bytes: Vec::new(),
            echo: echo.then(ControlFilter::new),
            line_start: 0,
            first_guest_line: None,
        }
    }

    /// Reads what was appended since the last call; returns how many bytes.
    pub fn poll(&mut self) -> io::Result<usize> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.as_mut() else { return Ok(0) };
        let start = self.bytes.len();
        file.read_to_end(&mut self.bytes)?;
        self.note_first_guest_line();
        let new = &self.bytes[start..];
        if let Some(filter) = self.echo.as_mut().filter(|_| !new.is_empty()) {
            let mut printable = Vec::with_capacity(new.len());
            filter.filter(new, &mut printable);
            let mut stdout = io::stdout().lock();
            stdout.write_all(&printable)?;
            stdout.flush()?;
        }
        Ok(new.len())
    }

    /// When the first complete guest line ([`is_guest_line`]) was read, if
    /// one was: the benchmark's start-up time as a person sees it.
    pub fn first_guest_line(&self) -> Option<Instant> {
        self.first_guest_line
    }

    /// Looks at the complete lines read since the last call, until a guest line.
    fn note_first_guest_line(&mut self) {
        while self.first_guest_line.is_none() {
            let Some(end) = self.bytes[self.line_start..].iter().position(|&byte| byte == b'\n') else { return };
            let line = &self.bytes[self.line_start..self.line_start + end];
            self.line_start += end + 1;
            if is_guest_line(line) {
                self.first_guest_line = Some(Instant::now());
            }
        }
    }

    /// Everything read so far.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Everything read so far, as text without terminal control sequences
    /// (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        printable_text(&self.bytes)
    }
}

/// Whether a console line is a guest's: it starts with its `[name]` prefix,
/// which the kernel's own `[hv LEVEL]` lines do not have.
pub fn is_guest_line(line: &[u8]) -> bool {
    line.starts_with(b"[") && !line.starts_with(b"[hv ")
}

/// Watches `emulator` until it exits, `grace` (normally [`VERDICT_GRACE`])
/// has passed since the verdict line appeared, or `timeout` expires, following
/// `serial` all the while. Returns how it ended; the serial bytes stay in
/// `serial`. The emulator is no longer running when this returns `Ok`.
pub fn watch(
    emulator: &mut EmulatorProcess,
    serial: &mut FileFollower,
    timeout: Duration,
    grace: Duration,
) -> io::Result<Ending> {
    let start = Instant::now();
    let mut verdict_seen_at: Option<Instant> = None;
    loop {
        let exited = emulator.try_wait()?;
        // Read after checking for exit, so the last bytes are not missed.
        let new_bytes = serial.poll()?;
        if let Some(status) = exited {
            return Ok(Ending::Exited { code: status.code() });
        }
        if verdict_seen_at.is_none()
            && new_bytes > 0
            && find_verdict_in_complete_lines(&serial.text()) != Verdict::Missing
        {
            verdict_seen_at = Some(Instant::now());
        }
        if verdict_seen_at.is_some_and(|seen| seen.elapsed() >= grace) {
            emulator.kill()?;
            serial.poll()?;
            return Ok(Ending::KilledAfterVerdict);
        }
        if start.elapsed() >= timeout {
            emulator.kill()?;
            serial.poll()?;
            return Ok(Ending::TimedOut { after: timeout });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `script` with `sh` in a fresh directory, as a stand-in emulator
    /// that writes `serial.txt`, and watches it.
    fn watch_script(script: &str, timeout: Duration, grace: Duration) -> (Ending, String) {
        let dir = std::env::temp_dir().join(crate::run_dir::unique_run_name("monitor-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("sh").arg("-c").arg(script).current_dir(&dir).spawn().unwrap();
        let mut emulator = EmulatorProcess::new(child, "sh");
        let mut serial = FileFollower::new(dir.join("serial.txt"), false);
        let ending = watch(&mut emulator, &mut serial, timeout, grace).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (ending, serial.text())
    }

    #[test]
    fn the_first_complete_guest_line_is_noted() {
        assert!(is_guest_line(b"[hello64] hi") && is_guest_line(b"[hv] a guest named hv"));
        assert!(!is_guest_line(b"[hv INFO ] memory") && !is_guest_line(b"hypervisor: verdict PASS"));
        assert!(!is_guest_line(b""));
        let dir = std::env::temp_dir().join(crate::run_dir::unique_run_name("follower-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serial.txt");
        let mut follower = FileFollower::new(path.clone(), false);
        std::fs::write(&path, "[hv INFO ] kernel\n[gue").unwrap();
        follower.poll().unwrap();
        assert_eq!(follower.first_guest_line(), None, "no complete guest line yet");
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"st] first\n[guest] second\n").unwrap();
        follower.poll().unwrap();
        let first = follower.first_guest_line();
        assert!(first.is_some());
        file.write_all(b"[guest] third\n").unwrap();
        follower.poll().unwrap();
        assert_eq!(follower.first_guest_line(), first, "only the first counts");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_exiting_emulator_ends_the_watch_with_all_its_output() {
        let script =
            "printf 'one\\n' > serial.txt; sleep 0.2; printf 'hypervisor: verdict PASS\\n' >> serial.txt; exit 3";
        let (ending, text) = watch_script(script, Duration::from_secs(30), Duration::from_secs(30));
        assert_eq!(ending, Ending::Exited { code: Some(3) });
        assert_eq!(text, "one\nhypervisor: verdict PASS\n");
    }

    #[test]
    fn an_emulator_that_outlives_its_verdict_is_killed() {
        let script = "printf 'hypervisor: verdict PASS\\n' > serial.txt; exec sleep 60";
        let (ending, text) = watch_script(script, Duration::from_secs(30), Duration::from_millis(200));
        assert_eq!(ending, Ending::KilledAfterVerdict);
        assert_eq!(text, "hypervisor: verdict PASS\n");
    }

    #[test]
    fn a_silent_emulator_times_out() {
        let timeout = Duration::from_millis(300);
        let (ending, text) =
            watch_script("printf 'booting' > serial.txt; exec sleep 60", timeout, Duration::from_secs(30));
        assert_eq!(ending, Ending::TimedOut { after: timeout });
        assert_eq!(text, "booting");
    }
}
