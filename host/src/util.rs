//! Small helpers every layer uses: the time events carry, hex digests, the files kept beside
//! another, private directories. At the bottom: they import nothing of the crate.

/// Milliseconds since the Unix epoch (0 on a clock set before it): the time events and records
/// carry, and key expiry.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lower-case hex of `bytes` (digests in file names, logs and `/readyz`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `path` with `suffix` added to its file name (`queue.redb` + `.journal`): the files kept beside
/// another (a checksum, a journal, a file being written).
pub fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Creates `dir` (and its parents) readable and writable by the host's user only, if missing.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
