//! Generated file contents that compress roughly like the real thing.

use crate::bench::Rng;
use crate::{binary_placeholder, TEXT_PLACEHOLDER};

pub(super) const WORDS: &[&str] = &[
    "array",
    "value",
    "index",
    "shape",
    "dtype",
    "axis",
    "result",
    "data",
    "name",
    "self",
    "other",
    "config",
    "buffer",
    "offset",
    "stride",
    "args",
    "item",
    "key",
    "node",
    "parse",
    "format",
    "string",
    "number",
    "matrix",
    "vector",
    "scalar",
    "frame",
    "series",
    "column",
    "group",
    "level",
    "window",
    "method",
    "handle",
    "stream",
    "reader",
    "writer",
    "token",
    "state",
    "error",
    "warning",
    "message",
    "default",
    "options",
    "module",
    "context",
    "manager",
    "factory",
    "builder",
    "cache",
    "lookup",
    "compute",
    "reduce",
    "transform",
    "apply",
    "filter",
    "select",
    "merge",
    "concat",
    "split",
    "join",
    "sort",
    "unique",
    "count",
    "mean",
    "std",
    "sum",
    "min",
    "max",
    "interp",
    "solve",
    "linalg",
    "sparse",
    "signal",
    "optimize",
    "integrate",
    "special",
    "stats",
    "figure",
    "canvas",
    "patch",
    "artist",
    "legend",
    "ticker",
    "color",
    "marker",
    "line",
    "text",
    "font",
    "image",
    "pixel",
    "request",
    "session",
    "adapter",
    "response",
    "header",
    "cookie",
    "url",
    "encode",
    "decode",
    "version",
    "platform",
    "path",
    "file",
    "open",
    "close",
    "check",
];

/// Content that compresses roughly like the real thing (python source ~4x,
/// bytecode ~3x, shared libraries ~2.5x, fonts and images ~1.3x).
pub(super) struct Gen {
    pub(super) rng: Rng,
}

impl Gen {
    pub(super) fn word(&mut self) -> &'static str {
        WORDS[self.rng.below(WORDS.len())]
    }

    /// Valid python (pkgr byte-compiles noarch modules, and a module that
    /// does not compile would make that cheaper than it is).
    pub(super) fn py_source(&mut self, len: usize) -> Vec<u8> {
        let mut s = String::with_capacity(len + 1024);
        s.push_str("# Licensed under the BSD 3-Clause license.\n\"\"\"The ");
        s.push_str(self.word());
        s.push_str(" module.\"\"\"\nimport os\nimport sys\n");
        while s.len() < len {
            let (a, b, c) = (self.word(), self.word(), self.word());
            if self.rng.below(4) == 0 {
                s.push_str(&format!(
                    "\n\nclass {}{b}(object):\n    \"\"\"A {a} of {c}.\"\"\"\n\n    def {c}(self, {b}_arg=None):\n        return {b}_arg\n",
                    a.to_uppercase()
                ));
                continue;
            }
            s.push_str(&format!(
                "\n\ndef {a}_{b}({c}_arg, {a}=None, **kwargs):\n    \"\"\"Return the {a} of {b} along {c}.\"\"\"\n"
            ));
            for _ in 0..2 + self.rng.below(6) {
                let (a, b, c) = (self.word(), self.word(), self.word());
                let n = self.rng.below(1000);
                match self.rng.below(5) {
                    0 => s.push_str(&format!("    {a} = {b}.{c}({a}, axis={n})\n")),
                    1 => s.push_str(&format!(
                        "    if {a} is not None and {b} > {n}:\n        raise ValueError(\"{c} {a}\")\n"
                    )),
                    2 => s.push_str(&format!("    # {a} {b} {c}: see {a}.{b} for the {c}\n")),
                    3 => s.push_str(&format!(
                        "    for {a} in range({n}):\n        {b}[{a}] += {c}\n"
                    )),
                    _ => s.push_str(&format!("    {a}_{b} = [{c} * {n} for {c} in {a}]\n")),
                }
            }
            s.push_str(&format!("    return {a}_{b}({c})\n"));
        }
        s.into_bytes()
    }

    pub(super) fn c_header(&mut self, len: usize) -> Vec<u8> {
        let mut s = String::with_capacity(len + 128);
        s.push_str("/* Copyright (c) the authors. */\n#pragma once\n#include <stddef.h>\n\n");
        while s.len() < len {
            let (a, b, c) = (self.word(), self.word(), self.word());
            let n = self.rng.below(4096);
            match self.rng.below(4) {
                0 => s.push_str(&format!(
                    "#define {}_{} {n}\n",
                    a.to_uppercase(),
                    b.to_uppercase()
                )),
                1 => s.push_str(&format!(
                    "extern int {a}_{b}(const {c}_t *{a}, size_t {b});\n"
                )),
                2 => s.push_str(&format!(
                    "typedef struct {{ int {a}; double {b}[{n}]; }} {c}_t;\n"
                )),
                _ => s.push_str(&format!("/* {a} {b} {c} */\n")),
            }
        }
        s.truncate(len);
        s.into_bytes()
    }

    pub(super) fn pyc(&mut self, len: usize) -> Vec<u8> {
        const OPS: [u8; 16] = [
            100, 101, 116, 124, 125, 131, 83, 90, 106, 107, 114, 115, 1, 9, 160, 161,
        ];
        let mut v = Vec::with_capacity(len + 64);
        v.extend_from_slice(b"\xa7\x0d\x0d\x0a\0\0\0\0\0\0\0\0\0\0\0\0\xe3");
        while v.len() < len {
            if self.rng.below(3) == 0 {
                let w = self.word();
                v.push(b'z');
                v.push(w.len() as u8);
                v.extend_from_slice(w.as_bytes());
            } else {
                let r = self.rng.next_u64();
                for k in 0..4 {
                    let b = (r >> (k * 16)) as u8;
                    v.push(OPS[usize::from(b & 15)]);
                    v.push((r >> (k * 16 + 8)) as u8 & 31);
                }
            }
        }
        v.truncate(len);
        v
    }

    pub(super) fn binary(&mut self, len: usize) -> Vec<u8> {
        const COMMON: [u8; 32] = [
            0x00, 0x48, 0x89, 0x8b, 0xff, 0xe8, 0x0f, 0x85, 0x84, 0x24, 0x44, 0x45, 0x31, 0xc0,
            0x4c, 0x8d, 0x74, 0x75, 0xeb, 0x01, 0x83, 0xc4, 0x5d, 0xc3, 0x41, 0x5c, 0x10, 0x08,
            0x20, 0xf8, 0x39, 0xd0,
        ];
        let mut v = Vec::with_capacity(len + 4096);
        v.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
        let mut address: u64 = 0x40_0000;
        while v.len() < len {
            let end = v.len() + 4096;
            match self.rng.below(100) {
                // machine code: skewed byte distribution
                0..=44 => {
                    while v.len() < end {
                        let r = self.rng.next_u64();
                        for k in 0..8 {
                            let b = (r >> (k * 8)) as u8;
                            v.push(if b & 3 != 0 {
                                COMMON[usize::from(b >> 3) & 31]
                            } else {
                                b
                            });
                        }
                    }
                }
                // symbol and string tables
                45..=59 => {
                    while v.len() < end {
                        let (a, b) = (self.word(), self.word());
                        v.extend_from_slice(
                            format!("_ZN{}{a}{}{b}Ev\0", a.len(), b.len()).as_bytes(),
                        );
                    }
                }
                // padding, .bss
                60..=74 => v.resize(end, 0),
                // compressed or encrypted data
                75..=84 => {
                    while v.len() < end {
                        v.extend_from_slice(&self.rng.next_u64().to_le_bytes());
                    }
                }
                // relocation tables
                _ => {
                    while v.len() < end {
                        address += 8 + (self.rng.next_u64() & 0x30);
                        v.extend_from_slice(&address.to_le_bytes());
                        v.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
                    }
                }
            }
        }
        v.truncate(len);
        v
    }

    /// Fonts, images, compressed data: mostly incompressible.
    pub(super) fn data(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            if self.rng.below(4) == 0 {
                let block = self.binary(1024);
                v.extend_from_slice(&block);
            } else {
                for _ in 0..128 {
                    v.extend_from_slice(&self.rng.next_u64().to_le_bytes());
                }
            }
        }
        v.truncate(len);
        v
    }

    /// A text file with the prefix placeholder on many lines (pkg-config
    /// files, scripts, `_sysconfigdata`).
    pub(super) fn placeholder_text(&mut self, len: usize) -> Vec<u8> {
        let mut s = format!("#!/bin/sh\nprefix={TEXT_PLACEHOLDER}\nexec_prefix=${{prefix}}\n");
        while s.len() < len {
            let (a, b) = (self.word(), self.word());
            if self.rng.below(3) == 0 {
                s.push_str(&format!("{a}_dir='{TEXT_PLACEHOLDER}/lib/{b}'\n"));
            } else {
                s.push_str(&format!("# {a} {b}: configured for {a}\n"));
            }
        }
        s.into_bytes()
    }

    /// A binary with the long binary placeholder in it (NUL-terminated).
    pub(super) fn placeholder_binary(&mut self, len: usize) -> Vec<u8> {
        let mut v = self.binary(len.max(1024));
        let string = format!("{}/lib\0", binary_placeholder());
        let at = v.len() / 3;
        let end = (at + string.len()).min(v.len());
        v[at..end].copy_from_slice(&string.as_bytes()[..end - at]);
        v
    }
}
