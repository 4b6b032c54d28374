//! Directories whose contents the host runs must be writable by its own user only: a plugin
//! directory anyone can write to lets anyone deploy a plugin, and compile cache entries are
//! native code loaded without recompiling.

use std::path::Path;

use anyhow::Context as _;

/// Refuses `dir` (what it is named in the error) when users other than the host's own (or root)
/// can write to it.
#[cfg(unix)]
pub fn check_private(dir: &Path, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let meta =
        std::fs::metadata(dir).with_context(|| format!("reading {what} {}", dir.display()))?;
    let mode = meta.permissions().mode();
    // `getuid` would need unsafe code; /proc/self belongs to the process's user.
    let me = own_uid().unwrap_or(meta.uid());
    if mode & 0o022 != 0 {
        anyhow::bail!(
            "{what} {} is writable by other users (mode {:o}): anyone who can write there can run code in this host; run `chmod go-w {}`",
            dir.display(),
            mode & 0o777,
            dir.display()
        );
    }
    if meta.uid() != me && meta.uid() != 0 {
        anyhow::bail!(
            "{what} {} belongs to another user (uid {}, the host runs as uid {me}): its owner can run code in this host; give it to the host's user",
            dir.display(),
            meta.uid()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private(_dir: &Path, _what: &str) -> anyhow::Result<()> {
    Ok(())
}

/// The uid the process runs as, read from `/proc/self` (owned by the process's user).
#[cfg(unix)]
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}
