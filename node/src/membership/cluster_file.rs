//! The cluster id a node remembers across its own restarts (`cluster_file` in its
//! configuration). Without it, a node that restarts after every acceptor was wiped sees only
//! empty acceptors, cannot tell them from a brand-new cluster, and initialises one: every
//! acknowledged write gone without a word. With it, the node knows the cluster from its first
//! inspection, so empty acceptors are data loss and acceptors carrying another cluster's id
//! are foreign; it never initialises over the id it remembers
//! (docs/design-acceptor-recovery.md, "A node remembers its cluster").
//!
//! The file holds the id and a newline; it is written once, when the node first sees a quorum
//! of members of its cluster, atomically (a temporary file, fsynced, renamed over it, the
//! directory fsynced).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the cluster file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    #[error("cluster file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cluster file {path}: {content:?} is not a cluster id (1 to 128 visible ASCII \
         characters); fix or remove the file (removing it lets the node initialise a new \
         cluster over empty acceptors)"
    )]
    Bad { path: PathBuf, content: String },
    #[error("cluster file {path}: cannot write it: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether `id` can be a cluster id (what the nodes mint is 16 hex digits; anything visible
/// and short is accepted, so an operator may pin one by hand).
fn valid(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The id in `path`; `None` when there is no such file (a node that never knew a cluster).
pub fn read(path: &Path) -> Result<Option<String>, ClusterFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let id = text.trim();
            if valid(id) {
                Ok(Some(id.to_string()))
            } else {
                Err(ClusterFileError::Bad {
                    path: path.to_path_buf(),
                    content: text.chars().take(200).collect(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ClusterFileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `id` to `path` atomically and durably (its directory is created if missing).
pub fn write(path: &Path, id: &str) -> Result<(), ClusterFileError> {
    let failed = |source| ClusterFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    file.write_all(format!("{id}\n").as_bytes())
        .map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(failed)?;
    // The rename itself is durable once the directory is.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_written_is_read_back_and_a_missing_file_is_none() {
        let dir = std::env::temp_dir().join(format!("perseus-cluster-{}", rand::random::<u64>()));
        let path = dir.join("sub").join("cluster-id");
        assert_eq!(read(&path).unwrap(), None);
        write(&path, "0123456789abcdef").unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some("0123456789abcdef"));
        std::fs::write(&path, "two words\n").unwrap();
        assert!(matches!(read(&path), Err(ClusterFileError::Bad { .. })));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(read(&path), Err(ClusterFileError::Bad { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
