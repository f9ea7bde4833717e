//! The two ways a channel is named: as records keep it
//! ([`channel_as_recorded`]) and as messages show it ([`channel_as_shown`]).

use rattler_conda_types::Channel;

/// The channel as records keep it (`RepoDataRecord::channel`, written to
/// conda-meta): its base URL without credentials, a token as `<TOKEN>`
/// ([`pkgr_redact::url_for_record`]). Without credentials this is rattler's
/// canonical name. Messages name a channel by [`channel_as_shown`] instead.
pub fn channel_as_recorded(channel: &Channel) -> String {
    pkgr_redact::url_for_record(channel.base_url.url())
}

/// A channel as messages name it, as a user would: its name for an
/// http(s) channel, its path for a local one. A channel whose URL carries
/// credentials is shown as its redacted URL (its name may hold the token).
/// Records keep a channel as [`channel_as_recorded`] instead.
pub fn channel_as_shown(channel: &Channel) -> String {
    match channel.base_url.url().scheme() {
        "http" | "https" if pkgr_redact::url_has_credentials(channel.base_url.url()) => {
            pkgr_redact::redact_url(channel.base_url.url())
                .trim_end_matches('/')
                .to_owned()
        }
        "http" | "https" => channel.name().trim_end_matches('/').to_owned(),
        _ => channel
            .base_url
            .url()
            .to_file_path()
            .map(|p| p.display().to_string().trim_end_matches('/').to_owned())
            .unwrap_or_else(|()| channel.base_url.to_string()),
    }
}
