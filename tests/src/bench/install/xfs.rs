//! Reflink copies: a loop-mounted XFS image and the check that pkgr's
//! `--copy` shared extents.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub(super) fn is_root() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A loop-mounted XFS image with reflink; unmounted and deleted when dropped
/// (also when a measurement panics).
pub(super) struct XfsMount {
    pub(super) dir: PathBuf,
    pub(super) mount_point: PathBuf,
    pub(super) mounted: bool,
}

impl XfsMount {
    pub(super) fn create(size: u64) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("pkgr-bench-xfs-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let mut mount = Self {
            mount_point: dir.join("mnt"),
            dir,
            mounted: false,
        };
        let image = mount.dir.join("xfs.img");
        fs_err::create_dir_all(&mount.mount_point).map_err(|e| e.to_string())?;
        fs_err::File::create(&image)
            .and_then(|f| f.set_len(size))
            .map_err(|e| e.to_string())?;
        let run = |program: &str, args: &[&OsString]| -> Result<(), String> {
            let out = Command::new(program)
                .args(args)
                .output()
                .map_err(|e| format!("{program}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{program} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let (image_arg, mount_arg) = (
            image.into_os_string(),
            mount.mount_point.clone().into_os_string(),
        );
        run(
            "mkfs.xfs",
            &[&"-q".into(), &"-m".into(), &"reflink=1".into(), &image_arg],
        )?;
        run(
            "mount",
            &[&"-o".into(), &"loop".into(), &image_arg, &mount_arg],
        )?;
        mount.mounted = true;
        Ok(mount)
    }

    pub(super) fn used_bytes(&self) -> Option<u64> {
        let out = Command::new("df")
            .args(["-B1", "--output=used"])
            .arg(&self.mount_point)
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        if self.mounted {
            let unmounted = (0..5).any(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Command::new("umount")
                    .arg(&self.mount_point)
                    .status()
                    .is_ok_and(|s| s.success())
            });
            if !unmounted {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mount_point)
                    .status();
            }
        }
        let _ = fs_err::remove_dir_all(&self.dir);
    }
}

/// The largest regular file under `dir` and the total of all regular files.
pub(super) fn largest_file(dir: &Path) -> (Option<PathBuf>, u64) {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let len = entry.metadata().unwrap().len();
                total += len;
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, entry.path()));
                }
            }
        }
    }
    (best.map(|(_, p)| p), total)
}

/// Whether pkgr's `--copy` reflinked: the file system's usage grew by far
/// less than the bytes copied, and the largest file's extents are shared.
pub(super) fn reflink_check(
    prefix: &Path,
    used_before: Option<u64>,
    used_after: Option<u64>,
) -> String {
    let (largest, total) = largest_file(prefix);
    let grew = match (used_before, used_after) {
        (Some(b), Some(a)) => format!("{:.1} MB", a.saturating_sub(b) as f64 / 1e6),
        _ => String::from("?"),
    };
    let shared = largest.as_ref().and_then(|file| {
        let out = Command::new("filefrag").arg("-v").arg(file).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).contains("shared"))
    });
    let verdict = match (shared, used_before.zip(used_after)) {
        (Some(true), _) => "reflinked: yes",
        (Some(false), _) => "reflinked: NO (the largest file's extents are not shared)",
        (None, Some((b, a))) if a.saturating_sub(b) < total / 4 => "reflinked: yes (by disk usage)",
        (None, Some(_)) => "reflinked: NO (by disk usage)",
        (None, None) => "reflinked: unknown",
    };
    format!(
        "{verdict}; a warm --copy create of {:.1} MB of files grew the file system by {grew}{}",
        total as f64 / 1e6,
        largest.map_or_else(String::new, |p| format!(
            " (filefrag -v {})",
            p.file_name().unwrap().to_string_lossy()
        ))
    )
}
