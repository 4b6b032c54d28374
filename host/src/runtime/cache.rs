//! The on-disk compile cache: compiling a 10-20 MB Python or JS component takes seconds, loading
//! its precompiled form takes milliseconds.
//!
//! An entry is keyed by the SHA-256 of the component's bytes and a hash of the engine's
//! configuration and wasmtime version, and is checked against the SHA-256 of its payload kept
//! beside it (`<entry>.sha256`), so a stale entry is never found and a corrupt one (truncated,
//! edited, bit-flipped) is detected, removed and rebuilt instead of being trusted. Files are
//! written under temporary names and renamed into place (the checksum first), so a crash never
//! leaves a half-written entry under a valid name.
//!
//! A valid entry is loaded by mapping the file (`Component::deserialize_file`): its compiled code
//! stays backed by the file, shared with the page cache and brought in as it runs, instead of a
//! private copy of the whole 40 MB of a Python or JavaScript runtime's code in every host.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where precompiled components are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    /// The cache directory (created on first write).
    dir: PathBuf,
}

/// How a component was obtained, for the load log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Loaded from a valid cache entry.
    Cache,
    /// Compiled (and, if possible, written to the cache).
    Compiled,
}

impl CompileCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The component for `bytes`, from the cache if a valid entry exists, else compiled and cached.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Source)> {
        let entry = self.entry_path(engine, bytes);
        if let Some(component) = self.read(engine, &entry) {
            return Ok((component, Source::Cache));
        }
        let serialized = engine.precompile_component(bytes)?;
        // SAFETY: see `deserialize_checked`; these bytes were produced by this engine just now.
        let component = deserialize_checked(engine, &serialized)?;
        if let Err(error) = self.write(&entry, &serialized) {
            tracing::warn!(path = %entry.display(), %error, "could not write the compile cache entry");
        }
        Ok((component, Source::Compiled))
    }

    /// Whether an entry for `bytes` is there (not checked: [`Self::load_or_compile`] does that),
    /// so that a tool can say it is about to compile for a while.
    pub fn holds(&self, engine: &Engine, bytes: &[u8]) -> bool {
        self.entry_path(engine, bytes).is_file()
    }

    /// Where the checksum of `entry` is kept.
    fn checksum_path(entry: &Path) -> PathBuf {
        crate::util::with_suffix(entry, ".sha256")
    }

    fn entry_path(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut engine_hash = std::hash::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let content = Sha256::digest(bytes);
        self.dir.join(format!(
            "{}-{:016x}.cwasm",
            crate::util::hex(&content),
            engine_hash.finish()
        ))
    }

    /// A valid entry's component, or `None` (missing, corrupt or incompatible entries are removed).
    fn read(&self, engine: &Engine, entry: &Path) -> Option<Component> {
        let checksum = Self::checksum_path(entry);
        let expected = std::fs::read(&checksum).ok()?;
        let Ok(file) = std::fs::read(entry) else {
            let _ = std::fs::remove_file(&checksum);
            return None;
        };
        let component = if Sha256::digest(&file).as_slice() == expected.as_slice() {
            // Mapped from the file; where the file cannot be mapped executable (a `noexec`
            // mount), from the bytes just checked.
            map_checked(engine, entry)
                .or_else(|_| deserialize_checked(engine, &file))
                .map_err(|e| format!("{e:#}"))
        } else {
            Err("checksum mismatch".to_owned())
        };
        match component {
            Ok(component) => Some(component),
            Err(reason) => {
                tracing::warn!(path = %entry.display(), %reason, "corrupt compile cache entry; rebuilding");
                let _ = std::fs::remove_file(entry);
                let _ = std::fs::remove_file(&checksum);
                None
            }
        }
    }

    fn write(&self, entry: &Path, serialized: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temp =
            |path: &Path| crate::util::with_suffix(path, &format!(".tmp{}", std::process::id()));
        let checksum = Self::checksum_path(entry);
        let (temp_entry, temp_checksum) = (temp(entry), temp(&checksum));
        std::fs::write(&temp_entry, serialized)?;
        std::fs::write(&temp_checksum, Sha256::digest(serialized))?;
        std::fs::rename(&temp_checksum, &checksum)?;
        std::fs::rename(&temp_entry, entry)
    }
}

/// Maps a precompiled component from its cache file, whose bytes were just checked.
#[allow(unsafe_code)]
fn map_checked(engine: &Engine, entry: &Path) -> wasmtime::Result<Component> {
    // SAFETY: as for `deserialize_checked`: the file's SHA-256 matched the checksum written with
    // it, its name carries this engine's compatibility hash, and the directory is writable only
    // by the host's user (checked at start), who does not edit it while the host runs.
    unsafe { Component::deserialize_file(engine, entry) }
}

/// Deserializes a precompiled component.
#[allow(unsafe_code)]
fn deserialize_checked(engine: &Engine, serialized: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the bytes come from `Engine::precompile_component` of a
    // compatible engine and were not tampered with. Callers pass either bytes this engine has
    // just produced, or a cache entry whose SHA-256 matched the checksum written with it and whose
    // name carries this engine's compatibility hash; wasmtime itself also rejects artifacts of
    // another version or configuration. The cache directory must be writable only by the host's
    // user, as documented in the README.
    unsafe { Component::deserialize(engine, serialized) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_entries_are_detected_and_rebuilt() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().to_owned());
        let wat = wat_component();
        let (_, source) = cache.load_or_compile(&engine, &wat).unwrap();
        assert_eq!(source, Source::Compiled);
        let (_, source) = cache.load_or_compile(&engine, &wat).unwrap();
        assert_eq!(source, Source::Cache);

        // Flip a byte in the middle of the entry: detected, recompiled, rewritten.
        let entry = cache.entry_path(&engine, &wat);
        let mut file = std::fs::read(&entry).unwrap();
        let middle = file.len() / 2;
        file[middle] ^= 0xff;
        std::fs::write(&entry, &file).unwrap();
        let (_, source) = cache.load_or_compile(&engine, &wat).unwrap();
        assert_eq!(source, Source::Compiled);
        let (_, source) = cache.load_or_compile(&engine, &wat).unwrap();
        assert_eq!(source, Source::Cache);

        // A truncated entry too.
        std::fs::write(&entry, &std::fs::read(&entry).unwrap()[..100]).unwrap();
        assert_eq!(
            cache.load_or_compile(&engine, &wat).unwrap().1,
            Source::Compiled
        );

        // An entry whose checksum is gone is not trusted either; the component loaded from a
        // valid entry (mapped from its file) runs.
        std::fs::remove_file(CompileCache::checksum_path(&entry)).unwrap();
        assert_eq!(
            cache.load_or_compile(&engine, &wat).unwrap().1,
            Source::Compiled
        );
        let (component, source) = cache.load_or_compile(&engine, &wat).unwrap();
        assert_eq!(source, Source::Cache);
        let mut store = wasmtime::Store::new(&engine, ());
        wasmtime::component::Linker::new(&engine)
            .instantiate(&mut store, &component)
            .expect("a mapped component instantiates");
    }

    #[test]
    fn entries_are_keyed_by_engine_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().to_owned());
        let wat = wat_component();
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let fueled = Engine::new(&config).unwrap();
        assert_ne!(
            cache.entry_path(&plain, &wat),
            cache.entry_path(&fueled, &wat)
        );
        cache.load_or_compile(&plain, &wat).unwrap();
        assert_eq!(
            cache.load_or_compile(&fueled, &wat).unwrap().1,
            Source::Compiled
        );
    }

    /// A tiny component in text form (the engine's `wat` feature compiles text too).
    fn wat_component() -> Vec<u8> {
        b"(component (core module (func (export \"f\") (result i32) i32.const 7)))".to_vec()
    }
}
