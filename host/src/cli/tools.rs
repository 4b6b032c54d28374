//! The plugin authors' tools: `check` (what a file handles and imports), `call` (one request
//! through a plugin under the configured limits), `new` (a plugin project), `replay` (recorded
//! callbacks or dead letters through a plugin directory).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use callback_host::authoring::scaffold::Language;
use callback_host::config::Config;

use super::{ConfigFile, init_logging, init_logging_at, runtime};

/// The config of a tool: the file's (or the defaults), with the compile cache given on the
/// command line. Says on stderr which file is in force.
fn tool_config(config: &ConfigFile, cache_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    eprintln!("{}", config.describe());
    let mut config = config.load()?;
    if let Some(dir) = cache_dir {
        config.cache_dir = (!dir.as_os_str().is_empty()).then_some(dir);
    }
    Ok(config)
}

pub fn check(file: &Path, config: &ConfigFile, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let report = callback_host::authoring::tools::check(file, &tool_config(config, cache_dir)?)
        .map_err(|error| config.hint(error.into()))?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "ok: {} handles {} callback{}",
        file.display(),
        report.handles.len(),
        if report.handles.len() == 1 { "" } else { "s" }
    )?;
    for (command, how) in &report.handles {
        writeln!(out, "  handles {command}  [{}]", how.interface())?;
    }
    for export in &report.exports {
        writeln!(out, "  exports {export}")?;
    }
    for (import, status) in &report.imports {
        writeln!(out, "  imports {import}  [{status}]")?;
    }
    Ok(())
}

pub fn call(
    file: &Path,
    request: Option<&Path>,
    config_file: &ConfigFile,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let body = match request {
        Some(path) if path == Path::new("-") => std::io::read_to_string(std::io::stdin())?,
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => callback_host::authoring::tools::SAMPLE_KICK.to_owned(),
    };
    let config = Arc::new(tool_config(config_file, cache_dir)?);
    let _logging = init_logging(false);
    let report = runtime()?
        .block_on(callback_host::authoring::tools::call(file, config, &body))
        .map_err(|error| config_file.hint(error.into()))?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", String::from_utf8_lossy(&report.answer))?;
    if let Some(own) = &report.misread_refusal {
        eprintln!(
            "warning: the plugin answered nextCode 1 with actionCode {} (errCode {}): OpenIM reads \
             that as go on, not a refusal; to refuse, answer actionCode 0 with nextCode 1",
            own.action_code, own.err_code
        );
    }
    if let Some(stats) = report.stats {
        eprintln!(
            "fuel used: {}, time: {:.3} ms, peak memory: {} KiB",
            stats.fuel_used,
            stats.elapsed.as_secs_f64() * 1000.0,
            stats.peak_memory_bytes / 1024
        );
    }
    if let Some(failure) = report.failure {
        anyhow::bail!(
            "plugin failed ({}): {failure}; the answer above is the failure policy's",
            failure.kind()
        );
    }
    Ok(())
}

/// `test`: runs the cases, prints each one's verdict, fails when any did not pass.
pub fn test(
    cases: &[PathBuf],
    plugins: &Path,
    config_file: &ConfigFile,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    use callback_host::authoring::cases::{self, Verdict};
    let config = tool_config(config_file, cache_dir)?;
    // Only the host's errors: what the plugins log shows with RUST_LOG=info.
    let _logging = init_logging_at(false, "error");
    let files = cases::case_files(cases)?;
    let outcomes = runtime()?
        .block_on(cases::run(plugins, config, &files))
        .map_err(|error| config_file.hint(error))?;
    let mut out = std::io::stdout();
    let (mut passed, mut failed) = (0, 0);
    for outcome in &outcomes {
        let place = outcome.file.display();
        match &outcome.verdict {
            Verdict::Pass => {
                passed += 1;
                writeln!(out, "pass  {}  ({place})", outcome.name)?;
            }
            Verdict::Fail(differences) => {
                failed += 1;
                writeln!(out, "FAIL  {}  ({place})", outcome.name)?;
                for d in differences {
                    writeln!(
                        out,
                        "      {}: expected {}, got {}",
                        d.field, d.expected, d.got
                    )?;
                }
            }
            Verdict::Error(error) => {
                failed += 1;
                writeln!(
                    out,
                    "ERROR {}  ({place})
      {error:#}",
                    outcome.name
                )?;
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} cases did not pass",
        outcomes.len()
    );
    Ok(())
}

/// `new`: a plugin project for `callback` in `dir/name/`; with OpenIM's API (`openim_api`, the
/// config file in force), the grant its template needs added to that file.
pub fn new(
    language: Language,
    name: &str,
    dir: &Path,
    callback: &str,
    openim_api: Option<ConfigFile>,
) -> anyhow::Result<()> {
    let root = callback_host::authoring::scaffold::new_plugin(
        language,
        name,
        dir,
        callback,
        openim_api.is_some(),
    )?;
    println!(
        "created {}: run {}/build.sh to build {}",
        root.display(),
        root.display(),
        dir.join(format!("{name}.wasm")).display()
    );
    let Some(config) = openim_api else {
        return Ok(());
    };
    let section = format!("[plugin_grants.{name}]");
    let grant = format!("{section}\nopenim_api = [\"send-message\"]");
    match config.path() {
        Some(path) => match add_grant(path, &section, &grant)? {
            true => println!(
                "its code sends a message through OpenIM's API: added to {}:\n  {}",
                path.display(),
                grant.replace('\n', "\n  ")
            ),
            false => println!(
                "its code sends a message through OpenIM's API: {} already has {section}; make \
                 sure its openim_api lists \"send-message\"",
                path.display()
            ),
        },
        None => println!(
            "its code sends a message through OpenIM's API: grant it in your config file \
             (there is no ./callback-host.toml here, and no --config):\n  {}",
            grant.replace('\n', "\n  ")
        ),
    }
    println!(
        "a running server applies a new grant at its next restart; OpenIM's address and admin \
         user go in [openim_api] (docs/openim-api.md)"
    );
    Ok(())
}

/// Appends `grant` (whose first line is `section`) to the config file at `path` unless it has
/// that section already; false when it had. The file must load before and after: if it no longer
/// does (the plugin's grants written another way, say), it is restored and the error returned.
fn add_grant(path: &Path, section: &str, grant: &str) -> anyhow::Result<bool> {
    let before =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if before
        .lines()
        .any(|line| line.trim_start().starts_with(section))
    {
        return Ok(false);
    }
    Config::load(path).context("the grant was not added: the config file does not load")?;
    let separator = if before.is_empty() || before.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let after = format!(
        "{before}{separator}\n# Added by `callback-host new --openim-api`: what its template calls.\n{grant}\n"
    );
    std::fs::write(path, &after).with_context(|| format!("writing {}", path.display()))?;
    if let Err(error) = Config::load(path) {
        std::fs::write(path, before).with_context(|| format!("restoring {}", path.display()))?;
        return Err(error)
            .with_context(|| format!("adding {section} to {} (left as it was)", path.display()));
    }
    Ok(true)
}

/// What `replay` runs through the plugins.
pub enum Replayed {
    /// A record file (the configured one when `None`).
    Recorded(Option<PathBuf>),
    /// The queue's dead letters.
    DeadLetters,
}

/// `replay`: recorded callbacks or dead letters through the plugins of `plugins`.
pub fn replay(
    plugins: PathBuf,
    replayed: Replayed,
    requeue: bool,
    config: &ConfigFile,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = tool_config(config, cache_dir)?;
    let source = match replayed {
        Replayed::DeadLetters => callback_host::authoring::replay::Source::DeadLetters,
        Replayed::Recorded(file) => callback_host::authoring::replay::Source::Recorded(
            file.unwrap_or_else(|| config.record.path.clone()),
        ),
    };
    let _log = init_logging(false);
    runtime()?.block_on(callback_host::authoring::replay::replay(
        &config,
        plugins,
        source,
        requeue,
        &mut std::io::stdout(),
    ))?;
    Ok(())
}
