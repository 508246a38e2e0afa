// SPDX-License-Identifier: MIT OR Apache-2.0
//! Execution-provider choice on the codec elements: `cuda` is strict (fails to start with a
//! message naming CUDA when it cannot be used, never a silent CPU fallback), `auto` runs where it
//! can and reports it through `active-provider`. `share-model` reuses one loaded model.

#[path = "codec_util/mod.rs"]
mod codec_util;
mod sic_elements_util;
use sic_elements_util as util;

use gst::prelude::*;

/// Starts `element` (sicenc or sicdec) between a source and a sink and returns the element
/// error text, if starting failed.
fn start(factory: &str, provider: &str) -> (gst::Pipeline, gst::Element, Option<String>) {
    start_with(factory, &[("execution-provider", provider)])
}

/// [`start`] with any properties, given as strings.
fn start_with(
    factory: &str,
    properties: &[(&str, &str)],
) -> (gst::Pipeline, gst::Element, Option<String>) {
    util::init();
    let mut builder = gst::ElementFactory::make(factory);
    for (name, value) in properties {
        builder = builder.property_from_str(name, value);
    }
    let element = builder.build().unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("fakesrc").build().unwrap();
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&src, &element, &sink]).unwrap();
    let failed = pipeline.set_state(gst::State::Paused).is_err();
    let error = failed.then(|| {
        let msg = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
            .expect("an error message");
        let gst::MessageView::Error(err) = msg.view() else {
            unreachable!()
        };
        format!("{} ({:?})", err.error(), err.debug())
    });
    (pipeline, element, error)
}

#[test]
fn active_provider_is_empty_before_start() {
    util::init();
    for factory in ["sicenc", "sicdec"] {
        let e = gst::ElementFactory::make(factory).build().unwrap();
        assert_eq!(e.property::<String>("active-provider"), "");
    }
}

#[test]
fn cpu_runs_on_the_cpu() {
    for factory in ["sicenc", "sicdec"] {
        let (pipeline, element, error) = start(factory, "cpu");
        assert_eq!(error, None);
        assert_eq!(element.property::<String>("active-provider"), "cpu");
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

/// Without the `cuda` cargo feature (this build) CUDA can never be used: `auto` must fall back
/// to the CPU and `cuda` must refuse to start, naming what is missing.
#[cfg(not(feature = "cuda"))]
#[test]
fn auto_falls_back_to_cpu_and_cuda_fails_cleanly() {
    for factory in ["sicenc", "sicdec"] {
        let (pipeline, element, error) = start(factory, "auto");
        assert_eq!(error, None, "{factory} auto");
        assert_eq!(element.property::<String>("active-provider"), "cpu");
        pipeline.set_state(gst::State::Null).unwrap();

        let (pipeline, element, error) = start(factory, "cuda");
        let error = error.unwrap_or_else(|| panic!("{factory} started with cuda"));
        assert!(error.to_lowercase().contains("cuda"), "{error}");
        assert!(error.contains("feature"), "{error}");
        assert_eq!(element.property::<String>("active-provider"), "");
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

/// A started element with `share-model=true` (the default) holds the model that the next shared
/// load with the same settings gets; with `share-model=false` its model is its own.
#[test]
fn share_model_reuses_the_loaded_model() {
    use gstsic::codec::{Bundle, ExecutionProvider, RuntimeOptions};
    let dir = codec_util::scratch_bundle("element-share", "");
    let location = dir.to_str().unwrap();
    let cpu = RuntimeOptions {
        provider: ExecutionProvider::Cpu,
        ..Default::default()
    };
    for factory in ["sicenc", "sicdec"] {
        for share in [false, true] {
            let (pipeline, _element, error) = start_with(
                factory,
                &[
                    ("model-location", location),
                    ("execution-provider", "cpu"),
                    ("share-model", if share { "true" } else { "false" }),
                ],
            );
            assert_eq!(error, None);
            let (_bundle, reused) = Bundle::load_shared(&dir, &cpu).unwrap();
            assert_eq!(reused, share, "{factory} share-model={share}");
            pipeline.set_state(gst::State::Null).unwrap();
        }
    }
}
