//! Microbenchmarks of the per-request pieces, on the Rust guard plugin (build it first with
//! `scripts/build-plugins.sh`): JSON in (parsed into the request record), one plugin call with a
//! fresh store and instance (the default) and through the whole chain, JSON out.
//!
//! `cargo bench -p callback-host`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use callback_host::capabilities::Capabilities;
use callback_host::config::Config;
use callback_host::dispatch::{Attempt, Callback, Dispatcher, Input};
use callback_host::loading::load::{Loading, load_plugin};
use callback_host::metrics::Metrics;
use callback_host::protocol::schema::Catalog;
use callback_host::protocol::{self, CallbackResponse};
use callback_host::registry::{CurrentPlugins, Link, Registry};
use callback_host::runtime::budget::MemoryBudget;
use callback_host::runtime::call::{Runner, Spent};
use callback_host::runtime::engine;
use callback_host::runtime::plugin::file_digest;

const KICK: &str = "callbackAfterKickGroupCommand";
const BODY: &[u8] = b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G001\",\"kickedUserIDs\":[\"user123\",\"user456\"],\"reason\":\"Violation of group rules\"}\n";

fn per_request(c: &mut Criterion) {
    let plugin_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/10-guard.wasm");
    assert!(plugin_path.exists(), "run scripts/build-plugins.sh first");
    let config = Arc::new(Config::default());
    let engine = engine::build_engine(&config).expect("engine");
    let linker = engine::build_linker(&engine).expect("linker");
    let bytes = std::fs::read(&plugin_path).expect("read plugin");
    let limits = config.plugin("10-guard");
    let budget = Arc::new(MemoryBudget::new(config.memory_budget));
    let capabilities = Arc::new(Capabilities::values_only(
        Arc::clone(&config),
        Arc::new(Metrics::default()),
    ));
    let metrics = Arc::new(Metrics::default());
    let runner = Arc::new(Runner::new(
        engine,
        Arc::clone(&config),
        budget,
        capabilities,
        Arc::clone(&metrics),
    ));
    let loading = Loading {
        runner: &runner,
        linker: &linker,
        cache: None,
    };
    let plugin = Arc::new(
        load_plugin(&loading, &plugin_path, &bytes, file_digest(&bytes), limits).expect("plugin"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let kick = Catalog::get().command(KICK).expect("the kick command");

    c.bench_function("json in: parse and validate a kick body", |b| {
        b.iter(|| {
            protocol::parse(
                kick,
                protocol::text(std::hint::black_box(BODY)).expect("text"),
            )
            .expect("valid")
        })
    });
    c.bench_function("json out: serialize an answer", |b| {
        let answer = CallbackResponse::refuse(
            10001,
            "kicking protected users is not allowed",
            "protected users: admin",
        );
        b.iter(|| std::hint::black_box(&answer).to_json())
    });

    let current = Arc::new(CurrentPlugins::default());
    current.set(Registry::new(
        vec![Arc::clone(&plugin)],
        &std::collections::BTreeSet::new(),
    ));
    let dispatcher = Arc::new(Dispatcher::new(
        Arc::clone(&runner),
        Arc::clone(&current),
        metrics,
        None,
        Arc::new(callback_host::history::History::default()),
    ));
    let link = Link {
        plugin: Arc::clone(&plugin),
        entry: plugin.handles[0].entry,
    };
    let parsed = protocol::parse(kick, protocol::text(BODY).expect("text")).expect("valid");
    let callback = || {
        Callback::read(
            KICK,
            "op".into(),
            bytes::Bytes::from_static(BODY),
            Instant::now(),
        )
        .expect("valid")
    };
    // The same plugin kept between requests (reuse mode: no instantiation).
    let mut reuse_limits = limits;
    reuse_limits.reuse_instances = u32::MAX;
    let kept = Arc::new(
        load_plugin(
            &loading,
            &plugin_path,
            &bytes,
            file_digest(&bytes),
            reuse_limits,
        )
        .expect("plugin"),
    );
    let kept_link = Link {
        plugin: Arc::clone(&kept),
        entry: kept.handles[0].entry,
    };
    // Limits, permit, deadline timer, store, (instantiate,) call, stats.
    for (name, link) in [
        ("one plugin call (fresh store and instance)", &link),
        ("one plugin call (kept instance, reuse mode)", &kept_link),
    ] {
        c.bench_function(name, |b| {
            // Read once, as the server does: the bench measures the call alone.
            let callback = callback();
            b.iter(|| {
                runtime.block_on(async {
                    let from = Instant::now();
                    let spent = Spent::default();
                    let call = Attempt {
                        link,
                        position: 0,
                        callback: &callback,
                        from,
                        deadline: from + Duration::from_secs(4),
                        fuel: 1_000_000_000,
                        spent: &spent,
                    };
                    let (answered, _) = dispatcher.call(call, Input::Typed(&parsed)).await;
                    // What a request's end does: the used instance goes.
                    drop(spent);
                    answered.expect("call")
                })
            })
        });
    }
    // The whole chain of a request with one plugin: parse, call, answer.
    c.bench_function(
        "whole request through the chain (parse, call, answer)",
        |b| b.iter(|| runtime.block_on(async { dispatcher.run(&mut callback()).await })),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = per_request
}
criterion_main!(benches);
