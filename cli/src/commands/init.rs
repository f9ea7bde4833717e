//! `pkgr init [SHELL...|--all] [--dry-run] [--reverse]`: writes (or, with
//! `--reverse`, removes) a marked block in the shell's rc file that evaluates
//! pkgr's shell hook, so `pkgr activate NAME` works in every new shell, as
//! `conda init` does.
//!
//! The block is the lines from `# >>> pkgr initialize >>>` to
//! `# <<< pkgr initialize <<<`. A block already there is replaced in place
//! (so running `init` twice leaves one block); else the block is appended.
//! The rest of the file is kept byte for byte, and the file is written
//! through a temp file renamed over it. An rc file that is a symlink is
//! followed, as conda does (it opens the path for writing): the link's
//! target is edited and the link stays.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::activation::{fish_quote, sh_quote};
use crate::cli::{GlobalArgs, InitArgs, InitShell};
use crate::output::{print_json, print_stdout};

const START: &str = "# >>> pkgr initialize >>>";
const END: &str = "# <<< pkgr initialize <<<";

/// `pkgr init`.
pub fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<()> {
    let shells: Vec<InitShell> = if args.all {
        vec![InitShell::Bash, InitShell::Zsh, InitShell::Fish]
    } else if args.shells.is_empty() {
        vec![InitShell::Bash]
    } else {
        let mut shells = Vec::new();
        for shell in &args.shells {
            if !shells.contains(shell) {
                shells.push(*shell);
            }
        }
        shells
    };
    let exe = std::env::current_exe().context("cannot find the pkgr executable")?;
    // Work out every change before writing any, so bad input writes nothing.
    let mut plans = Vec::new();
    for shell in shells {
        let rc = rc_file(shell)?;
        let target = resolve(&rc)?;
        let old = match fs_err::read(&target) {
            Ok(bytes) => Some(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err).context("cannot read the rc file"),
        };
        let before = old.clone().unwrap_or_default();
        let block = (!args.reverse).then(|| block(shell, &exe.to_string_lossy()));
        let after = edited(&before, block.as_deref())
            .with_context(|| format!("cannot edit {}", rc.display()))?;
        let changed = after != before;
        plans.push((rc, target, old.is_some(), before, after, changed));
    }
    let mut report = Vec::new();
    let mut text = String::new();
    for (rc, target, existed, before, after, changed) in &plans {
        if *changed && !args.dry_run {
            write_replacing(target, after, *existed)
                .with_context(|| format!("cannot write {}", rc.display()))?;
        }
        text.push_str(&format!(
            "{:<14}{}\n",
            if *changed { "modified" } else { "no change" },
            rc.display()
        ));
        if *changed && args.dry_run {
            text.push_str(&diff(before, after));
        }
        report.push(serde_json::json!({
            "path": rc,
            "target": target,
            "modified": changed,
        }));
    }
    if global.json {
        return print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "reverse": args.reverse,
            "files": report,
        }));
    }
    if args.dry_run {
        text.push_str("\ndry run: nothing was written\n");
    } else if plans.iter().any(|plan| plan.5) {
        text.push_str(
            "\n==> For changes to take effect, close and re-open your current shell. <==\n",
        );
    }
    if !global.quiet {
        print_stdout(&text);
    }
    Ok(())
}

/// The rc file conda's `init` edits for `shell`.
fn rc_file(shell: InitShell) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let home = || {
        home.clone()
            .context("cannot find the home directory (HOME is not set)")
    };
    Ok(match shell {
        InitShell::Bash => home()?.join(".bashrc"),
        InitShell::Zsh => match std::env::var_os("ZDOTDIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir).join(".zshrc"),
            None => home()?.join(".zshrc"),
        },
        InitShell::Fish => home()?.join(".config").join("fish").join("config.fish"),
    })
}

/// The file to edit: `rc`, or what it links to (followed as conda follows
/// it). A link to nothing is an error, not a file created somewhere.
fn resolve(rc: &Path) -> anyhow::Result<PathBuf> {
    match fs_err::symlink_metadata(rc) {
        Ok(meta) if meta.file_type().is_symlink() => fs_err::canonicalize(rc).with_context(|| {
            format!(
                "{} is a symlink whose target cannot be found; fix or remove the link",
                rc.display()
            )
        }),
        Ok(meta) if !meta.is_file() => bail!("{} is not a regular file", rc.display()),
        _ => Ok(rc.to_path_buf()),
    }
}

/// The block for `shell`, running the hook of the pkgr at `exe`.
fn block(shell: InitShell, exe: &str) -> String {
    let body = match shell {
        InitShell::Bash | InitShell::Zsh => {
            let name = if shell == InitShell::Zsh {
                "zsh"
            } else {
                "bash"
            };
            let exe = sh_quote(exe);
            format!("if [ -x {exe} ]; then\n    eval \"$({exe} shell.{name} hook)\"\nfi\n")
        }
        InitShell::Fish => {
            let exe = fish_quote(exe);
            format!("if test -x {exe}\n    {exe} shell.fish hook | source\nend\n")
        }
    };
    format!("{START}\n# !! Contents within this block are managed by 'pkgr init' !!\n{body}{END}\n")
}

/// `text` with its block replaced by `block`, or appended when it has none;
/// with `block` None, the block removed. The rest stays byte for byte.
fn edited(text: &[u8], block: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let lines = line_spans(text);
    let is = |span: &(usize, usize, usize), marker: &str| {
        String::from_utf8_lossy(&text[span.0..span.1]).trim_end() == marker
    };
    let start = lines.iter().position(|l| is(l, START));
    let Some(start) = start else {
        let mut out = text.to_vec();
        if let Some(block) = block {
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(block.as_bytes());
        }
        return Ok(out);
    };
    let Some(end) = lines[start..].iter().position(|l| is(l, END)) else {
        bail!("it has a line `{START}` but no line `{END}` after it: fix the file by hand");
    };
    let (from, to) = (lines[start].0, lines[start + end].2);
    let mut out = text[..from].to_vec();
    if let Some(block) = block {
        out.extend_from_slice(block.as_bytes());
    }
    out.extend_from_slice(&text[to..]);
    if lines[start + end + 1..].iter().any(|l| is(l, START)) {
        bail!("it has more than one `{START}` block: fix the file by hand");
    }
    Ok(out)
}

/// Each line of `text` as (start, end without the newline, end with it).
fn line_spans(text: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| start + i);
        spans.push((start, end, (end + 1).min(text.len())));
        start = end + 1;
    }
    spans
}

/// The lines `after` adds (`+`) and removes (`-`) against `before`: the
/// block's lines (the rest is the same).
fn diff(before: &[u8], after: &[u8]) -> String {
    let before = String::from_utf8_lossy(before);
    let after = String::from_utf8_lossy(after);
    let prefix = before
        .lines()
        .zip(after.lines())
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = before
        .lines()
        .rev()
        .zip(after.lines().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    // The prefix is at most the shorter text's length; the suffix must not
    // overlap it.
    let suffix = suffix.min(old.len().min(new.len()) - prefix);
    let mut out = String::new();
    for line in &old[prefix..old.len() - suffix] {
        out.push_str(&format!("  - {line}\n"));
    }
    for line in &new[prefix..new.len() - suffix] {
        out.push_str(&format!("  + {line}\n"));
    }
    out
}

/// Writes `bytes` to `path` through a temp file beside it renamed over it,
/// keeping the old file's permissions (a new file gets 0644, as a shell
/// would create it).
fn write_replacing(path: &Path, bytes: &[u8], existed: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let mode = if existed {
        fs_err::metadata(path)?.permissions().mode()
    } else {
        0o644
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".pkgr-init-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "# >>> pkgr initialize >>>\nnew\n# <<< pkgr initialize <<<\n";

    #[test]
    fn a_block_is_appended_replaced_and_removed_keeping_the_rest() {
        let rc = b"alias ll='ls -l'\r\nexport A=1\n";
        let once = edited(rc, Some(BLOCK)).unwrap();
        assert_eq!(once, [&rc[..], BLOCK.as_bytes()].concat());
        assert_eq!(edited(&once, Some(BLOCK)).unwrap(), once);
        let changed = String::from_utf8(once.clone())
            .unwrap()
            .replace("new", "old")
            + "tail\n";
        let replaced = edited(changed.as_bytes(), Some(BLOCK)).unwrap();
        assert_eq!(replaced, [&once[..], b"tail\n"].concat());
        assert_eq!(edited(&once, None).unwrap(), rc);
        assert_eq!(
            edited(b"x", Some(BLOCK)).unwrap(),
            format!("x\n{BLOCK}").as_bytes()
        );
        assert_eq!(edited(b"", None).unwrap(), b"");
    }

    #[test]
    fn a_block_without_its_end_is_an_error() {
        let err = edited(b"# >>> pkgr initialize >>>\nx\n", None).unwrap_err();
        assert!(err.to_string().contains("no line"), "{err}");
    }
}
