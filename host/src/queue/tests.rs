//! The retry policy with the embedded store and a deliverer of the tests' own (the `Deliver`
//! inversion: no plugin, no dispatcher): back-off, the plugin that handled an event skipped on
//! its retries, dead letters after `max_attempts`, a requeue.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::config::Config;
use crate::test_plugins::until;

/// Two plugins: `10-steady` always handles the event; `20-flaky` fails its first `failing`
/// deliveries. Keeps what each delivery was asked to run.
struct Flaky {
    failing: u32,
    flaky_runs: AtomicU32,
    /// Each delivery's `done` list and when it came.
    seen: StdMutex<Vec<(Vec<String>, Instant)>>,
}

impl Flaky {
    fn new(failing: u32) -> Self {
        Self {
            failing,
            flaky_runs: AtomicU32::new(0),
            seen: StdMutex::new(Vec::new()),
        }
    }
}

impl Deliver for Flaky {
    fn deliver(
        &self,
        event: &Event,
        _redelivered: bool,
    ) -> impl std::future::Future<Output = Vec<Delivered>> + Send {
        self.seen
            .lock()
            .unwrap()
            .push((event.done.clone(), Instant::now()));
        let mut results = Vec::new();
        if !event.done.iter().any(|d| d == "10-steady") {
            results.push(Delivered {
                plugin: "10-steady".into(),
                result: Ok(()),
            });
        }
        let run = self.flaky_runs.fetch_add(1, Ordering::SeqCst);
        results.push(Delivered {
            plugin: "20-flaky".into(),
            result: if run < self.failing {
                Err(Failure::RetryRequested(format!("attempt {}", run + 1)))
            } else {
                Ok(())
            },
        });
        async move { results }
    }
}

/// An embedded queue in `dir`: one worker, `max_attempts`, retries 20 ms apart and doubling.
async fn queue(dir: &std::path::Path, max_attempts: u32) -> (Arc<Queue>, Arc<Metrics>) {
    let mut settings = Config::default().queue;
    settings.path = dir.join("queue.redb");
    settings.workers = 1;
    settings.max_attempts = max_attempts;
    settings.retry_base = Duration::from_millis(20);
    let metrics = Arc::new(Metrics::default());
    let queue = Queue::open(settings, Arc::clone(&metrics)).await.unwrap();
    (queue, metrics)
}

fn event(operation_id: &str) -> Event {
    Event {
        command: "callbackAfterKickGroupCommand".into(),
        operation_id: operation_id.into(),
        body: "{}".into(),
        accepted_ms: crate::util::unix_ms(),
        failures: 0,
        done: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_plugin_is_retried_with_back_off_skipping_the_one_that_handled_it() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, metrics) = queue(dir.path(), 5).await;
    let deliveries = Deliveries::start().unwrap();
    let flaky = Arc::new(Flaky::new(2));
    queue.start_workers(Arc::clone(&flaky), &deliveries);
    assert!(
        queue
            .append(event("op-retried"), Instant::now() + Duration::from_secs(1))
            .await
            .unwrap()
    );
    until("the event handled", || metrics.queue_handled.get() == 1).await;
    assert_eq!(metrics.queue_retries.get(), 2);
    assert_eq!(metrics.queue_dead_letters.get(), 0);
    let seen = flaky.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // The steady plugin handled it on the first delivery; the retries skip it.
    assert!(seen[0].0.is_empty());
    assert_eq!(seen[1].0, ["10-steady"]);
    assert_eq!(seen[2].0, ["10-steady"]);
    // 20 ms, then 40 ms.
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(40), "{gaps:?}");
    assert!(queue.dead_letters().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_keeps_failing_is_a_dead_letter_with_its_cause_and_can_be_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, metrics) = queue(dir.path(), 3).await;
    let deliveries = Deliveries::start().unwrap();
    let flaky = Arc::new(Flaky::new(u32::MAX));
    queue.start_workers(Arc::clone(&flaky), &deliveries);
    queue
        .append(event("op-dead"), Instant::now() + Duration::from_secs(1))
        .await
        .unwrap();
    until("the event dead-lettered", || {
        metrics.queue_dead_letters.get() == 1
    })
    .await;
    assert_eq!(metrics.queue_retries.get(), 2);
    assert_eq!(metrics.queue_handled.get(), 0);
    let letters = queue.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (_, letter) = &letters[0];
    assert_eq!(letter.event.operation_id, "op-dead");
    assert_eq!(letter.event.failures, 3);
    assert_eq!(letter.event.done, ["10-steady"]);
    assert_eq!(
        letter.cause,
        "20-flaky: the plugin asked to be retried later: attempt 3"
    );
    assert_eq!(flaky.seen.lock().unwrap().len(), 3);
    // Requeued, it is delivered again: here it fails three more times and is buried again.
    assert_eq!(queue.requeue(None).await.unwrap(), 1);
    until("the requeued event dead-lettered again", || {
        metrics.queue_dead_letters.get() == 2
    })
    .await;
    assert_eq!(flaky.seen.lock().unwrap().len(), 6);
}
