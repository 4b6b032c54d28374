//! The README and `docs/`: every relative link reaches a file, every anchor a heading, and the
//! generated parts (the commands table, the benchmark and soak results, the JSON example) are
//! where their generators write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::repo_root;

/// README.md and every `docs/*.md`.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![repo_root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The lines of `text` outside fenced code blocks, with inline code removed.
fn prose(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            let parts: Vec<&str> = line.split('`').collect();
            lines.push(
                parts
                    .iter()
                    .step_by(2)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(""),
            );
        }
    }
    lines
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces made hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a document's headings (a repeated one gets `-1`, `-2`...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let count = seen.entry(base.clone()).or_default();
        anchors.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// The targets of the Markdown links (and images) of a line.
fn links(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        if let Some(end) = after.find(')') {
            let target = &after[..end];
            if !target.contains(' ') && !target.is_empty() {
                targets.push(target.to_owned());
            }
        }
        rest = after;
    }
    targets
}

/// Every broken relative link of `file`: (link, why).
fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap();
    let mut broken = Vec::new();
    for line in prose(&text) {
        for target in links(&line) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                file.to_owned()
            } else {
                dir.join(path)
            };
            if !linked.exists() {
                broken.push(format!("{target}: no file {}", linked.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                let headings = anchors(&std::fs::read_to_string(&linked).unwrap_or_default());
                if !headings.contains(anchor) {
                    broken.push(format!("{target}: no heading #{anchor}"));
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_of_the_readme_and_docs_resolves() {
    assert_eq!(
        slug(" Testing a rule before it ships: `callback-host test`"),
        "testing-a-rule-before-it-ships-callback-host-test"
    );
    let mut broken = Vec::new();
    let documents = documents();
    assert!(documents.len() >= 10, "{documents:?}");
    for file in &documents {
        let relative = file
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        broken.extend(
            broken_links(file)
                .into_iter()
                .map(|b| format!("{relative}: {b}")),
        );
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));

    // The check itself finds a link that does not resolve.
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.md");
    std::fs::write(
        &doc,
        "# Title\n\n[fine](#title) [gone](#nowhere) [missing](nothing.md) `[code](x.md)`\n",
    )
    .unwrap();
    assert_eq!(
        broken_links(&doc)
            .iter()
            .map(|b| b.split(':').next().unwrap())
            .collect::<Vec<_>>(),
        ["#nowhere", "nothing.md"]
    );
}

#[test]
fn the_readme_is_a_first_day_read_and_names_every_doc() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 320,
        "the README has {lines} lines: move topics to docs/"
    );
    // Its first lines are the two commands.
    assert!(
        readme
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("- Run (fresh machine): ")
    );
    assert!(
        readme
            .lines()
            .nth(3)
            .unwrap()
            .starts_with("- Test (fresh machine): ")
    );
    for doc in documents().iter().skip(1) {
        let name = doc.file_name().unwrap().to_string_lossy();
        assert!(
            readme.contains(&format!("(docs/{name})")),
            "the README does not link docs/{name}"
        );
    }
}

#[test]
fn generated_parts_are_where_their_generators_write() {
    for (doc, markers) in [
        (
            "docs/performance.md",
            ["<!-- bench:start -->", "<!-- bench:end -->"],
        ),
        (
            "docs/production.md",
            ["<!-- soak:start -->", "<!-- soak:end -->"],
        ),
        (
            "docs/production.md",
            ["<!-- replicas:start -->", "<!-- replicas:end -->"],
        ),
        (
            "docs/writing-plugins.md",
            ["<!-- json-example:start -->", "<!-- json-example:end -->"],
        ),
    ] {
        let text = std::fs::read_to_string(repo_root().join(doc)).unwrap();
        let (start, end) = (text.find(markers[0]), text.find(markers[1]));
        assert!(
            start.is_some() && end.is_some() && start < end,
            "{doc} lacks {markers:?}"
        );
    }
    // The bench and the soak say where they write.
    let bench: String = std::fs::read_dir(repo_root().join("bench/src"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert!(bench.contains("--write-readme docs/performance.md"));
}

/// `text` without the indentation its lines share (blank lines aside).
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_openim_api_snippets_are_the_calls_new_writes() {
    let doc = std::fs::read_to_string(repo_root().join("docs/openim-api.md")).unwrap();
    let templates = repo_root().join("host/templates/openim-api");
    for file in std::fs::read_dir(&templates).unwrap() {
        let file = file.unwrap().path();
        let snippet = dedent(&std::fs::read_to_string(&file).unwrap());
        assert!(
            doc.contains(&snippet),
            "docs/openim-api.md lacks {} as `new --openim-api` writes it:\n{snippet}",
            file.display()
        );
    }
}
