//! What the bench measures: each target (native baselines, the host with each plugin), the
//! settings it runs with and how it is served.

use crate::Workload;

/// What is measured.
#[derive(Clone)]
pub(crate) struct Target {
    /// Name given to `--targets`.
    pub(crate) key: &'static str,
    /// Name in the table.
    pub(crate) name: &'static str,
    /// What serves the requests.
    pub(crate) served: Served,
    /// The plugin's `reuse_instances` (1: a fresh instance per request).
    pub(crate) reuse: u32,
    /// How its host is set up beyond the plugin and its reuse.
    pub(crate) settings: Settings,
    /// The load it gets; its ratio is to the native baseline of the same workload.
    pub(crate) workload: Workload,
}

/// How a target's host is set up: written into the config file `callback-host serve` reads.
#[derive(Clone, Copy)]
pub(crate) struct Settings {
    /// `fuel_metering`.
    pub(crate) fuel: bool,
    /// `epoch_interruption`.
    pub(crate) epoch: bool,
    /// The plugin's own `max_concurrent_calls`.
    pub(crate) plugin_calls: Option<u32>,
    /// The kick delivered through the durable queue (durability `process`), answered once stored.
    pub(crate) queued: bool,
    /// Instances built ahead (`stock_instances` at its default); `false`: `stock_instances = 0`.
    pub(crate) stock: bool,
    /// `warm_up_call = true`: each instance built ahead runs one canned call first.
    pub(crate) warm_up: bool,
}

impl Settings {
    const DEFAULT: Self = Self {
        fuel: true,
        epoch: true,
        plugin_calls: None,
        queued: false,
        stock: true,
        warm_up: false,
    };
}

/// What serves a target's requests.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// The native baseline of the workload (no host, no Wasm).
    Native,
    /// The host with no plugin: its own cost (HTTP, parsing, routing, the answer, metrics).
    HostAlone,
    /// The host with this example plugin.
    Plugin(&'static str),
}

impl Served {
    pub(crate) fn plugin(self) -> Option<&'static str> {
        match self {
            Self::Plugin(file) => Some(file),
            Self::Native | Self::HostAlone => None,
        }
    }
}

pub(crate) const TARGETS: &[Target] = &[
    Target {
        key: "native",
        name: "native (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "host-alone",
        name: "host with no plugin (HTTP, parse, answer)",
        served: Served::HostAlone,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "rust",
        name: "Rust guard",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "c",
        name: "C guard",
        served: Served::Plugin("11-guard-c.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "js",
        name: "JavaScript guard",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "python",
        name: "Python guard",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "go",
        name: "Go guard",
        served: Served::Plugin("14-guard-go.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "rust-nostock",
        name: "Rust guard, stock_instances = 0",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "c-nostock",
        name: "C guard, stock_instances = 0",
        served: Served::Plugin("11-guard-c.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "js-nostock",
        name: "JavaScript guard, stock_instances = 0",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "python-nostock",
        name: "Python guard, stock_instances = 0",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "go-nostock",
        name: "Go guard, stock_instances = 0",
        served: Served::Plugin("14-guard-go.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "js-capped",
        name: "JavaScript guard, max_concurrent_calls = 2",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1,
        settings: Settings {
            plugin_calls: Some(2),
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "python-capped",
        name: "Python guard, max_concurrent_calls = 2",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1,
        settings: Settings {
            plugin_calls: Some(2),
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "rust-nofuel",
        name: "Rust guard, fuel_metering = false",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            fuel: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "rust-noepoch",
        name: "Rust guard, epoch_interruption = false",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            epoch: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "rust-reuse",
        name: "Rust guard, reuse_instances = 1000",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "js-reuse",
        name: "JavaScript guard, reuse_instances = 1000",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "python-reuse",
        name: "Python guard, reuse_instances = 1000",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "js-warm",
        name: "JavaScript guard, warm_up_call = true",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1,
        settings: Settings {
            warm_up: true,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "python-warm",
        name: "Python guard, warm_up_call = true",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1,
        settings: Settings {
            warm_up: true,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "go-reuse",
        name: "Go guard, reuse_instances = 1000",
        served: Served::Plugin("14-guard-go.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "rust-queued",
        name: "Rust guard, delivery = \"queued\" (answered once stored)",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            queued: true,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "native-ratelimit",
        name: "native rate limit, embedded store (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitEmbedded,
    },
    Target {
        key: "rust-ratelimit",
        name: "Rust rate limit, embedded store (1 increment)",
        served: Served::Plugin("40-rate-limit.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitEmbedded,
    },
    Target {
        key: "native-ratelimit-redis",
        name: "native rate limit, Redis (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitRedis,
    },
    Target {
        key: "rust-ratelimit-redis",
        name: "Rust rate limit, Redis (1 increment)",
        served: Served::Plugin("40-rate-limit.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitRedis,
    },
    Target {
        key: "native-moderation",
        name: "native moderation (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Moderation,
    },
    Target {
        key: "rust-moderation",
        name: "Rust moderation (send + modify)",
        served: Served::Plugin("30-moderation.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Moderation,
    },
    Target {
        key: "rust-moderation-reuse",
        name: "Rust moderation, reuse_instances = 1000",
        served: Served::Plugin("30-moderation.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Moderation,
    },
];
