//! How pkgr shows and keeps URLs that may carry credentials (a user name and
//! password, an anaconda.org-style `/t/<token>/` segment):
//!
//! - [`redact_url`]: for messages and logs, every credential replaced by
//!   `********` (the URL keeps its shape, so the user sees which one failed);
//! - [`url_for_record`]: for what is written to disk (conda-meta records,
//!   `history`, exported lists, JSON output), in conda's form: no user info,
//!   the token as the literal [`TOKEN_PLACEHOLDER`];
//! - [`redact_urls_in_text`]: either of those applied to every URL inside a
//!   longer text (a command line, an error chain).
//!
//! Its own crate, not a part of `pkgr-fetch`, because the linker
//! (`pkgr-prefix`, which writes records and `history`) and the front-ends
//! need it without the HTTP client, and not a part of `pkgr-fs`, because it
//! is about URLs, not files. **It must not depend on** any other pkgr crate or
//! on an HTTP client: it is pure string code over the `url` crate.

use url::Url;

/// Returns `url` as text with any user name, password or `/t/<token>/` segment
/// replaced by `********`, for messages and logs.
pub fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() {
        let _ = url.set_username("********");
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("********"));
    }
    let segments: Option<Vec<String>> = url
        .path_segments()
        .map(|s| s.map(ToOwned::to_owned).collect());
    if let Some(segments) = segments {
        if let Some(pos) = segments.iter().position(|s| s == "t") {
            if pos + 1 < segments.len() {
                let mut redacted = segments.clone();
                redacted[pos + 1] = "********".to_owned();
                url.set_path(&redacted.join("/"));
            }
        }
    }
    url.to_string()
}

/// What conda writes in place of an anaconda.org-style token in the URLs it
/// keeps (`https://host/t/<TOKEN>/channel/...`).
pub const TOKEN_PLACEHOLDER: &str = "<TOKEN>";

/// The index of the token in `url`'s path segments: the segment after the
/// first `t` segment, when it is not empty (`/t/` alone is a channel named `t`).
fn token_segment(url: &Url) -> Option<usize> {
    let segments: Vec<&str> = url.path_segments()?.collect();
    let pos = segments.iter().position(|s| *s == "t")?;
    segments
        .get(pos + 1)
        .filter(|token| !token.is_empty())
        .map(|_| pos + 1)
}

/// Whether `url`'s token segment is [`TOKEN_PLACEHOLDER`] (as text, or
/// percent-encoded the way [`Url`] stores it).
fn is_token_placeholder(segment: &str) -> bool {
    segment == TOKEN_PLACEHOLDER || segment.eq_ignore_ascii_case("%3CTOKEN%3E")
}

/// Whether `url` carries a credential: a user name, a password, or a
/// `/t/<token>/` segment (other than [`TOKEN_PLACEHOLDER`]).
pub fn url_has_credentials(url: &Url) -> bool {
    !url.username().is_empty()
        || url.password().is_some()
        || token_segment(url).is_some_and(|i| {
            url.path_segments()
                .and_then(|mut s| s.nth(i))
                .is_some_and(|token| !is_token_placeholder(token))
        })
}

/// Whether `url` holds [`TOKEN_PLACEHOLDER`] where its token was: a URL taken
/// from a record written with [`url_for_record`], which cannot be fetched
/// until the real token is given again.
pub fn url_has_token_placeholder(url: &Url) -> bool {
    token_segment(url).is_some_and(|i| {
        url.path_segments()
            .and_then(|mut s| s.nth(i))
            .is_some_and(is_token_placeholder)
    })
}

/// Returns `url` as it may be written to disk (conda-meta records, `history`,
/// JSON output), in conda's form: the user name and password removed, and the
/// token of a `/t/<token>/` segment replaced by the literal `<TOKEN>`
/// ([`TOKEN_PLACEHOLDER`]). Applying it to its own output changes nothing.
/// For messages, [`redact_url`] keeps more of the URL's shape.
pub fn url_for_record(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let Some(token) = token_segment(&url) else {
        return url.to_string();
    };
    let mut path = String::new();
    for (i, segment) in url.path_segments().into_iter().flatten().enumerate() {
        path.push('/');
        path.push_str(if i == token {
            TOKEN_PLACEHOLDER
        } else {
            segment
        });
    }
    // Spliced as text: `Url::set_path` would percent-encode the `<` and `>`.
    format!(
        "{}{path}{}",
        &url[..url::Position::BeforePath],
        &url[url::Position::AfterPath..]
    )
}

/// Rewrites every URL in `text` that carries a credential (see
/// [`url_has_credentials`]) with `redact` — [`redact_url`] for messages,
/// [`url_for_record`] for what is written to disk — and leaves the rest of
/// the text as it is. Finds URLs inside arguments too (`--channel=URL`,
/// `-cURL`, `URL::package`, `(for url (URL))`).
pub fn redact_urls_in_text(text: &str, redact: impl Fn(&Url) -> String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut written = 0;
    let mut search_from = 0;
    while let Some(found) = text[search_from..].find("://") {
        let separator = search_from + found;
        let after = separator + 3;
        let mut start = separator;
        while start > written
            && (bytes[start - 1].is_ascii_alphanumeric() || b"+-.".contains(&bytes[start - 1]))
        {
            start -= 1;
        }
        while start < separator && !bytes[start].is_ascii_alphabetic() {
            start += 1;
        }
        let mut end = text[after..]
            .find(|c: char| c.is_whitespace() || "\"'<>`".contains(c))
            .map_or(text.len(), |i| after + i);
        while end > after && b"),.;]}".contains(&bytes[end - 1]) {
            end -= 1;
        }
        search_from = end.max(after);
        if start == separator {
            continue;
        }
        let candidate = &text[start..end];
        let replacement = match Url::parse(candidate) {
            Ok(url) if url_has_credentials(&url) => redact(&url),
            Ok(_) => continue,
            // Not a URL the parser takes; still never let a `user:password@`
            // through.
            Err(_) => {
                let authority_end = text[after..end].find('/').map_or(end, |i| after + i);
                match text[after..authority_end].rfind('@') {
                    Some(at) => format!("{}{}", &text[start..after], &text[after + at + 1..end]),
                    None => continue,
                }
            }
        };
        out.push_str(&text[written..start]);
        out.push_str(&replacement);
        written = end;
    }
    out.push_str(&text[written..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_and_tokens() {
        let url = Url::parse("https://user:secret@host/t/abc123/conda-forge/x.conda").unwrap();
        let text = redact_url(&url);
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("abc123"), "{text}");
        assert!(text.contains("conda-forge/x.conda"), "{text}");
    }

    #[test]
    fn record_form_drops_user_info_and_keeps_the_token_placeholder() {
        let url =
            Url::parse("https://user:secret@host:8080/t/abc-123/conda-forge/linux-64/x.conda")
                .unwrap();
        let record = url_for_record(&url);
        assert_eq!(
            record,
            "https://host:8080/t/<TOKEN>/conda-forge/linux-64/x.conda"
        );
        // Idempotent, also after a round trip through `Url` (which stores the
        // placeholder percent-encoded).
        let again = Url::parse(&record).unwrap();
        assert_eq!(url_for_record(&again), record);
        assert!(!url_has_credentials(&again));
        assert!(url_has_token_placeholder(&again));
        assert!(url_has_credentials(&url));
        assert!(!url_has_token_placeholder(&url));

        // A password alone, a trailing slash, a query.
        let url = Url::parse("http://me:pw@127.0.0.1:1234/chan/?x=1").unwrap();
        assert_eq!(url_for_record(&url), "http://127.0.0.1:1234/chan/?x=1");
        let url = Url::parse("http://127.0.0.1/t/tok/").unwrap();
        assert_eq!(url_for_record(&url), "http://127.0.0.1/t/<TOKEN>/");
        // No credential: unchanged; `/t/` alone is a channel named `t`.
        for plain in [
            "https://conda.anaconda.org/conda-forge/",
            "http://127.0.0.1/t/",
            "file:///srv/channel/linux-64/a-1-0.conda",
        ] {
            let url = Url::parse(plain).unwrap();
            assert!(!url_has_credentials(&url), "{plain}");
            assert_eq!(url_for_record(&url), plain);
        }
    }

    #[test]
    fn urls_in_text_are_rewritten_in_place() {
        let text = "pkgr create -p /e -c http://u:pw@h:1/t/tok1/ --channel=https://u:pw@h/t/tok2/c/ -chttp://h/t/tok3/ http://h/t/tok4/::app (for url (http://h/t/tok5/x)) https://plain.example/c/";
        let record = redact_urls_in_text(text, url_for_record);
        assert_eq!(
            record,
            "pkgr create -p /e -c http://h:1/t/<TOKEN>/ --channel=https://h/t/<TOKEN>/c/ -chttp://h/t/<TOKEN>/ http://h/t/<TOKEN>/::app (for url (http://h/t/<TOKEN>/x)) https://plain.example/c/"
        );
        assert_eq!(redact_urls_in_text(&record, url_for_record), record);
        let display = redact_urls_in_text(text, redact_url);
        for secret in ["pw", "tok1", "tok2", "tok3", "tok4", "tok5"] {
            assert!(!display.contains(secret), "{display}");
        }
        // Not parseable as a URL, still no password.
        let odd = redact_urls_in_text("see http://u:pw@[bad/x", url_for_record);
        assert_eq!(odd, "see http://[bad/x");
    }
}
