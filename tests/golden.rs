//! The GPU chain, the CPU reference and the seeded initialisation against PyTorch's
//! golden tensors (tests/fixtures, copied from the shared golden set).

mod common;
use common::{Golden, assert_close};
use convscope::gpu::test_context;
use convscope::network::{Network, Op};
use convscope::ops::ConvKernel as Kernel;
use convscope::ops::conv_tuned::Block;
use convscope::reference;
use convscope::torch_init::Mt19937;
use sha2::{Digest, Sha256};

const CHAIN_FILES: [(&str, i64); 3] = [
    ("seed0_synthetic_48x64.safetensors", 0),
    ("seed7_rand_37x53.safetensors", 7),
    ("seed0_coffee_96x160.safetensors", 0),
];
const TOL: f32 = 1e-5;

fn conv_of(net: &Network, i: usize) -> &convscope::network::Conv2d {
    match &net.layers[i].op {
        Op::Conv(c) => c,
        other => panic!("layer {i} is {}, not a conv", other.kind()),
    }
}

#[test]
fn seeded_init_is_bit_exact_against_golden_weights() {
    for (file, seed) in CHAIN_FILES {
        let g = Golden::open(file);
        let net = Network::tutorial(seed);
        for (i, name) in ["conv1", "conv2", "conv3"].iter().enumerate() {
            let c = conv_of(&net, i);
            let w = g.vec(&format!("{name}.weight"));
            let b = g.vec(&format!("{name}.bias"));
            assert_eq!(g.shape(&format!("{name}.weight")), vec![c.cout, c.cin, c.k, c.k]);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&c.weight), bits(&w), "{file} {name}.weight");
            assert_eq!(bits(&c.bias), bits(&b), "{file} {name}.bias");
        }
    }
}

#[test]
fn seeded_init_matches_documented_digests() {
    for (seed, want) in [
        (0, "36e59c0c3864430f47a8a44b5759b93504ef8dda21f90f200c95afe67650327a"),
        (1, "6210b789f8921242294e3f863cb70e19118b63f20cfbf381c4b169acd737e25e"),
        (42, "c03eed37fd04e23634bfa88e3cede361502880f306c432dbd6814aed5574c535"),
        (12345, "6f860bb98c904450cc7a80681397f8927c2bbda0ab50df25e5e0e2f17ed5510b"),
    ] {
        let net = Network::tutorial(seed);
        let mut named: Vec<(String, &[f32])> = Vec::new();
        for (i, layer) in net.layers.iter().enumerate() {
            let c = conv_of(&net, i);
            named.push((format!("{}.bias", layer.name), &c.bias));
            named.push((format!("{}.weight", layer.name), &c.weight));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = Sha256::new();
        for (name, v) in named {
            h.update(name.as_bytes());
            for x in v {
                h.update(x.to_le_bytes());
            }
        }
        let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn torch_rand_after_the_chain_reproduces_the_seed7_input() {
    let g = Golden::open("seed7_rand_37x53.safetensors");
    let mut rng = Mt19937::new(7);
    for (ci, co, k) in convscope::network::TUTORIAL_CONVS {
        convscope::torch_init::conv2d_default_init(&mut rng, ci, co, k);
    }
    let x = rng.rand(3 * 37 * 53);
    let want = g.vec("input");
    assert!(x.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn cpu_reference_matches_pytorch() {
    for (file, seed) in CHAIN_FILES {
        let g = Golden::open(file);
        let outs = reference::forward(&Network::tutorial(seed), &g.tensor("input")).unwrap();
        for (i, name) in ["conv1", "conv2", "conv3"].iter().enumerate() {
            assert_close(&format!("cpu {file} {name}"), &outs[i].data, &g.vec(&format!("{name}.out")), TOL);
        }
    }
    let g = Golden::open("conv_stride2_pad2.safetensors");
    let net = Network::seeded_convs(0, &[(3, 12, 5, 2, 2)]);
    let out = reference::forward(&net, &g.tensor("input")).unwrap();
    assert_close("cpu stride2 pad2", &out[0].data, &g.vec("out"), TOL);
}

#[test]
fn gpu_chain_matches_pytorch_with_both_kernels() {
    let Some(ctx) = test_context() else { return };
    let mut engine = common::executor(ctx);
    for (file, seed) in CHAIN_FILES {
        let g = Golden::open(file);
        let net = Network::tutorial(seed);
        for kernel in [Kernel::Tuned, Kernel::Naive] {
            let acts = common::run_net(&mut engine, ctx, &net, &g.tensor("input"), kernel, Block::default());
            for (i, name) in ["conv1", "conv2", "conv3"].iter().enumerate() {
                let got = acts.read(ctx, i + 1).unwrap();
                assert_eq!(got.shape.nchw().to_vec(), g.shape(&format!("{name}.out")));
                assert_close(
                    &format!("gpu {} {file} {name}", kernel.name()),
                    &got.data,
                    &g.vec(&format!("{name}.out")),
                    TOL,
                );
            }
        }
    }
}

#[test]
fn gpu_stride2_pad2_matches_pytorch() {
    let Some(ctx) = test_context() else { return };
    let g = Golden::open("conv_stride2_pad2.safetensors");
    let net = Network::seeded_convs(0, &[(3, 12, 5, 2, 2)]);
    assert_eq!(conv_of(&net, 0).weight, g.vec("weight"));
    let mut engine = common::executor(ctx);
    for kernel in [Kernel::Tuned, Kernel::Naive] {
        let acts = common::run_net(&mut engine, ctx, &net, &g.tensor("input"), kernel, Block::default());
        let got = acts.read(ctx, 1).unwrap();
        assert_close(&format!("gpu {} stride2 pad2", kernel.name()), &got.data, &g.vec("out"), TOL);
    }
}

const ONET_ARCH: &str = "conv1 prelu1 pool1=maxpool(3,2,ceil) conv2 prelu2 pool2=maxpool(3,2,ceil) conv3 prelu3 pool3=maxpool(2,2,ceil) conv4 prelu4";
const STACK_ARCH: &str = "layers.0(pad=1) layers.1 layers.2=relu layers.3=maxpool(2) layers.4(stride=2,pad=1) layers.5 \
    layers.6=relu layers.7=maxpool(3,2,ceil) layers.8 layers.9=relu layers.10(pad=2) layers.11=relu";

/// A network from a golden file's own weights and an --arch line.
fn golden_net(file: &str, arch: &str) -> Network {
    let sd = convscope::weights::StateDict::open(&common::fixture(file)).unwrap();
    convscope::arch::build(Some(arch), Some(&sd), 0).unwrap()
}

/// Every layer of `net`, on the CPU and on the GPU (both kernels, whole and in bands),
/// against the golden `NAME.out` tensors.
fn check_all_layers(file: &str, net: &Network, tol: f32, band_limit: u64) {
    let g = Golden::open(file);
    let input = g.tensor("input");
    let cpu = reference::forward(net, &input).unwrap();
    for (layer, out) in net.layers.iter().zip(&cpu) {
        assert_close(&format!("cpu {file} {}", layer.name), &out.data, &g.vec(&format!("{}.out", layer.name)), tol);
    }
    let Some(ctx) = test_context() else { return };
    for (kernel, max_binding) in [(Kernel::Tuned, None), (Kernel::Naive, None), (Kernel::Tuned, Some(band_limit))] {
        let mut engine = common::executor(ctx);
        engine.max_binding = max_binding;
        for block in [
            Block::default(),
            Block { px: 24, ocv: 3, unroll: true, lanes: 1, sg: false, py: 1, wino: false, split: 1, image: false },
            Block {
                px: 16,
                ocv: 3,
                unroll: true,
                lanes: 1,
                sg: ctx.subgroups,
                py: 1,
                wino: false,
                split: 1,
                image: false,
            },
        ] {
            let acts = common::run_net(&mut engine, ctx, net, &input, kernel, block);
            for (i, layer) in net.layers.iter().enumerate() {
                let name = format!("{}.out", layer.name);
                let got = acts.read(ctx, i + 1).unwrap();
                assert_eq!(got.shape.nchw().to_vec(), g.shape(&name), "{name}");
                let bands = acts.band_counts();
                if max_binding.is_some() {
                    assert!(bands[1] > 1, "a banded run was asked for: {bands:?}");
                }
                let what = format!("gpu {} {:?} bands {bands:?} {file} {}", kernel.name(), block, layer.name);
                assert_close(&what, &got.data, &g.vec(&name), tol);
            }
        }
    }
}

#[test]
fn trained_onet_trunk_matches_pytorch() {
    check_all_layers("onet_cat_96x96.safetensors", &golden_net("mtcnn_onet.safetensors", ONET_ARCH), 2e-5, 700 << 10);
    // The golden file's own copy of the weights gives the same network.
    assert_eq!(golden_net("onet_cat_96x96.safetensors", ONET_ARCH), golden_net("mtcnn_onet.safetensors", ONET_ARCH));
}

#[test]
fn batchnorm_relu_pool_stack_matches_pytorch() {
    let net = golden_net("stack_bn_relu_pool.safetensors", STACK_ARCH);
    let kinds: Vec<&str> = net.layers.iter().map(|l| l.op.kind()).collect();
    assert_eq!(
        kinds,
        [
            "conv",
            "batchnorm",
            "relu",
            "maxpool",
            "conv",
            "batchnorm",
            "relu",
            "maxpool",
            "conv",
            "relu",
            "conv",
            "relu"
        ]
    );
    check_all_layers("stack_bn_relu_pool.safetensors", &net, 1e-5, 150 << 10);
}

#[test]
fn without_arch_the_weights_convs_are_taken_in_order() {
    let sd = convscope::weights::StateDict::open(&common::fixture("stack_bn_relu_pool.safetensors")).unwrap();
    let net = convscope::arch::build(None, Some(&sd), 0).unwrap();
    let names: Vec<&str> = net.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["layers.0", "layers.4", "layers.8", "layers.10"]);
}
