//! The measurements of one scenario: pkgr's warm and cold creates (and
//! py-rattler's), their limits and peers, RSS and syscalls.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::cold_limit::{cold_limit, LimitRun};
use super::report::Row;
use super::scenario::{ChannelPackage, Scenario};
use super::strace::parse_strace;
use super::xfs::{is_root, reflink_check, XfsMount};
use super::{progress, say, Options, Tools};
use crate::bench::{median, rattler_available, run_measured, secs, tool_available, Measured};
use crate::ChannelServer;

/// HOME, PKGR_ROOT in `dir`; no inherited pkgr settings.
pub(super) fn isolate(cmd: &mut Command, dir: &Path) {
    cmd.env("HOME", dir.join("home"))
        .env("PKGR_ROOT", dir.join("root"))
        .current_dir(dir);
    for var in [
        "PKGR_JOBS",
        "PKGR_CACHE_DIR",
        "PKGR_OFFLINE",
        "PKGR_REPODATA_TTL",
        "PKGR_CHANNEL_ALIAS",
        "PKGR_READONLY_CACHES",
        "PKGR_LOG",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "CONDA_PKGS_DIRS",
    ] {
        cmd.env_remove(var);
    }
}

pub(super) fn create_args(
    scenario: &Scenario,
    url: &str,
    cache: &Path,
    prefix: &Path,
    copy: bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "create".into(),
        "-y".into(),
        "--cache-dir".into(),
        cache.into(),
    ];
    args.extend([
        "-p".into(),
        prefix.into(),
        "-c".into(),
        url.into(),
        "--override-channels".into(),
    ]);
    if copy {
        args.push("--copy".into());
    }
    args.extend(scenario.specs.iter().map(OsString::from));
    args
}

pub(super) fn pkgr_create(
    pkgr: &Path,
    scenario: &Scenario,
    url: &str,
    cache: &Path,
    prefix: &Path,
    copy: bool,
    work: &Path,
) -> Measured {
    let args = create_args(scenario, url, cache, prefix, copy);
    run_measured(pkgr, &args, &|cmd| isolate(cmd, work)).expect_success("pkgr create")
}

/// The stems in the environment's conda-meta.
pub(super) fn installed(prefix: &Path) -> BTreeSet<String> {
    fs_err::read_dir(prefix.join("conda-meta"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(ToOwned::to_owned)
        })
        .collect()
}

pub(super) fn remove(path: &Path) {
    if path.exists() {
        fs_err::remove_dir_all(path).unwrap();
    }
}

pub(super) fn cp(args: &[&str], from: &Path, to: &Path) -> Duration {
    let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
    all.push(from.into());
    all.push(to.into());
    run_measured(Path::new("cp"), &all, &|_| {})
        .expect_success("cp")
        .wall
}

/// `text` on one line, whitespace runs collapsed, at most 300 characters.
pub(super) fn one_line(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

pub(super) fn mb(kib: Option<u64>) -> String {
    kib.map_or_else(
        || String::from("-"),
        |k| format!("{:.0} MB", k as f64 * 1024.0 / 1e6),
    )
}

pub(super) fn med(runs: &[Duration]) -> Duration {
    Duration::from_secs_f64(median(
        &runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
    ))
}

pub(super) fn list(runs: &[Duration]) -> String {
    runs.iter()
        .map(|d| format!("{:.3}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(clippy::too_many_lines)]
pub(super) fn measure(
    opts: &Options,
    pkgr: &Path,
    tools: &Tools,
    scenario: &Scenario,
    work: &Path,
    out: &mut dyn Write,
) -> Vec<Row> {
    let name = &scenario.name;
    let dir = work.join(format!("{name}-runs"));
    fs_err::create_dir_all(&dir).unwrap();
    let server = ChannelServer::serve(&scenario.channel);
    let url = server.url().to_owned();
    let runs = opts.runs;
    let mut rows = Vec::new();

    // Cold: an empty cache each time (also no repodata).
    let mut cold = Vec::new();
    let mut cold_rss = None;
    let mut limits = Vec::new();
    let mut env_archives: Vec<ChannelPackage> = Vec::new();
    let mut files = 0;
    let cache = |i: usize| dir.join(format!("cold-cache-{i}"));
    let cold_env = |i: usize| dir.join(format!("cold-env-{i}"));
    for i in 0..runs {
        progress(&format!("{name}: cold create {}/{runs}", i + 1));
        let run = pkgr_create(pkgr, scenario, &url, &cache(i), &cold_env(i), false, work);
        cold.push(run.wall);
        cold_rss = cold_rss.max(run.max_rss_kib);
        if i == 0 {
            let stems = installed(&cold_env(0));
            let missing: Vec<&String> = scenario
                .packages
                .keys()
                .filter(|s| !stems.contains(*s))
                .collect();
            assert!(
                !scenario.expect_all || missing.is_empty(),
                "{name}: the environment lacks {missing:?}"
            );
            env_archives =
                stems
                    .iter()
                    .map(|s| {
                        scenario.packages.get(s).cloned().unwrap_or_else(|| {
                            panic!("{name}: installed {s} is not in the channel")
                        })
                    })
                    .collect();
            files = env_archives.iter().map(|p| p.files).sum::<usize>();
            say(
                out,
                &format!(
                    "environment: {} packages, {files} files linked",
                    env_archives.len()
                ),
            );
        } else {
            remove(&cache(i - 1));
            remove(&cold_env(i - 1));
        }
        if tools.limit_missing().is_none() {
            progress(&format!("{name}: cold limit {}/{runs}", i + 1));
            limits.push(cold_limit(
                &url,
                &env_archives,
                &dir.join("limit"),
                false,
                2,
            ));
        }
    }
    let warm_cache = cache(runs - 1);
    let finished_env = cold_env(runs - 1);

    // Warm: the last cold run's cache (packages and fresh repodata).
    let mut warm = Vec::new();
    let mut warm_rss = None;
    let mut copies = Vec::new();
    let mut warm_requests = 0;
    for i in 0..runs {
        progress(&format!("{name}: warm create {}/{runs}", i + 1));
        let copy = dir.join(format!("cp-al-{i}"));
        copies.push(cp(&["-al"], &finished_env, &copy));
        remove(&copy);
        let before: usize = server.counts().values().sum();
        let prefix = dir.join(format!("warm-env-{i}"));
        let run = pkgr_create(pkgr, scenario, &url, &warm_cache, &prefix, false, work);
        warm_requests = warm_requests.max(server.counts().values().sum::<usize>() - before);
        warm.push(run.wall);
        warm_rss = warm_rss.max(run.max_rss_kib);
        remove(&prefix);
    }
    say(out, &format!("warm create: {} s (median {}); cp -al: {} s; HTTP requests during a warm create: {warm_requests}",
        list(&warm), secs(med(&warm)), list(&copies)));
    say(
        out,
        &format!(
            "cold create: {} s (median {})",
            list(&cold),
            secs(med(&cold))
        ),
    );
    if !limits.is_empty() {
        let phase = |f: fn(&LimitRun) -> Duration| med(&limits.iter().map(f).collect::<Vec<_>>());
        say(
            out,
            &format!(
                "cold limit: {} s (median {}: curl {}, decompress on 2 cores {}, cp -al {})",
                list(&limits.iter().map(LimitRun::total).collect::<Vec<_>>()),
                secs(med(&limits.iter().map(LimitRun::total).collect::<Vec<_>>())),
                secs(phase(|l| l.download)),
                secs(phase(|l| l.decompress)),
                secs(phase(|l| l.link)),
            ),
        );
        if let Some(failures) = limits.iter().map(|l| &l.failures).find(|f| !f.is_empty()) {
            say(
                out,
                &format!(
                    "cold limit: the command-line tools did not unpack everything cleanly (measured anyway): {}",
                    failures.join("; ")
                ),
            );
        }
    }

    // Byte-compiling is part of pkgr's work that cp -al does not do: time it alone.
    if !scenario.noarch_modules.is_empty() {
        let python = fs_err::read_dir(finished_env.join("bin"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("python3.") && !n.ends_with("-config")
                })
            });
        let site = fs_err::read_dir(finished_env.join("lib"))
            .unwrap()
            .flatten()
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.is_dir());
        if let (Some(python), Some(site)) = (python, site) {
            let mut times = Vec::new();
            for i in 0..runs {
                let scratch = dir.join(format!("compile-{i}"));
                let mut args: Vec<OsString> =
                    vec!["-Wi".into(), "-m".into(), "compileall".into(), "-q".into()];
                for module in &scenario.noarch_modules {
                    let to = scratch.join(module);
                    fs_err::create_dir_all(to.parent().unwrap()).unwrap();
                    fs_err::copy(site.join(module), &to).unwrap();
                    args.push(to.into());
                }
                times.push(run_measured(&python, &args, &|_| {}).wall);
                remove(&scratch);
            }
            say(out, &format!(
                "byte-compiling the {} modules of the noarch: python packages alone (python -m compileall): median {} \
                 (part of pkgr's warm and cold time, not of cp -al's)",
                scenario.noarch_modules.len(), secs(med(&times))
            ));
        }
    }

    // Syscalls of one warm create.
    let mut per_file = None;
    if !opts.strace {
        say(out, "syscalls: skipped (--no-strace)");
    } else if !tools.strace {
        say(out, "syscalls: skipped, strace not found");
    } else {
        progress(&format!("{name}: warm create under strace"));
        let logs = dir.join("strace");
        fs_err::create_dir_all(&logs).unwrap();
        let prefix = dir.join("strace-env");
        let mut args: Vec<OsString> = vec![
            "-ff".into(),
            "-o".into(),
            logs.join("t").into(),
            pkgr.into(),
        ];
        args.extend(create_args(scenario, &url, &warm_cache, &prefix, false));
        run_measured(Path::new("strace"), &args, &|cmd| isolate(cmd, work))
            .expect_success("strace pkgr create");
        let calls = parse_strace(&logs, pkgr);
        remove(&logs);
        remove(&prefix);
        let f = files.max(1) as f64;
        per_file = Some(calls.total() as f64 / f);
        let group = |label: &str, names: &[&str]| {
            let (c, e) = calls.group(names);
            format!("{label} {:.2} ({c}, {e} failed)", c as f64 / f)
        };
        let mut top: Vec<(&String, &(u64, u64))> = calls.own.iter().collect();
        top.sort_by_key(|(_, (c, _))| std::cmp::Reverse(*c));
        say(out, &format!(
            "syscalls of a warm create (strace -ff): pkgr {} in {} threads = {:.2} per linked file ({files} files); \
             per file: {}, {}, {}, {}; plus {} in {} child processes (byte-compiling)",
            calls.total(), calls.threads, calls.total() as f64 / f,
            group("stat*", &["statx", "stat", "lstat", "newfstatat", "fstat"]),
            group("mkdir", &["mkdir", "mkdirat"]),
            group("link", &["linkat", "link"]),
            group("open", &["openat", "open"]),
            calls.children, calls.children_processes,
        ));
        say(
            out,
            &format!(
                "top syscalls: {}",
                top.iter()
                    .take(10)
                    .map(|(n, (c, e))| if *e > 0 {
                        format!("{n} {c} ({e} failed)")
                    } else {
                        format!("{n} {c}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }

    rows.push(Row {
        scenario: format!("{name}: warm create"),
        pkgr: Some(med(&warm)),
        peer_name: String::from("cp -al"),
        peer: Some(med(&copies)),
        rss_kib: warm_rss,
        syscalls_per_file: per_file,
    });
    rows.push(Row {
        scenario: format!("{name}: cold create"),
        pkgr: Some(med(&cold)),
        peer_name: match tools.limit_missing() {
            None => String::from("curl + unzip|zstd|tar, bzip2 + cp -al"),
            Some(tool) => format!("skipped: no {tool}"),
        },
        peer: (!limits.is_empty())
            .then(|| med(&limits.iter().map(LimitRun::total).collect::<Vec<_>>())),
        rss_kib: cold_rss,
        syscalls_per_file: None,
    });

    // py-rattler on the same channel.
    let rattler_skip = if opts.smoke {
        Some(String::from("skipped in --smoke"))
    } else if !opts.rattler {
        Some(String::from("skipped (--no-rattler)"))
    } else if !rattler_available() {
        Some(String::from(
            "skipped: python3 -c 'import rattler' fails (pip install py-rattler)",
        ))
    } else {
        None
    };
    if let Some(why) = rattler_skip {
        say(out, &format!("py-rattler: {why}"));
        rows.push(Row {
            scenario: format!("{name}: vs py-rattler"),
            pkgr: None,
            peer_name: why,
            peer: None,
            rss_kib: None,
            syscalls_per_file: None,
        });
    } else {
        let script = dir.join("rattler_install.py");
        fs_err::write(&script, RATTLER_SCRIPT).unwrap();
        // Ok((process, solve + install as timed inside python)), else why not.
        let rattler = |cache: &Path, prefix: &Path| -> Result<(Measured, f64), String> {
            let mut args: Vec<OsString> = vec![
                script.clone().into(),
                url.clone().into(),
                cache.into(),
                prefix.into(),
            ];
            args.extend(scenario.specs.iter().map(OsString::from));
            let run = run_measured(Path::new("python3"), &args, &|cmd| isolate(cmd, work));
            let report: serde_json::Value =
                serde_json::from_str(run.stdout.lines().last().unwrap_or("{}")).unwrap_or_default();
            match (report["solve"].as_f64(), report["install"].as_f64()) {
                (Some(solve), Some(install)) if run.status.success() => Ok((run, solve + install)),
                _ => Err(format!(
                    "py-rattler failed ({}): {}",
                    run.status,
                    one_line(
                        run.stderr
                            .lines()
                            .rfind(|l| !l.trim().is_empty())
                            .unwrap_or("")
                    )
                )),
            }
        };
        let (mut rcold, mut rwarm, mut rcold_proc, mut rwarm_proc) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut failure = None;
        for i in 0..runs {
            progress(&format!("{name}: py-rattler cold {}/{runs}", i + 1));
            let cache = dir.join(format!("rattler-cache-{i}"));
            let prefix = dir.join(format!("rattler-cold-{i}"));
            match rattler(&cache, &prefix) {
                Ok((run, inner)) => {
                    rcold.push(Duration::from_secs_f64(inner));
                    rcold_proc.push(run.wall);
                }
                Err(why) => failure = Some(why),
            }
            if i > 0 {
                remove(&dir.join(format!("rattler-cache-{}", i - 1)));
            }
            if i + 1 < runs {
                remove(&prefix);
            }
        }
        let rattler_cache = dir.join(format!("rattler-cache-{}", runs - 1));
        let rattler_env = dir.join(format!("rattler-cold-{}", runs - 1));
        for i in 0..runs {
            progress(&format!("{name}: py-rattler warm {}/{runs}", i + 1));
            let prefix = dir.join(format!("rattler-warm-{i}"));
            match rattler(&rattler_cache, &prefix) {
                Ok((run, inner)) => {
                    rwarm.push(Duration::from_secs_f64(inner));
                    rwarm_proc.push(run.wall);
                }
                Err(why) => failure = Some(why),
            }
            remove(&prefix);
        }
        if let Some(why) = &failure {
            say(out, &format!("py-rattler: {why}"));
        }
        let failure = failure.map(|_| String::from("py-rattler failed (see above)"));
        let pycs = count_noarch_pycs(&rattler_env, scenario);
        let pkgr_pycs = count_noarch_pycs(&finished_env, scenario);
        if !rcold.is_empty() || !rwarm.is_empty() {
            say(out, &format!(
                "py-rattler (solve + install inside python, without interpreter start): cold {} s, warm {} s; \
                 whole process: cold {} s, warm {} s; noarch .pyc files written: py-rattler {pycs}, pkgr {pkgr_pycs} \
                 (of {} modules)",
                list(&rcold), list(&rwarm), list(&rcold_proc), list(&rwarm_proc), scenario.noarch_modules.len()
            ));
        }
        remove(&rattler_env);
        remove(&rattler_cache);
        rows.push(Row {
            scenario: format!("{name}: warm vs py-rattler"),
            pkgr: Some(med(&warm)),
            peer_name: if rwarm.is_empty() {
                failure.clone().unwrap_or_default()
            } else {
                String::from("py-rattler solve+install")
            },
            peer: (!rwarm.is_empty()).then(|| med(&rwarm)),
            rss_kib: None,
            syscalls_per_file: None,
        });
        rows.push(Row {
            scenario: format!("{name}: cold vs py-rattler"),
            pkgr: Some(med(&cold)),
            peer_name: if rcold.is_empty() {
                failure.clone().unwrap_or_default()
            } else {
                String::from("py-rattler solve+install")
            },
            peer: (!rcold.is_empty()).then(|| med(&rcold)),
            rss_kib: None,
            syscalls_per_file: None,
        });
    }

    // --copy on XFS with reflink.
    let xfs_skip = if opts.smoke {
        Some(String::from("skipped in --smoke"))
    } else if !opts.xfs {
        Some(String::from("skipped (--no-xfs)"))
    } else if !is_root() {
        Some(String::from("skipped: not root (needs mount)"))
    } else if !tool_available("mkfs.xfs")
        && !Path::new("/usr/sbin/mkfs.xfs").is_file()
        && !Path::new("/sbin/mkfs.xfs").is_file()
    {
        Some(String::from(
            "skipped: no mkfs.xfs (apt-get install xfsprogs)",
        ))
    } else {
        None
    };
    let xfs_result = match xfs_skip {
        Some(why) => Err(why),
        None => {
            // Room for the cache (archives + extracted) and a few environments.
            let need: u64 = scenario
                .packages
                .values()
                .map(|p| p.unpacked_bytes + 2 * p.archive_bytes)
                .sum();
            XfsMount::create((4 * need).max(1 << 30)).map_err(|e| format!("skipped: {e}"))
        }
    };
    match xfs_result {
        Err(why) => {
            say(out, &format!("XFS reflink: {why}"));
            rows.push(Row {
                scenario: format!("{name}: XFS --copy"),
                pkgr: None,
                peer_name: why,
                peer: None,
                rss_kib: None,
                syscalls_per_file: None,
            });
        }
        Ok(mount) => {
            let x = mount.mount_point.join("bench");
            fs_err::create_dir_all(&x).unwrap();
            let (mut xcold, mut xcold_rss, mut xlimits) = (Vec::new(), None, Vec::new());
            for i in 0..runs {
                progress(&format!("{name}: XFS cold create --copy {}/{runs}", i + 1));
                if i > 0 {
                    remove(&x.join(format!("cache-{}", i - 1)));
                    remove(&x.join(format!("cold-{}", i - 1)));
                }
                let run = pkgr_create(
                    pkgr,
                    scenario,
                    &url,
                    &x.join(format!("cache-{i}")),
                    &x.join(format!("cold-{i}")),
                    true,
                    work,
                );
                xcold.push(run.wall);
                xcold_rss = xcold_rss.max(run.max_rss_kib);
                if tools.limit_missing().is_none() {
                    xlimits.push(cold_limit(&url, &env_archives, &x.join("limit"), true, 2));
                }
            }
            let xcache = x.join(format!("cache-{}", runs - 1));
            let xfinished = x.join(format!("cold-{}", runs - 1));
            let (mut xwarm, mut xwarm_rss, mut xcopies) = (Vec::new(), None, Vec::new());
            let mut reflink_note = String::new();
            for i in 0..runs {
                progress(&format!("{name}: XFS warm create --copy {}/{runs}", i + 1));
                let copy = x.join(format!("reflink-copy-{i}"));
                xcopies.push(cp(&["-a", "--reflink=always"], &xfinished, &copy));
                remove(&copy);
                let prefix = x.join(format!("warm-{i}"));
                let used_before = mount.used_bytes();
                let run = pkgr_create(pkgr, scenario, &url, &xcache, &prefix, true, work);
                let used_after = mount.used_bytes();
                xwarm.push(run.wall);
                xwarm_rss = xwarm_rss.max(run.max_rss_kib);
                if i == 0 {
                    reflink_note = reflink_check(&prefix, used_before, used_after);
                }
                remove(&prefix);
            }
            say(out, &format!(
                "XFS (loop image, reflink=1): warm --copy {} s, cp -a --reflink=always {} s; cold --copy {} s, limit {} s; {reflink_note}",
                list(&xwarm), list(&xcopies), list(&xcold), list(&xlimits.iter().map(LimitRun::total).collect::<Vec<_>>())
            ));
            rows.push(Row {
                scenario: format!("{name}: XFS warm --copy"),
                pkgr: Some(med(&xwarm)),
                peer_name: String::from("cp -a --reflink=always"),
                peer: Some(med(&xcopies)),
                rss_kib: xwarm_rss,
                syscalls_per_file: None,
            });
            rows.push(Row {
                scenario: format!("{name}: XFS cold --copy"),
                pkgr: Some(med(&xcold)),
                peer_name: String::from("curl + decompress + cp --reflink"),
                peer: (!xlimits.is_empty())
                    .then(|| med(&xlimits.iter().map(LimitRun::total).collect::<Vec<_>>())),
                rss_kib: xcold_rss,
                syscalls_per_file: None,
            });
            remove(&x);
            drop(mount);
        }
    }
    if !opts.keep {
        remove(&dir);
    }
    rows
}

/// `.pyc` files next to the noarch python modules in `prefix`.
pub(super) fn count_noarch_pycs(prefix: &Path, scenario: &Scenario) -> usize {
    let Ok(lib) = fs_err::read_dir(prefix.join("lib")) else {
        return 0;
    };
    let Some(site) = lib
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
    else {
        return 0;
    };
    scenario
        .noarch_modules
        .iter()
        .filter(|m| {
            let module = site.join(m);
            let (Some(dir), Some(stem)) = (module.parent(), module.file_stem()) else {
                return false;
            };
            fs_err::read_dir(dir.join("__pycache__")).is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{}.", stem.to_string_lossy()))
                })
            })
        })
        .count()
}

pub(super) const RATTLER_SCRIPT: &str = r#"
import asyncio, json, os, sys, time
import rattler

async def main(url, cache, prefix, specs):
    t0 = time.perf_counter()
    records = await rattler.solve(
        sources=[rattler.Channel(url)],
        specs=specs,
        platforms=[rattler.Platform.current(), rattler.Platform("noarch")],
        virtual_packages=rattler.VirtualPackage.detect(),
        gateway=rattler.Gateway(cache_dir=cache + "/repodata"),
    )
    t1 = time.perf_counter()
    await rattler.install(records, target_prefix=prefix, cache_dir=cache + "/pkgs", show_progress=False)
    t2 = time.perf_counter()
    print(json.dumps({"solve": t1 - t0, "install": t2 - t1, "records": len(records)}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
# py-rattler 0.28 can abort in interpreter finalization (PyGILState_Release);
# the work is done and reported, so skip finalization.
os._exit(0)
"#;
