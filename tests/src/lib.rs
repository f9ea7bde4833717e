//! Test support for pkgr: builds real-format conda packages (`.conda` and
//! `.tar.bz2`, with `info/index.json`, `info/paths.json` and a payload), local
//! channels with `repodata.json`, and serves a channel over HTTP on 127.0.0.1
//! with per-path request counts, optional per-path delays and switchable
//! per-path faults ([`Fault`]: broken connections, truncated or wrong bodies,
//! error statuses, redirects, stalls, non-JSON repodata).
//!
//! Nothing here mocks pkgr: the archives are the formats conda-build and
//! conda-package-handling write, and the server speaks plain HTTP/1.1.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod bench;

mod archive;
mod channel;
mod crafted;
mod datasets;
mod package;
mod placeholder;
mod proxy;
mod python;
mod server;

pub use archive::{archive_entries, rewrite_conda, set_data_descriptor_flag, ArchiveEntry};
pub use channel::{current_subdir, write_demo_channel, LocalChannel};
pub use crafted::{file_entry, pax_sized_entry, sparse_entry, write_index_json_bomb};
pub use datasets::datasets;
pub use package::{sha256_hex, Format, Package};
pub use placeholder::{
    binary_placeholder, expect_binary_replaced, expect_text_replaced, TEXT_PLACEHOLDER,
};
pub use proxy::{ForwardProxy, TlsFront};
pub use python::{
    machine_python_executable, machine_python_version, python_interpreter_script, python_package,
    python_package_without_interpreter,
};
pub use server::{ChannelServer, Fault, RequiredAuth};
