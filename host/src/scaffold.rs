//! `callback-host new LANG NAME`: a plugin project that builds and passes `check` as generated.

use std::path::{Path, PathBuf};

/// The WIT contract, copied into every project so it builds on its own.
const WIT: &str = include_str!("../../wit/callback.wit");

/// A language a project can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Python,
    Js,
    C,
}

impl Language {
    /// (path in the project, template text) of every file but the WIT.
    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Rust => &[
                ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
                ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
                ("build.sh", include_str!("../templates/rust/build.sh")),
            ],
            Self::Python => &[
                ("app.py", include_str!("../templates/python/app.py")),
                ("build.sh", include_str!("../templates/python/build.sh")),
            ],
            Self::Js => &[
                ("package.json", include_str!("../templates/js/package.json")),
                ("plugin.js", include_str!("../templates/js/plugin.js")),
                ("build.sh", include_str!("../templates/js/build.sh")),
            ],
            Self::C => &[
                ("plugin.c", include_str!("../templates/c/plugin.c")),
                ("build.sh", include_str!("../templates/c/build.sh")),
            ],
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
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes a `language` project named `name` into `<dir>/<name>/` and returns its folder. Its
/// `build.sh` builds `<dir>/<name>.wasm`.
pub fn new_plugin(language: Language, name: &str, dir: &Path) -> Result<PathBuf, ScaffoldError> {
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
    let files = language
        .files()
        .iter()
        .map(|(path, text)| (*path, *text))
        .chain([("wit/callback.wit", WIT)]);
    for (relative, template) in files {
        let path = root.join(relative);
        let text = template
            .replace("{{name}}", name)
            .replace("{{package}}", &package)
            .replace("{{crate}}", &crate_name);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text.as_bytes())?;
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
