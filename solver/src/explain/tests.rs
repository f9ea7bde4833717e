use super::explanation_in_plain_words;

#[test]
fn the_requested_specs_lead_the_explanation() {
    let tree = "The following packages are incompatible\n├─ libbase <1 can be installed with any of the following options:\n│  └─ libbase 0.9\n└─ app * cannot be installed because there are no viable options:\n   └─ app 2.0 would require\n";
    let text = explanation_in_plain_words(tree);
    assert!(
        text.starts_with("`libbase <1` and `app` cannot be installed together"),
        "{text}"
    );
    assert!(text.ends_with(tree), "{text}");
    let one = "The following packages are incompatible\n└─ jinja2 ==2.8 cannot be installed because there are no viable options:\n   └─ jinja2 2.8 is excluded because due to strict channel priority not using this option from: 'b'\n";
    let text = explanation_in_plain_words(one);
    assert!(
        text.starts_with("`jinja2 ==2.8` cannot be installed"),
        "{text}"
    );
    assert!(!text.contains("because due to"), "{text}");
}
