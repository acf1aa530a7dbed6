//! The record of what chaos did: one printed line per action and, with `--events FILE`, the
//! same as a JSON line appended to FILE (the record is `perseus_model::ChaosEvent`, which lab
//! reads back).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use perseus_model::Failure;

pub use perseus_model::ChaosEvent as Event;

/// Prints events and appends them to the events file.
pub struct Recorder {
    file: Option<PathBuf>,
    /// The failures recorded so far, so that the exit code can name them.
    failures: Mutex<Vec<Failure>>,
}

impl Recorder {
    pub fn new(file: Option<&Path>) -> Self {
        Recorder {
            file: file.map(Path::to_path_buf),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Whether every failed action failed as `Unsupported` (and one did): the kernel lacks
    /// what the fault needs, which chaos's exit code says apart from other failures.
    pub fn only_unsupported(&self) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        !failures.is_empty() && failures.iter().all(|f| *f == Failure::Unsupported)
    }

    /// Prints the event (stdout if ok, stderr if not) and appends it to the file.
    pub fn record(&self, event: &Event) -> Result<()> {
        if let Some(f) = event.failure {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(f);
        }
        if event.ok {
            println!("{}", event.line());
        } else {
            eprintln!("{}", event.line());
        }
        if let Some(path) = &self.file {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening events file {}", path.display()))?;
            let json = serde_json::to_string(event)?;
            writeln!(f, "{json}")
                .with_context(|| format!("writing events file {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use perseus_model::{FaultKind, HostArg, HostName};

    #[test]
    fn appends_one_json_line_per_event() {
        let dir = std::env::temp_dir().join(format!("chaos-events-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let recorder = Recorder::new(Some(&dir));
        for host in [1, 2] {
            let e = Event::new(
                FaultKind::Kill,
                HostArg::Host(HostName::perseus(host)),
                Utc::now(),
                Ok("killed".into()),
            );
            recorder.record(&e).unwrap();
        }
        let text = std::fs::read_to_string(&dir).unwrap();
        let events = Event::parse_lines(&text).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].host, HostArg::Host(HostName::perseus(2)));
    }
}
