//! The viewer's present pass, rendered offscreen: at 1:1 it reproduces the exported grid
//! exactly; minified it box-filters; magnified it stays sharp (nearest).

mod common;
use convscope::gpu::{GpuContext, test_context};
use convscope::network::Network;
use convscope::ops::ConvKernel;
use convscope::ops::conv_tuned::Block;
use convscope::ops::present::{Presenter, Rect};
use convscope::visual::{Look, Visualizer, read_texture};

fn offscreen(ctx: &GpuContext, w: u32, h: u32) -> wgpu::Texture {
    ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("offscreen target"),
        size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

fn present(ctx: &GpuContext, p: &mut Presenter, grid: &wgpu::Texture, src: Rect, w: u32, h: u32) -> image::RgbaImage {
    let target = offscreen(ctx, w, h);
    let view = target.create_view(&Default::default());
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let dst = Rect { x: 0.0, y: 0.0, w: w as f32, h: h as f32 };
    p.draw(ctx, &mut enc, &view, (w, h), grid, src, dst);
    ctx.queue.submit([enc.finish()]);
    read_texture(ctx, &target).unwrap()
}

#[test]
fn present_pass_reproduces_the_exported_grid() {
    let Some(ctx) = test_context() else { return };
    let mut engine = common::executor(ctx);
    let net = Network::tutorial(0);
    let input = convscope::input::tensor_from_rgb8(&convscope::input::builtin_scene(), Default::default());
    let acts = common::run_net(&mut engine, ctx, &net, &input, ConvKernel::Tuned, Block::default());
    let vis = Visualizer::new(ctx);
    let mut presenter = Presenter::new(ctx, wgpu::TextureFormat::Rgba8Unorm);
    for i in 0..acts.shapes.len() {
        let grid = vis.render(ctx, &acts, i, Look::default(), [0, 1, 2]).unwrap();
        // What `export` writes for this layer.
        let exported = read_texture(ctx, &grid.texture).unwrap();
        let (w, h) = exported.dimensions();
        let full = Rect { x: 0.0, y: 0.0, w: w as f32, h: h as f32 };
        let shown = present(ctx, &mut presenter, &grid.texture, full, w, h);
        assert!(shown == exported, "layer {i}: 1:1 present differs from the exported grid");

        // Minified by 2: each pixel is the mean of its 2x2 block (±1 for rounding).
        let (hw, hh) = (w / 2, h / 2);
        let src = Rect { x: 0.0, y: 0.0, w: (hw * 2) as f32, h: (hh * 2) as f32 };
        let small = present(ctx, &mut presenter, &grid.texture, src, hw, hh);
        // Every pixel of the whole image, against the box filter computed here.
        assert_eq!(small.dimensions(), (hw, hh));
        let mut bad = 0;
        for y in 0..hh {
            for x in 0..hw {
                for c in 0..3 {
                    let m: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                        .iter()
                        .map(|(dx, dy)| exported.get_pixel(2 * x + dx, 2 * y + dy).0[c] as u32)
                        .sum::<u32>();
                    let got = small.get_pixel(x, y).0[c] as i32;
                    bad += usize::from((got - (m as f32 / 4.0).round() as i32).abs() > 1);
                }
            }
        }
        assert_eq!(bad, 0, "layer {i}: {bad} minified channel values off by more than 1");
    }
    // Magnified 3x on one tile: nearest, so every 3x3 block is one texel.
    let grid = vis.render(ctx, &acts, 1, Look::default(), [0, 1, 2]).unwrap();
    let exported = read_texture(ctx, &grid.texture).unwrap();
    let (x0, y0) = grid.layout.tile_origin(5);
    let src = Rect { x: x0 as f32, y: y0 as f32, w: 20.0, h: 10.0 };
    let big = present(ctx, &mut presenter, &grid.texture, src, 60, 30);
    let want = image::RgbaImage::from_fn(60, 30, |x, y| *exported.get_pixel(x0 as u32 + x / 3, y0 as u32 + y / 3));
    assert!(big == want, "magnified tile is not the nearest-neighbour enlargement of the grid");
}
