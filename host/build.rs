//! Embeds OpenIM's request of each command (`tests/fixtures/requests/*.json`, byte for byte as
//! OpenIM sends it) so that `callback-host test` cases can start from one by name.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/requests");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/requests")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut code = String::from(
        "/// OpenIM's request of each command, by command name.\n\
         pub const REQUESTS: &[(&str, &str)] = &[\n",
    );
    for path in files {
        let command = path.file_stem().expect("a file name").to_string_lossy();
        let path = path.canonicalize().expect("a readable fixture");
        writeln!(
            code,
            "    ({command:?}, include_str!({:?})),",
            path.display()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("fixtures.rs");
    std::fs::write(out, code).expect("write fixtures.rs");
}
