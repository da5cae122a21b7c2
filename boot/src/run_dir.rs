//! Per-run directories: `<cargo target dir>/runs/<unique name>/`.
//!
//! Every run writes its files (boot blob, disk image, emulator configuration,
//! serial output, emulator logs) into a fresh directory of its own, so runs in
//! parallel never share a file, and a failed run can be inspected or restarted
//! by hand afterwards. Nothing is ever written into the source tree. Only the
//! newest [`KEPT_RUNS`] run directories are kept.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::RunError;

/// The file cargo writes at the top of every target directory.
const CARGO_TARGET_MARKER: &str = "CACHEDIR.TAG";

/// Where run directories go unless [`crate::RunOptions::runs_root`] says otherwise:
///
/// 1. `$CARGO_TARGET_DIR/runs` when that variable is set,
/// 2. else `<target dir>/runs`, with the target dir found above the kernel
///    artifact (or this executable) by [`target_dir_above`],
/// 3. else `<temp dir>/hypervisor-runs`.
pub fn default_runs_root(kernel: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("runs");
    }
    let exe = std::env::current_exe().ok();
    let target = target_dir_above(kernel).or_else(|| exe.as_deref().and_then(target_dir_above));
    match target {
        Some(target) => target.join("runs"),
        None => std::env::temp_dir().join("hypervisor-runs"),
    }
}

/// The cargo target directory `path` lies in: the outermost ancestor holding
/// cargo's `CACHEDIR.TAG` (cargo also puts one into `target/<triple>/`, where
/// the kernel artifact lives, hence outermost rather than nearest).
pub fn target_dir_above(path: &Path) -> Option<PathBuf> {
    path.ancestors().skip(1).filter(|dir| dir.join(CARGO_TARGET_MARKER).is_file()).last().map(Path::to_path_buf)
}

/// A name no other run (in this or any other process) uses:
/// `<unix seconds>-<machine>-<process id>-<counter>`. Sorting names sorts runs by start.
pub fn unique_run_name(machine_slug: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{seconds}-{machine_slug}-{}-{counter}", std::process::id())
}

/// How many run directories [`create_run_dir`] keeps (the newest ones).
pub const KEPT_RUNS: usize = 30;

/// Creates a fresh run directory under `root`, after removing all but the
/// newest [`KEPT_RUNS`] - 1 earlier ones. `create_dir` (not `create_dir_all`)
/// on the last component makes sure the directory is new.
pub fn create_run_dir(root: &Path, machine_slug: &str) -> Result<PathBuf, RunError> {
    std::fs::create_dir_all(root).map_err(|e| RunError::io("create the runs directory", root, e))?;
    prune_runs(root, KEPT_RUNS.saturating_sub(1));
    let dir = root.join(unique_run_name(machine_slug));
    std::fs::create_dir(&dir).map_err(|e| RunError::io("create the run directory", &dir, e))?;
    Ok(dir)
}

/// The start time (unix seconds) a run directory's name begins with; `None`
/// for anything else, which is never touched.
fn run_start_seconds(name: &str) -> Option<u64> {
    let (seconds, rest) = name.split_once('-')?;
    (!rest.is_empty()).then_some(())?;
    seconds.parse().ok()
}

/// Removes the oldest run directories under `root` until `keep` remain.
/// Best effort: a directory that cannot be removed is left alone. Runs going
/// on in parallel are among the newest, so they are never removed.
pub fn prune_runs(root: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut runs: Vec<(u64, String, PathBuf)> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some((run_start_seconds(&name)?, name, entry.path()))
        })
        .collect();
    if runs.len() <= keep {
        return;
    }
    runs.sort();
    let excess = runs.len() - keep;
    for (_, _, path) in runs.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_are_unique_within_a_process() {
        let a = unique_run_name("bochs");
        let b = unique_run_name("bochs");
        assert_ne!(a, b);
        assert!(a.contains("-bochs-"), "{a}");
    }

    #[test]
    fn pruning_keeps_the_newest_runs_and_foreign_directories() {
        let root = std::env::temp_dir().join(unique_run_name("prune-test"));
        for name in ["100-bochs-1-0", "300-bochs-1-0", "200-qemu-tcg-1-0", "notes", "12"] {
            std::fs::create_dir_all(root.join(name)).unwrap();
        }
        prune_runs(&root, 2);
        let mut left: Vec<String> =
            std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["12", "200-qemu-tcg-1-0", "300-bochs-1-0", "notes"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn target_dir_is_found_above_an_artifact() {
        let kernel = Path::new(env!("CARGO_BIN_FILE_HYPERVISOR_hypervisor"));
        let target = target_dir_above(kernel).expect("the kernel artifact lies inside cargo's target dir");
        assert!(target.join(CARGO_TARGET_MARKER).is_file());
        assert!(kernel.starts_with(&target));
        // The kernel lies in `target/x86_64-unknown-none/...`, which has its own tag.
        assert!(!target.ends_with("x86_64-unknown-none"), "{}", target.display());
    }
}
