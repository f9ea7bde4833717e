use super::*;

#[test]
fn a_missing_zst_is_believed_for_two_weeks() {
    let info = |zst, checked| RepodataInfo {
        url: String::new(),
        etag: None,
        last_modified: None,
        cache_control: None,
        fetched_at_unix: 0.0,
        source: None,
        zst,
        zst_checked_unix: checked,
        not_found: false,
    };
    let now = 100.0 * 24.0 * 3600.0;
    let day = 24.0 * 3600.0;
    assert!(info(None, None).zst_worth_trying(now), "never checked");
    assert!(info(Some(true), Some(now - day)).zst_worth_trying(now));
    assert!(!info(Some(false), Some(now - day)).zst_worth_trying(now));
    assert!(info(Some(false), Some(now - 15.0 * day)).zst_worth_trying(now));
}
