//! The redb files the host writes (the embedded key-value store, the after-callback queue):
//! opened with their directory created, written by transactions committed without a disk flush,
//! and made durable in groups (every [`FLUSH_EVERY`], and on [`GroupedFile::flush`]) by a thread
//! of their own, so that a write costs no flush. A crash loses at most the last
//! [`FLUSH_EVERY`] of such writes; a write that must not be lost commits durably itself.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use redb::{Database, Durability, WriteTransaction};

/// How often grouped writes are made durable.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A redb file whose writes are made durable in groups.
#[derive(Clone)]
pub struct GroupedFile {
    /// The database.
    pub db: Arc<Database>,
    /// Set by grouped commits, cleared by a flush: an idle file is not flushed.
    dirty: Arc<AtomicBool>,
}

impl GroupedFile {
    /// Opens (or creates) the file at `path`, named `what` in errors and in its flush thread's
    /// name, and starts that thread (it ends when the file is dropped).
    pub fn open(path: &Path, what: &str) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the {what} directory {}", dir.display()))?;
        }
        let db = Arc::new(
            Database::create(path)
                .with_context(|| format!("opening the {what} {}", path.display()))?,
        );
        let dirty = Arc::new(AtomicBool::new(false));
        let (weak, written) = (Arc::downgrade(&db), Arc::clone(&dirty));
        std::thread::Builder::new()
            .name(format!("{what}-flush"))
            .spawn(move || {
                while let Some(db) = weak.upgrade() {
                    if written.swap(false, Ordering::AcqRel) {
                        let _ = make_durable(&db);
                    }
                    drop(db);
                    std::thread::sleep(FLUSH_EVERY);
                }
            })?;
        Ok(Self { db, dirty })
    }

    /// A write transaction whose commit is made durable with the next group.
    pub fn begin(&self) -> Result<WriteTransaction, redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        Ok(txn)
    }

    /// Commits a transaction of [`GroupedFile::begin`]; the next group makes it durable.
    pub fn commit(&self, txn: WriteTransaction) -> Result<(), redb::Error> {
        txn.commit()?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes every commit durable now (when the host stops).
    pub fn flush(&self) {
        let _ = self.sync();
    }

    /// Makes every commit durable now, or says why it could not.
    pub fn sync(&self) -> Result<(), redb::Error> {
        self.dirty.store(false, Ordering::Release);
        make_durable(&self.db)
    }
}

/// An empty durable commit: every commit before it becomes durable with it.
fn make_durable(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}
