//! GPU context: instance, adapter and device chosen the way a user can steer
//! (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), limits requested from the adapter, GPU errors
//! caught rather than panicking, and a shared test context that prefers lavapipe.

use anyhow::{Result, anyhow, bail};
use std::sync::{Arc, Mutex};

/// How to get an adapter, appended to every "no adapter" message.
pub const HOW_TO_GET_A_GPU: &str = "install a GPU driver with Vulkan, Metal or DX12 support, \
or on Linux `apt-get install mesa-vulkan-drivers` for Mesa's lavapipe (a CPU Vulkan driver)";

/// A device and queue with the adapter they came from.
pub struct GpuContext {
    pub instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// Whether GPU timestamps can be written around compute passes.
    pub timestamps: bool,
    /// Whether shaders may use subgroup operations with subgroups of at least 8
    /// invocations (what the tuned conv's `…s` blocks need).
    pub subgroups: bool,
    /// Whether shaders may use 64-bit integers (`ops::wide`'s storage access).
    pub int64: bool,
    errors: Arc<Mutex<Vec<String>>>,
}

impl GpuContext {
    /// A headless context on the adapter the environment asks for, else the default one.
    pub fn headless() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(choose_adapter(&instance, None, false))?;
        Self::from_adapter(instance, adapter)
    }

    /// A context on `adapter`, with every limit the adapter offers, and timestamps,
    /// subgroup operations and 64-bit integers if present.
    pub fn from_adapter(instance: wgpu::Instance, adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_INT64);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("convscope device"),
            required_features: features,
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| anyhow!("the GPU adapter {} refused to create a device: {e}", info.name))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("GPU error: {e}");
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Self {
            instance,
            adapter,
            device,
            queue,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroups: features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= 8,
            int64: features.contains(wgpu::Features::SHADER_INT64),
            info,
            errors,
        })
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// `name (backend, kind)`, noting software adapters.
    pub fn describe(&self) -> String {
        let kind = match self.info.device_type {
            wgpu::DeviceType::Cpu => "CPU / software adapter",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Other => "other adapter",
        };
        format!("{} ({:?}, {kind})", self.info.name, self.info.backend)
    }

    /// Waits for all submitted work, then fails with the first GPU error seen, if any.
    /// (A blocking poll holds this device's locks while it waits: no other thread submits to
    /// a device something waits on; the viewer's UI thread has a device of its own.)
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("waiting for the GPU failed: {e}"))?;
        self.check_errors()
    }

    /// A second device and queue on the same adapter: work on it never queues behind this
    /// one's (the viewer presents on one while the network computes on the other).
    pub fn another_device(&self) -> Result<Self> {
        Self::from_adapter(self.instance.clone(), self.adapter.clone())
    }

    /// Fails with the first uncaptured GPU error since the last check.
    pub fn check_errors(&self) -> Result<()> {
        let mut errs = self.errors.lock().map_err(|_| anyhow!("GPU error log poisoned"))?;
        if let Some(first) = errs.first().cloned() {
            errs.clear();
            bail!("GPU error: {}", first.lines().next().unwrap_or("unknown"));
        }
        Ok(())
    }

    /// Copies `size` bytes of `buffer` from `offset` back to the CPU.
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let rb = Readback::start(self, buffer, offset, size);
        self.wait()?;
        // Another thread's poll may be the one that runs the callback: wait for it.
        rb.done.recv().map_err(|_| anyhow!("GPU read-back was cancelled"))?;
        rb.take()
    }

    /// Maps a MAP_READ buffer, waits, and copies its bytes out.
    pub fn map_and_read(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| anyhow!("GPU read-back was cancelled"))?
            .map_err(|e| anyhow!("GPU read-back failed: {e}"))?;
        let bytes = staging.get_mapped_range(..).map_err(|e| anyhow!("GPU read-back failed: {e}"))?.to_vec();
        staging.unmap();
        Ok(bytes)
    }
}

/// A read-back in flight: bytes copied into a staging buffer that is mapped
/// asynchronously. [`Readback::ready`] never blocks; the UI thread polls it each frame.
pub struct Readback {
    staging: wgpu::Buffer,
    /// 0 pending, 1 mapped, 2 failed.
    state: Arc<std::sync::atomic::AtomicU8>,
    /// Signalled by the map callback, which may run on whichever thread polls the device.
    done: std::sync::mpsc::Receiver<()>,
}

impl Readback {
    /// Starts copying `size` bytes of `buffer` from `offset`; returns at once.
    pub fn start(ctx: &GpuContext, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Readback {
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc =
            ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read-back copy") });
        enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
        ctx.queue.submit([enc.finish()]);
        let state: Arc<std::sync::atomic::AtomicU8> = Arc::default();
        let s = state.clone();
        let (tx, done) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            s.store(if r.is_ok() { 1 } else { 2 }, std::sync::atomic::Ordering::Release);
            let _ = tx.send(());
        });
        Readback { staging, state, done }
    }

    /// Whether the bytes have arrived (or the read-back failed); lets the device make
    /// progress first, without waiting.
    pub fn ready(&self, ctx: &GpuContext) -> bool {
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        self.state.load(std::sync::atomic::Ordering::Acquire) != 0
    }

    /// The bytes, once [`Readback::ready`]; an error while pending or when mapping failed.
    pub fn take(self) -> Result<Vec<u8>> {
        if self.state.load(std::sync::atomic::Ordering::Acquire) != 1 {
            bail!("GPU read-back failed or is not finished");
        }
        let bytes = self.staging.get_mapped_range(..).map_err(|e| anyhow!("GPU read-back failed: {e}"))?.to_vec();
        self.staging.unmap();
        Ok(bytes)
    }
}

/// A pipeline layout of one bind group.
pub fn pipeline_layout(ctx: &GpuContext, label: &str, group: &wgpu::BindGroupLayout) -> wgpu::PipelineLayout {
    ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(group)],
        immediate_size: 0,
    })
}

/// A compute pipeline from WGSL `source`'s `entry` point, labelled `label`.
pub fn compute_pipeline(
    ctx: &GpuContext,
    label: &str,
    source: &str,
    entry: &str,
    layout: &wgpu::PipelineLayout,
) -> wgpu::ComputePipeline {
    let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: Some(layout),
        module: &module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}

/// Copies rows `y0 .. y0 + rows` of an RGBA8 texture into a MAP_READ buffer at the 256-byte
/// row pitch the API requires; returns the buffer and the pitch. Submits, does not wait.
pub fn copy_texture_rows(ctx: &GpuContext, texture: &wgpu::Texture, y0: u32, rows: u32) -> (wgpu::Buffer, u32) {
    let w = texture.width();
    let pitch = (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("texture read-back"),
        size: pitch as u64 * rows.max(1) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc =
        ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("texture read-back") });
    enc.copy_texture_to_buffer(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d { x: 0, y: y0, z: 0 },
            aspect: wgpu::TextureAspect::All,
        },
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(pitch), rows_per_image: Some(rows) },
        },
        wgpu::Extent3d { width: w, height: rows, depth_or_array_layers: 1 },
    );
    ctx.queue.submit([enc.finish()]);
    (staging, pitch)
}

/// Rows `y0 .. y0 + rows` of an RGBA8 texture, tightly packed (waits for the GPU).
pub fn read_texture_rows(ctx: &GpuContext, texture: &wgpu::Texture, y0: u32, rows: u32) -> Result<Vec<u8>> {
    let (staging, pitch) = copy_texture_rows(ctx, texture, y0, rows);
    let bytes = ctx.map_and_read(&staging)?;
    Ok(unpitch(&bytes, pitch, texture.width(), rows))
}

/// Drops the row padding of `rows` rows of `width` RGBA8 texels copied at `pitch`.
pub fn unpitch(bytes: &[u8], pitch: u32, width: u32, rows: u32) -> Vec<u8> {
    let row = width as usize * 4;
    let mut out = Vec::with_capacity(row * rows as usize);
    for r in 0..rows as usize {
        let start = r * pitch as usize;
        if let Some(s) = bytes.get(start..start + row) {
            out.extend_from_slice(s);
        }
    }
    out
}

/// Picks an adapter: the first whose name contains `WGPU_ADAPTER_NAME` (case-insensitive)
/// when that is set, else a CPU adapter when `prefer_cpu`, else wgpu's default choice
/// (high performance unless `WGPU_POWER_PREF` says otherwise).
pub async fn choose_adapter(
    instance: &wgpu::Instance,
    surface: Option<&wgpu::Surface<'_>>,
    prefer_cpu: bool,
) -> Result<wgpu::Adapter> {
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    let usable: Vec<wgpu::Adapter> =
        adapters.into_iter().filter(|a| surface.is_none_or(|s| a.is_surface_supported(s))).collect();
    if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
        let want_l = want.to_lowercase();
        let names: Vec<String> = usable.iter().map(|a| a.get_info().name).collect();
        return usable.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&want_l)).ok_or_else(|| {
            anyhow!(
                "no GPU adapter matches WGPU_ADAPTER_NAME={want:?} (available: {}); unset it or pick one of those",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )
        });
    }
    if prefer_cpu && let Some(i) = usable.iter().position(|a| a.get_info().device_type == wgpu::DeviceType::Cpu) {
        return Ok(usable.into_iter().nth(i).expect("index from position"));
    }
    let opts = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
        compatible_surface: surface,
        force_fallback_adapter: false,
        apply_limit_buckets: false,
    };
    match instance.request_adapter(&opts).await {
        Ok(a) => Ok(a),
        Err(_) => usable.into_iter().next().ok_or_else(|| anyhow!("no GPU adapter found: {HOW_TO_GET_A_GPU}")),
    }
}

/// The context GPU tests share: prefers a CPU adapter (lavapipe) so results are the same
/// on every machine. `None` (the test skips) when there is no adapter, unless
/// `CONVSCOPE_REQUIRE_GPU=1`, in which case a missing adapter fails the test.
pub fn test_context() -> Option<&'static GpuContext> {
    static CTX: std::sync::OnceLock<Option<GpuContext>> = std::sync::OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let made = pollster::block_on(choose_adapter(&instance, None, true))
            .and_then(|a| GpuContext::from_adapter(instance, a));
        match made {
            Ok(c) => {
                eprintln!("GPU tests run on adapter: {}", c.describe());
                Some(c)
            }
            Err(e) => {
                if std::env::var("CONVSCOPE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                    panic!("CONVSCOPE_REQUIRE_GPU=1 but no GPU context: {e:#}");
                }
                eprintln!("skipping GPU test: {e:#}");
                None
            }
        }
    });
    ctx.as_ref()
}
