//! Every WGSL file in shaders/ parses and validates with naga (no GPU needed), and so do
//! the tuned kernel's specialisations for the shapes it is used with.

use convscope::shader;

fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
}

#[test]
fn every_shader_file_is_listed_and_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = shader::ALL.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "shader::ALL must list every file in shaders/");
    for (name, src) in shader::ALL {
        let on_disk = std::fs::read_to_string(dir.join(name)).expect("read shader");
        assert_eq!(&on_disk, src);
        validate(name, src);
    }
}

#[test]
fn tuned_specialisations_are_valid() {
    for (cin, cout, k, stride, pad, px, ocv) in [
        (3, 12, 5, 1, 0, 8, 2),
        (24, 48, 5, 1, 0, 4, 1),
        (3, 12, 5, 2, 2, 8, 2),
        (16, 16, 1, 1, 0, 12, 2),
        (64, 128, 2, 1, 0, 8, 1),
    ] {
        let values = [
            ("CIN", cin),
            ("COUT", cout),
            ("K", k),
            ("STRIDE", stride),
            ("PAD", pad),
            ("IN_H", 37),
            ("IN_W", 53),
            ("OUT_H", 33),
            ("OUT_W", 49),
            ("PX", px),
            ("OCV", ocv),
        ];
        for unroll in [false, true] {
            let src = shader::tuned_source(&values, unroll);
            assert_eq!(src.contains("unrolled:"), unroll);
            validate(&format!("tuned {cin}->{cout} k{k} s{stride} p{pad} {px}x{ocv} unroll {unroll}"), &src);
        }
    }
}

#[test]
fn broken_shader_is_caught() {
    // The check above must be able to fail.
    let bad = shader::MINMAX.replace("min(lo, v)", "min(lo, 1u)");
    let failed = match naga::front::wgsl::parse_str(&bad) {
        Err(_) => true,
        Ok(m) => naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&m)
            .is_err(),
    };
    assert!(failed);
}
