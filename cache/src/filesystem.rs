//! What the filesystem under the cache promises about file locks.
//!
//! The cache protocol (crate docs) rests on `flock`. On a local filesystem
//! the kernel enforces it between all processes of the machine. On a network
//! filesystem it depends on the mount:
//!
//! | filesystem | across hosts? |
//! |---|---|
//! | local (ext4, xfs, btrfs, tmpfs, overlay, ...) | one host only, which is all there is |
//! | NFSv4 | yes: Linux sends `flock` as whole-file locks to the server |
//! | NFSv3 with the lock manager (the default) | yes, through NLM |
//! | NFS with `nolock` or `local_lock=flock`/`all` | **no**: locks are local to each client |
//! | Lustre mounted with `flock` | yes; with `localflock`: **no**; with neither: locks fail (`ENOSYS`) |
//! | GPFS / Spectrum Scale | yes |
//! | CIFS/SMB | not reliably (`flock` is emulated; behaviour depends on server and `nobrl`) |
//!
//! Where locks are local only, two hosts sharing the cache could both fill
//! an entry at once, so [`crate::PackageCache::open`] refuses such a cache
//! unless `PKGR_CACHE_LOCKS=local` says the cache is used from one host only.

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`: where a filesystem is mounted, its
/// type and its options (mount and superblock options together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount point.
    pub mount_point: PathBuf,
    /// The filesystem type (`ext4`, `nfs4`, `fuse.sshfs`, ...).
    pub fs_type: String,
    /// Mount and superblock options (`rw`, `nolock`, `vers=3`, ...).
    pub options: Vec<String>,
}

/// How far `flock` on a filesystem can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockScope {
    /// A local filesystem: the kernel sees every process that can use it.
    Local,
    /// A network filesystem whose locks are seen by every host (`why`).
    AcrossHosts(&'static str),
    /// Locks that only the local host sees (`why`): unsafe to share the
    /// cache between hosts.
    ThisHostOnly(String),
    /// Neither known to be local nor known to lock across hosts.
    Unknown(String),
}

/// Decodes the `\040`-style octal escapes of mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let digits = std::str::from_utf8(digits).unwrap_or_default();
                if let Ok(value) = u8::from_str_radix(digits, 8) {
                    out.push(value);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mount_point = unescape(fields.get(4)?);
            let mount_options = fields.get(5).copied().unwrap_or_default();
            let mut after = after.split(' ');
            let fs_type = after.next()?.to_owned();
            let _source = after.next();
            let super_options = after.next().unwrap_or_default();
            let options = mount_options
                .split(',')
                .chain(super_options.split(','))
                .filter(|o| !o.is_empty())
                .map(ToOwned::to_owned)
                .collect();
            Some(Mount {
                mount_point: PathBuf::from(mount_point),
                fs_type,
                options,
            })
        })
        .collect()
}

/// The mount `path` lives on (the one with the longest mount point that
/// contains it; the last such line wins, as later mounts hide earlier ones).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.as_os_str().len(), *i))
        .map(|(_, m)| m)
}

/// What `flock` on `mount` is worth.
pub fn lock_scope(mount: &Mount) -> LockScope {
    let has = |option: &str| mount.options.iter().any(|o| o == option);
    let value = |key: &str| {
        mount
            .options
            .iter()
            .find_map(|o| o.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    match mount.fs_type.as_str() {
        "nfs" | "nfs4" => {
            if has("nolock") {
                LockScope::ThisHostOnly(String::from("NFS mounted with `nolock`"))
            } else if matches!(value("local_lock"), Some("flock" | "all")) {
                LockScope::ThisHostOnly(format!(
                    "NFS mounted with `local_lock={}`",
                    value("local_lock").unwrap_or_default()
                ))
            } else if mount.fs_type == "nfs4" || value("vers").is_some_and(|v| v.starts_with('4')) {
                LockScope::AcrossHosts("NFSv4 sends flock to the server")
            } else {
                LockScope::AcrossHosts("NFSv3 with its lock manager (NLM)")
            }
        }
        "lustre" => {
            if has("flock") {
                LockScope::AcrossHosts("Lustre mounted with `flock`")
            } else if has("localflock") {
                LockScope::ThisHostOnly(String::from("Lustre mounted with `localflock`"))
            } else {
                LockScope::Unknown(String::from(
                    "Lustre without `flock` (locks fail; mount it with -o flock)",
                ))
            }
        }
        "gpfs" => LockScope::AcrossHosts("GPFS locks across the cluster"),
        "cifs" | "smb3" | "smbfs" => LockScope::Unknown(String::from(
            "CIFS/SMB emulates flock; whether other hosts see the locks depends on the server and on `nobrl`",
        )),
        other if other.starts_with("fuse") => LockScope::Unknown(format!(
            "{other}: a FUSE filesystem's locks depend on its implementation"
        )),
        _ => LockScope::Local,
    }
}

/// The lock scope of the filesystem `path` is on, from
/// `/proc/self/mountinfo` (`None` where that cannot be read: not Linux).
pub fn lock_scope_of(path: &Path) -> Option<(Mount, LockScope)> {
    let text = fs_err::read_to_string("/proc/self/mountinfo").ok()?;
    let mounts = parse_mountinfo(&text);
    let path = path.canonicalize().ok()?;
    let mount = mount_of(&mounts, &path)?.clone();
    let scope = lock_scope(&mount);
    Some((mount, scope))
}

/// Whether `path` is on a read-only filesystem (`statvfs` reports
/// `ST_RDONLY`: a filesystem or a bind mount mounted `ro`, a CVMFS or
/// squashfs image). A path that does not exist yet is judged by the nearest
/// directory above it that does. `false` where that cannot be told.
pub fn is_read_only(path: &Path) -> bool {
    #[cfg(unix)]
    {
        path.ancestors()
            .find(|dir| dir.exists())
            .and_then(|dir| rustix::fs::statvfs(dir).ok())
            .is_some_and(|stats| stats.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
30 22 0:40 / /shared rw,relatime shared:9 - nfs4 srv:/export rw,vers=4.2,rsize=1048576,hard,proto=tcp
31 22 0:41 / /old rw,relatime - nfs srv:/old rw,vers=3,nolock,proto=tcp
32 22 0:42 / /ll rw - nfs srv:/ll rw,vers=3,local_lock=flock
33 22 0:43 / /nlm rw - nfs srv:/nlm rw,vers=3
34 22 0:44 / /lus rw - lustre mgs@tcp:/fs rw,localflock
35 22 0:45 / /my\\040dir rw - tmpfs tmpfs rw
36 22 0:46 / /home/u/sshfs rw - fuse.sshfs host: rw,user_id=0
";

    #[test]
    fn mountinfo_lines_give_mount_points_types_and_options() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 8);
        assert_eq!(mounts[1].fs_type, "nfs4");
        assert!(mounts[2].options.contains(&String::from("nolock")));
        assert_eq!(mounts[6].mount_point, PathBuf::from("/my dir"));
        let on = |p: &str| mount_of(&mounts, Path::new(p)).map(|m| m.mount_point.clone());
        assert_eq!(on("/shared/cache/pkgs"), Some(PathBuf::from("/shared")));
        assert_eq!(on("/sharedx/cache"), Some(PathBuf::from("/")));
        assert_eq!(on("/my dir/c"), Some(PathBuf::from("/my dir")));
    }

    #[test]
    fn lock_scopes_follow_the_mount() {
        let mounts = parse_mountinfo(MOUNTINFO);
        let scope = |p: &str| lock_scope(mount_of(&mounts, Path::new(p)).unwrap());
        assert_eq!(scope("/var/cache"), LockScope::Local);
        assert!(matches!(scope("/shared/c"), LockScope::AcrossHosts(_)));
        assert!(matches!(scope("/nlm/c"), LockScope::AcrossHosts(_)));
        assert!(matches!(scope("/old/c"), LockScope::ThisHostOnly(why) if why.contains("nolock")));
        assert!(
            matches!(scope("/ll/c"), LockScope::ThisHostOnly(why) if why.contains("local_lock=flock"))
        );
        assert!(matches!(scope("/lus/c"), LockScope::ThisHostOnly(_)));
        assert!(matches!(scope("/home/u/sshfs/c"), LockScope::Unknown(_)));
        assert_eq!(scope("/my dir/c"), LockScope::Local);
    }

    #[test]
    fn a_writable_temp_dir_is_not_read_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_read_only(dir.path()));
        assert!(!is_read_only(&dir.path().join("not/yet/made")));
    }

    #[test]
    fn this_machine_s_temp_dir_is_on_some_filesystem() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        if let Some((mount, _)) = lock_scope_of(dir.path()) {
            assert!(!mount.fs_type.is_empty());
        }
    }
}
