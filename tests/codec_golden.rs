//! Golden tensors (models/sic-lite/golden/, docs/model.md): every graph, run through the Rust
//! runtime on the exporter's inputs, must reproduce the exporter's outputs to 1e-4.

mod codec_util;

use std::collections::HashMap;

use codec_util::*;

const TOLERANCE: f32 = 1e-4;

struct Golden {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Golden {
    fn load() -> Golden {
        let dir = model_dir().join("golden");
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap())
                .unwrap();
        let mut tensors = HashMap::new();
        for (name, entry) in index.as_object().unwrap() {
            let shape: Vec<usize> = entry["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let bytes = std::fs::read(dir.join(entry["file"].as_str().unwrap())).unwrap();
            let data: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
            tensors.insert(name.clone(), (shape, data));
        }
        Golden { tensors }
    }

    fn get(&self, name: &str) -> (&[usize], &[f32]) {
        let (s, d) = self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("golden tensor {name} missing"));
        (s, d)
    }
}

fn max_abs_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check(
    outputs: &[(String, Vec<usize>, Vec<f32>)],
    output: &str,
    golden: &Golden,
    golden_name: &str,
    worst: &mut f32,
) {
    let (_, shape, data) = outputs
        .iter()
        .find(|(n, _, _)| n == output)
        .unwrap_or_else(|| panic!("no output {output}"));
    let (gs, gd) = golden.get(golden_name);
    assert_eq!(shape.as_slice(), gs, "{golden_name} shape");
    let err = max_abs_err(data, gd);
    eprintln!("{golden_name:>16}: max abs err {err:.3e}");
    assert!(
        err <= TOLERANCE,
        "{golden_name}: max abs err {err} > {TOLERANCE}"
    );
    *worst = worst.max(err);
}

#[test]
fn every_graph_matches_golden_tensors() {
    let b = bundle();
    let g = Golden::load();
    let mut worst = 0f32;

    let (xs, x) = g.get("x");
    let out = b.run_graph("analysis", &[("x", xs, x)]).unwrap();
    check(&out, "y", &g, "y", &mut worst);
    check(&out, "z", &g, "z", &mut worst);

    // Rule 2 on the golden z reproduces the golden z_hat exactly.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("model.json")).unwrap())
            .unwrap();
    let (zs, z) = g.get("z");
    let (_, z_hat_golden) = g.get("z_hat");
    let zplane = zs[2] * zs[3];
    for (i, (&zv, &zh)) in z.iter().zip(z_hat_golden).enumerate() {
        let t = &meta["entropy"]["z"][i / zplane];
        let median = t["median"].as_f64().unwrap() as f32;
        let min = t["min"].as_i64().unwrap();
        let max = min + t["freqs"].as_array().unwrap().len() as i64 - 1;
        let s = ((zv - median).round_ties_even() as i64).clamp(min, max);
        assert_eq!(s as f32 + median, zh, "z_hat[{i}]");
    }

    let (zhs, z_hat) = g.get("z_hat");
    let out = b
        .run_graph("hyper_synthesis", &[("z_hat", zhs, z_hat)])
        .unwrap();
    check(&out, "hyper", &g, "hyper", &mut worst);

    let (hs, hyper) = g.get("hyper");
    let (ys, y_hat) = g.get("y_hat");
    let plane = ys[2] * ys[3];
    let mut offset = 0;
    for (k, &width) in b.slice_widths().iter().enumerate() {
        let prev_shape = [1, offset, ys[2], ys[3]];
        let mut inputs: Vec<(&str, &[usize], &[f32])> = vec![("hyper", hs, hyper)];
        if k > 0 {
            inputs.push(("y_prev", &prev_shape, &y_hat[..offset * plane]));
        }
        let out = b.run_graph(&format!("slice_{k}"), &inputs).unwrap();
        check(&out, "mean", &g, &format!("slice_{k:02}.mean"), &mut worst);
        check(
            &out,
            "scale",
            &g,
            &format!("slice_{k:02}.scale"),
            &mut worst,
        );
        offset += width;
    }

    // The level input, where the bundle has one: the full level, then the probe level the
    // exporter ran the same latent at (its level modulation at work).
    if g.tensors.contains_key("synthesis.level") {
        let top = [f32::from(b.levels())];
        let out = b
            .run_graph("synthesis", &[("y_hat", ys, y_hat), ("level", &[1], &top)])
            .unwrap();
        check(&out, "x_hat", &g, "x_hat", &mut worst);
        let (ls, lv) = g.get("synthesis.level");
        let out = b
            .run_graph("synthesis", &[("y_hat", ys, y_hat), ("level", ls, lv)])
            .unwrap();
        check(&out, "x_hat", &g, "synthesis.x_hat_level", &mut worst);
    } else {
        let out = b.run_graph("synthesis", &[("y_hat", ys, y_hat)]).unwrap();
        check(&out, "x_hat", &g, "x_hat", &mut worst);
    }
    eprintln!("worst max abs err {worst:.3e} (limit {TOLERANCE:e})");
}
