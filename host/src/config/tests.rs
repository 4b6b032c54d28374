use super::*;

#[test]
fn commands_inherit_defaults_and_timeouts_follow_openim() {
    let config = Config::parse(
        Path::new("t.toml"),
        r#"
        [defaults]
        fuel = 1000
        [commands.callbackAfterKickGroupCommand]
        timeout_secs = 30
        failure_policy = "refuse"
        "#,
    )
    .unwrap();
    let kick = config.command("callbackAfterKickGroupCommand");
    assert_eq!(kick.timeout, Duration::from_secs(15));
    assert_eq!(kick.fuel, 1000);
    assert_eq!(kick.failure_policy, FailurePolicy::Refuse);
    assert_eq!(
        config.command("callbackAfterQuitGroupCommand").timeout,
        Duration::from_secs(5)
    );
    assert_eq!(effective_timeout(0), Duration::from_secs(15));
}

#[test]
fn rejects_typos_with_the_key() {
    let err =
        Config::parse(Path::new("t.toml"), "[commands.callbackAfterKickGroup]\n").unwrap_err();
    assert!(
        err.to_string().contains("commands.callbackAfterKickGroup"),
        "{err}"
    );
    let err = Config::parse(Path::new("t.toml"), "[defaults]\ntimeout = 3\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `timeout`"), "{err}");
    let err = Config::parse(Path::new("t.toml"), "safety_margin_ms = 9000\n").unwrap_err();
    assert!(err.to_string().contains("safety_margin_ms"), "{err}");
}

#[test]
fn the_memory_budget_must_fit_a_plugin_and_the_machine() {
    let err = Config::parse(
        Path::new("t.toml"),
        "memory_budget_mib = 200\n[plugins_limits.big]\nmemory_mib = 300\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("memory_budget_mib")
            && err
                .to_string()
                .contains("less than one plugin may use (300 MiB"),
        "{err}"
    );
    let machine = machine_memory_bytes().expect("this machine reports its memory") >> 20;
    let err = Config::parse(
        Path::new("t.toml"),
        &format!("memory_budget_mib = {}\n", machine + 1024),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("more than this machine's"),
        "{err}"
    );
    let config = Config::default();
    assert!(config.memory_budget <= 1 << 30);
    assert!(config.memory_budget >= config.largest_memory_bytes());
}

#[test]
fn http_limits_and_access_are_validated() {
    let err = Config::parse(Path::new("t.toml"), "[http]\nread_timeout_ms = 5\n").unwrap_err();
    assert!(err.to_string().contains("http.read_timeout_ms"), "{err}");
    let err =
        Config::parse(Path::new("t.toml"), "[auth]\nallow = [\"10.0.0.0/33\"]\n").unwrap_err();
    assert!(err.to_string().contains("auth.allow"), "{err}");
    let config = Config::parse(
        Path::new("t.toml"),
        "listen = \"0.0.0.0:10006\"\n[auth]\nallow = [\"10.0.0.0/8\", \"192.168.1.7\"]\n",
    )
    .unwrap();
    assert_eq!(config.access.allow.as_ref().map(Vec::len), Some(2));
}

#[test]
fn the_documented_example_config_is_valid() {
    let doc = include_str!("../../../docs/configuration.md");
    let start = doc
        .find("```toml\n")
        .expect("docs/configuration.md has a toml block")
        + 8;
    let end = start + doc[start..].find("```").expect("the block ends");
    let config = Config::parse(Path::new("docs/configuration.md"), &doc[start..end]).unwrap();
    assert_eq!(config.plugin("10-guard").memory_bytes, 16 << 20);
    assert_eq!(config.listen.port(), 10006);
}

#[test]
fn queue_durability_is_process_unless_set_and_only_for_the_embedded_queue() {
    let parse = |text: &str| Config::parse(Path::new("t.toml"), text);
    assert_eq!(
        parse("").unwrap().queue.durability,
        QueueDurability::Process
    );
    assert_eq!(
        parse("[queue]\ndurability = \"machine\"\n")
            .unwrap()
            .queue
            .durability,
        QueueDurability::Machine
    );
    let err = parse("[queue]\ndurability = \"disk\"\n").unwrap_err();
    assert!(err.to_string().contains("unknown variant `disk`"), "{err}");
    let err = parse(
        "[queue]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1/\"\ndurability = \"machine\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("queue.durability") && err.to_string().contains("appendfsync"),
        "{err}"
    );
}

#[test]
fn a_plugin_may_have_its_own_cap_on_calls_at_once() {
    let config = Config::parse(
        Path::new("t.toml"),
        "[plugins_limits.13-guard-py]\nmax_concurrent_calls = 2\n",
    )
    .unwrap();
    assert_eq!(config.plugin("13-guard-py").max_concurrent_calls, Some(2));
    assert_eq!(config.plugin("10-guard").max_concurrent_calls, None);
    let err = Config::parse(
        Path::new("t.toml"),
        "[plugin_defaults]\nmax_concurrent_calls = 0\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("plugin_defaults.max_concurrent_calls"),
        "{err}"
    );
}

#[test]
fn warm_up_call_is_refused_where_no_instance_is_built_ahead() {
    for (limits, why) in [
        ("stock_instances = 0", "needs stock_instances of at least 1"),
        ("reuse_instances = 5", "reuse mode keeps its own instances"),
    ] {
        let text = format!("[plugins_limits.p]\nwarm_up_call = true\n{limits}\n");
        let err = Config::parse(Path::new("t.toml"), &text).unwrap_err();
        assert!(
            err.to_string().contains("plugins_limits.p.warm_up_call"),
            "{err}"
        );
        assert!(err.to_string().contains(why), "{err}");
    }
    // Set for all plugins, it applies where it can.
    let config = Config::parse(
        Path::new("t.toml"),
        "[plugin_defaults]\nwarm_up_call = true\n[plugins_limits.p]\nstock_instances = 0\n",
    )
    .unwrap();
    assert!(config.plugin_defaults.warm_up_call);
}
