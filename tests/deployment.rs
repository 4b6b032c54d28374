//! The container image and the Kubernetes manifests (`Dockerfile`, `deploy/`): the manifests
//! validate against Kubernetes' API schemas offline, they fit what the host does (probes, grace
//! period, secrets, a read-only root), and the host serves with their config as they run it.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::{GO_ON, KICK_PATH, Server, kick_body};

fn manifests() -> Vec<PathBuf> {
    let dir = common::repo_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn manifest(name: &str) -> serde_json::Value {
    let path = common::repo_root().join("deploy/kubernetes").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The main container of the Deployment.
fn container(deployment: &serde_json::Value) -> &serde_json::Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn the_kubernetes_manifests_validate_against_the_api_schemas() {
    common::toolchains();
    let validator = common::repo_root().join(".tools/k8s/bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "{} is missing: run scripts/install-toolchains.sh",
        validator.display()
    );
    let files = manifests();
    assert!(files.len() >= 6, "{files:?}");
    // The oldest Kubernetes still supported upstream when this was written, and the newest the
    // validator knows. --strict: an unknown field (a typo) fails too.
    for version in ["1.31", "1.37"] {
        let output = Command::new(&validator)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{report}");
        assert_eq!(
            report.matches(" passed for resource ").count(),
            files.len(),
            "{report}"
        );
    }
    // And a broken one is caught.
    let broken = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(common::repo_root().join("deploy/kubernetes/deployment.yaml"))
            .unwrap()
            .replace("failureThreshold:", "failureTreshold:");
    std::fs::write(broken.path().join("deployment.yaml"), text).unwrap();
    let status = Command::new(&validator)
        .args(["--strict", "--quiet"])
        .arg(broken.path().join("deployment.yaml"))
        .status()
        .unwrap();
    assert!(!status.success());
}

#[test]
fn the_manifests_fit_the_host() {
    let deployment = manifest("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let main = container(&deployment);
    let port = |name: &str| {
        main["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(main["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(main["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(main["readinessProbe"]["httpGet"]["port"], "admin");
    let args: Vec<&str> = main["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "serve",
            "--admin-listen",
            &format!("0.0.0.0:{}", port("admin"))
        ]
    );
    // The pod gets to finish what it answers: the preStop pause, then OpenIM's 15 s cap on a
    // callback (the host's drain), within the grace period.
    let pause: u64 = main["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > pause + 15, "grace {grace} s, preStop {pause} s");
    // Non-root on a read-only root filesystem.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(main["securityContext"]["readOnlyRootFilesystem"], true);
    // Secrets come from the Secret, by keys it has.
    let secret = manifest("secret.yaml");
    for env in main["env"].as_array().unwrap() {
        if let Some(key) = env["valueFrom"]["secretKeyRef"]["key"].as_str() {
            assert!(
                secret["stringData"][key].is_string(),
                "{key} not in the Secret"
            );
        }
    }
    // The Service and the budget select the pods; the autoscaler scales the Deployment.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&manifest("service.yaml")["spec"]["selector"], labels);
    assert_eq!(
        &manifest("poddisruptionbudget.yaml")["spec"]["selector"]["matchLabels"],
        labels
    );
    assert_eq!(
        manifest("horizontalpodautoscaler.yaml")["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
}

/// The value of the env var `name` the Deployment sets (plain values only).
fn env_value<'a>(container: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

#[test]
fn the_host_serves_with_the_configmap_as_the_deployment_runs_it() {
    let redis = common::redis();
    let deployment = manifest("deployment.yaml");
    let main = container(&deployment);
    assert_eq!(
        env_value(main, "CALLBACK_HOST_CONFIG"),
        Some("/etc/callback-host/callback-host.toml")
    );
    let config = manifest("configmap.yaml")["data"]["callback-host.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    // The example plugins, as the init container copies them; the Secret's two values from the
    // environment, as the Deployment gives them; loopback ports instead of the pod's.
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for file in ["10-guard.wasm", "40-rate-limit.wasm"] {
        std::fs::copy(common::example(file), plugins.join(file)).unwrap();
    }
    let server = Server::start_in_env(
        dir,
        &config,
        &["--admin-listen", "127.0.0.1:0"],
        &[
            ("CALLBACK_HOST_BASIC_PASSWORD", "s3cret-from-the-secret"),
            ("CALLBACK_HOST_REDIS_URL", &redis.url),
        ],
    );
    let admin = server.admin_addr.clone().unwrap();
    // The image's health check, and the readiness the Deployment probes.
    let probe = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_callback-host"))
            .args(["probe", &format!("http://{admin}{path}")])
            .status()
            .unwrap()
            .success()
    };
    assert!(probe("/healthz") && probe("/readyz"));
    // OpenIM's call, with the Basic credentials of its webhook url.
    let body = kick_body("G", &["u"], "r");
    let call = |authorization: Option<&str>| {
        let mut request = format!(
            "POST {KICK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; charset=utf-8\r\n\
             operationID: op-k8s\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(value) = authorization {
            request.push_str(&format!("Authorization: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        server.raw(request.as_bytes())
    };
    assert_eq!(call(None).status, 401);
    // base64("openim:s3cret-from-the-secret")
    let answer = call(Some("Basic b3BlbmltOnMzY3JldC1mcm9tLXRoZS1zZWNyZXQ="));
    assert_eq!((answer.status, answer.body.as_str()), (200, GO_ON));
    // Its state is the Redis the Secret names: without it, not ready.
    drop(redis);
    server.wait_until("/readyz to fail", || !probe("/readyz"));
    assert!(probe("/healthz"));
}

/// The metric names an expression uses: the `callback_host_*` words in it. Recording rules'
/// names (`level:metric:operations`) are the rules' own, not the host's: left out.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("callback_host_") && !word.contains(':'))
        .map(str::to_owned)
        .collect()
}

/// Every series name a `/metrics` text can hold: each `# TYPE` line's family, with the
/// suffixes its type adds (`_total`; `_bucket`, `_sum`, `_count`).
fn exported(metrics: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in metrics.lines() {
        let Some(declared) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = declared.split_once(' ').unwrap();
        match kind {
            "counter" => {
                names.insert(format!("{family}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{family}{suffix}"));
                }
            }
            _ => {
                names.insert(family.to_owned());
            }
        }
    }
    names
}

/// The expressions of the alert and recording rules, and of the Grafana dashboard's panels and
/// variables.
fn rule_and_dashboard_expressions() -> Vec<(String, String)> {
    let root = common::repo_root().join("deploy");
    let rules: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("prometheus/callback-host.rules.yml")).unwrap(),
    )
    .unwrap();
    let mut expressions = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
            expressions.push((
                format!("rule {name}"),
                rule["expr"].as_str().unwrap().into(),
            ));
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana/callback-host.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            expressions.push((
                format!("panel {}", panel["title"]),
                target["expr"].as_str().unwrap().into(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            expressions.push((format!("variable {}", variable["name"]), query.into()));
        }
    }
    expressions
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    common::toolchains();
    let dir = common::repo_root().join("deploy/prometheus");
    for args in [
        ["check", "rules", "callback-host.rules.yml"],
        ["test", "rules", "callback-host.rules.test.yml"],
    ] {
        let output = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_metric_the_rules_and_the_dashboard_query_is_one_a_running_host_exports() {
    // A host whose every metric family has a sample: a plugin that fails, one that answers a
    // misread refusal, a shadow, a queue, a rejected callback, an OpenIM API call (to an address
    // where nothing listens: its token fetch fails).
    let queue = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(
        &[
            ("10-hostile.wasm", common::component("hostile")),
            ("20-shadow.wasm", common::example("10-guard.wasm")),
            ("61-welcome.wasm", common::example("61-welcome.wasm")),
        ],
        &format!(
            "shadow_plugins = [\"20-shadow\"]\n\
             [plugin_grants.61-welcome]\nopenim_api = [\"send-message\"]\n\
             [openim_api]\nurl = \"http://127.0.0.1:1\"\nadmin_user = \"imAdmin\"\nsecret = \"x\"\n\
             [commands.callbackAfterKickGroupCommand]\ndelivery = \"queued\"\n\
             [queue]\npath = {:?}\n",
            queue.path().join("queue.redb").to_str().unwrap()
        ),
        &["--admin-listen", "127.0.0.1:0"],
    );
    for reason in ["misread", "panic", "fine"] {
        assert_eq!(server.kick(&["u1"], reason).status, 200);
    }
    assert_eq!(
        server.post("/callbackExample/callbackNoSuch", "{}").status,
        404
    );
    let join = common::request_fixture("callbackAfterJoinGroupCommand");
    assert_eq!(
        server
            .post("/callbackExample/callbackAfterJoinGroupCommand", &join)
            .status,
        200
    );
    server.wait_until("the shadow and the misread refusal to be counted", || {
        server.metric("callback_host_shadow_total{") > 0.0
            && server.metric("callback_host_misread_refusals_total{") > 0.0
            && server.metric("callback_host_openim_api_token_fetches_total{") > 0.0
    });
    let metrics = Server::get(server.admin_addr.as_deref().unwrap(), "/metrics").body;
    let exported = exported(&metrics);
    let mut missing = Vec::new();
    let expressions = rule_and_dashboard_expressions();
    assert!(expressions.len() > 30, "{expressions:?}");
    // An alert may use a recording rule of the file instead (which uses the host's metrics).
    let recorded: Vec<String> = expressions
        .iter()
        .filter_map(|(place, _)| place.strip_prefix("rule "))
        .filter(|name| name.contains(':'))
        .map(str::to_owned)
        .collect();
    for (place, expr) in &expressions {
        let names = metric_names(expr);
        assert!(
            !names.is_empty() || recorded.iter().any(|r| expr.contains(r.as_str())),
            "{place} names no metric of the host: {expr}"
        );
        missing.extend(
            names
                .into_iter()
                .filter(|name| !exported.contains(name))
                .map(|name| format!("{place}: {name}")),
        );
    }
    assert!(missing.is_empty(), "not exported: {missing:?}\n{metrics}");
    // The check itself tells a name that is not there.
    assert!(!exported.contains("callback_host_request_total"));
    assert!(exported.contains("callback_host_requests_total"));
}

/// Removes what `podman-compose --dry-run` creates all the same (its volumes and network).
struct ComposeProject(String);

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let project = &self.0;
        for volume in ["callback-host-cache", "callback-host-data"] {
            let _ = Command::new("podman")
                .args(["volume", "rm", "--force", &format!("{project}_{volume}")])
                .output();
        }
        let _ = Command::new("podman")
            .args(["network", "rm", "--force", &format!("{project}_openim")])
            .output();
    }
}

#[test]
fn the_compose_file_joins_openims_deployment_and_points_its_webhook_url_at_the_host() {
    if Command::new("podman-compose")
        .arg("version")
        .output()
        .is_err()
    {
        common::cannot_run(
            "the Compose file test",
            "podman-compose is not installed (Debian's podman-compose)",
        );
        return;
    }
    // OpenIM's docker-compose.yaml (openimsdk/openim-docker) as far as ours relies on it: the
    // service openim-server on the network openim, with environment variables of its own.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yaml"),
        "networks:\n  openim:\n    driver: bridge\n\
         services:\n  openim-server:\n    image: openim/openim-server:v3.8.3-patch.15\n\
         \x20   container_name: openim-server\n    environment:\n\
         \x20     - IMENV_REDIS_ADDRESS=redis:6379\n    networks:\n      - openim\n",
    )
    .unwrap();
    let ours = common::repo_root().join("deploy/compose/callback-host.yaml");
    let project = ComposeProject(format!("cbhcompose{}", std::process::id()));
    let compose = |password: Option<&str>| {
        let mut command = Command::new("podman-compose");
        command
            .current_dir(dir.path())
            .args([
                "--dry-run",
                "-p",
                &project.0,
                "-f",
                "docker-compose.yaml",
                "-f",
            ])
            .arg(&ours)
            .args(["up", "--detach"])
            .env_remove("CALLBACK_HOST_BASIC_PASSWORD");
        if let Some(password) = password {
            command.env("CALLBACK_HOST_BASIC_PASSWORD", password);
        }
        let output = command.output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    // Without the password it refuses, and says what to set.
    assert!(
        compose(None).contains("set CALLBACK_HOST_BASIC_PASSWORD"),
        "{}",
        compose(None)
    );
    let said = compose(Some("compose-pw"));
    let merged = said
        .split_once("** merged:")
        .and_then(|(_, rest)| rest.split_once("** excluding"))
        .unwrap_or_else(|| panic!("no merged config in:\n{said}"))
        .0;
    let merged: serde_json::Value = serde_json::from_str(merged).unwrap();
    let host = &merged["services"]["callback-host"];
    assert_eq!(host["read_only"], true, "{host}");
    assert_eq!(host["networks"], serde_json::json!(["openim"]), "{host}");
    assert_eq!(
        host["volumes"],
        serde_json::json!(["callback-host-cache:/cache", "callback-host-data:/data"])
    );
    assert_eq!(
        host["environment"]["CALLBACK_HOST_BASIC_PASSWORD"],
        "compose-pw"
    );
    // OpenIM keeps its own settings and gets the url: the image's user, port and any prefix.
    let openim = &merged["services"]["openim-server"]["environment"];
    assert_eq!(openim["IMENV_REDIS_ADDRESS"], "redis:6379", "{openim}");
    let url = openim["IMENV_WEBHOOKS_URL"].as_str().unwrap();
    assert_eq!(
        url,
        "http://openim:compose-pw@callback-host:10006/callbackExample"
    );
    let config =
        std::fs::read_to_string(common::repo_root().join("deploy/container.toml")).unwrap();
    assert!(config.contains("basic_user = \"openim\"") && config.contains(":10006\""));
    // The container it would run: read-only, on OpenIM's network under the url's name.
    let run = said
        .lines()
        .find(|l| l.starts_with("podman run --name=callback-host"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        run.contains("--read-only") && run.contains("--network-alias callback-host"),
        "{run}"
    );
}
