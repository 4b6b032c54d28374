//! Microbenchmarks of the per-request pieces, on the Rust guard plugin (build it first with
//! `scripts/build-plugins.sh`): JSON in, a fresh store + instantiate + call (the default),
//! a call on an instance kept from an earlier request (reuse mode), JSON out.
//!
//! `cargo bench -p callback-host`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use callback_host::bindings::{Delivery, KickRequest};
use callback_host::config::Config;
use callback_host::dispatch::{Dispatcher, Request};
use callback_host::limits::PluginLimiter;
use callback_host::metrics::Metrics;
use callback_host::plugin::load_plugin;
use callback_host::protocol::{self, CallbackResponse, KICK_COMMAND};
use callback_host::registry::CurrentPlugins;
use callback_host::sandbox::{CallTag, PluginState};
use callback_host::{engine, engine::EpochTicker};

const BODY: &[u8] = b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G001\",\"kickedUserIDs\":[\"user123\",\"user456\"],\"reason\":\"Violation of group rules\"}\n";

fn per_request(c: &mut Criterion) {
    let plugin_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/10-guard.wasm");
    assert!(plugin_path.exists(), "run scripts/build-plugins.sh first");
    let config = Arc::new(Config::default());
    let engine = engine::build_engine(&config).expect("engine");
    let linker = engine::build_linker(&engine).expect("linker");
    let _ticker = EpochTicker::start(&engine).expect("ticker");
    let bytes = std::fs::read(&plugin_path).expect("read plugin");
    let limits = config.plugin("10-guard");
    let plugin = load_plugin(&engine, &linker, None, &plugin_path, &bytes, limits).expect("plugin");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    c.bench_function("json in: parse and validate a kick body", |b| {
        b.iter(|| protocol::parse_kick(std::hint::black_box(BODY)).expect("valid"))
    });
    c.bench_function("json out: serialize an answer", |b| {
        let answer = CallbackResponse::refuse(
            10001,
            "kicking protected users is not allowed",
            "protected users: admin",
        );
        b.iter(|| std::hint::black_box(&answer).to_json())
    });

    let kick = KickRequest {
        callback_command: KICK_COMMAND.into(),
        group_id: "G001".into(),
        kicked_user_ids: vec!["user123".into(), "user456".into()],
        reason: "Violation of group rules".into(),
    };
    let delivery = Delivery {
        operation_id: "op".into(),
        command: KICK_COMMAND.into(),
        time_left_ms: 4500,
        chain_position: 0,
    };
    let tag = Arc::new(CallTag {
        plugin: "10-guard".into(),
        command: KICK_COMMAND,
        operation_id: "op".into(),
    });
    let new_store = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut store = wasmtime::Store::new(
            &engine,
            PluginState::new(
                Arc::clone(&tag),
                PluginLimiter::new(plugin.limits),
                deadline,
            ),
        );
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(u64::MAX).expect("fuel");
        store.set_epoch_deadline(u64::MAX / 2);
        store
    };

    c.bench_function("store + instantiate (no call)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut store = new_store();
                plugin
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .expect("instantiate");
            })
        })
    });
    c.bench_function(
        "store + instantiate + call (a fresh instance per request)",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut store = new_store();
                    let instance = plugin
                        .pre
                        .instantiate_async(&mut store)
                        .await
                        .expect("instantiate");
                    let guest = plugin.kick.load(&mut store, &instance).expect("load");
                    guest
                        .call_handle_kick(&mut store, &delivery, &kick)
                        .await
                        .expect("call")
                })
            })
        },
    );
    c.bench_function("call on a kept instance (reuse mode)", |b| {
        let mut store = new_store();
        let guest = runtime.block_on(async {
            let instance = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiate");
            plugin.kick.load(&mut store, &instance).expect("load")
        });
        b.iter(|| {
            runtime
                .block_on(guest.call_handle_kick(&mut store, &delivery, &kick))
                .expect("call")
        })
    });

    // The whole per-plugin path of a request: limits, permit, deadline timer, store, call, stats.
    let dispatcher = Dispatcher::new(
        engine.clone(),
        Arc::new(CurrentPlugins::default()),
        Arc::clone(&config),
        Arc::new(Metrics::default()),
    );
    c.bench_function(
        "dispatcher call_kick (what one plugin costs a request)",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let request = Request {
                        command: KICK_COMMAND,
                        operation_id: "op".into(),
                        received: Instant::now(),
                    };
                    let deadline = request.received + Duration::from_secs(4);
                    dispatcher
                        .call_kick(&plugin, 0, &request, &kick, deadline, 1_000_000_000)
                        .await
                        .expect("call")
                })
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = per_request
}
criterion_main!(benches);
