//! `queued` after-callbacks: answered as soon as they are stored, delivered by workers with
//! retries and dead letters, never lost across a crash of the host.

use crate::common;

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    GO_ON, KICK_PATH, Server, component, handled_counts, kick_body, openim_request, read_response,
};

fn config(queue: &std::path::Path, extra: &str) -> String {
    format!(
        "[commands.callbackAfterKickGroupCommand]\ndelivery = \"queued\"\ntimeout_secs = 5\n\
         [queue]\npath = {:?}\n{extra}",
        queue.join("queue.redb").to_str().unwrap()
    )
}

fn hostile(config: &str) -> Server {
    Server::start_with_args(
        &[("10-hostile.wasm", component("hostile"))],
        config,
        &["--admin-listen", "127.0.0.1:0"],
    )
}

fn handled(server: &Server) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| l.contains("queued event handled"))
        .map(str::to_owned)
        .collect()
}

/// Whether `server` logged each of the events `op-SENDER-0` .. `op-SENDER-(count-1)` handled.
fn all_handled(server: &Server, sender: usize, count: usize) -> bool {
    let handled = handled(server);
    (0..count).all(|i| {
        let tag = format!("operation_id=op-{sender}-{i}}}");
        handled.iter().any(|l| l.contains(&tag))
    })
}

/// `callback-host queue stats` with the config of the host that ran in `dir`.
fn queue_stats(dir: &std::path::Path) -> String {
    let config = dir.join("callback-host.toml");
    common::cli(
        dir,
        &[
            "queue".as_ref(),
            "stats".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    )
}

/// Sends `count` kicks on one keep-alive connection, one after the other, as one of OpenIM's
/// webhook workers does; returns the slowest answer.
fn send(addr: &str, sender: usize, count: usize, reason: &'static str) -> Duration {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = kick_body("G", &["u"], reason);
    let mut slowest = Duration::ZERO;
    for i in 0..count {
        let started = Instant::now();
        stream
            .write_all(&openim_request(
                KICK_PATH,
                &format!("op-{sender}-{i}"),
                body.as_bytes(),
            ))
            .unwrap();
        assert_eq!(read_response(&mut stream).body, GO_ON);
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

#[test]
fn a_slow_plugin_does_not_slow_the_answers_and_every_event_is_handled() {
    let queue = tempfile::tempdir().unwrap();
    let server = hostile(&config(queue.path(), "workers = 64\n"));
    // 2,000 after-callbacks, two senders as OpenIM sends them, to a plugin that takes 200 ms:
    // inline, that would be 200 s of waiting.
    let started = Instant::now();
    let senders: Vec<_> = (0..2)
        .map(|s| {
            let addr = server.addr.clone();
            std::thread::spawn(move || send(&addr, s, 1000, "work 200"))
        })
        .collect();
    let slowest = senders
        .into_iter()
        .map(|s| s.join().unwrap())
        .max()
        .unwrap();
    let answered = started.elapsed();
    assert!(
        answered < Duration::from_secs(30),
        "answered in {answered:?}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "slowest answer {slowest:?}"
    );
    server.wait_until("all 2,000 events to be handled", || {
        handled(&server).len() >= 2000
    });
    let handled = handled(&server);
    assert_eq!(handled.len(), 2000);
    for sender in 0..2 {
        for i in [0, 499, 999] {
            let tag = format!("operation_id=op-{sender}-{i}}}");
            assert!(
                handled.iter().any(|l| l.contains(&tag)),
                "{tag} not handled"
            );
        }
    }
    assert_eq!(server.metric("callback_host_queue_depth "), 0.0);
    assert_eq!(server.metric("callback_host_queue_handled_total "), 2000.0);
    let ready = Server::get(server.admin_addr.as_deref().unwrap(), "/readyz").json();
    assert_eq!(
        (ready["ready"].as_bool(), ready["queue_depth"].as_u64()),
        (Some(true), Some(0))
    );
}

#[test]
fn answered_events_survive_a_kill_of_the_host_and_redeliveries_are_visible() {
    let queue = tempfile::tempdir().unwrap();
    let config = config(queue.path(), "workers = 2\n");
    let server = hostile(&config);
    // 10 events that take 1 s each on 2 workers: most are still stored when the host dies.
    send(&server.addr, 0, 10, "work 1000");
    std::thread::sleep(Duration::from_millis(300));
    let dir = server.kill_and_keep_dir();
    let server = Server::start_in(dir, &config, &["--admin-listen", "127.0.0.1:0"]);
    server.wait_for_log(&["events stored before the restart are delivered again"]);
    server.wait_until("every event to be handled", || all_handled(&server, 0, 10));
    // Those in flight when the host died were delivered again: marked, and counted.
    let redelivered = handled(&server)
        .iter()
        .filter(|l| l.contains("redelivered=true"))
        .count();
    assert!(redelivered >= 1, "no redelivery marked:\n{}", server.log());
    assert!(server.metric("callback_host_queue_redeliveries_total ") >= redelivered as f64);
    server.wait_until("the queue to be empty", || {
        server.metric("callback_host_queue_depth ") == 0.0
    });
}

#[test]
fn a_failing_event_is_retried_with_backoff_then_dead_lettered() {
    let queue = tempfile::tempdir().unwrap();
    let server = hostile(&config(
        queue.path(),
        "max_attempts = 3\nretry_base_ms = 100\n",
    ));
    let started = Instant::now();
    send(&server.addr, 0, 1, "panic");
    let line = server.wait_for_log(&["queued event dead-lettered", "op-0-0", "failures=3"]);
    assert!(line.contains("unreachable executed"), "{line}");
    // Two retries, 100 ms then 200 ms later.
    assert!(started.elapsed() >= Duration::from_millis(300));
    let retries: Vec<String> = server
        .log()
        .lines()
        .filter(|l| l.contains("queued event failed; retrying"))
        .map(str::to_owned)
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(retries[0].contains("retry_in_ms=100") && retries[1].contains("retry_in_ms=200"));
    assert_eq!(
        server.metric("callback_host_queue_dead_letters_total "),
        1.0
    );
    assert_eq!(server.metric("callback_host_queue_retries_total "), 2.0);
    assert_eq!(server.metric("callback_host_queue_depth "), 0.0);

    // Repaired while the host is stopped: the dead letter is listed, put back, and delivered by
    // the fixed plugin at the next start.
    let dir = server.terminate_and_keep_dir();
    let config_file = dir.path().join("callback-host.toml");
    let queue_cli = |action: &str| {
        common::cli(
            dir.path(),
            &[
                "queue".as_ref(),
                action.as_ref(),
                "--config".as_ref(),
                config_file.as_os_str(),
            ],
        )
    };
    assert!(queue_cli("stats").contains("dead letters: 1"));
    let letters = queue_cli("dead-letters");
    assert!(
        letters.contains(
            "callbackAfterKickGroupCommand operationID=op-0-0 failures=3 cause: 10-hostile: trap"
        ),
        "{letters}"
    );
    // Replayed through the plugins as they are, it still fails; through the fixed version (the
    // guard, under the same name) it is handled, and `--requeue` puts it back in the queue.
    let replay = |plugins: &std::path::Path, requeue: bool| {
        let mut args = vec![
            "replay".as_ref(),
            "--dead-letters".as_ref(),
            "--config".as_ref(),
            config_file.as_os_str(),
            "--plugins".as_ref(),
            plugins.as_os_str(),
        ];
        if requeue {
            args.push("--requeue".as_ref());
        }
        common::cli(dir.path(), &args)
    };
    let still = replay(&dir.path().join("plugins"), false);
    assert!(
        still.contains("callbackAfterKickGroupCommand op-0-0: still fails: 10-hostile: trap"),
        "{still}"
    );
    let fixed = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::example("10-guard.wasm"),
        fixed.path().join("10-hostile.wasm"),
    )
    .unwrap();
    let handled = replay(fixed.path(), true);
    assert!(
        handled
            .contains("callbackAfterKickGroupCommand op-0-0: handled now (was: 10-hostile: trap"),
        "{handled}"
    );
    assert!(handled.contains(", 1 requeued"), "{handled}");
    let stats = queue_cli("stats");
    assert!(
        stats.starts_with("events: 1\n") && stats.ends_with("dead letters: 0\n"),
        "{stats}"
    );
    std::fs::copy(
        fixed.path().join("10-hostile.wasm"),
        dir.path().join("plugins/10-hostile.wasm"),
    )
    .unwrap();
    let config = std::fs::read_to_string(&config_file).unwrap();
    let server = Server::start_in(dir, &config, &["--admin-listen", "127.0.0.1:0"]);
    server.wait_for_log(&["queued event handled", "op-0-0"]);
    let dir = server.terminate_and_keep_dir();
    assert_eq!(queue_stats(dir.path()), "events: 0\ndead letters: 0\n");
}

#[test]
fn replicas_on_one_redis_stream_handle_each_event_once_and_take_over_a_dead_ones_events() {
    let redis = common::redis();
    let config = format!(
        "[defaults]\ntimeout_secs = 5\n[queue]\nbackend = \"redis\"\nredis_url = \"{}\"\n\
         workers = 4\nclaim_idle_ms = 2000\n",
        redis.url
    );
    let (a, b) = (hostile(&config), hostile(&config));
    // 200 events, half sent to each replica: each is handled once, by one of them.
    let senders: Vec<_> = [&a, &b]
        .iter()
        .enumerate()
        .map(|(s, server)| {
            let addr = server.addr.clone();
            std::thread::spawn(move || send(&addr, s, 100, "work 20"))
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    a.wait_until("200 events to be handled", || {
        handled(&a).len() + handled(&b).len() >= 200
    });
    std::thread::sleep(Duration::from_millis(500));
    let (by_a, by_b) = (handled(&a), handled(&b));
    assert_eq!(by_a.len() + by_b.len(), 200);
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "{} {}",
        by_a.len(),
        by_b.len()
    );
    for sender in 0..2 {
        for i in 0..100 {
            let tag = format!("operation_id=op-{sender}-{i}}}");
            let times = by_a
                .iter()
                .chain(&by_b)
                .filter(|l| l.contains(&tag))
                .count();
            assert_eq!(times, 1, "{tag}");
        }
    }

    // 8 slow events; replica A dies holding some: B claims them once they have been idle for
    // 2 s and delivers them again, marked.
    send(&a.addr, 2, 8, "work 1500");
    std::thread::sleep(Duration::from_millis(400));
    drop(a.kill_and_keep_dir());
    b.wait_until("the 8 slow events to be handled by B", || {
        all_handled(&b, 2, 8)
    });
    let redelivered = handled(&b)
        .iter()
        .filter(|l| l.contains("op-2-") && l.contains("redelivered=true"))
        .count();
    assert!(redelivered >= 1, "{}", b.log());
    b.wait_for_log(&["events a replica left unacknowledged are delivered again"]);
    b.wait_until("the shared queue to be empty", || {
        b.metric("callback_host_queue_depth ") == 0.0
    });
    assert_eq!(queue_stats(b.dir()), "events: 0\ndead letters: 0\n");

    // Without its Redis the replica cannot store answered events: it says it is not ready.
    drop(redis);
    b.wait_until("/readyz to fail", || {
        Server::get(b.admin_addr.as_deref().unwrap(), "/readyz").status == 503
    });
    let ready = Server::get(b.admin_addr.as_deref().unwrap(), "/readyz").json();
    assert_eq!(ready["ready"], false);
    // Refused at once, or still trying to reconnect when the probe's patience ran out.
    assert!(
        ready["queue_error"].as_str().is_some_and(|e| {
            e.contains("reading the queue's stream") || e.contains("did not answer within")
        }),
        "{ready}"
    );
}

/// Kicks sent as fast as the host answers from `senders` connections until one fails (the host
/// was killed); returns the operation ids answered "go on".
fn load_until_killed(addr: &str, senders: usize, tag: &'static str) -> Vec<String> {
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let addr = addr.to_owned();
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                let Ok(mut stream) = TcpStream::connect(&addr) else {
                    return answered;
                };
                for i in 0.. {
                    let op = format!("{tag}-{s}-{i}");
                    let body = common::counted_kick(&op);
                    if stream
                        .write_all(&openim_request(KICK_PATH, &op, body.as_bytes()))
                        .is_err()
                    {
                        break;
                    }
                    match common::try_read_response(&mut stream) {
                        Ok(response) if response.body == GO_ON => answered.push(op),
                        _ => break,
                    }
                }
                answered
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn a_sigkill_under_load_loses_no_answered_event_in_either_durability() {
    // Each kick counts itself in Redis when handled: the evidence survives the kill, where the
    // killed host's last log lines may not (its log is written in batches).
    let redis = common::redis();
    for durability in ["process", "machine"] {
        let queue = tempfile::tempdir().unwrap();
        let config = config(
            queue.path(),
            &format!(
                "workers = 2\ndurability = \"{durability}\"\n\
                 [plugin_grants.10-probe]\nkeyvalue = true\n\
                 [keyvalue]\nbackend = \"redis\"\nredis_url = {:?}\n",
                redis.url
            ),
        );
        let server = Server::start_with_args(
            &[("10-probe.wasm", component("kv_probe"))],
            &config,
            &["--admin-listen", "127.0.0.1:0"],
        );
        let load = {
            let addr = server.addr.clone();
            std::thread::spawn(move || load_until_killed(&addr, 4, durability))
        };
        // Killed in the middle of the load: answers were in flight, the last ones answered only
        // in the journal (the queue file is made durable every 100 ms).
        server.wait_until("a few hundred answers", || {
            server.metric(
                "callback_host_requests_total{command=\"callbackAfterKickGroupCommand\",outcome=\"queued\"}",
            ) >= 300.0
        });
        let dir = server.kill_and_keep_dir();
        let answered = load.join().unwrap();
        assert!(
            answered.len() >= 300,
            "{durability}: {} answered",
            answered.len()
        );

        let server = Server::start_in(dir, &config, &["--admin-listen", "127.0.0.1:0"]);
        server.wait_for_log(&["put back in the queue from its journal"]);
        server.wait_until("every answered event to be handled", || {
            let counts = handled_counts(&redis);
            answered.iter().all(|op| counts.contains_key(op))
        });
        server.wait_until("the queue to be empty", || {
            server.metric("callback_host_queue_depth ") == 0.0
        });
    }
}
