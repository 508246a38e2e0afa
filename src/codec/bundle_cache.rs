//! One loaded bundle per process for every user that asks for the same model with the same
//! runtime settings.
//!
//! A bundle's ONNX Runtime sessions cost about 60 MB of memory and 0.15 s to load on the CPU
//! (more on a GPU, where each session also holds its own device arena). A relay that decodes one
//! stream at several levels, or an application with many encoders, would otherwise pay that per
//! element. Sharing has a price: a session runs one call at a time, so users of one bundle take
//! turns per network (entropy coding, pixel conversion and the other networks still overlap).
//!
//! Entries are weak: a bundle lives while someone uses it and is loaded afresh afterwards. The key
//! includes `model.json`'s size and modification time, so a re-exported model is picked up by the
//! next element that starts without restarting the process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use super::{Bundle, Error, RuntimeOptions};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    dir: PathBuf,
    json_stamp: Option<(u64, SystemTime)>,
    opts: RuntimeOptions,
}

impl Key {
    fn new(dir: &Path, opts: &RuntimeOptions) -> Key {
        // A path that cannot be canonicalised will fail to load anyway; keep it as given.
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let json_stamp = std::fs::metadata(dir.join("model.json"))
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        Key {
            dir,
            json_stamp,
            opts: opts.clone(),
        }
    }
}

static CACHE: Mutex<Vec<(Key, Weak<Bundle>)>> = Mutex::new(Vec::new());

impl Bundle {
    /// Like [`Bundle::load`], but returns the bundle another caller in this process already
    /// loaded from the same directory with the same options, while that one is still in use.
    /// The second value is true when the bundle was reused rather than loaded.
    ///
    /// Loads run one at a time (under the cache's lock), so two elements starting together do
    /// not both load the model.
    pub fn load_shared(dir: &Path, opts: &RuntimeOptions) -> Result<(Arc<Bundle>, bool), Error> {
        let key = Key::new(dir, opts);
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(_, weak)| weak.strong_count() > 0);
        if let Some(bundle) = cache
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok((bundle, true));
        }
        let bundle = Bundle::load(dir, opts)?;
        cache.push((key, Arc::downgrade(&bundle)));
        Ok((bundle, false))
    }
}
