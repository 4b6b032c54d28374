//! The journal's bookkeeping on real files: ids in order, a record cut by a crash left out,
//! rotation and removal. No plugin, no server.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::*;

fn event(operation_id: &str, body_bytes: usize) -> Event {
    Event {
        command: "callbackAfterKickGroupCommand".into(),
        operation_id: operation_id.into(),
        body: "x".repeat(body_bytes),
        accepted_ms: 1,
        failures: 0,
        done: Vec::new(),
    }
}

async fn append(journal: &Journal, event: &Event) -> u64 {
    let json = serde_json::to_string(event).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    journal.append(json, deadline, |_, _| {}).await.unwrap()
}

fn operation_ids(events: &[(u64, Event)]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|(id, e)| (*id, e.operation_id.clone()))
        .collect()
}

#[tokio::test]
async fn appends_get_ids_in_order_and_a_record_cut_by_a_crash_is_left_out() {
    for durability in [QueueDurability::Process, QueueDurability::Machine] {
        let dir = tempfile::tempdir().unwrap();
        let path = path_beside(&dir.path().join("queue.redb"));
        let journal = Journal::create(&path, durability, 5).unwrap();
        for op in ["a", "b", "c"] {
            append(&journal, &event(op, 10)).await;
        }
        drop(journal);
        // What a crash in the middle of a `write` leaves: half a record, no newline.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"event":{"command":"cb","opera"#)
            .unwrap();
        let read = read(&path).unwrap();
        assert_eq!(
            operation_ids(&read),
            [(5, "a".into()), (6, "b".into()), (7, "c".into())],
            "{durability:?}"
        );
        remove(&path).unwrap();
        assert!(read_is_empty(&path));
    }
}

#[tokio::test]
async fn a_long_journal_is_set_aside_read_first_and_dropped_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_beside(&dir.path().join("queue.redb"));
    let journal = Journal::create(&path, QueueDurability::Process, 0).unwrap();
    assert_eq!(journal.rotate_if_long().unwrap(), None, "short: kept");
    // Past the rotation size.
    let big = (ROTATE_AFTER_BYTES as usize) / 4 + 1;
    for op in ["a", "b", "c", "d"] {
        append(&journal, &event(op, big)).await;
    }
    assert_eq!(
        journal.rotate_if_long().unwrap(),
        Some(4),
        "ids below 4 set aside"
    );
    assert!(old_path(&path).exists());
    append(&journal, &event("e", 10)).await;
    // Read back in append order: the set-aside journal first.
    let ids: Vec<u64> = read(&path).unwrap().iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    journal.drop_old().unwrap();
    assert!(!old_path(&path).exists());
    assert_eq!(operation_ids(&read(&path).unwrap()), [(4, "e".into())]);
}

fn read_is_empty(path: &Path) -> bool {
    read(path).unwrap().is_empty()
}
