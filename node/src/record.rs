//! The etcd-v2 view of a key: the record stored as the CASPaxos state, and the write
//! operations as pure functions from the current record to the next one (or a refusal).
//!
//! A deleted key is not removed from the acceptors: a DELETE is a CASPaxos change like any
//! write, and it stores a tombstone (`"deleted": true`, no value) that keeps the key's
//! modifiedIndex. Reads show a tombstone as "key not found"; a create after a delete starts
//! from the tombstone's index, so a key's modifiedIndex never repeats and a stale `prevIndex`
//! held from before the delete can never match the new key.
//!
//! Every write also stores its write id (the proposer's, unique per request): two records
//! with equal text are then the same write, which is what lets a proposer tell, after an
//! accept of unknown outcome, whether the chosen state is its own write. It also stores the
//! ids of the [`LINEAGE`] writes it was built upon (`"a"`, newest first): a follow-up round
//! that finds a newer state can then tell whether that state descends from the proposer's
//! write (applied) or from another write at the same index (not applied).

use serde::{Deserialize, Serialize};

/// What a key's CASPaxos state holds, serialized as JSON in the acceptors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub value: String,
    /// Grows by one on every successful write of the key.
    pub modified: u64,
    /// The `modified` index at which the key was created.
    pub created: u64,
    /// A tombstone: the key was deleted at index `modified` (`value` is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The id of the write that produced this record (absent in records of older nodes).
    #[serde(default, rename = "w", skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
    /// The ids of the writes this record was built upon, newest first: entry `i` is the id of
    /// the record at index `modified - 1 - i`. At most [`LINEAGE`]; cut short at a record
    /// without an id (older nodes), so that positions and indices always match.
    #[serde(default, rename = "a", skip_serializing_if = "Vec::is_empty")]
    pub built_on: Vec<String>,
}

/// How many earlier writes a record names (`built_on`): a write of unknown outcome is
/// resolved exactly as long as at most this many writes followed it when the follow-up
/// round chose a state. About 20 bytes per id.
pub const LINEAGE: usize = 8;

impl Record {
    pub fn decode(state: &str) -> Result<Record, Refusal> {
        serde_json::from_str(state).map_err(|e| Refusal::Corrupt(e.to_string()))
    }

    pub fn encode(&self) -> String {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A write request, as the HTTP layer parsed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// `PUT ?prevExist=false`: create, refuse if the key exists.
    Create { value: String },
    /// `PUT ?prevExist=true`: update, refuse if the key does not exist.
    Update { value: String },
    /// `PUT ?prevIndex=N` and/or `?prevValue=V`: compare-and-swap.
    CompareAndSwap {
        value: String,
        prev_index: Option<u64>,
        prev_value: Option<String>,
    },
    /// `PUT` with no condition: overwrite (or create).
    Set { value: String },
    /// `DELETE`, with `?prevIndex=N` and/or `?prevValue=V` a compare-and-delete.
    Delete {
        prev_index: Option<u64>,
        prev_value: Option<String>,
    },
}

impl Write {
    /// The etcd action name reported in the response.
    pub fn action(&self) -> &'static str {
        match self {
            Write::Create { .. } => "create",
            Write::Update { .. } => "update",
            Write::CompareAndSwap { .. } => "compareAndSwap",
            Write::Set { .. } => "set",
            Write::Delete {
                prev_index: None,
                prev_value: None,
            } => "delete",
            Write::Delete { .. } => "compareAndDelete",
        }
    }
}

/// Why a write was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key does not exist (etcd errorCode 100).
    NotFound,
    /// The key exists (etcd errorCode 105), at this index.
    AlreadyExists { index: u64 },
    /// A compare-and-swap condition did not hold (etcd errorCode 101).
    CompareFailed { cause: String, index: u64 },
    /// The stored state is not a record this node wrote.
    Corrupt(String),
}

/// What a state says about its place in the key's history (no state: version 0, no ids).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Grows by exactly one with every change that writes; kept by reads and refusals.
    pub version: u64,
    /// The id of the write that produced the state (unique per request).
    pub write: Option<String>,
    /// The ids of the writes the state was built upon, newest first: entry `i` is the write
    /// at version `version - 1 - i`. May be cut short, never has gaps.
    pub built_on: Vec<String>,
}

impl Lineage {
    /// The id of the write at `version` in this state's chain, if the state names it.
    pub(crate) fn write_at(&self, version: u64) -> Option<&str> {
        if version == self.version {
            return self.write.as_deref();
        }
        let back = self.version.checked_sub(version)?.checked_sub(1)?;
        self.built_on
            .get(usize::try_from(back).ok()?)
            .map(String::as_str)
    }
}

/// Decodes a stored state, tombstones included.
pub fn stored(state: Option<&str>) -> Result<Option<Record>, Refusal> {
    state.map(Record::decode).transpose()
}

/// Decodes a stored state as clients see it: a tombstone is a missing key.
pub fn current(state: Option<&str>) -> Result<Option<Record>, Refusal> {
    Ok(stored(state)?.filter(|r| !r.deleted))
}

/// The lineage of a stored state for the proposer's outcome resolution: its modifiedIndex
/// (which every write raises by exactly one), its own write id and the ids of the writes it was built upon (`None`: not a record).
pub fn lineage(state: &str) -> Option<Lineage> {
    let record = Record::decode(state).ok()?;
    Some(Lineage {
        version: record.modified,
        write: record.write_id,
        built_on: record.built_on,
    })
}

/// The highest modifiedIndex a stored state shows (tombstones included; 0 if none).
pub fn index_of(state: Option<&str>) -> u64 {
    stored(state).ok().flatten().map_or(0, |r| r.modified)
}

/// `prevValue` / `prevIndex` against the live record: `Ok` or the etcd-style cause.
fn compare(
    existing: &Record,
    prev_index: &Option<u64>,
    prev_value: &Option<String>,
) -> Result<(), Refusal> {
    let mut failed = Vec::new();
    if let Some(expected) = prev_value {
        if *expected != existing.value {
            failed.push(format!("{expected} != {}", existing.value));
        }
    }
    if let Some(expected) = prev_index {
        if *expected != existing.modified {
            failed.push(format!("{expected} != {}", existing.modified));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Refusal::CompareFailed {
            cause: format!("[{}]", failed.join("] [")),
            index: existing.modified,
        })
    }
}

/// Applies `write` (with id `write_id`) to the current state: the new record (a tombstone for
/// a delete), or why not.
pub fn apply(write: &Write, state: Option<&str>, write_id: &str) -> Result<Record, Refusal> {
    let stored = stored(state)?;
    // Indices continue past a tombstone; `created` restarts with a new key.
    let index = stored.as_ref().map_or(0, |r| r.modified) + 1;
    // The base's id and what it was built upon, while every record on the way has an id.
    let built_on: Vec<String> = stored
        .as_ref()
        .and_then(|r| {
            let id = r.write_id.clone()?;
            Some(
                std::iter::once(id)
                    .chain(r.built_on.iter().cloned())
                    .take(LINEAGE)
                    .collect(),
            )
        })
        .unwrap_or_default();
    let live = stored.filter(|r| !r.deleted);
    let next = |value: &str| Record {
        value: value.to_string(),
        modified: index,
        created: live.as_ref().map_or(index, |r| r.created),
        deleted: false,
        write_id: Some(write_id.to_string()),
        built_on: built_on.clone(),
    };
    match (write, &live) {
        (Write::Create { .. }, Some(existing)) => Err(Refusal::AlreadyExists {
            index: existing.modified,
        }),
        (Write::Create { value }, None) | (Write::Set { value }, _) => Ok(next(value)),
        (Write::Update { .. }, None)
        | (Write::CompareAndSwap { .. }, None)
        | (Write::Delete { .. }, None) => Err(Refusal::NotFound),
        (Write::Update { value }, Some(_)) => Ok(next(value)),
        (
            Write::CompareAndSwap {
                value,
                prev_index,
                prev_value,
            },
            Some(existing),
        ) => compare(existing, prev_index, prev_value).map(|()| next(value)),
        (
            Write::Delete {
                prev_index,
                prev_value,
            },
            Some(existing),
        ) => compare(existing, prev_index, prev_value).map(|()| Record {
            value: String::new(),
            modified: index,
            created: existing.created,
            deleted: true,
            write_id: Some(write_id.to_string()),
            built_on,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(value: &str, modified: u64, created: u64) -> String {
        Record {
            value: value.into(),
            modified,
            created,
            deleted: false,
            write_id: None,
            built_on: Vec::new(),
        }
        .encode()
    }

    #[test]
    fn delete_leaves_a_tombstone_and_indices_keep_growing() {
        let state = stored("a", 3, 1);
        let delete = |prev_index, prev_value: Option<&str>| Write::Delete {
            prev_index,
            prev_value: prev_value.map(str::to_string),
        };
        assert_eq!(delete(None, None).action(), "delete");
        assert_eq!(delete(Some(3), None).action(), "compareAndDelete");
        assert!(matches!(
            apply(&delete(Some(2), None), Some(&state), "w1"),
            Err(Refusal::CompareFailed { index: 3, .. })
        ));
        assert!(matches!(
            apply(&delete(None, Some("b")), Some(&state), "w1"),
            Err(Refusal::CompareFailed { .. })
        ));
        let tomb = apply(&delete(Some(3), Some("a")), Some(&state), "w1").unwrap();
        assert_eq!((tomb.modified, tomb.created, tomb.deleted), (4, 1, true));
        let tomb = tomb.encode();
        assert_eq!(current(Some(&tomb)), Ok(None));
        assert_eq!(index_of(Some(&tomb)), 4);
        // deleted keys are missing to every write that needs the key
        assert_eq!(
            apply(&delete(None, None), Some(&tomb), "w1"),
            Err(Refusal::NotFound)
        );
        assert_eq!(
            apply(&Write::Update { value: "x".into() }, Some(&tomb), "w1"),
            Err(Refusal::NotFound)
        );
        // a create after the delete continues the index
        let again = apply(&Write::Create { value: "b".into() }, Some(&tomb), "w1").unwrap();
        assert_eq!(
            (again.modified, again.created, again.deleted),
            (5, 5, false)
        );
        // old records (no `deleted` field) still decode
        assert_eq!(
            Record::decode(r#"{"value":"v","modified":2,"created":1}"#).map(|r| r.deleted),
            Ok(false)
        );
        assert!(!again.encode().contains("deleted"));
    }

    #[test]
    fn a_record_names_the_writes_it_was_built_upon() {
        let mut state: Option<String> = None;
        for i in 1..=12u64 {
            let next = apply(
                &Write::Set {
                    value: format!("v{i}"),
                },
                state.as_deref(),
                &format!("w{i}"),
            )
            .unwrap();
            let lineage = lineage(&next.encode()).unwrap();
            assert_eq!(lineage.version, i);
            assert_eq!(lineage.write.as_deref(), Some(format!("w{i}").as_str()));
            let expected: Vec<String> = (1..i)
                .rev()
                .take(LINEAGE)
                .map(|j| format!("w{j}"))
                .collect();
            assert_eq!(lineage.built_on, expected);
            state = Some(next.encode());
        }
        // Built on a record without an id (an older node's): the lineage stops there.
        let old = stored("a", 3, 1);
        let next = apply(&Write::Set { value: "b".into() }, Some(&old), "w9").unwrap();
        assert!(next.built_on.is_empty());
        assert!(!next.encode().contains("\"a\""));
        // A refused write changes nothing, a delete keeps the lineage going.
        let tomb = apply(
            &Write::Delete {
                prev_index: None,
                prev_value: None,
            },
            Some(&next.encode()),
            "w10",
        )
        .unwrap();
        assert_eq!(tomb.built_on, ["w9"]);
    }

    #[test]
    fn create_then_refuse_a_second_create() {
        let created = apply(&Write::Create { value: "0".into() }, None, "w1").unwrap();
        assert_eq!((created.modified, created.created), (1, 1));
        let state = created.encode();
        assert_eq!(
            apply(&Write::Create { value: "1".into() }, Some(&state), "w1"),
            Err(Refusal::AlreadyExists { index: 1 })
        );
    }

    #[test]
    fn compare_and_swap_on_index_and_value() {
        let state = stored("5", 7, 2);
        let cas = |prev_index, prev_value: Option<&str>| Write::CompareAndSwap {
            value: "6".into(),
            prev_index,
            prev_value: prev_value.map(str::to_string),
        };
        let ok = apply(&cas(Some(7), None), Some(&state), "w1").unwrap();
        assert_eq!((ok.value.as_str(), ok.modified, ok.created), ("6", 8, 2));
        assert!(apply(&cas(None, Some("5")), Some(&state), "w1").is_ok());
        assert_eq!(
            apply(&cas(Some(6), None), Some(&state), "w1"),
            Err(Refusal::CompareFailed {
                cause: "[6 != 7]".into(),
                index: 7
            })
        );
        assert_eq!(
            apply(&cas(Some(1), None), None, "w1"),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn set_overwrites_and_update_needs_the_key() {
        let state = stored("a", 3, 1);
        assert_eq!(
            apply(&Write::Set { value: "b".into() }, Some(&state), "w1")
                .unwrap()
                .modified,
            4
        );
        assert_eq!(
            apply(&Write::Update { value: "b".into() }, None, "w1"),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn corrupt_state_is_reported_not_panicked_on() {
        assert!(matches!(
            apply(&Write::Set { value: "b".into() }, Some("not json"), "w1"),
            Err(Refusal::Corrupt(_))
        ));
    }
}
