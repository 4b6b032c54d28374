//! `callback-host new LANG NAME [--callback CMD] [--openim-api]`: a plugin project for one
//! command that builds and passes `check` as generated; with `--openim-api` its world also
//! imports OpenIM's API (`openim:callback/openim-api`, granted in the config). The kick (the
//! default) gets a small working guard; any other command gets a plugin that logs the request and
//! lets it go on, its answer written out from the command's shapes so every change it may make is
//! there to fill in. The values the templates are filled with are made in [`vars`].

mod vars;

use std::path::{Path, PathBuf};

use crate::protocol::schema::Catalog;
use vars::vars;

/// The kick callback, whose templates are a working example.
const KICK: &str = "callbackAfterKickGroupCommand";

/// OpenIM's API interface, copied into a project made with `--openim-api`.
const OPENIM_API_WIT: &str = include_str!("../../../../wit/openim-api.wit");

/// The world of a project made with `--openim-api`.
const WITH_OPENIM_API: &str = "package openim:callback@0.1.0;

/// This plugin's world: its callback, and OpenIM's API through the host (grant the operations it
/// calls in `[plugin_grants.<name>] openim_api = [...]`; see docs/openim-api.md).
world {{world}} {
    include {{base_world}};
    import openim-api;
}
";

/// A language a project can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Python,
    Js,
    C,
    Go,
}

impl Language {
    /// The source file of a plugin for any command but the kick, and its template.
    fn callback_source(self) -> (&'static str, &'static str) {
        match self {
            Self::Rust => (
                "src/lib.rs",
                include_str!("../../../templates/rust/src/callback.rs"),
            ),
            Self::Python => (
                "app.py",
                include_str!("../../../templates/python/callback.py"),
            ),
            Self::Js => (
                "plugin.js",
                include_str!("../../../templates/js/callback.js"),
            ),
            Self::C => ("plugin.c", include_str!("../../../templates/c/callback.c")),
            Self::Go => (
                "export_openim_callback_{{module}}/plugin.go",
                include_str!("../../../templates/go/callback.go"),
            ),
        }
    }

    /// (path in the project, template text) of every file but the WIT.
    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Rust => &[
                (
                    "Cargo.toml",
                    include_str!("../../../templates/rust/Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../../../templates/rust/src/lib.rs"),
                ),
                ("build.sh", include_str!("../../../templates/rust/build.sh")),
                (
                    "openim-helpers/Cargo.toml",
                    include_str!("../../../templates/rust/openim-helpers.toml"),
                ),
                (
                    "openim-helpers/src/lib.rs",
                    include_str!("../../../../plugins/openim-helpers/src/lib.rs"),
                ),
            ],
            Self::Python => &[
                ("app.py", include_str!("../../../templates/python/app.py")),
                (
                    "openim_helpers.py",
                    include_str!("../../../../plugins/openim-helpers/python/openim_helpers.py"),
                ),
                (
                    "build.sh",
                    include_str!("../../../templates/python/build.sh"),
                ),
            ],
            Self::Js => &[
                (
                    "package.json",
                    include_str!("../../../templates/js/package.json"),
                ),
                ("plugin.js", include_str!("../../../templates/js/plugin.js")),
                (
                    "openim-helpers.js",
                    include_str!("../../../../plugins/openim-helpers/js/openim-helpers.js"),
                ),
                ("build.sh", include_str!("../../../templates/js/build.sh")),
            ],
            Self::C => &[
                ("plugin.c", include_str!("../../../templates/c/plugin.c")),
                (
                    "openim_helpers.h",
                    include_str!("../../../../plugins/openim-helpers/c/openim_helpers.h"),
                ),
                ("build.sh", include_str!("../../../templates/c/build.sh")),
            ],
            // The runtime package of Go bindings is the project's own (plugins/go-wit), copied
            // into each project so it builds without the Go module proxy.
            Self::Go => &[
                ("go.mod", include_str!("../../../templates/go/go.mod")),
                (
                    "export_openim_callback_{{module}}/plugin.go",
                    include_str!("../../../templates/go/plugin.go"),
                ),
                ("build.sh", include_str!("../../../templates/go/build.sh")),
                (
                    "openim_helpers/helpers.go",
                    include_str!("../../../../plugins/openim-helpers/go/openim_helpers/helpers.go"),
                ),
                (
                    "go-wit/go.mod",
                    include_str!("../../../../plugins/go-wit/go.mod"),
                ),
                (
                    "go-wit/wit/runtime/runtime.go",
                    include_str!("../../../../plugins/go-wit/wit/runtime/runtime.go"),
                ),
                (
                    "go-wit/wit/runtime/empty.s",
                    include_str!("../../../../plugins/go-wit/wit/runtime/empty.s"),
                ),
                (
                    "go-wit/wit/types/option.go",
                    include_str!("../../../../plugins/go-wit/wit/types/option.go"),
                ),
                (
                    "go-wit/wit/types/result.go",
                    include_str!("../../../../plugins/go-wit/wit/types/result.go"),
                ),
                (
                    "go-wit/wit/types/tuple.go",
                    include_str!("../../../../plugins/go-wit/wit/types/tuple.go"),
                ),
                (
                    "go-wit/wit/types/unit.go",
                    include_str!("../../../../plugins/go-wit/wit/types/unit.go"),
                ),
            ],
        }
    }

    /// What `--openim-api` puts in the handler, after its log line (a call that tells an operator
    /// about each callback, with what to do when it fails), and the imports that call needs.
    fn openim_api_call(self) -> (&'static str, &'static str) {
        match self {
            Self::Rust => (include_str!("../../../templates/openim-api/call.rs"), ""),
            Self::Python => (
                include_str!("../../../templates/openim-api/call.py"),
                include_str!("../../../templates/openim-api/imports.py"),
            ),
            Self::Js => (
                include_str!("../../../templates/openim-api/call.js"),
                include_str!("../../../templates/openim-api/imports.js"),
            ),
            Self::C => (include_str!("../../../templates/openim-api/call.c"), ""),
            Self::Go => (
                include_str!("../../../templates/openim-api/call.go"),
                include_str!("../../../templates/openim-api/imports.go"),
            ),
        }
    }

    /// Binary files of the project: (path, bytes).
    fn binaries(self) -> &'static [(&'static str, &'static [u8])] {
        match self {
            // The WASI adapter of this host's wasmtime release: Go builds wasip1 modules.
            Self::Go => &[(
                "wasi_snapshot_preview1.reactor.wasm",
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )],
            _ => &[],
        }
    }
}

/// Why no project was made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "invalid plugin name {0:?}: use lowercase letters, digits and '-', starting with a letter or digit"
    )]
    InvalidName(String),
    #[error(
        "unknown callback {0:?}: use a command OpenIM sends, e.g. callbackBeforeSendSingleMsgCommand"
    )]
    UnknownCallback(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lines of a `build.sh` that find the toolchains the run command installed: a project in a
/// clone's `plugins/` builds right after `scripts/run.sh`, in a shell whose PATH lacks them.
const TOOLCHAINS: &str = r#"# The toolchains scripts/run.sh installed into the callback-host clone's .tools/ (this project
# in its plugins/ folder, or deeper), used when PATH has none.
for up in .. ../.. ../../..; do
  if [ -d "$up/.tools" ]; then
    tools="$(cd "$up/.tools" && pwd)"
    PATH="$PATH:$tools/py/bin:$tools/go/bin:$tools/wizer/node_modules/.bin"
    break
  fi
done
need() { # <command> <how to get it>
  command -v "$1" >/dev/null || { echo "build.sh: $1 not found: $2" >&2; exit 1; }
}"#;

/// Writes a `language` project named `name` into `<dir>/<name>/` and returns its folder. Its
/// `build.sh` builds `<dir>/<name>.wasm`.
pub fn new_plugin(
    language: Language,
    name: &str,
    dir: &Path,
    callback: &str,
    openim_api: bool,
) -> Result<PathBuf, ScaffoldError> {
    let command = Catalog::get()
        .command(callback)
        .ok_or_else(|| ScaffoldError::UnknownCallback(callback.to_owned()))?;
    let valid = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ScaffoldError::InvalidName(name.to_owned()));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    // Cargo package names cannot start with a digit (`30-my-plugin` sets the order).
    let package = if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("plugin-{name}")
    } else {
        name.to_owned()
    };
    let crate_name = package.replace('-', "_");
    let source = (command.spec.name != KICK).then(|| language.callback_source());
    let mut wit: Vec<(String, &str)> = crate::protocol::schema::WIT_FILES
        .iter()
        .map(|(file, text)| (format!("wit/{file}"), *text))
        .collect();
    if openim_api {
        wit.extend([
            ("wit/openim-api.wit".to_owned(), OPENIM_API_WIT),
            ("wit/plugin.wit".to_owned(), WITH_OPENIM_API),
        ]);
    }
    let files = language
        .files()
        .iter()
        .map(|(path, text)| match source {
            Some((replaced, template)) if replaced == *path => (path.to_string(), template),
            _ => (path.to_string(), *text),
        })
        .chain(wit);
    let mut vars = vars(command);
    if openim_api {
        // The project's own world: the callback's, and OpenIM's API.
        for (key, value) in vars.iter_mut() {
            match *key {
                "world" => value.push_str("-with-openim-api"),
                "world_snake" => value.push_str("_with_openim_api"),
                _ => {}
            }
        }
        let world = vars.iter().find(|(k, _)| *k == "world").map(|(_, v)| v);
        let base = world.map(|w| w.trim_end_matches("-with-openim-api").to_owned());
        vars.push(("base_world", base.unwrap_or_default()));
    }
    vars.extend([
        ("name", name.to_owned()),
        ("package", package.clone()),
        ("crate", crate_name),
        ("toolchains", TOOLCHAINS.to_owned()),
    ]);
    // Whole lines of the templates: the OpenIM API call and its imports, or nothing.
    let (call, imports) = match openim_api {
        true => language.openim_api_call(),
        false => ("", ""),
    };
    let fill = |template: &str| {
        let template = template
            .replace("{{openim_api_call}}\n", call)
            .replace("{{openim_api_imports}}\n", imports);
        vars.iter().fold(template, |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
    };
    let files = files
        .map(|(relative, template)| {
            let mut text = fill(template);
            // The helpers' copy sits one folder below the project's WIT, not two as in the
            // repository.
            if relative == "openim-helpers/src/lib.rs" {
                text = text.replace("path: \"../../wit\"", "path: \"../wit\"");
            }
            (fill(&relative), text.into_bytes())
        })
        .chain(first_cases(command.spec.name, name, openim_api));
    let binaries = language
        .binaries()
        .iter()
        .map(|(relative, bytes)| (relative.to_string(), bytes.to_vec()));
    for (relative, text) in files.chain(binaries) {
        let path = root.join(&relative);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &text)?;
            if relative.ends_with(".sh") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        };
        write(&path).map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(root)
}

/// The cases `new` writes beside a project (`tests/*.toml`, run with `callback-host test
/// tests --plugins NAME.wasm`): OpenIM's request of the command goes on, for the kick the
/// template's own rule, kicking root is refused, and with OpenIM's API, the operator is told
/// (against the test runner's stand-in of OpenIM's API), also when OpenIM's API is down.
fn first_cases(command: &str, name: &str, openim_api: bool) -> Vec<(String, Vec<u8>)> {
    let mut cases = vec![(
        "tests/goes-on.toml".to_owned(),
        format!(
            "# A test case: `callback-host test tests --plugins ../{name}.wasm` runs every case here\n\
             # through the plugin as the server would. `fixture` is OpenIM's request of a command;\n\
             # [request] sets fields of it; [config] and [keyvalue] give the plugin's config values\n\
             # and key-value content; [expect] says what should come of it.\n\
             name = \"OpenIM's {command} goes on\"\n\
             fixture = \"{command}\"\n\n\
             [expect]\n\
             result = \"go_on\"\n"
        )
        .into_bytes(),
    )];
    if command == KICK {
        cases.push((
            "tests/root-is-refused.toml".to_owned(),
            format!(
                "name = \"kicking root is refused\"\n\
                 fixture = \"{command}\"\n\n\
                 [request]\n\
                 kickedUserIDs = [\"user-carol\", \"root\"]\n\n\
                 [expect]\n\
                 result = \"refused\"\n\
                 by = \"{name}\"\n\
                 err_code = 4001\n\
                 err_msg = \"root cannot be kicked\"\n"
            )
            .into_bytes(),
        ));
    }
    if openim_api {
        cases.extend([
            (
                "tests/tells-an-operator.toml".to_owned(),
                format!(
                    "# OpenIM's API is stood in for by the test runner (`[openim_api.\"<operation>\"]`\n\
                     # says how it answers; \"ok\" by default); openim_calls lists the operations\n\
                     # that reached it. The plugin needs its grant: [plugin_grants.{name}]\n\
                     # openim_api = [\"send-message\"] in the config (`new` added it to the one in force).\n\
                     name = \"OpenIM's {command} goes on, and an operator is told through OpenIM's API\"\n\
                     fixture = \"{command}\"\n\n\
                     [expect]\n\
                     result = \"go_on\"\n\
                     openim_calls = [\"send-message\"]\n"
                )
                .into_bytes(),
            ),
            (
                "tests/goes-on-when-openim-is-down.toml".to_owned(),
                format!(
                    "name = \"with OpenIM's API down, {command} still goes on\"\n\
                     fixture = \"{command}\"\n\n\
                     [openim_api.\"send-message\"]\n\
                     unavailable = true\n\n\
                     [expect]\n\
                     result = \"go_on\"\n\
                     openim_calls = [\"send-message\"]\n"
                )
                .into_bytes(),
            ),
        ]);
    }
    cases
}
