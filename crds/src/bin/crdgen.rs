//! Writes the CustomResourceDefinitions of every unyo kind to `manifests/crds/` and the Helm
//! chart's `charts/unyo/crds/` (or to the directory given as the only argument).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = match std::env::args_os().nth(1) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => unyo_crds::crdgen::COMMITTED_DIRS
            .iter()
            .map(|d| root.join(d))
            .collect(),
    };
    for dir in dirs {
        match unyo_crds::crdgen::write_all(&dir) {
            Ok(paths) => paths
                .iter()
                .for_each(|p| eprintln!("wrote {}", p.display())),
            Err(e) => {
                eprintln!("crdgen: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
