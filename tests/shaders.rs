//! Every WGSL file in shaders/ parses and validates with naga (no GPU needed), and so do
//! the tuned kernel's specialisations; every op's Rust params struct has the size and field
//! offsets naga reflects from its WGSL struct, and its binding table matches the shader's
//! bindings.

use convscope::ops::{self, Bind, ParamsLayout, ShaderDesc, conv_tuned};

fn module(name: &str, src: &str) -> naga::Module {
    naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)))
}

/// `src` and, where it has vec4 storage arrays, its 64-bit access form (`ops::wide`, what
/// CPU adapters run) parse and validate.
fn validate(name: &str, src: &str) {
    validate_one(name, src);
    if let std::borrow::Cow::Owned(wide) = ops::wide::widen(src) {
        assert!(wide.contains("array<vec2<u64>>"), "{name}");
        validate_one(&format!("{name} (64-bit access)"), &wide);
    }
}

fn validate_one(name: &str, src: &str) {
    let m = module(name, src);
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&m)
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
    let mut listed: Vec<String> = ops::ALL.iter().map(|s| s.file.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "ops::ALL must list every file in shaders/");
    for s in ops::ALL {
        let on_disk = std::fs::read_to_string(dir.join(s.file)).expect("read shader");
        assert_eq!(on_disk, s.source);
        validate(s.file, s.source);
    }
}

/// The layout naga reflects for the struct `name` of `m`.
fn reflected(m: &naga::Module, name: &str) -> Option<(usize, Vec<(String, usize)>)> {
    m.types.iter().find_map(|(_, ty)| match (&ty.name, &ty.inner) {
        (Some(n), naga::TypeInner::Struct { members, span }) if n == name => Some((
            *span as usize,
            members.iter().map(|mb| (mb.name.clone().unwrap_or_default(), mb.offset as usize)).collect(),
        )),
        _ => None,
    })
}

/// Differences between a Rust params layout and the WGSL struct; empty when they agree.
fn params_mismatch(s: &ShaderDesc, rust: &ParamsLayout) -> Vec<String> {
    let m = module(s.file, s.source);
    let Some((size, fields)) = reflected(&m, rust.wgsl_name) else {
        return vec![format!("{}: no struct {}", s.file, rust.wgsl_name)];
    };
    let mut out = Vec::new();
    if size != rust.size {
        out.push(format!("{}: {} is {size} bytes in WGSL, {} in Rust", s.file, rust.wgsl_name, rust.size));
    }
    let wgsl: Vec<(String, usize)> = fields;
    let rust_fields: Vec<(String, usize)> = rust.fields.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    if wgsl != rust_fields {
        out.push(format!("{}: fields differ\n  WGSL {wgsl:?}\n  Rust {rust_fields:?}", s.file));
    }
    out
}

/// The bindings of group 0 as naga sees them, in binding order. A binding declared twice,
/// once for each of two entry points (the elementwise ops' scalar and vec4 views of one
/// buffer), counts once if both declare the same kind, and twice (a mismatch) if not.
fn reflected_bindings(m: &naga::Module) -> Vec<(u32, Bind)> {
    let mut v: Vec<(u32, Bind)> = m
        .global_variables
        .iter()
        .filter_map(|(_, g)| {
            let b = g.binding.as_ref().filter(|b| b.group == 0)?;
            let kind = match g.space {
                naga::AddressSpace::Uniform => Bind::Uniform,
                naga::AddressSpace::Storage { access } => {
                    Bind::Storage { read_only: !access.contains(naga::StorageAccess::STORE) }
                }
                naga::AddressSpace::Handle => match &m.types[g.ty].inner {
                    naga::TypeInner::Image { class: naga::ImageClass::Storage { access, .. }, .. }
                        if !access.contains(naga::StorageAccess::STORE) =>
                    {
                        Bind::ReadImage
                    }
                    naga::TypeInner::Image { class: naga::ImageClass::Storage { .. }, .. } => {
                        Bind::StorageTexture(convscope::ops::colormap::GRID_FORMAT)
                    }
                    _ => Bind::Texture,
                },
                _ => return None,
            };
            Some((b.binding, kind))
        })
        .collect();
    v.sort_by_key(|(i, _)| *i);
    v.dedup();
    v
}

#[test]
fn params_structs_and_bindings_mirror_the_wgsl() {
    for s in ops::ALL {
        let layout = s.params.expect("every shader has a params struct")();
        let diff = params_mismatch(s, &layout);
        assert!(diff.is_empty(), "{}", diff.join("\n"));
        let m = module(s.file, s.source);
        let got = reflected_bindings(&m);
        let want: Vec<(u32, Bind)> = s.bindings.iter().enumerate().map(|(i, b)| (i as u32, *b)).collect();
        assert_eq!(got, want, "{}: bindings", s.file);
    }
}

#[test]
fn a_drifted_params_struct_is_caught() {
    // The check above must be able to fail: a WGSL struct with a field added.
    let s = &ops::maxpool::SHADER;
    let layout = s.params.expect("params")();
    let drifted = s.source.replacen("    stride: u32,\n", "    stride: u32,\n    extra: u32,\n", 1);
    assert_ne!(drifted, s.source);
    let leaked: &'static str = Box::leak(drifted.into_boxed_str());
    let desc = ShaderDesc { file: s.file, source: leaked, bindings: s.bindings, params: s.params };
    assert!(!params_mismatch(&desc, &layout).is_empty());
}

/// The tuned 1×1 conv's image form: input and weights read as images, outputs in vec4 pairs
/// where PX and the row are multiples of 8; every epilogue, packed or not; valid as written
/// and in 64-bit access form (pairs as one `vec4<u64>` write), binding what
/// `IMAGE_BINDINGS` says.
#[test]
fn tuned_image_form_is_valid_and_binds_images() {
    let gate = conv_tuned::Epilogue { write_raw: true, bn: true, write_bn: true, act: 5, p: [0.0; 2], gate: true };
    let erf = conv_tuned::Epilogue { act: 9, ..gate };
    for (cin, cout, out_w, px) in [(64, 256, 3136, 8), (7, 33, 196, 8), (16, 40, 96, 4), (5, 9, 96, 16)] {
        let values = [
            ("CIN", cin),
            ("COUT", cout),
            ("K", 1),
            ("STRIDE", 1),
            ("PAD", 0),
            ("IN_H", 1),
            ("IN_W", out_w),
            ("OUT_H", 1),
            ("OUT_W", out_w),
            ("PX", px),
            ("OCV", 8),
            ("PY", 1),
        ];
        let pairs = px % 8 == 0 && out_w % 8 == 0;
        assert_eq!(conv_tuned::store_pairs(&values), pairs);
        for (packed, e) in [(false, Default::default()), (true, gate), (false, erf)] {
            let f = conv_tuned::Form { unroll: true, subgroup: true, packed, winograd: false, image: true };
            let src = conv_tuned::tuned_source(&values, &e, f);
            let name = format!("tuned image {cin}->{cout} {px}x8si out_w {out_w} packed {packed} {e:?}");
            assert!(src.contains("ldi(q0_0 + 0u)") && src.contains("ldw(wq0 + 0u)"), "{name}");
            assert!(!src.contains("input4") && !src.contains("weight4"), "{name}");
            assert_eq!(src.contains("store8("), pairs, "{name}");
            validate(&name, &src);
            let wide = ops::wide::widen(&src);
            assert_eq!(wide.contains("output: array<vec4<u64>>"), pairs && e.write_raw, "{name}");
            let m = module(&name, &src);
            let want: Vec<(u32, Bind)> =
                conv_tuned::IMAGE_BINDINGS.iter().enumerate().map(|(i, b)| (i as u32, *b)).collect();
            assert_eq!(reflected_bindings(&m), want, "{name}: bindings");
        }
    }
    // Wider kernels: Winograd (weights a vec4 per lane: both images) and direct subgroup
    // blocks (weights a float per lane: only the input an image), halo rows, padded.
    for (k, pad, px, ocv, py, winograd) in [(3, 1, 8, 4, 2, true), (3, 1, 12, 4, 1, false), (5, 2, 16, 3, 1, false)] {
        let values = [
            ("CIN", 12),
            ("COUT", 20),
            ("K", k),
            ("STRIDE", 1),
            ("PAD", pad),
            ("IN_H", 30),
            ("IN_W", 48),
            ("OUT_H", 30),
            ("OUT_W", 48),
            ("PX", px),
            ("OCV", ocv),
            ("PY", py),
        ];
        for (packed, e) in [(false, Default::default()), (true, gate)] {
            let f = conv_tuned::Form { unroll: true, subgroup: true, packed, winograd, image: true };
            let src = conv_tuned::tuned_source(&values, &e, f);
            let name = format!("tuned image k{k} {px}x{ocv} winograd {winograd} packed {packed}");
            assert!(src.contains("ldi(") && !src.contains("input4"), "{name}");
            assert_eq!(src.contains("ldw("), winograd, "{name}");
            assert_eq!(src.contains("store8("), px % 8 == 0, "{name}");
            validate(&name, &src);
            let table = if winograd { conv_tuned::IMAGE_BINDINGS } else { conv_tuned::INPUT_IMAGE_BINDINGS };
            let want: Vec<(u32, Bind)> = table.iter().enumerate().map(|(i, b)| (i as u32, *b)).collect();
            assert_eq!(reflected_bindings(&module(&name, &src)), want, "{name}: bindings");
        }
    }
}

#[test]
fn tuned_specialisations_are_valid() {
    let form = |unroll, subgroup, packed| conv_tuned::Form { unroll, subgroup, packed, winograd: false, image: false };
    for (cin, cout, k, stride, pad, px, ocv) in [
        (3, 12, 5, 1, 0, 8, 2),
        (24, 48, 5, 1, 0, 4, 1),
        (3, 12, 5, 2, 2, 8, 2),
        (16, 16, 1, 1, 0, 12, 2),
        (16, 40, 1, 1, 0, 8, 8),
        (64, 128, 2, 1, 0, 8, 1),
        (8, 8, 3, 1, 1, 12, 2),
        (8, 8, 5, 1, 2, 8, 1),
        (8, 8, 7, 1, 3, 4, 1),
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
            ("PY", 1),
        ];
        for (in_w, unroll, subgroup) in
            [(53, false, false), (53, true, false), (53, true, true), (52, true, false), (52, true, true)]
        {
            let mut values = values;
            values[6].1 = in_w;
            assert_eq!(values[6].0, "IN_W");
            // Rows of whole vec4s in and out (the output width follows the input's here).
            let out_w = if in_w % 4 == 0 { 48 } else { 49 };
            values[8].1 = out_w;
            assert_eq!(values[8].0, "OUT_W");
            // Stride-1 convs on rows of whole vec4s read them as vec4s.
            let vec4 = stride == 1 && px % 4 == 0 && in_w % 4 == 0;
            assert_eq!(conv_tuned::vec4_input(&values), vec4.then_some(pad));
            // Blocks of whole vec4s on rows of whole vec4s write vec4s.
            let vec4_out = px % 4 == 0 && out_w % 4 == 0;
            assert_eq!(conv_tuned::vec4_output(&values), vec4_out);
            let src = conv_tuned::tuned_source(&values, &Default::default(), form(unroll, subgroup, false));
            assert_eq!(src.contains("unrolled:"), unroll);
            assert_eq!(src.contains("subgroupBroadcast"), subgroup);
            assert_eq!(src.contains("input4"), vec4 && unroll);
            // Its vec4 inputs read as 64-bit pairs on CPU adapters (`ops::wide`).
            assert_eq!(ops::wide::widen(&src).contains("input4: array<vec2<u64>>"), vec4 && unroll);
            assert_eq!(src.contains("store4("), vec4_out && unroll);
            assert_eq!(src.contains("weight4[wq"), subgroup && unroll && k == 1 && ocv == 8);
            // Subgroup blocks on vec4 rows take the columns beside them from their neighbours.
            let halo = vec4 && k > 1 && pad <= 4 && k - 1 - pad <= 4;
            assert_eq!(conv_tuned::halo_input(&values, true), halo);
            assert_eq!(src.contains("fn nb_left_f"), halo && subgroup && unroll);
            if unroll {
                // Several output rows per invocation: kernel rows unrolled over the rows read.
                let mut rows3 = values;
                rows3[11].1 = 3;
                assert_eq!(rows3[11].0, "PY");
                let src3 = conv_tuned::tuned_source(&rows3, &Default::default(), form(unroll, subgroup, false));
                assert!(src3.contains(" x 3 rows ") && !src3.contains("for (var ky"));
                validate(&format!("tuned {cin}->{cout} k{k} s{stride} {px}x{ocv}y3 in_w {in_w} sg {subgroup}"), &src3);
                // Every fused epilogue in both store forms, Erf (a helper function) included.
                let e = conv_tuned::Epilogue {
                    write_raw: true,
                    bn: true,
                    write_bn: true,
                    act: 9,
                    p: [0.0; 2],
                    gate: false,
                };
                let fused = conv_tuned::tuned_source(&values, &e, form(unroll, subgroup, false));
                assert!(fused.contains("out_act[i] = "));
                validate(&format!("tuned {cin}->{cout} k{k} {px}x{ocv} in_w {in_w} fused"), &fused);
            }
            if subgroup && k == 3 && stride == 1 {
                // Winograd F(2×2, 3×3): 2 rows, halo/vec4/scalar rows, packed or not, fused.
                let mut rows2 = values;
                rows2[11].1 = 2;
                let e =
                    conv_tuned::Epilogue { write_raw: true, bn: true, write_bn: true, act: 9, p: [0.0; 2], gate: true };
                for (packed, e) in [(false, Default::default()), (true, e)] {
                    let f = conv_tuned::Form { unroll: true, subgroup: true, packed, winograd: true, image: false };
                    let src = conv_tuned::tuned_source(&rows2, &e, f);
                    assert!(src.contains("Winograd F(2x2, 3x3)") && src.contains("weight4[wq0"));
                    assert_eq!(src.contains("fn nb_left_f"), halo);
                    validate(&format!("tuned {cin}->{cout} {px}x{ocv}w in_w {in_w} packed {packed}"), &src);
                }
            }
            validate(
                &format!("tuned {cin}->{cout} k{k} s{stride} p{pad} {px}x{ocv} unroll {unroll} sg {subgroup}"),
                &src,
            );
            if subgroup {
                // Small layers: the output-channel blocks packed into the invocation index.
                let packed = conv_tuned::tuned_source(&values, &Default::default(), form(unroll, subgroup, true));
                assert!(packed.contains("let ocb = min(flat / per8, NOCB - 1u);"));
                validate(&format!("tuned {cin}->{cout} k{k} {px}x{ocv} in_w {in_w} packed"), &packed);
            }
        }
    }
}

#[test]
fn depthwise_specialisations_are_valid() {
    use convscope::graph::ConvG;
    use convscope::ops::{StepGeom, depthwise};
    use convscope::tensor::Shape;
    for (k, stride, subgroup) in [([3, 3], 1, false), ([3, 3], 1, true), ([5, 3], 1, true), ([3, 3], 2, false)] {
        let c = ConvG {
            cin: 8,
            cout: 8,
            kh: k[0],
            kw: k[1],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [1, 1, 1, 1],
            groups: 8,
            transpose: false,
            output_padding: [0, 0],
            weight: Vec::new(),
            bias: Vec::new(),
        };
        // Rows of 21 (scalar stores) and 20 (vec4 stores at stride 1).
        for in_w in [21, 20] {
            let (oh, ow) = ((20 + 2 - k[0]) / stride + 1, (in_w + 2 - k[1]) / stride + 1);
            let g = StepGeom {
                input: Shape::new(8, 20, in_w),
                output: Shape::new(8, oh, ow),
                in_row0: 0,
                in_rows: 20,
                out_row0: 0,
                out_rows: oh,
            };
            let unrolled = depthwise::outputs_per_invocation(&c) > 1;
            let vec4 = unrolled && ow % 4 == 0;
            assert_eq!(vec4, stride == 1 && in_w == 20 && k[1] == 3);
            let fused = convscope::ops::conv_tuned::Epilogue {
                write_raw: true,
                bn: true,
                write_bn: true,
                act: 9,
                p: [0.0; 2],
                gate: true,
            };
            for e in [Default::default(), fused] {
                let spec = depthwise::pipeline_for(&c, &g, subgroup, &e);
                // The executor looks the pipeline up by this key before writing the shader.
                assert_eq!(depthwise::pipeline_key(&c, &g, subgroup, &e), spec.key);
                assert_eq!(spec.source.contains("subgroupBroadcast"), subgroup && unrolled, "{}", spec.key);
                assert_eq!(spec.source.contains("store4("), vec4, "{}", spec.key);
                validate(&spec.key, &spec.source);
            }
        }
    }
}

#[test]
fn huge_kernels_compile_in_loop_form() {
    use convscope::graph::Conv2d;
    use convscope::ops::StepGeom;
    use convscope::tensor::Shape;
    let k = conv_tuned::MAX_UNROLLED_K + 2;
    let c = Conv2d { cin: 1, cout: 4, k, stride: 1, pad: 0, weight: vec![0.0; 4 * k * k], bias: vec![0.0; 4] };
    let shape = convscope::ops::conv_naive::ConvShape::of(&c);
    let spec = conv_tuned::pipeline_for(
        &shape,
        &conv_tuned::Block::default(),
        &StepGeom {
            input: Shape::new(1, 20, 20),
            output: Shape::new(4, 20 - k + 1, 20 - k + 1),
            in_row0: 0,
            in_rows: 20,
            out_row0: 0,
            out_rows: 20 - k + 1,
        },
    );
    assert!(spec.key.ends_with("loops"), "{}", spec.key);
    assert!(!spec.source.contains("unrolled:"));
    validate(&spec.key, &spec.source);
}

#[test]
fn broken_shader_is_caught() {
    // The validation above must be able to fail.
    let bad = ops::stats::SHADER.source.replace("min(l4.x, l4.y)", "min(l4.x, 1u)");
    let failed = match naga::front::wgsl::parse_str(&bad) {
        Err(_) => true,
        Ok(m) => naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&m)
            .is_err(),
    };
    assert!(failed);
}

#[test]
fn gemm_subgroup_form_is_valid() {
    let src = ops::gemm::subgroup_source();
    assert!(src.contains("subgroupBroadcast(x.w, 7u)") && src.contains("input4[q * 8u + sgl % 8u]"));
    validate("gemm subgroup", &src);
}
