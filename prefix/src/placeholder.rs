//! Prefix placeholder replacement, as conda does it.
//!
//! Text files: every occurrence of the placeholder becomes the prefix.
//! Binary files: each NUL-terminated C string that contains the placeholder is
//! rewritten with every occurrence replaced and padded with NULs to its original
//! length, so offsets inside the binary do not move.

/// A binary file whose placeholder is shorter than the new prefix.
#[derive(Debug, thiserror::Error)]
#[error("the environment path ({new_len} bytes) is longer than the placeholder the package was built with ({old_len} bytes); use a shorter environment path")]
pub struct PlaceholderError {
    /// Length of the placeholder.
    pub old_len: usize,
    /// Length of the new prefix.
    pub new_len: usize,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| haystack[i..].starts_with(needle))
}

/// Replaces every occurrence of `placeholder` in `data` with `prefix`.
pub fn replace_text(data: &[u8], placeholder: &[u8], prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    while let Some(at) = find(data, placeholder, pos) {
        out.extend_from_slice(&data[pos..at]);
        out.extend_from_slice(prefix);
        pos = at + placeholder.len();
    }
    out.extend_from_slice(&data[pos..]);
    out
}

/// After text replacement: a `#!` first line longer than the kernel takes
/// ([`crate::python::MAX_SHEBANG_LENGTH`]) becomes `#!/usr/bin/env <program>
/// <args>`, as conda does, so the script still runs (with the environment's
/// `bin/` on PATH). Other data is returned unchanged.
pub fn shorten_long_shebang(data: Vec<u8>) -> Vec<u8> {
    if !data.starts_with(b"#!") {
        return data;
    }
    let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    if end <= crate::python::MAX_SHEBANG_LENGTH {
        return data;
    }
    let Ok(line) = std::str::from_utf8(&data[2..end]) else {
        return data;
    };
    let line = line.trim();
    let (program, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let name = program.rsplit('/').next().unwrap_or(program);
    let mut out = format!("#!/usr/bin/env {name}");
    if !args.trim().is_empty() {
        out.push(' ');
        out.push_str(args.trim());
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&data[end..]);
    bytes
}

/// Rewrites the C strings holding `placeholder` in `data`, keeping the length
/// of `data` and of every string (NUL padded).
pub fn replace_binary(
    data: &[u8],
    placeholder: &[u8],
    prefix: &[u8],
) -> Result<Vec<u8>, PlaceholderError> {
    let mut out = data.to_vec();
    let mut pos = 0;
    while let Some(start) = find(data, placeholder, pos) {
        let end = data[start..]
            .iter()
            .position(|&b| b == 0)
            .map_or(data.len(), |n| start + n);
        let original = &data[start..end];
        let replaced = replace_text(original, placeholder, prefix);
        if replaced.len() > original.len() {
            return Err(PlaceholderError {
                old_len: placeholder.len(),
                new_len: prefix.len(),
            });
        }
        out[start..start + replaced.len()].copy_from_slice(&replaced);
        for byte in &mut out[start + replaced.len()..end] {
            *byte = 0;
        }
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_shebangs_become_env() {
        let long = format!("#!/{}/bin/python3.12 -E\nprint(1)\n", "p".repeat(150));
        assert_eq!(
            super::shorten_long_shebang(long.into_bytes()),
            b"#!/usr/bin/env python3.12 -E\nprint(1)\n"
        );
        let short = b"#!/env/bin/python\nx\n".to_vec();
        assert_eq!(super::shorten_long_shebang(short.clone()), short);
    }

    use super::*;

    #[test]
    fn text() {
        assert_eq!(
            replace_text(b"#!/PH/bin/python\nx=/PH/lib /PH", b"/PH", b"/env"),
            b"#!/env/bin/python\nx=/env/lib /env".to_vec()
        );
    }

    #[test]
    fn binary_pads_with_nul() {
        let data = b"ab/placeholder_long/lib:/placeholder_long/bin\0zz/placeholder_long\0";
        let out = replace_binary(data, b"/placeholder_long", b"/env").unwrap();
        assert_eq!(out.len(), data.len());
        let expected_first = b"ab/env/lib:/env/bin";
        assert_eq!(&out[..expected_first.len()], expected_first);
        let first_nul = data.iter().position(|&b| b == 0).unwrap();
        assert!(out[expected_first.len()..=first_nul]
            .iter()
            .all(|&b| b == 0));
        assert_eq!(&out[first_nul + 1..first_nul + 3], b"zz");
        assert_eq!(&out[first_nul + 3..first_nul + 7], b"/env");
    }

    #[test]
    fn binary_too_long() {
        assert!(replace_binary(b"/ph\0", b"/ph", b"/much/longer").is_err());
    }
}
