use super::*;

use crate::test_plugins::{Does, json_plugin, runner};

const KICK: &str = "callbackAfterKickGroupCommand";
const GO_ON: &str = r#"{"actionCode":0}"#;

/// A loader of `dir`, with no compile cache.
fn loader(dir: &Path) -> (Loader, Arc<CurrentPlugins>) {
    let config = format!(
        "plugins = {:?}\ncache_dir = \"\"\n",
        dir.display().to_string()
    );
    let (runner, linker) = runner(&config);
    let current = Arc::new(CurrentPlugins::default());
    let metrics = Arc::new(Metrics::default());
    (
        Loader::new(runner, linker, metrics, Arc::clone(&current)),
        current,
    )
}

/// The plugin names of the set in force, each with its file's digest.
fn serving(current: &CurrentPlugins) -> BTreeMap<String, String> {
    current.get().digests()
}

#[test]
fn a_scan_loads_new_files_keeps_the_last_good_version_and_drops_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut loader, current) = loader(dir.path());
    let first = json_plugin(KICK, Does::Answer(GO_ON));
    std::fs::write(dir.path().join("10-a.wasm"), &first).unwrap();
    std::fs::write(dir.path().join("20-b.wasm"), json_plugin(KICK, Does::Trap)).unwrap();
    // A file being written (a dot-name) is not read.
    std::fs::write(dir.path().join(".30-c.wasm"), b"half").unwrap();
    assert!(loader.scan().unwrap().is_empty());
    let loaded = serving(&current);
    assert_eq!(loaded.keys().collect::<Vec<_>>(), ["10-a", "20-b"]);
    assert_eq!(current.get().chain(KICK).len(), 2);
    // Nothing changed: the set in force is the same one (its time in force is kept).
    let since = current.get().since_ms();
    std::thread::sleep(Duration::from_millis(5));
    assert!(loader.scan().unwrap().is_empty());
    assert_eq!(current.get().since_ms(), since);
    // A broken new version: the error is returned and recorded, the last good one serves on.
    std::fs::write(dir.path().join("10-a.wasm"), b"\0asm broken").unwrap();
    let errors = loader.scan().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(serving(&current), loaded);
    let failed = current.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].file, "10-a.wasm");
    assert!(failed[0].previous_serving);
    // A good new version replaces it; a removed file leaves the set.
    let second = json_plugin(KICK, Does::Answer(r#"{"actionCode":0,"errMsg":"v2"}"#));
    std::fs::write(dir.path().join("10-a.wasm"), &second).unwrap();
    std::fs::remove_file(dir.path().join("20-b.wasm")).unwrap();
    assert!(loader.scan().unwrap().is_empty());
    let now = serving(&current);
    assert_eq!(now.keys().collect::<Vec<_>>(), ["10-a"]);
    assert_ne!(now["10-a"], loaded["10-a"]);
    assert!(current.failed().is_empty());
    assert_eq!(current.get().chain(KICK).len(), 1);
}
