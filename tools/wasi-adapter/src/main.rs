//! `wasi-adapter OUT`: writes the WASI preview-1 reactor adapter, of the same wasmtime release as
//! the host, to OUT. `wasm-tools component new --adapt` turns a preview-1 module (what Go's
//! `GOOS=wasip1` builds) into a component with it. `scripts/build-plugins.sh` runs it before
//! the host is built; `callback-host new go` writes the same bytes into a new project.

use std::process::ExitCode;

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER as ADAPTER;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: wasi-adapter OUT");
        return ExitCode::from(2);
    };
    match std::fs::write(&out, ADAPTER) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("writing {}: {error}", out.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
