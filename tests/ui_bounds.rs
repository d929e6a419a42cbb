//! The bounds the UI's scripts repeat from the services (to grey out a choice before the
//! service would refuse it) are the services' own.

/// `export const NAME = value;` in one of the UI's scripts.
fn script_constant(script: &str, name: &str) -> i64 {
    let path = format!("{}/ui/assets/{script}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let prefix = format!("export const {name} = ");
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{path} exports no {name}"));
    line.trim_end_matches(';')
        .replace('_', "")
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {name} = {line}: {e}"))
}

#[test]
fn the_search_pages_bucket_bound_is_the_indexers() {
    assert_eq!(
        script_constant("search.js", "MAX_BUCKETS"),
        windsock_indexer::search::MAX_BUCKETS,
        "ui/assets/search.js greys out intervals by the indexer's bound on histogram buckets"
    );
}
