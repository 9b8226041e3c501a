// Draws a rectangle of a grid texture into a rectangle of the render target, keeping
// texels sharp when magnified (nearest) and averaging them when minified (box filter over
// each pixel's footprint), so a large grid shrinks without aliasing and without mipmaps.

struct Params {
    // Destination rectangle in target pixels: x0, y0, x1, y1.
    dst: vec4<f32>,
    // Source rectangle in texels: x0, y0, width, height.
    src: vec4<f32>,
    // Target size in pixels.
    target_size: vec2<f32>,
    // 1 when the target is an sRGB format (values are converted to linear first).
    srgb_target: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var grid: texture_2d<f32>;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
}

// One invocation emits one corner of the two triangles covering the destination rectangle.
@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> VsOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let c = corners[vi];
    let px = mix(p.dst.xy, p.dst.zw, c);
    let ndc = vec2<f32>(px.x / p.target_size.x * 2.0 - 1.0, 1.0 - px.y / p.target_size.y * 2.0);
    var out: VsOut;
    out.pos = vec4<f32>(ndc, 0.0, 1.0);
    return out;
}

fn to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

// One invocation shades one target pixel from the texels its footprint covers.
@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let size = p.dst.zw - p.dst.xy;
    let tpp = p.src.zw / size; // texels per pixel along x and y
    let u = (in.pos.xy - p.dst.xy) / size;
    let t = p.src.xy + u * p.src.zw;
    let lim = vec2<i32>(p.src.xy + p.src.zw) - vec2<i32>(1);
    let lo = vec2<i32>(p.src.xy);
    var colour: vec4<f32>;
    if (tpp.x <= 1.0 && tpp.y <= 1.0) {
        colour = textureLoad(grid, clamp(vec2<i32>(floor(t)), lo, lim), 0);
    } else {
        let n = vec2<i32>(clamp(ceil(tpp), vec2<f32>(1.0), vec2<f32>(8.0)));
        let start = t - tpp * 0.5;
        var sum = vec4<f32>(0.0);
        for (var j = 0; j < n.y; j++) {
            for (var i = 0; i < n.x; i++) {
                let s = start + (vec2<f32>(f32(i), f32(j)) + 0.5) * tpp / vec2<f32>(n);
                sum += textureLoad(grid, clamp(vec2<i32>(floor(s)), lo, lim), 0);
            }
        }
        colour = sum / f32(n.x * n.y);
    }
    if (p.srgb_target == 1u) {
        colour = vec4<f32>(to_linear(colour.rgb), colour.a);
    }
    return colour;
}
