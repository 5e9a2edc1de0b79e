//! Writing PKI files so that a crash never leaves half a file and a key is never readable by
//! anyone else, not even for a moment.
//!
//! Every write goes to a temporary file in the same directory (created 0600 for secrets),
//! is flushed to disk, and then takes its name in one step: `rename` to replace a file,
//! `link` to create one that must not exist yet (so two `ca init` racing cannot both win).
//! The directory is synced afterwards so the name survives a power cut too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who may read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// Certificates, CRLs, requests: 0644.
    Public,
    /// Private keys: 0600 from creation on.
    Secret,
}

/// A file write that failed, with the file it was for.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: io::Error,
}

impl FileError {
    /// Tags an I/O error with its file.
    pub fn at(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
        move |source| FileError {
            path: path.to_owned(),
            source,
        }
    }

    /// Whether the file was there already (for [`create_new`]).
    pub fn already_exists(&self) -> bool {
        self.source.kind() == io::ErrorKind::AlreadyExists
    }
}

/// Replaces (or creates) `path` with `contents`, atomically.
pub fn replace(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<(), FileError> {
    let temporary = write_temporary(path, contents, secrecy)?;
    let renamed = fs::rename(&temporary, path).map_err(FileError::at(path));
    if renamed.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    renamed?;
    sync_parent(path)
}

/// Creates `path` with `contents`; fails with `AlreadyExists` if it is there, leaving it be.
pub fn create_new(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<(), FileError> {
    let temporary = write_temporary(path, contents, secrecy)?;
    let linked = fs::hard_link(&temporary, path).map_err(FileError::at(path));
    let _ = fs::remove_file(&temporary);
    linked?;
    sync_parent(path)
}

/// Creates a directory and its parents (0700 for a new directory holding secrets).
pub fn create_dir(path: &Path, secrecy: Secrecy) -> Result<(), FileError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    if secrecy == Secrecy::Secret {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    let _ = secrecy;
    builder.create(path).map_err(FileError::at(path))
}

fn write_temporary(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<PathBuf, FileError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(match secrecy {
        Secrecy::Public => 0o644,
        Secrecy::Secret => 0o600,
    });
    let written = options
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .map_err(FileError::at(path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.map(|()| temporary)
}

fn sync_parent(path: &Path) -> Result<(), FileError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(FileError::at(parent)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jinbao-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        create_dir(&dir, Secrecy::Secret).unwrap();
        dir
    }

    #[test]
    fn create_new_never_overwrites_and_leaves_no_temporaries() {
        let dir = scratch("new");
        let path = dir.join("root.key");
        create_new(&path, b"first", Secrecy::Secret).unwrap();
        let err = create_new(&path, b"second", Secrecy::Secret).unwrap_err();
        assert!(err.already_exists(), "{err}");
        assert!(err.to_string().starts_with(&path.display().to_string()));
        assert_eq!(fs::read(&path).unwrap(), b"first");
        replace(&path, b"third", Secrecy::Secret).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"third");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("root.key")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn secrets_are_0600_and_public_files_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("modes");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        create_new(&dir.join("a.key"), b"k", Secrecy::Secret).unwrap();
        replace(&dir.join("b.key"), b"k", Secrecy::Secret).unwrap();
        create_new(&dir.join("c.pem"), b"c", Secrecy::Public).unwrap();
        assert_eq!(mode(&dir.join("a.key")), 0o600);
        assert_eq!(mode(&dir.join("b.key")), 0o600);
        // The umask may narrow 0644 but never widens it.
        assert_eq!(mode(&dir.join("c.pem")) & !0o644, 0);
        assert_eq!(mode(&dir), 0o700);
        fs::remove_dir_all(&dir).unwrap();
    }
}
