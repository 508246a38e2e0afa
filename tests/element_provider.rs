// SPDX-License-Identifier: MIT OR Apache-2.0
//! Execution-provider choice on the codec elements: `cuda` is strict (fails to start with a
//! message naming CUDA when it cannot be used, never a silent CPU fallback), `auto` runs where it
//! can and reports it through `active-provider`.

mod sic_elements_util;
use sic_elements_util as util;

use gst::prelude::*;

/// Starts `element` (sicenc or sicdec) between a source and a sink and returns the element
/// error text, if starting failed.
fn start(factory: &str, provider: &str) -> (gst::Pipeline, gst::Element, Option<String>) {
    util::init();
    let element = gst::ElementFactory::make(factory)
        .property_from_str("execution-provider", provider)
        .build()
        .unwrap();
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
