//! Setting an entry (or its compiled modules) aside: one rename to
//! `pkgs/.old-*` (or `pyc/.old-*`), then deleting it as far as this account
//! may, so that a crash never leaves half an entry at its name.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use pkgr_fs::dir::Dir;

use crate::Layout;

/// Moves whatever is at the entry directory `dest` (`pkgs/<key>`: a damaged
/// entry being repaired, an incomplete leftover; the caller holds the
/// entry's exclusive lock, so nobody uses it) out of the way in one atomic
/// rename, to a new `pkgs/.old-*` name (a crash leaves either it or nothing
/// at `dest`, never a mix), then deletes it as far as this account may.
///
/// The rename stays inside `pkgs/` because a directory renamed within one
/// directory needs write permission on that directory only, not on itself:
/// so a member of a group-shared cache can set aside an entry another
/// member published (a sticky `pkgs/` forbids it: `PermissionDenied`).
/// That member's files, which only they may delete, stay in `.old-*` until
/// they (or root) run `pkgr clean --temp`. Nothing at `dest`: nothing to do.
///
/// Callers pass `dest` below a held directory ([`Dirs::pkgs_at`],
/// [`Dirs::pyc_at`]), so the rename and the removal happen in the
/// directory the cache opened, whatever was put at its path since; neither
/// follows a symlink at `dest` (`lstat`, `rename`, and `remove_dir_all`,
/// which unlinks a symlink it meets instead of descending).
#[expect(
    clippy::disallowed_methods,
    reason = "the paths are below a held handle (/proc/self/fd/N/...); callers name the real path"
)]
pub(crate) fn set_aside(dest: &Path) -> std::io::Result<()> {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let aside = dest.with_file_name(format!(
        "{}{name}-{}-{}-{nanos:08x}",
        Layout::SET_ASIDE_PREFIX,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::rename(dest, &aside)?;
    let _ = if meta.is_dir() {
        std::fs::remove_dir_all(&aside)
    } else {
        std::fs::remove_file(&aside)
    };
    Ok(())
}

/// Removes what [`set_aside`] left in `dir` (`pkgs/` or `pyc/`: another
/// account's files, or a crash between the rename and the deletion), as far
/// as this account may, through the held handle: a symlink there is
/// unlinked, never followed. Nobody uses a set-aside entry. Returns how
/// many went.
pub(crate) fn sweep_set_aside(dir: &Dir) -> usize {
    let Ok(entries) = dir.entries() else {
        return 0;
    };
    let mut removed = 0;
    for (name, _) in entries {
        if !name.to_string_lossy().starts_with(Layout::SET_ASIDE_PREFIX) {
            continue;
        }
        removed += usize::from(dir.remove_all(&name).is_ok());
    }
    removed
}
