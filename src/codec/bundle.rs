//! The model bundle: `model.json` (parsed and validated), its entropy models, and one ONNX
//! Runtime session per graph (docs/model.md is the contract).
//!
//! Heavy graphs (`g_a`+`h_a` in `analysis`, `g_s` in `synthesis`) run on the provider the caller
//! chose. The entropy-parameter graphs (`hyper_synthesis`, `slice_k`) always run on the CPU
//! provider, one intra-op thread, sequential execution, a fixed optimisation level, so that
//! encoder and decoder compute bit-identical means and scales.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::Environment;
use ort::ep;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::bitstream::MAX_LEVELS;
use super::entropy::{EntropyMeta, EntropyModels};
use super::tensor::crop_planes;
use super::tiling::{paste, spans, window};
use super::{Error, ExecutionProvider, RuntimeOptions, Sampling, runtime};

/// The `model.json` fields this runtime reads (unknown fields, e.g. `training`, are ignored).
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    format_version: u32,
    name: String,
    model_id: String,
    #[serde(rename = "M")]
    m: usize,
    z_channels: usize,
    hyper_channels: usize,
    slice_widths: Vec<usize>,
    levels: usize,
    pad_multiple: usize,
    default_sampling: String,
    entropy: serde_json::Value,
    graphs: GraphsMeta,
    /// Absent in bundles exported before tiling: those always run whole pictures.
    #[serde(default)]
    tiling: Option<TilingMeta>,
    /// `["y_hat"]`, or `["y_hat", "level"]` where g_s is told the level (docs/model.md).
    /// Absent in bundles exported before the level input: those take `y_hat` alone.
    #[serde(default = "plain_synthesis_inputs")]
    synthesis_inputs: Vec<String>,
}

fn plain_synthesis_inputs() -> Vec<String> {
    vec!["y_hat".into()]
}

impl Metadata {
    fn synthesis_takes_level(&self) -> bool {
        self.synthesis_inputs.len() == 2
    }
}

/// Margins a tile needs so that its core comes out as in a whole-picture run (docs/model.md).
#[derive(Debug, Clone, Deserialize)]
struct TilingMeta {
    /// Pixels around a tile of the analysis graph (y and z), a multiple of 64.
    analysis_halo: usize,
    /// Latent positions around a tile of the synthesis graph.
    synthesis_halo: usize,
}

#[derive(Debug, Clone, Deserialize)]
struct GraphsMeta {
    analysis: String,
    hyper_synthesis: String,
    slices: Vec<String>,
    synthesis: String,
}

/// Bounds on the stated tile margins: far beyond what a network of this kind needs, small
/// enough that a hostile `model.json` cannot make tiles of absurd size.
const MAX_ANALYSIS_HALO: usize = 1024;
const MAX_SYNTHESIS_HALO: usize = 64;

/// `model.json` format this runtime reads.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// One graph: its file name (for messages) and its session (`run` needs `&mut`).
struct Graph {
    file: String,
    session: Mutex<Session>,
}

/// A graph output: shape and data.
pub(crate) struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Graph {
    fn run(&self, inputs: &[(&str, &[usize], &[f32])]) -> Result<Vec<(String, Output)>, Error> {
        let fail = |e: ort::Error| Error::Inference(format!("{}: {e}", self.file));
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
        for (name, shape, data) in inputs {
            let t = TensorRef::from_array_view((shape.to_vec(), *data)).map_err(fail)?;
            values.push((Cow::Borrowed(*name), t.into()));
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(values).map_err(fail)?;
        let mut out = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(fail)?;
            let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
            out.push((
                name.to_string(),
                Output {
                    shape,
                    data: data.to_vec(),
                },
            ));
        }
        Ok(out)
    }

    /// Runs and returns the named outputs, checking their shapes.
    fn run_expect(
        &self,
        inputs: &[(&str, &[usize], &[f32])],
        expect: &[(&str, [usize; 4])],
    ) -> Result<Vec<Vec<f32>>, Error> {
        let mut outs = self.run(inputs)?;
        let mut result = Vec::with_capacity(expect.len());
        for (name, shape) in expect {
            let i = outs.iter().position(|(n, _)| n == name).ok_or_else(|| {
                Error::Inference(format!("{}: no output named {name}", self.file))
            })?;
            let (_, o) = outs.swap_remove(i);
            if o.shape != shape {
                return Err(Error::Inference(format!(
                    "{}: output {name} has shape {:?}, expected {:?}",
                    self.file, o.shape, shape
                )));
            }
            result.push(o.data);
        }
        Ok(result)
    }
}

/// Loaded model: metadata + ONNX sessions. Cheap to share between elements (Arc).
pub struct Bundle {
    dir: PathBuf,
    meta: Metadata,
    model_id: [u8; 8],
    pub(crate) entropy: EntropyModels,
    /// Channel offset `O_k` of every slice, plus `M` at the end.
    offsets: Vec<usize>,
    analysis: Graph,
    hyper_synthesis: Graph,
    slices: Vec<Graph>,
    synthesis: Graph,
    provider: ExecutionProvider,
    provider_note: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("name", &self.meta.name)
            .field("model_id", &self.model_id_hex())
            .field("dir", &self.dir)
            .field("levels", &self.meta.levels)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

fn model_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Model(format!("{}: {msg}", path.display()))
}

/// Python's `repr(float)` (what `json.dumps` writes), so the canonical JSON of `entropy`
/// hashes the same here as in the exporter.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Python prints the shortest digits that round-trip and, when the float lies exactly
    // halfway between two such strings, the even one; `{:e}` may pick the other, so take only
    // its digit count and let the exact (ties-to-even) formatting choose the digits.
    let shortest = format!("{f:e}");
    let n_digits = shortest
        .split('e')
        .next()
        .unwrap_or("")
        .bytes()
        .filter(u8::is_ascii_digit)
        .count();
    let sci = format!("{:.*e}", n_digits.saturating_sub(1), f);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// `json.dumps(v, sort_keys=True, separators=(",", ":"))` of a parsed JSON value.
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&py_float(n.as_f64().unwrap_or(f64::NAN)));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut buf = [0u16; 2];
                        for u in c.encode_utf16(&mut buf) {
                            let _ = write!(out, "\\u{u:04x}");
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(&Value::String((*k).clone()), out);
                out.push(':');
                canonical_json(&o[*k], out);
            }
            out.push('}');
        }
    }
}

fn parse_hex_id(s: &str) -> Option<[u8; 8]> {
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// A graph file name must stay inside the bundle directory.
fn check_file_name(json: &Path, what: &str, name: &str) -> Result<(), Error> {
    let p = Path::new(name);
    let plain = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if name.is_empty() || !plain {
        return Err(model_err(
            json,
            format!("graphs.{what} = {name:?} is not a file name inside the bundle"),
        ));
    }
    Ok(())
}

fn validate(json: &Path, m: &Metadata) -> Result<(), Error> {
    let err = |msg: String| Err(model_err(json, msg));
    if m.format_version != MODEL_FORMAT_VERSION {
        return err(format!(
            "format_version {} is not supported (this build reads {MODEL_FORMAT_VERSION})",
            m.format_version
        ));
    }
    if m.levels == 0 || m.levels > MAX_LEVELS as usize {
        return err(format!("levels {} out of range 1..={MAX_LEVELS}", m.levels));
    }
    if m.slice_widths.len() != m.levels {
        return err(format!(
            "slice_widths has {} entries but levels is {}",
            m.slice_widths.len(),
            m.levels
        ));
    }
    if m.slice_widths.contains(&0) {
        return err("slice_widths has a zero entry".into());
    }
    for (what, v) in [
        ("M", m.m),
        ("z_channels", m.z_channels),
        ("hyper_channels", m.hyper_channels),
    ] {
        if v == 0 || v > 8192 {
            return err(format!("{what} = {v} out of range 1..=8192"));
        }
    }
    let sum: usize = m.slice_widths.iter().sum();
    if sum != m.m {
        return err(format!("slice_widths sum to {sum}, but M is {}", m.m));
    }
    if m.pad_multiple == 0 || !m.pad_multiple.is_multiple_of(16) || m.pad_multiple > 1024 {
        return err(format!(
            "pad_multiple {} must be a multiple of 16 (at most 1024)",
            m.pad_multiple
        ));
    }
    if m.default_sampling != "uniform" && m.default_sampling != "mean" {
        return err(format!(
            "default_sampling {:?} must be \"uniform\" or \"mean\"",
            m.default_sampling
        ));
    }
    if parse_hex_id(&m.model_id).is_none() {
        return err(format!("model_id {:?} is not 16 hex digits", m.model_id));
    }
    if m.graphs.slices.len() != m.levels {
        return err(format!(
            "graphs.slices lists {} files but levels is {}",
            m.graphs.slices.len(),
            m.levels
        ));
    }
    if let Some(t) = &m.tiling {
        if !t.analysis_halo.is_multiple_of(64) || t.analysis_halo > MAX_ANALYSIS_HALO {
            return err(format!(
                "tiling.analysis_halo {} is not a multiple of 64 up to {MAX_ANALYSIS_HALO}",
                t.analysis_halo
            ));
        }
        if t.synthesis_halo > MAX_SYNTHESIS_HALO {
            return err(format!(
                "tiling.synthesis_halo {} exceeds {MAX_SYNTHESIS_HALO}",
                t.synthesis_halo
            ));
        }
    }
    if m.synthesis_inputs != ["y_hat"] && m.synthesis_inputs != ["y_hat", "level"] {
        return err(format!(
            "synthesis_inputs {:?} must be [\"y_hat\"] or [\"y_hat\", \"level\"]",
            m.synthesis_inputs
        ));
    }
    check_file_name(json, "analysis", &m.graphs.analysis)?;
    check_file_name(json, "hyper_synthesis", &m.graphs.hyper_synthesis)?;
    check_file_name(json, "synthesis", &m.graphs.synthesis)?;
    for (k, s) in m.graphs.slices.iter().enumerate() {
        check_file_name(json, &format!("slices[{k}]"), s)?;
    }
    Ok(())
}

fn builder(env: &Environment, file: &Path) -> Result<SessionBuilder, Error> {
    Session::builder(env).map_err(|e| model_err(file, e))
}

/// Session for an entropy-parameter graph: CPU, one thread, sequential, fixed optimisations.
fn param_session(env: &Environment, file: &Path, bytes: &[u8]) -> Result<Session, Error> {
    let e = |e: ort::Error<SessionBuilder>| model_err(file, e);
    builder(env, file)?
        .with_execution_providers([ep::CPU::default().with_arena_allocator(true).build()])
        .map_err(e)?
        .with_intra_threads(1)
        .map_err(e)?
        .with_inter_threads(1)
        .map_err(e)?
        .with_parallel_execution(false)
        .map_err(e)?
        .with_optimization_level(GraphOptimizationLevel::Level1)
        .map_err(e)?
        .with_deterministic_compute(true)
        .map_err(e)?
        .with_memory_pattern(false)
        .map_err(e)?
        .commit_from_memory(bytes)
        .map_err(|e| model_err(file, e))
}

/// Session for a heavy graph on `provider` (Cpu or Cuda; Auto is resolved by the caller).
fn heavy_session(
    env: &Environment,
    opts: &RuntimeOptions,
    provider: ExecutionProvider,
    file: &Path,
    bytes: &[u8],
) -> Result<Session, Error> {
    let e = |e: ort::Error<SessionBuilder>| model_err(file, e);
    // A memory pattern (ONNX Runtime's default) is one block for all of a run's activations,
    // planned after the first run of a shape and taken from the system beside the arena that
    // first run filled: from the second frame on, the heavy network held about twice the
    // memory it uses, at no gain in speed (g_s at 2080 × 2080 pixels: 4.2 GB with it, 2.4 GB
    // without, 3.3 s either way on 2 cores).
    let mut b = builder(env, file)?.with_memory_pattern(false).map_err(e)?;
    if opts.threads > 0 {
        b = b.with_intra_threads(opts.threads).map_err(e)?;
    }
    b = match provider {
        ExecutionProvider::Cuda => register_cuda(b, opts)?,
        _ => b
            .with_execution_providers([ep::CPU::default().with_arena_allocator(true).build()])
            .map_err(e)?,
    };
    b.commit_from_memory(bytes).map_err(|e| model_err(file, e))
}

#[cfg(feature = "cuda")]
fn register_cuda(b: SessionBuilder, opts: &RuntimeOptions) -> Result<SessionBuilder, Error> {
    b.with_execution_providers([ep::CUDA::default()
        .with_device_id(opts.device_id)
        .build()
        .error_on_failure()])
        .map_err(|e| {
            Error::Runtime(format!(
                "CUDA execution provider (device {}) could not be registered: {e}",
                opts.device_id
            ))
        })
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(_b: SessionBuilder, _opts: &RuntimeOptions) -> Result<SessionBuilder, Error> {
    Err(Error::Runtime(
        "execution provider 'cuda' was requested, but this build has no CUDA support \
         (rebuild with `--features cuda` and install the GPU ONNX Runtime with scripts/setup.sh --gpu)"
            .into(),
    ))
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| model_err(path, format!("cannot read: {e}")))
}

/// Checks that a session has exactly the inputs and at least the outputs docs/model.md names.
fn check_io(
    session: &Session,
    file: &Path,
    inputs: &[&str],
    outputs: &[&str],
) -> Result<(), Error> {
    let have_in: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
    let have_out: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let mut want_in = inputs.to_vec();
    want_in.sort();
    let mut sorted_in = have_in.clone();
    sorted_in.sort();
    if sorted_in != want_in {
        return Err(model_err(
            file,
            format!("graph inputs are {have_in:?}, docs/model.md wants {inputs:?}"),
        ));
    }
    for o in outputs {
        if !have_out.contains(o) {
            return Err(model_err(
                file,
                format!("graph has no output {o:?} (outputs: {have_out:?})"),
            ));
        }
    }
    Ok(())
}

impl Bundle {
    /// Loads and validates `dir/model.json` and its graphs. Initialises the process-wide ONNX
    /// Runtime environment on first use.
    pub fn load(dir: &Path, opts: &RuntimeOptions) -> Result<Arc<Bundle>, Error> {
        let json_path = dir.join("model.json");
        let text = std::fs::read_to_string(&json_path).map_err(|e| {
            model_err(
                &json_path,
                format!(
                    "cannot read: {e} (is {} a SIC model bundle?)",
                    dir.display()
                ),
            )
        })?;
        let meta: Metadata = serde_json::from_str(&text).map_err(|e| model_err(&json_path, e))?;
        validate(&json_path, &meta)?;
        let entropy_meta: EntropyMeta = serde_json::from_value(meta.entropy.clone())
            .map_err(|e| model_err(&json_path, format!("entropy: {e}")))?;
        let entropy = EntropyModels::new(&entropy_meta).map_err(|e| model_err(&json_path, e))?;
        if entropy.z.len() != meta.z_channels {
            return Err(model_err(
                &json_path,
                format!(
                    "entropy.z has {} tables but z_channels is {}",
                    entropy.z.len(),
                    meta.z_channels
                ),
            ));
        }

        // Graph files, in the order the model id hashes them.
        let mut names = vec![
            meta.graphs.analysis.clone(),
            meta.graphs.hyper_synthesis.clone(),
        ];
        names.extend(meta.graphs.slices.iter().cloned());
        names.push(meta.graphs.synthesis.clone());
        let mut hasher = Sha256::new();
        let mut files = Vec::with_capacity(names.len());
        for n in &names {
            let path = dir.join(n);
            let bytes = read_file(&path)?;
            hasher.update(&bytes);
            files.push((path, bytes));
        }
        let mut canon = String::new();
        canonical_json(&meta.entropy, &mut canon);
        hasher.update(canon.as_bytes());
        let digest = hasher.finalize();
        let mut model_id = [0u8; 8];
        model_id.copy_from_slice(&digest[..8]);
        let stated = parse_hex_id(&meta.model_id).unwrap_or_default();
        if stated != model_id {
            return Err(model_err(
                &json_path,
                format!(
                    "model_id {} does not match the graphs and entropy tables (they hash to {}); \
                     the bundle is incomplete or was modified",
                    meta.model_id,
                    super::model_id_to_hex(&model_id)
                ),
            ));
        }

        let env = runtime::environment(opts)?;

        // Resolve Auto. With CUDA compiled in, the analysis session is the probe (kept if it
        // works); its error message is the recorded reason otherwise.
        let mut probe = None;
        let (provider, provider_note) = match opts.provider {
            ExecutionProvider::Cpu => (ExecutionProvider::Cpu, "CPU requested".to_string()),
            ExecutionProvider::Cuda => (ExecutionProvider::Cuda, "CUDA requested".to_string()),
            ExecutionProvider::Auto if cfg!(feature = "cuda") => {
                let (p, b) = &files[0];
                match heavy_session(env, opts, ExecutionProvider::Cuda, p, b) {
                    Ok(s) => {
                        probe = Some(s);
                        (ExecutionProvider::Cuda, "auto: CUDA available".to_string())
                    }
                    Err(e) => (
                        ExecutionProvider::Cpu,
                        format!("auto: CUDA unavailable ({e}); using CPU"),
                    ),
                }
            }
            ExecutionProvider::Auto => (
                ExecutionProvider::Cpu,
                "auto: built without the `cuda` feature; using CPU".to_string(),
            ),
        };

        let last = files.len() - 1;
        let heavy = |i: usize| heavy_session(env, opts, provider, &files[i].0, &files[i].1);
        let param = |i: usize| param_session(env, &files[i].0, &files[i].1);
        let graph = |i: usize, s: Session| Graph {
            file: files[i].0.display().to_string(),
            session: Mutex::new(s),
        };

        let s = match probe {
            Some(s) => s,
            None => heavy(0)?,
        };
        check_io(&s, &files[0].0, &["x"], &["y", "z"])?;
        let analysis = graph(0, s);
        let s = param(1)?;
        check_io(&s, &files[1].0, &["z_hat"], &["hyper"])?;
        let hyper_synthesis = graph(1, s);
        let mut slices = Vec::with_capacity(meta.levels);
        for k in 0..meta.levels {
            let s = param(2 + k)?;
            let ins: &[&str] = if k == 0 {
                &["hyper"]
            } else {
                &["hyper", "y_prev"]
            };
            check_io(&s, &files[2 + k].0, ins, &["mean", "scale"])?;
            slices.push(graph(2 + k, s));
        }
        let s = heavy(last)?;
        let ins: Vec<&str> = meta.synthesis_inputs.iter().map(String::as_str).collect();
        check_io(&s, &files[last].0, &ins, &["x_hat"])?;
        let synthesis = graph(last, s);

        let mut offsets = vec![0];
        for w in &meta.slice_widths {
            offsets.push(offsets.last().copied().unwrap_or(0) + w);
        }
        Ok(Arc::new(Bundle {
            dir: dir.to_path_buf(),
            meta,
            model_id,
            entropy,
            offsets,
            analysis,
            hyper_synthesis,
            slices,
            synthesis,
            provider,
            provider_note,
        }))
    }

    /// The directory of the bundle the plugin ships/finds when nothing is configured
    /// (SIC_MODEL_DIR, then next to the plugin library, then the source tree's models/sic-lite).
    pub fn default_dir() -> PathBuf {
        let mut candidates = Vec::new();
        if let Some(p) = std::env::var_os("SIC_MODEL_DIR").filter(|p| !p.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        if let Some(dir) = runtime::this_library_dir() {
            candidates.push(dir.join("sic").join("sic-lite"));
            candidates.push(dir.join("sic-lite"));
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join("sic-lite");
        candidates
            .into_iter()
            .find(|d| d.join("model.json").is_file())
            .unwrap_or(source)
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// 8-byte model id carried by every frame, as 16 hex digits.
    pub fn model_id_hex(&self) -> String {
        super::model_id_to_hex(&self.model_id)
    }

    /// 8-byte model id carried by every frame.
    pub fn model_id(&self) -> [u8; 8] {
        self.model_id
    }

    pub fn levels(&self) -> u8 {
        self.meta.levels as u8
    }

    /// The provider that actually runs g_a/g_s (Auto resolved), for logging.
    pub fn active_provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// Why [`Self::active_provider`] was chosen (e.g. why Auto fell back to the CPU), for logs.
    pub fn provider_note(&self) -> &str {
        &self.provider_note
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Latent channels `M`.
    pub fn latent_channels(&self) -> usize {
        self.meta.m
    }

    /// Channel width of every slice.
    pub fn slice_widths(&self) -> &[usize] {
        &self.meta.slice_widths
    }

    /// Images are padded to multiples of this.
    pub fn pad_multiple(&self) -> usize {
        self.meta.pad_multiple
    }

    /// The sampling mode the model recommends for untransmitted slices.
    pub fn default_sampling(&self, seed: u64) -> Sampling {
        if self.meta.default_sampling == "mean" {
            Sampling::Mean
        } else {
            Sampling::Uniform { seed }
        }
    }

    pub(crate) fn z_channels(&self) -> usize {
        self.meta.z_channels
    }

    /// Channel offset `O_k` of slice `k` (`k = levels` gives `M`).
    pub(crate) fn slice_offset(&self, k: usize) -> usize {
        self.offsets[k]
    }

    /// `analysis`: x [1,3,H,W] -> (y [1,M,h,w], z [1,Cz,hz,wz]) with `h = H/16` and
    /// `hz = ⌈h/4⌉` (the graph pads y to a multiple of 4 positions before h_a). A picture wider
    /// or taller than `tile` pixels (a multiple of 64; 0 = never) runs in tiles of that size
    /// plus the bundle's margin, with the same result.
    pub(crate) fn run_analysis(
        &self,
        x: &[f32],
        hp: usize,
        wp: usize,
        tile: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let Some(halo) = self.meta.tiling.as_ref().map(|t| t.analysis_halo) else {
            return self.analysis_whole(x, hp, wp);
        };
        let (rows, cols) = (spans(hp, tile, halo), spans(wp, tile, halo));
        if rows.len() == 1 && cols.len() == 1 {
            return self.analysis_whole(x, hp, wp);
        }
        let (h, w) = (hp / 16, wp / 16);
        let (hz, wz) = (h.div_ceil(4), w.div_ceil(4));
        let mut y = vec![0f32; self.meta.m * h * w];
        let mut z = vec![0f32; self.meta.z_channels * hz * wz];
        for r in &rows {
            for c in &cols {
                let (th, tw) = (r.ext.len(), c.ext.len());
                let (ty, tz) = self.analysis_whole(&window(x, hp, wp, &r.ext, &c.ext), th, tw)?;
                // Tiles start on multiples of 64 pixels, so they share the whole picture's y
                // and z grids (one y position per 16 pixels, one z position per 64).
                let (sy, sz) = (
                    (th / 16, tw / 16),
                    ((th / 16).div_ceil(4), (tw / 16).div_ceil(4)),
                );
                paste(&mut y, (h, w), &ty, sy, r.placed(1, 16), c.placed(1, 16));
                paste(&mut z, (hz, wz), &tz, sz, r.placed(1, 64), c.placed(1, 64));
            }
        }
        Ok((y, z))
    }

    fn analysis_whole(
        &self,
        x: &[f32],
        hp: usize,
        wp: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let mut o = self.analysis.run_expect(
            &[("x", &[1, 3, hp, wp], x)],
            &[
                ("y", [1, self.meta.m, hp / 16, wp / 16]),
                (
                    "z",
                    [
                        1,
                        self.meta.z_channels,
                        (hp / 16).div_ceil(4),
                        (wp / 16).div_ceil(4),
                    ],
                ),
            ],
        )?;
        let z = o.pop().unwrap_or_default();
        let y = o.pop().unwrap_or_default();
        Ok((y, z))
    }

    /// `hyper_synthesis`: z_hat [1,Cz,⌈h/4⌉,⌈w/4⌉] -> hyper [1,Ch,4⌈h/4⌉,4⌈w/4⌉], returned cut
    /// to y's grid `[1,Ch,h,w]` (rule 3).
    pub(crate) fn run_hyper(&self, z_hat: &[f32], h: usize, w: usize) -> Result<Vec<f32>, Error> {
        let (hz, wz) = (h.div_ceil(4), w.div_ceil(4));
        let mut o = self.hyper_synthesis.run_expect(
            &[("z_hat", &[1, self.meta.z_channels, hz, wz], z_hat)],
            &[("hyper", [1, self.meta.hyper_channels, 4 * hz, 4 * wz])],
        )?;
        Ok(crop_planes(
            o.pop().unwrap_or_default(),
            4 * hz,
            4 * wz,
            h,
            w,
        ))
    }

    /// `slice_k`: (hyper, ŷ channels 0..O_k) -> (mean, scale), each [1,S_k,h,w].
    pub(crate) fn run_slice(
        &self,
        k: usize,
        hyper: &[f32],
        y_prev: &[f32],
        h: usize,
        w: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let hyper_shape = [1, self.meta.hyper_channels, h, w];
        let prev_shape = [1, self.offsets[k], h, w];
        let mut inputs: Vec<(&str, &[usize], &[f32])> = vec![("hyper", &hyper_shape, hyper)];
        if k > 0 {
            inputs.push(("y_prev", &prev_shape, y_prev));
        }
        let s = self.meta.slice_widths[k];
        let mut o = self.slices[k]
            .run_expect(&inputs, &[("mean", [1, s, h, w]), ("scale", [1, s, h, w])])?;
        let scale = o.pop().unwrap_or_default();
        let mean = o.pop().unwrap_or_default();
        Ok((mean, scale))
    }

    /// `synthesis`: y_hat [1,M,h,w] -> x_hat [1,3,16h,16w], telling g_s `level` where the
    /// bundle takes it (which level: rule 6 of docs/model.md), in tiles of `tile` pixels (a
    /// multiple of 16; 0 = never) plus the bundle's margin where the picture is larger.
    pub(crate) fn run_synthesis(
        &self,
        y_hat: &[f32],
        h: usize,
        w: usize,
        level: u8,
        tile: usize,
    ) -> Result<Vec<f32>, Error> {
        let Some(halo) = self.meta.tiling.as_ref().map(|t| t.synthesis_halo) else {
            return self.synthesis_whole(y_hat, h, w, level);
        };
        let (rows, cols) = (spans(h, tile / 16, halo), spans(w, tile / 16, halo));
        if rows.len() == 1 && cols.len() == 1 {
            return self.synthesis_whole(y_hat, h, w, level);
        }
        let mut x = vec![0f32; 3 * 16 * h * 16 * w];
        for r in &rows {
            for c in &cols {
                let (th, tw) = (r.ext.len(), c.ext.len());
                let t =
                    self.synthesis_whole(&window(y_hat, h, w, &r.ext, &c.ext), th, tw, level)?;
                let (out, tile) = ((16 * h, 16 * w), (16 * th, 16 * tw));
                paste(&mut x, out, &t, tile, r.placed(16, 1), c.placed(16, 1));
            }
        }
        Ok(x)
    }

    fn synthesis_whole(
        &self,
        y_hat: &[f32],
        h: usize,
        w: usize,
        level: u8,
    ) -> Result<Vec<f32>, Error> {
        let (shape, lv) = ([1, self.meta.m, h, w], [f32::from(level)]);
        let mut inputs = vec![("y_hat", &shape[..], y_hat)];
        if self.meta.synthesis_takes_level() {
            inputs.push(("level", &[1][..], &lv[..]));
        }
        let mut o = self
            .synthesis
            .run_expect(&inputs, &[("x_hat", [1, 3, 16 * h, 16 * w])])?;
        Ok(o.pop().unwrap_or_default())
    }

    /// Runs one graph by name (`analysis`, `hyper_synthesis`, `slice_<k>`, `synthesis`) on
    /// named inputs `(name, shape, data)`; returns every output as `(name, shape, data)`.
    /// For golden-tensor tests and tools.
    #[doc(hidden)]
    #[allow(clippy::type_complexity)]
    pub fn run_graph(
        &self,
        graph: &str,
        inputs: &[(&str, &[usize], &[f32])],
    ) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>, Error> {
        let g = match graph {
            "analysis" => &self.analysis,
            "hyper_synthesis" => &self.hyper_synthesis,
            "synthesis" => &self.synthesis,
            s => {
                let k = s
                    .strip_prefix("slice_")
                    .and_then(|k| k.parse::<usize>().ok())
                    .filter(|&k| k < self.slices.len())
                    .ok_or_else(|| Error::InvalidInput(format!("no graph named {s:?}")))?;
                &self.slices[k]
            }
        };
        Ok(g.run(inputs)?
            .into_iter()
            .map(|(n, o)| (n, o.shape, o.data))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        for (f, s) in [
            (0.11, "0.11"),
            (64.0, "64.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5e-7, "-2.5e-07"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.12000000476837158, "0.12000000476837158"),
            (-0.0, "-0.0"),
            (100.5, "100.5"),
        ] {
            assert_eq!(py_float(f), s);
        }
    }

    /// Floats exactly halfway between two shortest round-trip strings, as Python's `repr`
    /// prints them (the even one). The first is a z median of an exported bundle whose id Rust
    /// once hashed wrongly.
    #[test]
    fn python_float_repr_breaks_ties_to_even() {
        for s in [
            "-0.008195877075195312",
            "-0.12621688842773438",
            "0.5927810668945312",
            "0.7544021606445312",
            "-0.8625259399414062",
            "-0.7551193237304688",
        ] {
            let f: f64 = s.parse().unwrap();
            assert_eq!(py_float(f), s, "{f:e}");
        }
    }

    #[test]
    fn canonical_json_sorts_and_compacts() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, 2.0, -3], "a": {"z": 1e-5, "y": "x"}}"#).unwrap();
        let mut s = String::new();
        canonical_json(&v, &mut s);
        assert_eq!(s, r#"{"a":{"y":"x","z":1e-05},"b":[1,2.0,-3]}"#);
    }
}
