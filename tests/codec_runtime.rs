//! ONNX Runtime library errors. In its own test binary: the first load attempt in this process
//! must be the failing one (only one environment can exist per process).

mod codec_util;

use gstsic::codec::{Bundle, Error, RuntimeOptions, resolve_ort_library};

use codec_util::*;

#[test]
fn missing_library_is_a_readable_error_and_recoverable() {
    let missing = RuntimeOptions {
        ort_library: Some("/nonexistent/onnxruntime/libonnxruntime.so".into()),
        ..Default::default()
    };
    match Bundle::load(&model_dir(), &missing) {
        Err(Error::Runtime(m)) => {
            assert!(
                m.contains("/nonexistent/onnxruntime/libonnxruntime.so"),
                "{m}"
            );
            assert!(
                m.contains("scripts/setup.sh") && m.contains("ORT_DYLIB_PATH"),
                "{m}"
            );
            eprintln!("{}", Error::Runtime(m));
        }
        other => panic!("want Error::Runtime, got {:?}", other.err()),
    }

    // A file that is not a shared library.
    let not_a_lib = RuntimeOptions {
        ort_library: Some(model_dir().join("model.json")),
        ..Default::default()
    };
    match Bundle::load(&model_dir(), &not_a_lib) {
        Err(Error::Runtime(m)) => assert!(m.contains("model.json"), "{m}"),
        other => panic!("want Error::Runtime, got {:?}", other.err()),
    }

    // Default resolution finds the library (ORT_DYLIB_PATH from .cargo/config.toml), and a
    // load after the failures works.
    let found = resolve_ort_library(&RuntimeOptions::default()).unwrap();
    assert!(found.is_file());
    let b = Bundle::load(&model_dir(), &RuntimeOptions::default()).unwrap();
    assert_eq!(b.levels() as usize, b.slice_widths().len());
}
