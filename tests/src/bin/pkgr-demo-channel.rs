//! Writes the packages of the README's offline demo channel into a directory.

#![allow(clippy::print_stdout)]

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: pkgr-demo-channel DIR");
        return std::process::ExitCode::FAILURE;
    };
    let channel = pkgr_test_support::write_demo_channel(std::path::Path::new(&dir));
    println!("wrote the demo channel to {}", channel.root().display());
    std::process::ExitCode::SUCCESS
}
