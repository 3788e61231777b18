//! Atomic file writing: readers see the old file or the new one, never a partial write.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;
use thiserror::Error;

use crate::model::Report;

/// Why writing a file failed. Every message names the path and, for OS errors, the error.
///
/// The OS error is part of the message and is not also returned by `Error::source`, so a
/// chain printer does not repeat it; it is available as the variant's `error` field.
#[derive(Debug, Error)]
pub enum WriteError {
    /// The target path has no file name (for example it ends in `..`).
    #[error("cannot write {}: the path does not name a file", path.display())]
    NotAFilePath {
        /// The target path.
        path: PathBuf,
    },
    /// A report file stem was empty, `.`/`..`, or contained a path separator.
    #[error("invalid report file name {stem:?} in {}: must be a plain file name", dir.display())]
    InvalidFileStem {
        /// The directory the report was to be written to.
        dir: PathBuf,
        /// The rejected stem.
        stem: String,
    },
    /// The parent directory could not be created.
    #[error("cannot create directory {}: {error}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The temporary file could not be created or written (the target is untouched).
    #[error("cannot write {} (via a temporary file in {}): {error}", path.display(), dir.display())]
    Write {
        /// The target path.
        path: PathBuf,
        /// The directory of the temporary file.
        dir: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The temporary file could not be renamed over the target (the target is untouched).
    #[error("cannot replace {}: {error}", path.display())]
    Replace {
        /// The target path.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The report could not be serialized (not expected for this data model).
    #[error("cannot serialize report for {}: {error}", path.display())]
    Serialize {
        /// The target path.
        path: PathBuf,
        /// The serializer's error.
        error: serde_json::Error,
    },
}

/// Writes `contents` to `path` atomically.
///
/// Creates the parent directory if missing, writes a temporary file in that directory,
/// flushes and syncs it, then renames it over `path`. On any error `path` is untouched and
/// the temporary file is removed. After the rename the directory is synced on a best-effort
/// basis: that failure is not reported, as the replacement has already happened.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    let Some(file_name) = path.file_name() else {
        return Err(WriteError::NotAFilePath {
            path: path.to_path_buf(),
        });
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|error| WriteError::CreateDir {
        path: dir.to_path_buf(),
        error,
    })?;

    let write_error = |error| WriteError::Write {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        error,
    };
    // Hidden, and named after the target, so a leftover from a crash is recognisable.
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_error)?;
    fill(&mut temp, contents).map_err(write_error)?;
    // On failure the returned `PersistError` owns the temporary file; dropping it deletes it.
    temp.persist(path).map_err(|e| WriteError::Replace {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    if let Ok(dir_handle) = File::open(dir) {
        let _ = dir_handle.sync_all();
    }
    Ok(())
}

fn fill(temp: &mut NamedTempFile, contents: &[u8]) -> io::Result<()> {
    temp.write_all(contents)?;
    temp.flush()?;
    temp.as_file().sync_all()
}

/// Writes `report` as pretty JSON (trailing newline) to `<dir>/<file_stem>.json`, atomically,
/// and returns that path. `file_stem` must be a plain file name without extension.
pub fn write_report_json(
    dir: &Path,
    file_stem: &str,
    report: &Report,
) -> Result<PathBuf, WriteError> {
    let plain = !file_stem.is_empty()
        && file_stem != "."
        && file_stem != ".."
        && !file_stem.contains(['/', '\\'])
        && !file_stem.contains(std::path::MAIN_SEPARATOR);
    if !plain {
        return Err(WriteError::InvalidFileStem {
            dir: dir.to_path_buf(),
            stem: file_stem.to_owned(),
        });
    }
    let path = dir.join(format!("{file_stem}.json"));
    let mut json = serde_json::to_vec_pretty(report).map_err(|error| WriteError::Serialize {
        path: path.clone(),
        error,
    })?;
    json.push(b'\n');
    write_atomic(&path, &json)?;
    Ok(path)
}
