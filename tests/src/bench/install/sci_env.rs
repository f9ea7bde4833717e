//! The generated channel shaped like a scientific python environment
//! ([`sci_env`]): the package specs and the writing of the channel.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::content::Gen;
use super::scenario::{ChannelPackage, Scenario};
use crate::bench::Rng;
use crate::{machine_python_version, python_package, Format, LocalChannel, Package};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A compiled library or tool.
    Arch,
    /// The interpreter.
    Python,
    /// Built for one python (ships its `.pyc` files).
    PyArch,
    NoarchPython,
    NoarchGeneric,
}

#[derive(Debug, Clone)]
pub(super) enum Part {
    /// `.py` modules (and, for [`Kind::PyArch`] and [`Kind::Python`], their
    /// `__pycache__/*.pyc`), about 12 per directory, two levels deep.
    Py { dir: String, n: usize, avg: usize },
    /// Shared libraries `lib<stem><i>.so.1.0` with a `lib<stem><i>.so` symlink.
    So {
        dir: String,
        stem: &'static str,
        n: usize,
        min: usize,
        max: usize,
    },
    /// Python extension modules.
    Ext {
        dir: String,
        n: usize,
        min: usize,
        max: usize,
    },
    /// C headers.
    H { dir: String, n: usize, avg: usize },
    /// Data files (terminfo, zoneinfo, fonts, tcl scripts).
    Data {
        dir: String,
        ext: &'static str,
        n: usize,
        min: usize,
        max: usize,
        text: bool,
    },
    /// A text file with the prefix placeholder.
    Text { path: String, size: usize },
    /// A binary with the binary prefix placeholder.
    Bin { path: String, size: usize },
    /// An executable binary.
    Exe { path: String, size: usize },
}

#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) name: &'static str,
    pub(super) version: String,
    pub(super) build: Option<String>,
    pub(super) kind: Kind,
    pub(super) format: Format,
    pub(super) deps: Vec<String>,
    pub(super) parts: Vec<Part>,
    pub(super) entry_points: Vec<&'static str>,
    pub(super) smoke: bool,
}

pub(super) fn spec(name: &'static str, version: &str, kind: Kind) -> Spec {
    Spec {
        name,
        version: version.to_owned(),
        build: None,
        kind,
        format: Format::Conda,
        deps: Vec::new(),
        parts: Vec::new(),
        entry_points: Vec::new(),
        smoke: false,
    }
}

impl Spec {
    pub(super) fn deps(mut self, deps: &[&str]) -> Self {
        self.deps.extend(deps.iter().map(|d| (*d).to_owned()));
        self
    }
    pub(super) fn bz2(mut self) -> Self {
        self.format = Format::TarBz2;
        self
    }
    pub(super) fn smoke(mut self) -> Self {
        self.smoke = true;
        self
    }
    pub(super) fn py(mut self, dir: &str, n: usize, avg: usize) -> Self {
        self.parts.push(Part::Py {
            dir: dir.to_owned(),
            n,
            avg,
        });
        self
    }
    pub(super) fn so(
        mut self,
        dir: &str,
        stem: &'static str,
        n: usize,
        min: usize,
        max: usize,
    ) -> Self {
        self.parts.push(Part::So {
            dir: dir.to_owned(),
            stem,
            n,
            min,
            max,
        });
        self
    }
    pub(super) fn ext(mut self, dir: &str, n: usize, min: usize, max: usize) -> Self {
        self.parts.push(Part::Ext {
            dir: dir.to_owned(),
            n,
            min,
            max,
        });
        self
    }
    pub(super) fn h(mut self, dir: &str, n: usize, avg: usize) -> Self {
        self.parts.push(Part::H {
            dir: dir.to_owned(),
            n,
            avg,
        });
        self
    }
    pub(super) fn data(
        mut self,
        dir: &str,
        ext: &'static str,
        n: usize,
        min: usize,
        max: usize,
    ) -> Self {
        self.parts.push(Part::Data {
            dir: dir.to_owned(),
            ext,
            n,
            min,
            max,
            text: false,
        });
        self
    }
    pub(super) fn scripts(
        mut self,
        dir: &str,
        ext: &'static str,
        n: usize,
        min: usize,
        max: usize,
    ) -> Self {
        self.parts.push(Part::Data {
            dir: dir.to_owned(),
            ext,
            n,
            min,
            max,
            text: true,
        });
        self
    }
    pub(super) fn text(mut self, path: &str, size: usize) -> Self {
        self.parts.push(Part::Text {
            path: path.to_owned(),
            size,
        });
        self
    }
    pub(super) fn bin(mut self, path: &str, size: usize) -> Self {
        self.parts.push(Part::Bin {
            path: path.to_owned(),
            size,
        });
        self
    }
    pub(super) fn exe(mut self, path: &str, size: usize) -> Self {
        self.parts.push(Part::Exe {
            path: path.to_owned(),
            size,
        });
        self
    }
    pub(super) fn entry(mut self, entry_point: &'static str) -> Self {
        self.entry_points.push(entry_point);
        self
    }
}

/// The packages of the generated environment. `xy` is the python version
/// (`3.11`), `tag` its short form (`311`).
// `1 * M` reads better beside `32 * M` in the table.
#[allow(clippy::too_many_lines, clippy::identity_op)]
pub(super) fn sci_env_specs(python_version: &str, xy: &str, tag: &str) -> Vec<Spec> {
    use Kind::{Arch, NoarchGeneric, NoarchPython, PyArch, Python};
    let sp = format!("lib/python{xy}/site-packages");
    let s = |sub: &str| format!("{sp}/{sub}");
    let lib = "lib";
    const K: usize = 1000;
    const M: usize = 1_000_000;
    vec![
        spec("libgomp", "13.2.0", Arch)
            .bz2()
            .so(lib, "gomp", 1, 300 * K, 300 * K),
        spec("_openmp_mutex", "4.5", Arch).deps(&["libgomp"]),
        spec("libgcc-ng", "13.2.0", Arch)
            .smoke()
            .deps(&["_openmp_mutex"])
            .so(lib, "gcc_s", 3, 100 * K, 600 * K),
        spec("libstdcxx-ng", "13.2.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "stdc++", 2, 300 * K, 12 * M)
            .data("share/gcc-13.2.0/python/libstdcxx", ".py", 8, 2 * K, 30 * K),
        spec("libgfortran5", "13.2.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "gfortran", 2, 200 * K, 2500 * K),
        spec("libgfortran-ng", "13.2.0", Arch).deps(&["libgfortran5"]),
        spec("libzlib", "1.2.13", Arch)
            .smoke()
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "z", 1, 100 * K, 100 * K)
            .h("include", 2, 15 * K)
            .text("lib/pkgconfig/zlib.pc", 300)
            .bin("lib/libz-prefix.so", 40 * K),
        spec("bzip2", "1.0.8", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "bz2", 1, 80 * K, 80 * K)
            .exe("bin/bzip2", 40 * K)
            .h("include", 1, 6 * K)
            .scripts("bin", "", 4, 1 * K, 3 * K),
        spec("xz", "5.2.6", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "lzma", 1, 200 * K, 200 * K)
            .exe("bin/xz", 90 * K)
            .h("include/lzma", 12, 8 * K)
            .data("share/man/man1", ".1", 20, 2 * K, 10 * K)
            .text("lib/pkgconfig/liblzma.pc", 400),
        spec("libffi", "3.4.2", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "ffi", 1, 70 * K, 70 * K)
            .h("include", 2, 10 * K)
            .text("lib/pkgconfig/libffi.pc", 300),
        spec("libuuid", "2.38.1", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "uuid", 1, 40 * K, 40 * K)
            .h("include/uuid", 1, 4 * K),
        spec("libnsl", "2.0.1", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "nsl", 1, 80 * K, 80 * K)
            .h("include/rpcsvc", 3, 5 * K),
        spec("libxcrypt", "4.4.36", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "crypt", 1, 200 * K, 200 * K)
            .h("include", 2, 5 * K),
        spec("libsqlite", "3.45.1", Arch)
            .deps(&["libzlib"])
            .so(lib, "sqlite3", 1, 1500 * K, 1500 * K)
            .exe("bin/sqlite3", 1500 * K)
            .h("include", 2, 100 * K)
            .text("lib/pkgconfig/sqlite3.pc", 300),
        spec("ncurses", "6.4", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "ncursesw", 6, 50 * K, 400 * K)
            .h("include/ncursesw", 30, 8 * K)
            .data("share/terminfo", "", 1500, 500, 3500)
            .text("bin/ncursesw6-config", 8 * K)
            .text("lib/pkgconfig/ncursesw.pc", 400)
            .text("lib/pkgconfig/formw.pc", 400)
            .text("lib/pkgconfig/panelw.pc", 400),
        spec("readline", "8.2", Arch)
            .deps(&["ncurses"])
            .so(lib, "readline", 2, 60 * K, 400 * K)
            .h("include/readline", 8, 10 * K)
            .data("share/info", "", 4, 20 * K, 100 * K),
        spec("ca-certificates", "2024.2.2", Arch).data("ssl", ".pem", 1, 220 * K, 220 * K),
        spec("openssl", "3.2.1", Arch)
            .deps(&["ca-certificates", "libgcc-ng"])
            .so(lib, "crypto", 1, 5 * M, 5 * M)
            .so(lib, "ssl", 1, 700 * K, 700 * K)
            .exe("bin/openssl", 1 * M)
            .h("include/openssl", 100, 12 * K)
            .text("lib/pkgconfig/openssl.pc", 300)
            .text("lib/pkgconfig/libssl.pc", 300)
            .text("lib/pkgconfig/libcrypto.pc", 300)
            .text("bin/c_rehash", 7 * K)
            .text("ssl/misc/CA.pl", 8 * K),
        spec("tk", "8.6.13", Arch)
            .bz2()
            .deps(&["libzlib"])
            .so(lib, "tk8.6", 1, 1500 * K, 1500 * K)
            .so(lib, "tcl8.6", 1, 1800 * K, 1800 * K)
            .scripts("lib/tk8.6", ".tcl", 450, 1 * K, 40 * K)
            .data("lib/tcl8.6/encoding", ".enc", 80, 1 * K, 90 * K)
            .scripts("lib/tcl8.6", ".tcl", 200, 1 * K, 40 * K)
            .h("include", 20, 40 * K)
            .text("lib/tclConfig.sh", 8 * K)
            .text("lib/tkConfig.sh", 5 * K),
        spec("libexpat", "2.5.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "expat", 1, 200 * K, 200 * K)
            .h("include", 3, 20 * K),
        spec("tzdata", "2024a", NoarchGeneric).data("share/zoneinfo", "", 500, 100, 4 * K),
        spec("python_abi", xy, Arch).smoke(),
        spec("python", python_version, Python)
            .smoke()
            .deps(&[
                "bzip2",
                "libexpat",
                "libffi",
                "libgcc-ng",
                "libnsl",
                "libsqlite",
                "libuuid",
                "libxcrypt",
                "libzlib",
                "ncurses",
                "openssl",
                "readline",
                "tk",
                "tzdata",
                "xz",
            ])
            .so(lib, "python3.11-core", 1, 20 * M, 20 * M)
            .py(&format!("lib/python{xy}"), 1400, 11 * K)
            .ext(&format!("lib/python{xy}/lib-dynload"), 70, 20 * K, 1500 * K)
            .h(&format!("include/python{xy}"), 250, 7 * K)
            .text(
                &format!("lib/python{xy}/_sysconfigdata__linux_x86_64-linux-gnu.py"),
                40 * K,
            )
            .text(&format!("bin/python{xy}-config"), 4 * K)
            .text("bin/2to3", 200)
            .text("bin/pydoc3", 200)
            .text("bin/idle3", 200)
            .text(&format!("lib/pkgconfig/python-{xy}.pc"), 400)
            .bin(
                &format!("lib/python{xy}/config-{xy}-x86_64-linux-gnu/python.o"),
                300 * K,
            ),
        spec("libopenblas", "0.3.26", Arch)
            .deps(&["libgcc-ng", "libgfortran-ng"])
            .so(lib, "openblasp-r0.3.26", 1, 26 * M, 26 * M)
            .h("include", 6, 30 * K)
            .text("lib/cmake/openblas/OpenBLASConfig.cmake", 2 * K)
            .text("lib/pkgconfig/openblas.pc", 300),
        spec("libblas", "3.9.0", Arch)
            .deps(&["libopenblas"])
            .so(lib, "blas", 1, 1000, 1000),
        spec("libcblas", "3.9.0", Arch)
            .deps(&["libblas"])
            .so(lib, "cblas", 1, 1000, 1000),
        spec("liblapack", "3.9.0", Arch)
            .deps(&["libblas"])
            .so(lib, "lapack", 1, 1000, 1000),
        spec("numpy", "1.26.4", PyArch)
            .smoke()
            .deps(&["libblas", "libcblas", "liblapack", "libstdcxx-ng"])
            .py(&s("numpy"), 650, 9 * K)
            .ext(&s("numpy/core"), 25, 30 * K, 5 * M)
            .h(&s("numpy/core/include/numpy"), 60, 15 * K)
            .text("bin/f2py", 300),
        spec("scipy", "1.12.0", PyArch)
            .deps(&[
                "numpy",
                "libgfortran-ng",
                "libstdcxx-ng",
                "libblas",
                "liblapack",
            ])
            .py(&s("scipy"), 1000, 8 * K)
            .ext(&s("scipy/_lib"), 90, 20 * K, 1500 * K),
        spec("python-dateutil", "2.8.2", NoarchPython)
            .deps(&["six"])
            .py(&s("dateutil"), 25, 12 * K)
            .data(&s("dateutil/zoneinfo"), ".tar.gz", 1, 150 * K, 150 * K),
        spec("six", "1.16.0", NoarchPython)
            .bz2()
            .py(&s("six"), 1, 34 * K),
        spec("pytz", "2024.1", NoarchPython)
            .py(&s("pytz"), 10, 8 * K)
            .data(&s("pytz/zoneinfo"), "", 450, 100, 4 * K),
        spec("pandas", "2.2.1", PyArch)
            .deps(&["numpy", "python-dateutil", "pytz", "tzdata", "libstdcxx-ng"])
            .py(&s("pandas"), 850, 9 * K)
            .ext(&s("pandas/_libs"), 45, 20 * K, 3 * M),
        spec("libjpeg-turbo", "3.0.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "jpeg", 2, 300 * K, 700 * K)
            .exe("bin/cjpeg", 60 * K)
            .exe("bin/djpeg", 60 * K)
            .h("include", 5, 15 * K)
            .data("share/man/man1", ".1", 8, 2 * K, 8 * K),
        spec("libpng", "1.6.43", Arch)
            .deps(&["libzlib"])
            .so(lib, "png16", 1, 250 * K, 250 * K)
            .h("include/libpng16", 3, 40 * K)
            .text("bin/libpng16-config", 3 * K)
            .text("lib/pkgconfig/libpng16.pc", 300),
        spec("libdeflate", "1.19", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "deflate", 1, 100 * K, 100 * K)
            .h("include", 1, 15 * K),
        spec("zstd", "1.5.5", Arch)
            .deps(&["libzlib", "libstdcxx-ng"])
            .so(lib, "zstd", 1, 1 * M, 1 * M)
            .exe("bin/zstd", 1 * M)
            .h("include", 3, 40 * K)
            .text("lib/pkgconfig/libzstd.pc", 300),
        spec("lz4-c", "1.9.4", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "lz4", 1, 150 * K, 150 * K)
            .exe("bin/lz4", 150 * K)
            .h("include", 4, 30 * K),
        spec("libtiff", "4.6.0", Arch)
            .deps(&[
                "libjpeg-turbo",
                "libdeflate",
                "zstd",
                "lz4-c",
                "xz",
                "libzlib",
            ])
            .so(lib, "tiff", 2, 100 * K, 600 * K)
            .h("include", 6, 15 * K)
            .data("share/man/man3", ".3tiff", 30, 2 * K, 10 * K),
        spec("lcms2", "2.16", Arch)
            .deps(&["libjpeg-turbo", "libtiff"])
            .so(lib, "lcms2", 1, 500 * K, 500 * K)
            .h("include", 2, 80 * K),
        spec("libwebp-base", "1.3.2", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "webp", 4, 50 * K, 500 * K)
            .h("include/webp", 8, 20 * K),
        spec("openjpeg", "2.5.2", Arch)
            .deps(&["libpng", "libtiff"])
            .so(lib, "openjp2", 1, 400 * K, 400 * K)
            .h("include/openjpeg-2.5", 3, 50 * K)
            .data("lib/openjpeg-2.5", ".cmake", 4, 1 * K, 5 * K),
        spec("freetype", "2.12.1", Arch)
            .deps(&["libpng", "libzlib"])
            .so(lib, "freetype", 1, 800 * K, 800 * K)
            .h("include/freetype2/freetype", 50, 15 * K)
            .text("lib/pkgconfig/freetype2.pc", 300),
        spec("xorg-libxau", "1.0.11", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "Xau", 1, 20 * K, 20 * K)
            .h("include/X11", 1, 3 * K),
        spec("xorg-libxdmcp", "1.1.3", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "Xdmcp", 1, 30 * K, 30 * K)
            .h("include/X11", 1, 3 * K),
        spec("libxcb", "1.15", Arch)
            .deps(&["xorg-libxau", "xorg-libxdmcp"])
            .so(lib, "xcb", 25, 20 * K, 1200 * K)
            .h("include/xcb", 35, 60 * K),
        spec("qhull", "2020.2", Arch)
            .deps(&["libstdcxx-ng"])
            .so(lib, "qhull", 3, 300 * K, 1200 * K)
            .h("include/libqhull_r", 20, 30 * K)
            .exe("bin/qhull", 50 * K),
        spec("pillow", "10.2.0", PyArch)
            .deps(&[
                "freetype",
                "libjpeg-turbo",
                "libpng",
                "libtiff",
                "libwebp-base",
                "openjpeg",
                "lcms2",
                "libxcb",
                "tk",
            ])
            .py(&s("PIL"), 90, 14 * K)
            .ext(&s("PIL"), 10, 50 * K, 1 * M),
        spec("brotli-python", "1.1.0", PyArch)
            .ext(&sp, 1, 900 * K, 900 * K)
            .py(&s("brotli"), 1, 2 * K),
        spec("unicodedata2", "15.1.0", PyArch)
            .ext(&s("unicodedata2"), 1, 1 * M, 1 * M)
            .py(&s("unicodedata2"), 1, 1 * K),
        spec("fonttools", "4.49.0", PyArch)
            .deps(&["brotli-python", "unicodedata2"])
            .py(&s("fontTools"), 300, 12 * K)
            .ext(&s("fontTools/cu2qu"), 5, 100 * K, 900 * K),
        spec("kiwisolver", "1.4.5", PyArch)
            .deps(&["libstdcxx-ng"])
            .ext(&s("kiwisolver"), 1, 300 * K, 300 * K)
            .py(&s("kiwisolver"), 3, 3 * K),
        spec("contourpy", "1.2.0", PyArch)
            .deps(&["numpy", "libstdcxx-ng"])
            .ext(&s("contourpy"), 1, 1 * M, 1 * M)
            .py(&s("contourpy"), 10, 10 * K),
        spec("cycler", "0.12.1", NoarchPython).py(&s("cycler"), 3, 8 * K),
        spec("pyparsing", "3.1.1", NoarchPython).py(&s("pyparsing"), 15, 25 * K),
        spec("packaging", "23.2", NoarchPython).py(&s("packaging"), 20, 12 * K),
        spec("matplotlib-base", "3.8.3", PyArch)
            .deps(&[
                "numpy",
                "pillow",
                "fonttools",
                "kiwisolver",
                "contourpy",
                "cycler",
                "pyparsing",
                "packaging",
                "python-dateutil",
                "freetype",
                "qhull",
                "libstdcxx-ng",
            ])
            .py(&s("matplotlib"), 400, 12 * K)
            .ext(&s("matplotlib"), 12, 20 * K, 1 * M)
            .data(
                &s("matplotlib/mpl-data/fonts/ttf"),
                ".ttf",
                50,
                20 * K,
                700 * K,
            )
            .data(&s("matplotlib/mpl-data/images"), ".png", 400, 300, 20 * K)
            .scripts(
                &s("matplotlib/mpl-data/stylelib"),
                ".mplstyle",
                30,
                200,
                3 * K,
            )
            .data(
                &s("matplotlib/mpl-data/sample_data"),
                ".npy",
                40,
                1 * K,
                200 * K,
            ),
        spec("tornado", "6.4", PyArch)
            .py(&s("tornado"), 120, 15 * K)
            .ext(&s("tornado"), 1, 20 * K, 20 * K),
        spec("matplotlib", "3.8.3", PyArch).deps(&["matplotlib-base", "tornado"]),
        spec("idna", "3.6", NoarchPython).py(&s("idna"), 10, 30 * K),
        spec("certifi", "2024.2.2", NoarchPython)
            .py(&s("certifi"), 4, 2 * K)
            .data(&s("certifi"), ".pem", 1, 290 * K, 290 * K),
        spec("urllib3", "2.2.1", NoarchPython).py(&s("urllib3"), 40, 12 * K),
        spec("charset-normalizer", "3.3.2", NoarchPython)
            .py(&s("charset_normalizer"), 20, 15 * K)
            .entry("normalizer = charset_normalizer.cli:cli_detect"),
        spec("requests", "2.31.0", NoarchPython)
            .smoke()
            .bz2()
            .deps(&["idna", "certifi", "urllib3", "charset-normalizer"])
            .py(&s("requests"), 20, 12 * K),
        spec("libyaml", "0.2.5", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "yaml", 1, 150 * K, 150 * K)
            .h("include", 1, 50 * K),
        spec("pyyaml", "6.0.1", PyArch)
            .deps(&["libyaml"])
            .py(&s("yaml"), 17, 12 * K)
            .ext(&s("yaml"), 1, 2 * M, 2 * M),
        spec("markupsafe", "2.1.5", PyArch)
            .py(&s("markupsafe"), 4, 8 * K)
            .ext(&s("markupsafe"), 1, 40 * K, 40 * K),
        spec("jinja2", "3.1.3", NoarchPython)
            .deps(&["markupsafe"])
            .py(&s("jinja2"), 25, 25 * K),
        spec("pip", "24.0", NoarchPython)
            .smoke()
            .py(&s("pip"), 120, 12 * K)
            .entry("pip = pip._internal.cli.main:main")
            .entry("pip3 = pip._internal.cli.main:main"),
    ]
    .into_iter()
    .map(|mut spec| {
        spec.build = Some(match spec.kind {
            PyArch => format!("py{tag}h0_0"),
            Python => String::from("h0_0_cpython"),
            NoarchPython => String::from("pyhd8ed1ab_0"),
            NoarchGeneric => String::from("hd8ed1ab_0"),
            Arch if spec.name == "python_abi" => format!("4_cp{tag}"),
            Arch => String::from("h0_0"),
        });
        spec
    })
    .collect()
}

/// The top-level request for the generated environment.
pub(super) const SCI_ENV_REQUEST: &[&str] = &[
    "python",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "requests",
    "pyyaml",
    "jinja2",
    "pip",
];

/// Builds the generated channel (`smoke`: only the specs marked for it, with
/// a fifteenth of the files and a twentieth of the sizes).
pub(super) fn sci_env(root: &Path, smoke: bool) -> Scenario {
    let python_version = machine_python_version().unwrap_or_else(|| String::from("3.11.7"));
    let mut parts = python_version.split('.');
    let (major, minor) = (
        parts.next().unwrap_or("3").to_owned(),
        parts.next().unwrap_or("11").parse::<u32>().unwrap_or(11),
    );
    let xy = format!("{major}.{minor}");
    let tag = format!("{major}{minor}");
    let python_dep = format!("python >={xy},<{major}.{}.0a0", minor + 1);
    let abi_dep = format!("python_abi {xy}.* *_cp{tag}");
    let mut specs = sci_env_specs(&python_version, &xy, &tag);
    if smoke {
        specs.retain(|s| s.smoke);
    }
    let names: BTreeSet<&str> = specs.iter().map(|s| s.name).collect();
    let (count, size) = if smoke { (15, 20) } else { (1, 1) };
    let scale_n = |n: usize| if n == 0 { 0 } else { (n / count).max(1) };
    let scale_size = |s: usize| (s / size).max(64);

    let mut channel = LocalChannel::new(root);
    let mut gen = Gen {
        rng: Rng::new(2024),
    };
    let mut packages = BTreeMap::new();
    let mut noarch_modules = Vec::new();
    let site_packages = format!("lib/python{xy}/site-packages/");
    for spec in &specs {
        let mut package = if spec.kind == Kind::Python {
            python_package(&spec.version)
        } else {
            Package::new(spec.name, &spec.version)
        };
        package = package.build(spec.build.as_deref().unwrap_or("h0_0"), 0);
        match spec.kind {
            Kind::PyArch => package = package.depends(&python_dep).depends(&abi_dep),
            Kind::NoarchPython => package = package.noarch_python().depends("python >=3.8"),
            Kind::NoarchGeneric => package = package.noarch_generic(),
            Kind::Arch | Kind::Python => {}
        }
        for dep in &spec.deps {
            if names.contains(dep.split_whitespace().next().unwrap_or("")) {
                package = package.depends(dep);
            }
        }
        for entry_point in &spec.entry_points {
            package = package.entry_point(entry_point);
        }
        // python_package has 4 entries of its own (interpreter, 2 symlinks, README).
        let mut files = if spec.kind == Kind::Python { 4 } else { 0 };
        let mut bytes = 0u64;
        let with_pyc = matches!(spec.kind, Kind::PyArch | Kind::Python);
        for part in &spec.parts {
            let mut add = |package: Package, path: String, content: Vec<u8>, how: u8| {
                files += 1;
                bytes += content.len() as u64;
                match how {
                    b't' => package.text_placeholder(&path, content),
                    b'b' => package.binary_placeholder(&path, content),
                    b'x' => package.executable(&path, content),
                    b'l' => package.symlink(&path, &String::from_utf8(content).unwrap()),
                    _ => package.file(&path, content),
                }
            };
            // Relocate noarch python paths: they are written under site-packages/.
            let place = |dir: &str| -> String {
                match (spec.kind, dir.strip_prefix(&site_packages)) {
                    (Kind::NoarchPython, Some(rest)) => format!("site-packages/{rest}"),
                    (Kind::NoarchPython, None) if dir == site_packages.trim_end_matches('/') => {
                        String::from("site-packages")
                    }
                    _ => dir.to_owned(),
                }
            };
            match part {
                Part::Py { dir, n, avg } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen
                            .rng
                            .log_uniform(scale_size(*avg) / 4, scale_size(*avg) * 2);
                        let source = gen.py_source(len);
                        let path = format!("{sub}/m{i}.py");
                        if spec.kind == Kind::NoarchPython {
                            noarch_modules
                                .push(path.trim_start_matches("site-packages/").to_owned());
                        }
                        package = add(package, path, source, b'f');
                        if with_pyc {
                            let pyc = gen.pyc(len * 4 / 5);
                            package = add(
                                package,
                                format!("{sub}/__pycache__/m{i}.cpython-{tag}.pyc"),
                                pyc,
                                b'f',
                            );
                        }
                    }
                }
                Part::So {
                    dir,
                    stem,
                    n,
                    min,
                    max,
                } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let index = if n == 1 { String::new() } else { i.to_string() };
                        let real = format!("lib{stem}{index}.so.1.0");
                        let len = gen.rng.log_uniform(scale_size(*min), scale_size(*max));
                        let content = gen.binary(len);
                        package = add(package, format!("{dir}/{real}"), content, b'x');
                        package = add(
                            package,
                            format!("{dir}/lib{stem}{index}.so"),
                            real.into_bytes(),
                            b'l',
                        );
                    }
                }
                Part::Ext { dir, n, min, max } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen.rng.log_uniform(scale_size(*min), scale_size(*max));
                        let content = gen.binary(len);
                        let path = format!("{sub}/_m{i}.cpython-{tag}-x86_64-linux-gnu.so");
                        package = add(package, path, content, b'x');
                    }
                }
                Part::H { dir, n, avg } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen
                            .rng
                            .log_uniform(scale_size(*avg) / 4, scale_size(*avg) * 2);
                        let content = gen.c_header(len);
                        package = add(package, format!("{sub}/h{i}.h"), content, b'f');
                    }
                }
                Part::Data {
                    dir,
                    ext,
                    n,
                    min,
                    max,
                    text,
                } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen.rng.log_uniform(scale_size(*min), scale_size(*max));
                        let content = if *text {
                            gen.c_header(len)
                        } else {
                            gen.data(len)
                        };
                        package = add(package, format!("{sub}/f{i}{ext}"), content, b'f');
                    }
                }
                Part::Text { path, size } => {
                    let content = gen.placeholder_text(scale_size(*size));
                    package = add(package, place(path), content, b't');
                }
                Part::Bin { path, size } => {
                    let content = gen.placeholder_binary(scale_size(*size));
                    package = add(package, place(path), content, b'b');
                }
                Part::Exe { path, size } => {
                    let content = gen.binary(scale_size(*size));
                    package = add(package, place(path), content, b'x');
                }
            }
        }
        let path = channel.add(&package, spec.format);
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        packages.insert(
            package.stem(),
            ChannelPackage {
                subdir: path
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                file_name,
                archive_bytes: fs_err::metadata(&path).unwrap().len(),
                files,
                unpacked_bytes: bytes,
                format: spec.format,
                noarch_python: spec.kind == Kind::NoarchPython,
            },
        );
    }
    channel.write_repodata();
    let specs: Vec<String> = SCI_ENV_REQUEST
        .iter()
        .filter(|s| names.contains(**s))
        .map(|s| (*s).to_owned())
        .collect();
    Scenario {
        name: String::from(if smoke { "smoke" } else { "sci-env" }),
        channel: root.to_path_buf(),
        specs,
        packages,
        expect_all: true,
        noarch_modules,
        notes: vec![format!(
            "python {python_version} is a shell script running this machine's python3, so pkgr \
             really byte-compiles the noarch: python packages' modules"
        )],
    }
}

/// `dir` with two levels of subdirectories when there are many files (about
/// 12 files per directory, 8 directories per group), as packages are laid out.
pub(super) fn grouped(dir: &str, i: usize, n: usize) -> String {
    if n <= 16 {
        dir.to_owned()
    } else {
        let d = i / 12;
        format!("{dir}/g{}/d{d}", d / 8)
    }
}
