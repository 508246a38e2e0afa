//! The one process-wide ONNX Runtime environment.
//!
//! ONNX Runtime allows a single environment per process, so every bundle (and every element
//! instance) shares the one created here. The library is loaded at run time with
//! `ort::init_from(path)` (never `ort::init()`, which panics when the library is missing), so a
//! missing library is an ordinary error. A failed attempt leaves nothing behind: a later call
//! with a better path can still succeed.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use super::{Error, RuntimeOptions};

const LIB_NAME: &str = "libonnxruntime.so";

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Directory of the shared object (or executable) this code was loaded from, found through
/// `/proc/self/maps` (Linux); `None` elsewhere.
pub(crate) fn this_library_dir() -> Option<PathBuf> {
    let addr = this_library_dir as *const () as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        let Some((range, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            continue;
        };
        if (lo..hi).contains(&addr) {
            let path = &rest[rest.find('/')?..];
            return Path::new(path.trim_end()).parent().map(Path::to_path_buf);
        }
    }
    None
}

/// The places looked at for the library, in order. An explicit `opts.ort_library` is the only
/// candidate when set.
pub(crate) fn library_candidates(opts: &RuntimeOptions) -> Vec<PathBuf> {
    if let Some(p) = &opts.ort_library {
        return vec![p.clone()];
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".ort")
            .join("current")
            .join(LIB_NAME),
    );
    if let Some(dir) = this_library_dir() {
        // meson installs it in sic/ beside the plugin.
        out.push(dir.join("sic").join(LIB_NAME));
        out.push(dir.join(LIB_NAME));
    }
    out
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds the ONNX Runtime library `opts` points at (or the default places), without loading
/// it: explicit `ort_library`, else `ORT_DYLIB_PATH`, else `.ort/current/` of the source tree,
/// else next to the plugin library (`sic/` beside it, then beside it). The error names every
/// path tried.
pub fn resolve_ort_library(opts: &RuntimeOptions) -> Result<PathBuf, Error> {
    let candidates = library_candidates(opts);
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::Runtime(format!(
                "ONNX Runtime library not found (tried {}); run scripts/setup.sh or set ORT_DYLIB_PATH",
                list(&candidates)
            ))
        })
}

/// The shared environment, created on first use from the library `opts` resolves to. Later
/// calls return the existing environment whatever their options say.
pub(crate) fn environment(opts: &RuntimeOptions) -> Result<&'static Environment, Error> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let path = resolve_ort_library(opts)?;
    let builder = ort::init_from(&path).map_err(|e| {
        Error::Runtime(format!(
            "cannot load {}: {e}; run scripts/setup.sh or set ORT_DYLIB_PATH",
            path.display()
        ))
    })?;
    let env = builder
        .with_name("sic")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::Runtime(format!("cannot create the environment: {e}")))?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_path_is_reported() {
        let opts = RuntimeOptions {
            ort_library: Some("/nonexistent/libonnxruntime.so".into()),
            ..Default::default()
        };
        let e = resolve_ort_library(&opts).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/libonnxruntime.so"), "{e}");
        assert!(e.contains("scripts/setup.sh"), "{e}");
    }

    #[test]
    fn finds_own_directory() {
        let dir = this_library_dir().expect("maps entry for this binary");
        assert!(dir.is_dir());
    }
}
