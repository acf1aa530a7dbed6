//! The etcd-v2 view of a key: the record stored as the CASPaxos state, and the write
//! operations as pure functions from the current record to the next one (or a refusal).

use serde::{Deserialize, Serialize};

/// What a key's CASPaxos state holds, serialized as JSON in the acceptors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub value: String,
    /// Grows by one on every successful write of the key.
    pub modified: u64,
    /// The `modified` index at which the key was created.
    pub created: u64,
}

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
}

impl Write {
    /// The etcd action name reported in the response.
    pub fn action(&self) -> &'static str {
        match self {
            Write::Create { .. } => "create",
            Write::Update { .. } => "update",
            Write::CompareAndSwap { .. } => "compareAndSwap",
            Write::Set { .. } => "set",
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

/// Decodes a stored state.
pub fn current(state: Option<&str>) -> Result<Option<Record>, Refusal> {
    state.map(Record::decode).transpose()
}

/// Applies `write` to the current state: the new record, or why not.
pub fn apply(write: &Write, state: Option<&str>) -> Result<Record, Refusal> {
    let current = current(state)?;
    let next = |value: &str| Record {
        value: value.to_string(),
        modified: current.as_ref().map_or(1, |r| r.modified + 1),
        created: current.as_ref().map_or(1, |r| r.created),
    };
    match (write, &current) {
        (Write::Create { .. }, Some(existing)) => Err(Refusal::AlreadyExists {
            index: existing.modified,
        }),
        (Write::Create { value }, None) | (Write::Set { value }, _) => Ok(next(value)),
        (Write::Update { .. }, None) | (Write::CompareAndSwap { .. }, None) => {
            Err(Refusal::NotFound)
        }
        (Write::Update { value }, Some(_)) => Ok(next(value)),
        (
            Write::CompareAndSwap {
                value,
                prev_index,
                prev_value,
            },
            Some(existing),
        ) => {
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
                Ok(next(value))
            } else {
                Err(Refusal::CompareFailed {
                    cause: format!("[{}]", failed.join("] [")),
                    index: existing.modified,
                })
            }
        }
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
        }
        .encode()
    }

    #[test]
    fn create_then_refuse_a_second_create() {
        let created = apply(&Write::Create { value: "0".into() }, None).unwrap();
        assert_eq!((created.modified, created.created), (1, 1));
        let state = created.encode();
        assert_eq!(
            apply(&Write::Create { value: "1".into() }, Some(&state)),
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
        let ok = apply(&cas(Some(7), None), Some(&state)).unwrap();
        assert_eq!((ok.value.as_str(), ok.modified, ok.created), ("6", 8, 2));
        assert!(apply(&cas(None, Some("5")), Some(&state)).is_ok());
        assert_eq!(
            apply(&cas(Some(6), None), Some(&state)),
            Err(Refusal::CompareFailed {
                cause: "[6 != 7]".into(),
                index: 7
            })
        );
        assert_eq!(apply(&cas(Some(1), None), None), Err(Refusal::NotFound));
    }

    #[test]
    fn set_overwrites_and_update_needs_the_key() {
        let state = stored("a", 3, 1);
        assert_eq!(
            apply(&Write::Set { value: "b".into() }, Some(&state))
                .unwrap()
                .modified,
            4
        );
        assert_eq!(
            apply(&Write::Update { value: "b".into() }, None),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn corrupt_state_is_reported_not_panicked_on() {
        assert!(matches!(
            apply(&Write::Set { value: "b".into() }, Some("not json")),
            Err(Refusal::Corrupt(_))
        ));
    }
}
