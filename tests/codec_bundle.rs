//! Model bundle errors: missing, corrupt or inconsistent files give a readable `Error::Model`
//! naming the file; a provider the build cannot honour gives `Error::Runtime`.

mod codec_util;

use std::path::Path;
use std::sync::Arc;

use gstsic::codec::{Bundle, Error, ExecutionProvider, RuntimeOptions};

use codec_util::*;

fn load_err(dir: &Path) -> String {
    match Bundle::load(dir, &RuntimeOptions::default()) {
        Err(e @ Error::Model(_)) => e.to_string(),
        Err(e) => panic!("want Error::Model, got {e:?}"),
        Ok(_) => panic!("{} loaded", dir.display()),
    }
}

#[test]
fn loads_and_reports() {
    let b = bundle();
    assert_eq!(b.name(), "sic-lite");
    assert_eq!(b.model_id_hex().len(), 16);
    assert_eq!(b.levels() as usize, b.slice_widths().len());
    assert_eq!(b.slice_widths().iter().sum::<usize>(), b.latent_channels());
    assert_eq!(b.active_provider(), ExecutionProvider::Cpu);
    assert!(!b.provider_note().is_empty());
    eprintln!("{b:?}: {}", b.provider_note());
}

#[test]
fn missing_graph_names_the_file() {
    let dir = scratch_bundle("missing", "slice_03.onnx");
    let e = load_err(&dir);
    assert!(
        e.contains("slice_03.onnx") && e.contains("cannot read"),
        "{e}"
    );
    eprintln!("{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_or_broken_metadata() {
    let dir = scratch_bundle("nojson", "model.json");
    let e = load_err(&dir);
    assert!(e.contains("model.json"), "{e}");
    let _ = std::fs::remove_dir_all(dir);

    let dir = scratch_bundle("badjson", "");
    std::fs::write(dir.join("model.json"), "{\"format_version\": 1, \"name\": ").unwrap();
    let e = load_err(&dir);
    assert!(e.contains("model.json") && e.contains("line 1"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn inconsistent_metadata() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "version",
            Box::new(|v| v["format_version"] = 2.into()),
            "format_version",
        ),
        ("levels", Box::new(|v| v["levels"] = 7.into()), "levels"),
        (
            "widths",
            Box::new(|v| v["slice_widths"][0] = 31.into()),
            "slice_widths",
        ),
        (
            "pad",
            Box::new(|v| v["pad_multiple"] = 40.into()),
            "pad_multiple",
        ),
        (
            "sampling",
            Box::new(|v| v["default_sampling"] = "noise".into()),
            "default_sampling",
        ),
        (
            "id",
            Box::new(|v| v["model_id"] = "0123456789abcdef".into()),
            "does not match",
        ),
        (
            "idfmt",
            Box::new(|v| v["model_id"] = "xyz".into()),
            "16 hex digits",
        ),
        (
            "freqs",
            Box::new(|v| v["entropy"]["y"][3]["freqs"][0] = 0.into()),
            "entropy.y[3]",
        ),
        (
            "ztables",
            Box::new(|v| v["z_channels"] = 63.into()),
            "z_channels",
        ),
        (
            "escape",
            Box::new(|v| v["graphs"]["synthesis"] = "../synthesis.onnx".into()),
            "graphs.synthesis",
        ),
        (
            "halo_a",
            Box::new(|v| v["tiling"]["analysis_halo"] = 160.into()),
            "tiling.analysis_halo",
        ),
        (
            "halo_s",
            Box::new(|v| v["tiling"]["synthesis_halo"] = 100000.into()),
            "tiling.synthesis_halo",
        ),
        (
            "syn_inputs",
            Box::new(|v| v["synthesis_inputs"] = serde_json::json!(["y_hat", "lvl"])),
            "synthesis_inputs",
        ),
        (
            "field",
            Box::new(|v| v.as_object_mut().unwrap().remove("M").map(|_| ()).unwrap()),
            "`M`",
        ),
    ];
    for (name, edit, want) in cases {
        let dir = scratch_bundle(name, "");
        edit_json(&dir, edit);
        let e = load_err(&dir);
        assert!(e.contains(want) && e.contains("model.json"), "{name}: {e}");
        eprintln!("{name}: {e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `synthesis_inputs` must say what the synthesis graph takes: a bundle that lists the level
/// input for a graph without it, or leaves it out for a graph with it, is refused at load,
/// naming the graph, instead of failing on the first frame.
#[test]
fn synthesis_inputs_must_match_the_graph() {
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("model.json")).unwrap())
            .unwrap();
    let takes_level = shipped["synthesis_inputs"] == serde_json::json!(["y_hat", "level"]);
    let dir = scratch_bundle("syn_mismatch", "");
    edit_json(&dir, move |v| {
        v["synthesis_inputs"] = if takes_level {
            serde_json::json!(["y_hat"])
        } else {
            serde_json::json!(["y_hat", "level"])
        }
    });
    let e = load_err(&dir);
    assert!(
        e.contains("synthesis.onnx") && e.contains("graph inputs"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn modified_graph_changes_the_id() {
    let dir = scratch_bundle("modified", "synthesis.onnx");
    let mut bytes = std::fs::read(model_dir().join("synthesis.onnx")).unwrap();
    bytes.push(0);
    std::fs::write(dir.join("synthesis.onnx"), bytes).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("does not match"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn not_an_onnx_file() {
    let dir = scratch_bundle("garbage", "slice_00.onnx");
    std::fs::write(dir.join("slice_00.onnx"), b"not a model").unwrap();
    // Fix the id so that the runtime, not the hash, has to reject the file.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    v["model_id"] = "0000000000000000".into();
    std::fs::write(dir.join("model.json"), serde_json::to_string(&v).unwrap()).unwrap();
    let e = Bundle::load(&dir, &RuntimeOptions::default())
        .unwrap_err()
        .to_string();
    let computed = e.split("hash to ").nth(1).unwrap()[..16].to_string();
    v["model_id"] = computed.into();
    std::fs::write(dir.join("model.json"), serde_json::to_string(&v).unwrap()).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("slice_00.onnx"), "{e}");
    eprintln!("{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature() {
    let opts = RuntimeOptions {
        provider: ExecutionProvider::Cuda,
        ..Default::default()
    };
    match Bundle::load(&model_dir(), &opts) {
        Err(Error::Runtime(m)) => assert!(m.contains("cuda"), "{m}"),
        other => panic!("want Error::Runtime, got {:?}", other.err()),
    }
}

#[test]
fn default_dir_has_a_bundle() {
    let d = Bundle::default_dir();
    assert!(d.join("model.json").is_file(), "{}", d.display());
}

#[test]
fn shared_loads_reuse_one_bundle_while_it_is_in_use() {
    let dir = scratch_bundle("shared", "");
    let cpu = RuntimeOptions {
        provider: ExecutionProvider::Cpu,
        ..Default::default()
    };
    let (a, reused) = Bundle::load_shared(&dir, &cpu).unwrap();
    assert!(!reused);
    let (b, reused) = Bundle::load_shared(&dir, &cpu).unwrap();
    assert!(reused && Arc::ptr_eq(&a, &b));

    // Other runtime options are another bundle.
    let one_thread = RuntimeOptions {
        threads: 1,
        ..cpu.clone()
    };
    let (c, reused) = Bundle::load_shared(&dir, &one_thread).unwrap();
    assert!(!reused && !Arc::ptr_eq(&a, &c));

    // Once nobody uses it, the next caller loads it afresh.
    drop((a, b));
    let (_d, reused) = Bundle::load_shared(&dir, &cpu).unwrap();
    assert!(!reused);
}

#[test]
fn shared_load_notices_a_rewritten_model_json() {
    let dir = scratch_bundle("shared-rewritten", "");
    let opts = RuntimeOptions::default();
    let (a, _) = Bundle::load_shared(&dir, &opts).unwrap();
    // Same content, new modification time: what a re-export that changed nothing looks like.
    let json = dir.join("model.json");
    let later =
        std::fs::metadata(&json).unwrap().modified().unwrap() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&json)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (b, reused) = Bundle::load_shared(&dir, &opts).unwrap();
    assert!(!reused && !Arc::ptr_eq(&a, &b));
}

#[test]
fn shared_load_of_a_broken_bundle_is_the_same_error() {
    let dir = scratch_bundle("shared-missing", "synthesis.onnx");
    let e = Bundle::load_shared(&dir, &RuntimeOptions::default())
        .expect_err("a bundle without synthesis.onnx loaded");
    assert!(e.to_string().contains("synthesis.onnx"), "{e}");
}
