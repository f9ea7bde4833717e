#!/usr/bin/env python3
"""Repodata at conda-forge scale: a benchmark command (not a test).

Generates a channel of conda-forge's size and shape (>= 400k linux-64 and
150k noarch records, ~25k names with a long tail, a scientific python core
with real dependency structure), serves it on 127.0.0.1 in three forms
(sharded CEP-16 + everything, `.json.zst` + `.json`, plain `.json`), and runs
`pkgr create --dry-run` of `python numpy scipy pandas` and of `libzlib`
against each: cold (empty cache), warm, and 8 warm processes at once. It
prints wall time, peak RSS of the pkgr process and bytes served.

Usage:
    pip install msgpack zstandard
    cargo build --release -p pkgr-cli
    python3 scripts/scale_bench.py [--pkgr target/release/pkgr] [--keep DIR] [--rattler]

The channel (~700 MB on disk) goes to a temp dir, or to --keep DIR to be
reused between runs. Deterministic: the same channel every run.
"""

import argparse
import functools
import hashlib
import http.server
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zstandard

LINUX, NOARCH = "linux-64", "noarch"
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def cp(py):
    return "cp" + py.replace(".", "")


class Channel:
    def __init__(self):
        self.records = {LINUX: {}, NOARCH: {}}
        self.n = 0

    def add(self, subdir, name, version, build, depends=(), constrains=(), noarch=None):
        self.n += 1
        record = {
            "build": build,
            "build_number": int(build.rsplit("_", 1)[-1]) if build.rsplit("_", 1)[-1].isdigit() else 0,
            "depends": list(depends),
            "license": "BSD-3-Clause",
            "md5": hashlib.md5(f"{self.n}".encode()).hexdigest(),
            "name": name,
            "sha256": hashlib.sha256(f"{self.n}".encode()).hexdigest(),
            "size": 10_000 + (self.n * 7919) % 50_000_000,
            "subdir": subdir,
            "timestamp": 1_600_000_000_000 + self.n * 1000,
            "version": version,
        }
        if constrains:
            record["constrains"] = list(constrains)
        if noarch:
            record["noarch"] = noarch
        stem = f"{name}-{version}-{build}"
        # As conda-forge: most packages in both formats.
        self.records[subdir][stem] = record


def core(ch):
    glibc = "__glibc >=2.17,<3.0.a0"
    for v in ["13.2.0", "14.1.0", "14.2.0"]:
        for b in range(3):
            ch.add(LINUX, "libgcc", v, f"h77fa898_{b}", [glibc, "_openmp_mutex >=4.5"])
            ch.add(LINUX, "libgcc-ng", v, f"h69a702a_{b}", [f"libgcc {v} h77fa898_{b}"])
            ch.add(LINUX, "libstdcxx", v, f"hc0a3c3a_{b}", [f"libgcc {v} h77fa898_{b}"])
            ch.add(LINUX, "libstdcxx-ng", v, f"h4852527_{b}", [f"libstdcxx {v} hc0a3c3a_{b}"])
            ch.add(LINUX, "libgfortran5", v, f"hd5240d6_{b}", ["libgcc >=13"])
            ch.add(LINUX, "libgfortran", v, f"h69a702a_{b}", [f"libgfortran5 {v} hd5240d6_{b}"])
            ch.add(LINUX, "libgomp", v, f"h77fa898_{b}", [glibc])
    ch.add(LINUX, "_openmp_mutex", "4.5", "2_gnu", ["libgomp >=7.5.0"])
    ch.add(LINUX, "_libgcc_mutex", "0.1", "conda_forge")
    libs = {
        "libzlib": ["1.2.13", "1.3", "1.3.1"],
        "xz": ["5.4.6", "5.6.3"],
        "liblzma": ["5.6.3"],
        "bzip2": ["1.0.8"],
        "libffi": ["3.4.2", "3.4.6"],
        "ncurses": ["6.4", "6.5"],
        "readline": ["8.2"],
        "tk": ["8.6.13"],
        "openssl": ["3.1.4", "3.2.1", "3.3.2", "3.4.0"],
        "libsqlite": ["3.45.3", "3.46.1", "3.47.0"],
        "libuuid": ["2.38.1"],
        "libnsl": ["2.0.1"],
        "libxcrypt": ["4.4.36"],
        "libexpat": ["2.6.2", "2.6.4"],
        "libmpdec": ["4.0.0"],
    }
    for name, versions in libs.items():
        for v in versions:
            for b in range(2):
                deps = ["libgcc >=13"]
                if name == "readline":
                    deps.append("ncurses >=6.4,<7.0a0")
                if name == "tk":
                    deps.append("libzlib >=1.2.13,<2.0a0")
                ch.add(LINUX, name, v, f"hb9d3cd8_{b}", deps)
    ch.add(LINUX, "zlib", "1.3.1", "hb9d3cd8_2", ["libgcc >=13", "libzlib 1.3.1 hb9d3cd8_1"])
    ch.add(NOARCH, "ca-certificates", "2024.8.30", "hbcca054_0")
    ch.add(NOARCH, "tzdata", "2024b", "hc8b5060_0")
    for py in PYTHONS:
        for patch in range(4):
            for b in range(2):
                ch.add(
                    LINUX, "python", f"{py}.{patch}", f"h9ebbce0_{b}_cpython",
                    ["bzip2 >=1.0.8,<2.0a0", "ld_impl_linux-64 >=2.36.1", "libexpat >=2.6.2,<3.0a0",
                     "libffi >=3.4,<4.0a0", "libgcc >=13", "liblzma >=5.6.3,<6.0a0",
                     "libnsl >=2.0.1,<2.1.0a0", "libsqlite >=3.45.3,<4.0a0", "libuuid >=2.38.1,<3.0a0",
                     "libxcrypt >=4.4.36", "libzlib >=1.2.13,<2.0a0", "ncurses >=6.4,<7.0a0",
                     "openssl >=3.3.2,<4.0a0", "readline >=8.2,<9.0a0", "tk >=8.6.13,<8.7.0a0",
                     "tzdata"],
                    constrains=[f"python_abi {py}.* *_{cp(py)}"],
                )
        ch.add(LINUX, "python_abi", py, f"5_{cp(py)}", constrains=[f"python {py}.* *_cpython"])
    ch.add(LINUX, "ld_impl_linux-64", "2.43", "h712a8e2_2", [glibc])
    for v in ["3.9.0"]:
        for b in range(20, 26):
            ch.add(LINUX, "libblas", v, f"{b}_linux64_openblas", [f"libopenblas >=0.3.27,<1.0a0"],
                   constrains=[f"libcblas {v} {b}_linux64_openblas", f"liblapack {v} {b}_linux64_openblas"])
            ch.add(LINUX, "libcblas", v, f"{b}_linux64_openblas", [f"libblas {v} {b}_linux64_openblas"])
            ch.add(LINUX, "liblapack", v, f"{b}_linux64_openblas", [f"libblas {v} {b}_linux64_openblas"])
    for v in ["0.3.27", "0.3.28"]:
        for b in range(2):
            ch.add(LINUX, "libopenblas", v, f"pthreads_h94d23a6_{b}",
                   ["libgcc >=13", "libgfortran 14.*", "libgfortran5 >=14.1.0"])
    def pydeps(py):
        minor = int(py.split(".")[1])
        return [f"python >={py},<3.{minor + 1}.0a0", f"python_abi {py}.* *_{cp(py)}"]

    for py in PYTHONS:
        for v in ["1.26.4", "2.0.2", "2.1.3", "2.2.0"]:
            for b in range(2):
                ch.add(LINUX, "numpy", v, f"py{cp(py)[2:]}h474f0d3_{b}",
                       ["libblas >=3.9.0,<4.0a0", "libcblas >=3.9.0,<4.0a0", "libgcc >=13",
                        "liblapack >=3.9.0,<4.0a0", "libstdcxx >=13"] + pydeps(py))
        for v in ["1.13.1", "1.14.1", "1.15.1"]:
            for b in range(2):
                ch.add(LINUX, "scipy", v, f"py{cp(py)[2:]}h0c2bcf9_{b}",
                       ["libblas >=3.9.0,<4.0a0", "libcblas >=3.9.0,<4.0a0", "libgcc >=13",
                        "libgfortran", "libgfortran5 >=13.3.0", "liblapack >=3.9.0,<4.0a0",
                        "libstdcxx >=13", "numpy >=1.23.5", "numpy <2.3"] + pydeps(py))
        for v in ["2.1.4", "2.2.3", "2.2.3"]:
            for b in range(2):
                ch.add(LINUX, "pandas", v, f"py{cp(py)[2:]}he7dd4e5_{b}",
                       ["libgcc >=13", "libstdcxx >=13", "numpy >=1.22.4", "python-dateutil >=2.8.1",
                        "python-tzdata >=2022a", "pytz >=2020.1,<2024.2"] + pydeps(py))
    for name, versions in {"python-dateutil": ["2.8.2", "2.9.0"], "pytz": ["2023.4", "2024.1"],
                           "six": ["1.16.0"], "python-tzdata": ["2024.1", "2024.2"],
                           "pip": ["24.2", "24.3.1"], "setuptools": ["73.0.1", "75.1.0"],
                           "wheel": ["0.44.0"]}.items():
        for v in versions:
            deps = ["python >=3.8"] + (["six >=1.5"] if name == "python-dateutil" else [])
            ch.add(NOARCH, name, v, "pyhd8ed1ab_0", deps, noarch="python")


def tail(ch, names, linux_target, noarch_target):
    """The long tail: `names` names, most with a few records, some with
    thousands; dependencies only on the core and on earlier tail names, as
    real packages mostly do, so a core request does not reach the tail."""
    rng = random.Random(42)
    core_deps = ["libgcc >=13", "libstdcxx >=13", "openssl >=3.3.2,<4.0a0", "libzlib >=1.3.1,<2.0a0"]
    linux_names = names * 3 // 4
    for subdir, first, count_names, target in [(LINUX, 0, linux_names, linux_target),
                                                (NOARCH, linux_names, names - linux_names, noarch_target)]:
        weights = [1.0 / (k + 1) ** 0.9 for k in range(count_names)]
        scale = (target - count_names) / sum(weights)
        for k in range(count_names):
            i = first + k
            name = f"tail-{i:05d}"
            for j in range(1 + int(weights[k] * scale)):
                version = f"{j // 12}.{(j // 3) % 4}.{j % 3}"
                if subdir == LINUX:
                    deps = rng.sample(core_deps, rng.randrange(0, 3))
                    deps += [f"tail-{rng.randrange(max(0, i - 500), i):05d} >=0.1"
                             for _ in range(rng.randrange(0, 3)) if i > 0]
                    py = PYTHONS[j % 4]
                    ch.add(LINUX, name, version, f"py{cp(py)[2:]}h{j:07x}_{j % 3}",
                           deps + [f"python_abi {py}.* *_{cp(py)}"])
                else:
                    deps = ["python >=3.9"] + [f"tail-{rng.randrange(first, i):05d}"
                                               for _ in range(rng.randrange(0, 2)) if i > first]
                    ch.add(NOARCH, name, version, f"pyhd8ed1ab_{j % 3}", deps, noarch="python")


def write_forms(ch, root):
    """Three channel directories: sharded (+ zst + json), zst (+ json), json."""
    for form in ["sharded", "zst", "json"]:
        for subdir in [LINUX, NOARCH]:
            os.makedirs(os.path.join(root, form, subdir), exist_ok=True)
    cctx = zstandard.ZstdCompressor(level=10, threads=-1)
    sizes = {}
    for subdir in [LINUX, NOARCH]:
        packages, conda = {}, {}
        for stem, record in sorted(ch.records[subdir].items()):
            packages[stem + ".tar.bz2"] = record
            conda[stem + ".conda"] = record
        data = json.dumps({"info": {"subdir": subdir}, "packages": packages,
                           "packages.conda": conda, "removed": [], "repodata_version": 1},
                          separators=(",", ":")).encode()
        zst = cctx.compress(data)
        json_path = os.path.join(root, "json", subdir, "repodata.json")
        with open(json_path, "wb") as f:
            f.write(data)
        for form in ["zst", "sharded"]:
            os.link(json_path, os.path.join(root, form, subdir, "repodata.json"))
            with open(os.path.join(root, form, subdir, "repodata.json.zst"), "wb") as f:
                f.write(zst)
        by_name = {}
        for fn, record in list(packages.items()) + list(conda.items()):
            section = "packages.conda" if fn.endswith(".conda") else "packages"
            r = dict(record, sha256=bytes.fromhex(record["sha256"]), md5=bytes.fromhex(record["md5"]))
            by_name.setdefault(record["name"], {"packages": {}, "packages.conda": {}, "removed": []})[section][fn] = r
        small = zstandard.ZstdCompressor(level=10)
        shards, shard_bytes = {}, 0
        for name, shard in by_name.items():
            blob = small.compress(msgpack.packb(shard, use_bin_type=True))
            digest = hashlib.sha256(blob).digest()
            shards[name] = digest
            shard_bytes += len(blob)
            with open(os.path.join(root, "sharded", subdir, digest.hex() + ".msgpack.zst"), "wb") as f:
                f.write(blob)
        index = small.compress(msgpack.packb({"version": 1, "info": {"base_url": "", "shards_base_url": "", "subdir": subdir},
                                              "shards": shards}, use_bin_type=True))
        with open(os.path.join(root, "sharded", subdir, "repodata_shards.msgpack.zst"), "wb") as f:
            f.write(index)
        sizes[subdir] = (len(ch.records[subdir]) * 2, len(data), len(zst), len(index), shard_bytes, len(by_name))
    return sizes


class Server:
    """A channel directory on 127.0.0.1 with `Cache-Control: max-age=1200`,
    counting the bytes it serves."""

    def __init__(self, directory):
        server = self
        self.served = 0

        class Handler(http.server.SimpleHTTPRequestHandler):
            def end_headers(self):
                self.send_header("Cache-Control", "public, max-age=1200")
                super().end_headers()

            def copyfile(self, source, destination):
                data = source.read()
                server.served += len(data)
                destination.write(data)

            def log_message(self, *args):
                pass

        class Listener(http.server.ThreadingHTTPServer):
            # The default backlog of 5 drops the SYNs of a burst of shard
            # requests, and each dropped one costs a 1 s retransmit.
            request_queue_size = 256

        self.httpd = Listener(("127.0.0.1", 0), functools.partial(Handler, directory=directory))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


RATTLER = ("import asyncio, sys, rattler\n"
           "async def main():\n"
           "    url, cache, specs = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
           "    records = await rattler.solve([rattler.Channel(url)], specs,\n"
           "        gateway=rattler.Gateway(cache_dir=cache), platforms=['linux-64', 'noarch'],\n"
           "        virtual_packages=rattler.VirtualPackage.detect())\n"
           "    assert records\n"
           "asyncio.run(main())\n")

MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "p = subprocess.run(sys.argv[1:], capture_output=True); w = time.perf_counter() - t; "
           "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print(p.returncode, w, r.ru_maxrss, p.stderr.decode()[-300:].replace(chr(10), ' '))")


def measure(cmd):
    """Runs cmd in a fresh python whose only child it is: wall, peak RSS (KiB)."""
    out = subprocess.run([sys.executable, "-c", MEASURE] + cmd, capture_output=True, text=True).stdout
    code, wall, rss, err = (out.split(" ", 3) + [""])[:4]
    if code != "0":
        print(f"  failed: {' '.join(cmd)}: {err}", file=sys.stderr)
    return float(wall), int(rss) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pkgr", default="target/release/pkgr")
    parser.add_argument("--keep", help="generate into (or reuse) this directory")
    parser.add_argument("--small", action="store_true", help="a small channel of the same shape")
    parser.add_argument("--rattler", action="store_true",
                        help="also solve with py-rattler (pip install py-rattler) on the same channel")
    args = parser.parse_args()
    pkgr = os.path.abspath(args.pkgr)
    root = args.keep or tempfile.mkdtemp(prefix="pkgr-scale-")
    if not os.path.exists(os.path.join(root, "sharded", LINUX, "repodata_shards.msgpack.zst")):
        started = time.perf_counter()
        ch = Channel()
        core(ch)
        linux, noarch = (4000, 1500) if args.small else (200_000, 75_000)  # x2 formats
        tail(ch, 300 if args.small else 25_000, linux, noarch)
        sizes = write_forms(ch, root)
        print(f"generated in {time.perf_counter() - started:.0f} s:")
        for subdir, (records, js, zst, index, shards, names) in sizes.items():
            print(f"  {subdir}: {records} records, {names} names; json {js / 1e6:.0f} MB, "
                  f".zst {zst / 1e6:.1f} MB, shard index {index / 1e6:.2f} MB, shards {shards / 1e6:.0f} MB in all")
    servers = {form: Server(os.path.join(root, form)) for form in ["sharded", "zst", "json"]}
    work = tempfile.mkdtemp(prefix="pkgr-scale-run-")
    rows = []
    for request in [["python", "numpy", "scipy", "pandas"], ["libzlib"]]:
        for form, server in servers.items():
            cache = os.path.join(work, f"cache-{form}-{len(request)}")

            def create(env):
                return [pkgr, "create", "--dry-run", "-y", "--cache-dir", cache, "-p",
                        os.path.join(work, env), "-c", server.url] + request

            before = server.served
            cold = measure(create("cold"))
            cold_bytes = server.served - before
            warm = measure(create("warm"))
            results = [None] * 8
            threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, measure(create(f"w{i}"))))
                       for i in range(8)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            eight = (time.perf_counter() - started, sum(r[1] for r in results))
            rows.append((" ".join(request), form, cold, cold_bytes, warm, eight))
            if args.rattler:
                rcache = os.path.join(work, f"rattler-{form}-{len(request)}")
                rattler = [sys.executable, "-c", RATTLER, server.url, rcache] + request
                before = server.served
                rcold = measure(rattler)
                rbytes = server.served - before
                rwarm = measure(rattler)
                rows.append((" ".join(request), form + "/py-rattler", rcold, rbytes, rwarm, (0.0, 0.0)))
    print(f"\n{'request':32} {'form':19} {'cold wall':>9} {'cold RSS':>9} {'cold bytes':>11} "
          f"{'warm wall':>9} {'warm RSS':>9} {'8 warm wall':>11} {'8 warm RSS':>10}")
    for request, form, cold, cold_bytes, warm, eight in rows:
        concurrent = f"{eight[0]:10.2f}s {eight[1]:7.0f}MiB" if eight[0] else f"{'-':>11} {'-':>10}"
        print(f"{request:32} {form:19} {cold[0]:8.2f}s {cold[1]:6.0f}MiB {cold_bytes / 1e6:9.2f}MB "
              f"{warm[0]:8.2f}s {warm[1]:6.0f}MiB {concurrent}")
    core_rows = {form: (cold, cold_bytes, warm, eight) for request, form, cold, cold_bytes, warm, eight in rows
                 if request.startswith("python")}
    for form in ["sharded", "zst", "json"]:
        if form + "/py-rattler" in core_rows:
            ours, theirs = core_rows[form], core_rows[form + "/py-rattler"]
            print(f"pkgr / py-rattler, {form}: cold {ours[0][0] / theirs[0][0]:.2f}x, warm {ours[2][0] / theirs[2][0]:.2f}x "
                  f"(wall); peak RSS cold {ours[0][1] / theirs[0][1]:.2f}x")
    s_cold, s_bytes, s_warm, _ = core_rows["sharded"]
    print("\ntargets (issue 11), python numpy scipy pandas:")
    print(f"  sharded cold <= 2 MB downloaded: {s_bytes / 1e6:.2f} MB -> {'met' if s_bytes <= 2e6 else 'MISSED'}")
    if "sharded/py-rattler" in core_rows:
        r_cold = core_rows["sharded/py-rattler"][0][0]
        print(f"  sharded cold no slower than py-rattler: {s_cold[0]:.2f} s vs {r_cold:.2f} s -> "
              f"{'met' if s_cold[0] <= r_cold else 'MISSED'}")
    print(f"  sharded warm <= 0.2 s and <= 80 MB: {s_warm[0]:.2f} s, {s_warm[1]:.0f} MiB -> "
          f"{'met' if s_warm[0] <= 0.2 and s_warm[1] <= 80 else 'MISSED'}")
    for form in ["zst", "json"]:
        _, _, warm, eight = core_rows[form]
        print(f"  {form}: warm <= 0.3 s: {warm[0]:.2f} s -> {'met' if warm[0] <= 0.3 else 'MISSED'}; "
              f"8 warm <= 1 GB in all: {eight[1]:.0f} MiB -> {'met' if eight[1] <= 1024 else 'MISSED'}")
    if not args.rattler:
        print("  (run with --rattler for the py-rattler comparison)")
    shutil.rmtree(work, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
