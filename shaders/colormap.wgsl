// Colormapped channel grid: turns one layer (NCHW f32) into an RGBA8 grid image, each tile
// one channel, scaled by the chosen normalisation and looked up in a 256-entry table.
// The CPU twin is `reference::render_grid`; the layout rules are in `grid.rs`.

struct Params {
    tiles: u32,
    cols: u32,
    src_h: u32,
    src_w: u32,
    tile_h: u32,
    tile_w: u32,
    gutter: u32,
    step: u32,
    width: u32,
    height: u32,
    // 0 = per-channel min-max, 1 = per-layer min-max, 2 = symmetric around zero.
    norm: u32,
    // 1 when tile 0 is the colour image made of channels rgb.x, rgb.y, rgb.z.
    colour: u32,
    rgb: vec3<u32>,
    channels: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> lut: array<u32, 256>;
@group(0) @binding(4) var grid: texture_storage_2d<rgba8unorm, write>;

const BACKGROUND: vec4<f32> = vec4<f32>(1.0, 1.0, 1.0, 1.0);

fn layer_range() -> vec2<f32> {
    var r = vec2<f32>(3.4028235e38, -3.4028235e38);
    for (var c = 0u; c < p.channels; c++) {
        r = vec2<f32>(min(r.x, stats[c].x), max(r.y, stats[c].y));
    }
    return r;
}

fn lut_index(v: f32, lo: f32, hi: f32) -> u32 {
    let range = hi - lo;
    if (!(range > 0.0)) {
        return 0u;
    }
    let i = floor((v - lo) / range * 256.0);
    return u32(clamp(i, 0.0, 255.0));
}

fn colour_value(v: f32, r: vec2<f32>) -> f32 {
    var t = 0.0;
    if (r.x >= 0.0 && r.y <= 1.0) {
        t = v;
    } else if (r.y > r.x) {
        t = (v - r.x) / (r.y - r.x);
    }
    return floor(clamp(t, 0.0, 1.0) * 255.0 + 0.5) / 255.0;
}

fn value(c: u32, y: u32, x: u32) -> f32 {
    return data[(c * p.src_h + y) * p.src_w + x];
}

// One invocation colours one pixel (gid.x, gid.y) of the grid image.
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    var out = BACKGROUND;
    let cw = p.tile_w + p.gutter;
    let ch = p.tile_h + p.gutter;
    if (gid.x >= p.gutter && gid.y >= p.gutter) {
        let col = (gid.x - p.gutter) / cw;
        let tx = (gid.x - p.gutter) % cw;
        let row = (gid.y - p.gutter) / ch;
        let ty = (gid.y - p.gutter) % ch;
        let tile = row * p.cols + col;
        if (col < p.cols && tx < p.tile_w && ty < p.tile_h && tile < p.tiles) {
            let y = ty * p.step;
            let x = tx * p.step;
            if (p.colour == 1u && tile == 0u) {
                let r = layer_range();
                out = vec4<f32>(
                    colour_value(value(p.rgb.x, y, x), r),
                    colour_value(value(p.rgb.y, y, x), r),
                    colour_value(value(p.rgb.z, y, x), r),
                    1.0,
                );
            } else {
                let c = tile - p.colour;
                var range = stats[c];
                if (p.norm == 1u) {
                    range = layer_range();
                } else if (p.norm == 2u) {
                    let r = layer_range();
                    let a = max(abs(r.x), abs(r.y));
                    range = vec2<f32>(-a, a);
                }
                out = unpack4x8unorm(lut[lut_index(value(c, y, x), range.x, range.y)]);
            }
        }
    }
    textureStore(grid, vec2<i32>(gid.xy), out);
}
