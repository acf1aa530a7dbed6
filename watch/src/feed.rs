//! Follows the files a run writes while it grows: the load generator's `load.jsonl` and
//! chaos's `events.jsonl`. Each poll reads what was appended since the last one and returns
//! the complete lines; a line still being written stays buffered until its newline arrives.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use perseus_model::load::Record;
use perseus_model::ChaosEvent;

/// One followed file.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Tail {
    pub fn new(path: &Path) -> Self {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    /// The complete lines appended since the last call (none while the file does not exist).
    pub fn lines(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let Ok(n) = file.read_to_end(&mut bytes) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        done.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// What one poll of both files brought.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub events: Vec<ChaosEvent>,
    /// Lines that did not parse (counted on screen, never fatal).
    pub bad_lines: usize,
}

/// Both files of a run.
#[derive(Debug)]
pub struct Feed {
    load: Tail,
    events: Tail,
}

impl Feed {
    pub fn new(dir: &Path) -> Self {
        Feed {
            load: Tail::new(&dir.join("load.jsonl")),
            events: Tail::new(&dir.join("events.jsonl")),
        }
    }

    pub fn poll(&mut self) -> Batch {
        let mut batch = Batch::default();
        for line in self.load.lines() {
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => batch.records.push(r),
                Err(_) => batch.bad_lines += 1,
            }
        }
        for line in self.events.lines() {
            match serde_json::from_str::<ChaosEvent>(&line) {
                Ok(e) => batch.events.push(e),
                Err(_) => batch.bad_lines += 1,
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_line_is_returned_once_and_only_when_complete() {
        let dir = std::env::temp_dir().join(format!("watch-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.jsonl");
        let mut f = File::create(&path).unwrap();
        let mut tail = Tail::new(&path);
        write!(f, "one\ntw").unwrap();
        assert_eq!(tail.lines(), vec!["one".to_string()]);
        assert!(tail.lines().is_empty());
        writeln!(f, "o").unwrap();
        assert_eq!(tail.lines(), vec!["two".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
