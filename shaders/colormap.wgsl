// Colormapped channel grid: turns one layer (NCHW f32) into an RGBA8 grid image, each tile
// one channel, scaled by the chosen normalisation and looked up in a 256-entry table.
// The CPU twin is `reference::render_grid`; the layout rules are in `grid.rs`. A layer
// held in horizontal bands is drawn one band at a time; `background` first fills gutters.

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
    // 1 when tile 0 is the colour image made of channels r_ch, g_ch, b_ch.
    colour: u32,
    r_ch: u32,
    g_ch: u32,
    b_ch: u32,
    channels: u32,
    // The band in `data`: its first row (of the whole layer) and its number of rows.
    band_row0: u32,
    band_rows: u32,
    // Tile rows drawn from this band: ty_lo .. ty_hi (source row = ty · step).
    ty_lo: u32,
    ty_hi: u32,
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

// Value of channel c at layer row y (inside this band) and column x.
fn value(c: u32, y: u32, x: u32) -> f32 {
    return data[(c * p.band_rows + (y - p.band_row0)) * p.src_w + x];
}

// Whether grid pixel (x, y) lies inside a tile that shows something.
fn in_tile(x: u32, y: u32) -> bool {
    if (x < p.gutter || y < p.gutter) {
        return false;
    }
    let col = (x - p.gutter) / (p.tile_w + p.gutter);
    let row = (y - p.gutter) / (p.tile_h + p.gutter);
    return col < p.cols && (x - p.gutter) % (p.tile_w + p.gutter) < p.tile_w
        && (y - p.gutter) % (p.tile_h + p.gutter) < p.tile_h && row * p.cols + col < p.tiles;
}

// One invocation paints grid pixel (gid.x, gid.y) with the background colour if it is a
// gutter or an unused cell (tile pixels are left to `main`, so the passes never overlap).
@compute @workgroup_size(16, 16, 1)
fn background(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.width && gid.y < p.height && !in_tile(gid.x, gid.y)) {
        textureStore(grid, vec2<i32>(gid.xy), BACKGROUND);
    }
}

// One invocation colours one tile pixel: grid column gid.x, tile row ty = ty_lo + gid.y
// of every tile in grid row gid.z (pixels whose source row lies in this band).
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ty = p.ty_lo + gid.y;
    if (gid.x >= p.width || ty >= p.ty_hi || gid.x < p.gutter) {
        return;
    }
    let cw = p.tile_w + p.gutter;
    let col = (gid.x - p.gutter) / cw;
    let tx = (gid.x - p.gutter) % cw;
    let tile = gid.z * p.cols + col;
    if (col >= p.cols || tx >= p.tile_w || ty >= p.tile_h || tile >= p.tiles) {
        return;
    }
    let gy = p.gutter + gid.z * (p.tile_h + p.gutter) + ty;
    let y = ty * p.step;
    let x = tx * p.step;
    var out: vec4<f32>;
    if (p.colour == 1u && tile == 0u) {
        let r = layer_range();
        out = vec4<f32>(
            colour_value(value(p.r_ch, y, x), r),
            colour_value(value(p.g_ch, y, x), r),
            colour_value(value(p.b_ch, y, x), r),
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
    textureStore(grid, vec2<i32>(i32(gid.x), i32(gy)), out);
}
