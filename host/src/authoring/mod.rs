//! The tools plugin authors and operators run beside the server, each through the same chain
//! and plugin call the server runs:
//! - [`tools`]: `check` (what a file handles and imports) and `call` (one request through it).
//! - [`cases`]: `callback-host test`, plugin authors' test cases.
//! - [`scaffold`]: `new`, plugin projects for each language (templates in `host/templates/`).
//! - [`replay`]: `callback-host replay`, recorded callbacks or dead letters through new plugins.

pub mod cases;
pub mod replay;
pub mod scaffold;
pub mod tools;
