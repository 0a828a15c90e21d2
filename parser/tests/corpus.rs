//! Every flight in `tests/corpus/` parsed and snapshotted: flight JSON plus diagnostics.
//! Review changes with `cargo insta review`.

use serde_json::json;

#[test]
fn corpus() {
    insta::glob!("corpus/*.md", |path| {
        let text = std::fs::read_to_string(path).expect("corpus files are readable");
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("flight");
        let parsed = murmur_parser::parse(&text, stem);
        let value = json!({
            "valid": parsed.is_valid(),
            "diagnostics": parsed.diagnostics,
            "flight": parsed.flight,
        });
        insta::assert_json_snapshot!(value);
    });
}
