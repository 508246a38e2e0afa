// SPDX-License-Identifier: MIT OR Apache-2.0
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::depayload(data);
});
