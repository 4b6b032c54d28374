//! The on-disk compile cache: compiling a 10-20 MB Python or JS component takes seconds, loading
//! its precompiled form takes milliseconds.
//!
//! An entry is keyed by the SHA-256 of the component's bytes and a hash of the engine's
//! configuration and wasmtime version, and holds the SHA-256 of its own payload, so a stale entry
//! is never found and a corrupt one (truncated, edited, bit-flipped) is detected, removed and
//! rebuilt instead of being trusted. Entries are written to a temporary file and renamed into
//! place, so a crash never leaves a half-written entry under a valid name.

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

    fn entry_path(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut engine_hash = std::hash::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let content = Sha256::digest(bytes);
        self.dir.join(format!(
            "{}-{:016x}.cwasm",
            crate::hex(&content),
            engine_hash.finish()
        ))
    }

    /// A valid entry's component, or `None` (missing, corrupt or incompatible entries are removed).
    fn read(&self, engine: &Engine, entry: &Path) -> Option<Component> {
        let file = std::fs::read(entry).ok()?;
        let valid = file.len() > 32 && Sha256::digest(&file[32..]).as_slice() == &file[..32];
        let component = if valid {
            deserialize_checked(engine, &file[32..]).map_err(|e| format!("{e:#}"))
        } else {
            Err("checksum mismatch".to_owned())
        };
        match component {
            Ok(component) => Some(component),
            Err(reason) => {
                tracing::warn!(path = %entry.display(), %reason, "corrupt compile cache entry; rebuilding");
                let _ = std::fs::remove_file(entry);
                None
            }
        }
    }

    fn write(&self, entry: &Path, serialized: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temp = entry.with_extension(format!("tmp{}", std::process::id()));
        let mut file = Vec::with_capacity(32 + serialized.len());
        file.extend_from_slice(&Sha256::digest(serialized));
        file.extend_from_slice(serialized);
        std::fs::write(&temp, &file)?;
        std::fs::rename(&temp, entry)
    }
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
