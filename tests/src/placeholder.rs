//! Prefix placeholders: the ones conda-build writes, and conda's text and
//! binary replacement of them, written independently of pkgr's.

/// The placeholder conda-build writes into text files.
pub const TEXT_PLACEHOLDER: &str = "/opt/anaconda1anaconda2anaconda3";

/// A long placeholder for binary files, as conda-build uses (255 bytes), so any
/// test prefix fits.
pub fn binary_placeholder() -> String {
    let mut p = String::from("/opt/conda_build_env");
    while p.len() < 255 {
        p.push_str("_placehold");
    }
    p.truncate(255);
    p
}

/// conda's text-mode placeholder replacement, written independently of pkgr's.
pub fn expect_text_replaced(bytes: &[u8], placeholder: &str, prefix: &str) -> Vec<u8> {
    let text = bytes.to_vec();
    let (needle, new) = (placeholder.as_bytes(), prefix.as_bytes());
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(needle) {
            out.extend_from_slice(new);
            i += needle.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// conda's binary-mode placeholder replacement (C strings NUL padded to their
/// length), written independently of pkgr's.
pub fn expect_binary_replaced(bytes: &[u8], placeholder: &str, prefix: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let needle = placeholder.as_bytes();
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if bytes[i..].starts_with(needle) {
            let end = bytes[i..]
                .iter()
                .position(|&b| b == 0)
                .map_or(bytes.len(), |n| i + n);
            let replaced = expect_text_replaced(&bytes[i..end], placeholder, prefix);
            out[i..i + replaced.len()].copy_from_slice(&replaced);
            for b in &mut out[i + replaced.len()..end] {
                *b = 0;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}
