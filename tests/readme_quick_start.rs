//! The README's quick starts are the doctests of `src/lib.rs` (which the
//! test command runs): every line of each README block is a line of the
//! crate docs, so the two cannot drift apart.

#[test]
fn every_quick_start_line_of_the_readme_is_a_doctested_line() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let doc_lines: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! ").or_else(|| l.strip_prefix("//!")))
        .collect();
    let start = readme
        .find("## Quick start")
        .expect("a quick start section");
    let end = start + readme[start..].find("Configured in code").expect("its end");
    let blocks: Vec<&str> = readme[start..end]
        .split("```rust\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 3, "one block per runtime");
    for block in blocks {
        let lines: Vec<&str> = block.lines().collect();
        assert!(
            lines.len() <= 5,
            "a quick start of at most 5 lines: {block}"
        );
        for line in lines {
            assert!(
                doc_lines.contains(&line),
                "not in the doctests of src/lib.rs: {line:?}"
            );
        }
    }
}
