//! The viewer end to end under X (Xvfb in CI): launch on a fixture, drive it with xdotool
//! (Right ×3, Left, S, K, N, R, hover, Esc), check the log lines, that the saved PNG equals
//! the export of that layer, that a re-roll recompiles no pipeline, and a clean exit.

mod common;
use common::fixture;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn required() -> bool {
    std::env::var("CONVSCOPE_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

fn xdotool(args: &[&str]) -> String {
    let out = Command::new("xdotool").args(args).output().expect("run xdotool");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running viewer: its stdout (and, when asked, stderr) lines arrive on channels.
struct Viewer {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    log: Option<mpsc::Receiver<String>>,
    seen: Vec<String>,
    wid: String,
}

/// Whether an X display and xdotool are there (required when CONVSCOPE_REQUIRE_GPU=1).
/// On a loaded machine a synthetic key can stay down long enough to auto-repeat (a second
/// press): `.ci/run` starts Xvfb with `-ardelay 60000`; `xset r off` is tried too, for X
/// servers that honour it (Xvfb does not).
fn have_x() -> bool {
    let ok = std::env::var("DISPLAY").is_ok() && Command::new("xdotool").arg("version").output().is_ok();
    if ok {
        let _ = Command::new("xset").args(["r", "off"]).output();
    }
    if !ok {
        assert!(!required(), "CONVSCOPE_REQUIRE_GPU=1 but no DISPLAY/xdotool for the viewer test");
        eprintln!("skipping: no X display or xdotool");
    }
    ok
}

fn lines_of<R: std::io::Read + Send + 'static>(r: R, tag: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            eprintln!("{tag}: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The viewer tests share one X display without a window manager: keyboard focus is
/// global, so they run one at a time.
static DISPLAY_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Viewer {
    /// Launches the viewer with `args` in `dir`, waits for `first` and finds its window.
    fn launch(args: &[&std::ffi::OsStr], dir: &std::path::Path, first: &str, with_log: bool) -> Viewer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convscope"));
        cmd.args(args).current_dir(dir).stdout(Stdio::piped());
        // Blocks stay fixed (the re-roll test counts pipelines built), and no cache is written
        // outside the build folder.
        cmd.env("CONVSCOPE_AUTOTUNE", "0").env("CONVSCOPE_CACHE_DIR", dir.join("cache"));
        // stderr is read (and echoed) either way: a launch that could not open a window says
        // so there.
        cmd.stderr(Stdio::piped());
        if with_log {
            cmd.env("RUST_LOG", "convscope=info");
        }
        // On a loaded machine Xvfb has refused a connection now and then ("Failed to open
        // connection to X server", seen once in CI): such a launch is tried again.
        let mut attempts = 0;
        let mut v = loop {
            attempts += 1;
            let mut child = cmd.spawn().expect("launch viewer");
            let lines = lines_of(child.stdout.take().expect("stdout"), "viewer");
            let log = child.stderr.take().map(|e| lines_of(e, "viewer log"));
            let mut v = Viewer { child, lines, log, seen: Vec::new(), wid: String::new() };
            match v.wait_line(first) {
                Ok(()) => break v,
                Err(e) => {
                    let status = v.child.wait().ok();
                    let no_display = v.log.as_ref().is_some_and(|rx| {
                        let until = Instant::now() + Duration::from_secs(2);
                        std::iter::from_fn(|| rx.recv_timeout(until.saturating_duration_since(Instant::now())).ok())
                            .any(|l| l.contains("cannot open a window"))
                    });
                    assert!(no_display && attempts < 3, "{e} (exit {status:?})");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        let pid = v.child.id().to_string();
        let wid = xdotool(&["search", "--sync", "--onlyvisible", "--pid", &pid]);
        v.wid = wid.lines().next().expect("viewer window").to_string();
        xdotool(&["windowfocus", "--sync", &v.wid]);
        v
    }

    fn expect(&mut self, want: &str) {
        if let Err(e) = self.wait_line(want) {
            panic!("{e}");
        }
    }

    /// Waits (a minute at most) for the line `want`; the error says what was seen instead.
    fn wait_line(&mut self, want: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l == want {
                        return Ok(());
                    }
                }
                Err(_) => return Err(format!("viewer never printed {want:?}; saw {:?}", self.seen)),
            }
        }
    }

    /// Waits for a line starting with `prefix`; returns it.
    fn expect_prefix(&mut self, prefix: &str) -> String {
        self.wait_prefix(prefix, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("viewer never printed a line starting {prefix:?}; saw {:?}", self.seen))
    }

    /// A line starting with `prefix` within `within`, if one comes.
    fn wait_prefix(&mut self, prefix: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    fn key(&mut self, key: &str) {
        xdotool(&["key", "--window", &self.wid, key]);
    }

    /// Waits for a log line (stderr) containing `needle`; returns it.
    fn wait_log(&mut self, needle: &str) -> String {
        let rx = self.log.as_ref().expect("launched with the log");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    }

    /// Log lines (stderr) containing `needle` seen so far.
    fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log.as_ref().map_or(Vec::new(), |rx| rx.try_iter().filter(|l| l.contains(needle)).collect())
    }

    fn quit(mut self) {
        self.key("Escape");
        self.expect("quit");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "viewer did not exit after Esc");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "viewer exit status {status}");
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        // A failed test must not leave its window on the shared display.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn viewer_flips_layers_saves_and_quits() {
    if !have_x() {
        return;
    }
    let _display = DISPLAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let bin = env!("CARGO_BIN_EXE_convscope");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = fixture("chelsea_face_96x96.png");

    // The reference: export of the same image and seed.
    let st = Command::new(bin).arg("export").arg(&img).arg("--out").arg(dir.join("export")).status().unwrap();
    assert!(st.success());

    let mut v = Viewer::launch(&[img.as_os_str()], &dir, "layer input (3x96x96)", false);
    for (key, line) in [
        ("Right", "layer conv1 (12x92x92)"),
        ("Right", "layer conv2 (24x88x88)"),
        ("Right", "layer conv3 (48x84x84)"),
        ("Left", "layer conv2 (24x88x88)"),
        ("s", "saved convscope-conv2.png"),
    ] {
        v.key(key);
        v.expect(line);
    }
    // The kernels view wraps conv2's 24 rows of kernels into columns to the window's shape.
    v.key("k");
    let line = v.expect_prefix("kernels conv2 (");
    let columns: usize = line
        .trim_start_matches("kernels conv2 (")
        .trim_end_matches(" columns)")
        .parse()
        .unwrap_or_else(|_| panic!("kernels line: {line}"));
    assert!(columns > 1, "24 rows of 12 kernels are wrapped in a wide window: {line}");
    for (key, line) in [
        ("s", "saved convscope-conv2-kernels.png"),
        ("k", "kernels off conv2"),
        ("n", "look per-layer min-max viridis"),
    ] {
        v.key(key);
        v.expect(line);
    }
    v.quit();
    let saved = image::open(dir.join("convscope-conv2.png")).unwrap().to_rgba8();
    let exported = image::open(dir.join("export/conv2.png")).unwrap().to_rgba8();
    assert!(saved == exported, "saved view differs from the export of conv2");
    let kernels = image::open(dir.join("convscope-conv2-kernels.png")).unwrap().to_rgba8();
    let convscope::network::Op::Conv(c) = &convscope::network::Network::tutorial(0).layers[1].op else {
        panic!("conv2 is a conv")
    };
    let want = convscope::kernels::render_wrapped(c, None, columns);
    assert!(kernels == want, "saved kernels differ from the kernels view");
}

#[test]
fn reroll_on_a_tensor_input_recompiles_nothing_and_hovering_works_meanwhile() {
    if !have_x() {
        return;
    }
    let _display = DISPLAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer-e2e-reroll");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t = fixture("seed7_rand_37x53.safetensors");
    let args = [std::ffi::OsStr::new("--input-tensor"), t.as_os_str()];
    let mut v = Viewer::launch(&args, &dir, "layer input (3x37x53)", true);
    v.key("Right");
    v.expect("layer conv1 (12x33x49)");
    // The first computation finishes (an R while it runs would cancel it).
    let mut runs = vec![v.wait_log("run: pipelines built")];
    // Hover over the grid while re-rolls run: the window keeps answering keys.
    xdotool(&["mousemove", "--window", &v.wid, "300", "400"]);
    v.key("r");
    xdotool(&["mousemove", "--window", &v.wid, "320", "410"]);
    v.expect("seed 1");
    // Three quick presses: the newest seed is computed, none is lost in the state.
    v.key("r");
    v.key("r");
    v.key("r");
    v.expect("seed 4");
    v.key("Home");
    v.expect("layer input (3x37x53)");
    std::thread::sleep(Duration::from_millis(300));
    runs.extend(v.log_lines("run: pipelines built"));
    assert!(runs.len() >= 2, "every computation logs its cache use: {runs:?}");
    assert!(runs[0].contains("pipelines built 4,"), "the first run builds 3 convs + statistics: {}", runs[0]);
    for r in &runs[1..] {
        assert!(r.contains("pipelines built 0,"), "a re-roll recompiles nothing: {r}");
    }
    v.quit();
}

#[test]
fn onnx_model_pages_walk_with_keys_and_jump_from_the_panel() {
    if !have_x() {
        return;
    }
    let _display = DISPLAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer-e2e-onnx");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = fixture("chelsea_face_96x96.png");
    let model = fixture("onnx/resnetish.onnx");
    let args = [img.as_os_str(), std::ffi::OsStr::new("--model"), model.as_os_str()];
    // The model declares 64x80: the photo is scaled to cover it and its centre cut.
    let mut v = Viewer::launch(&args, &dir, "layer input (3x64x80)", false);
    for (key, line) in [
        ("Right", "layer /conv1/Conv (16x32x40)"),
        ("Right", "layer /Relu (16x32x40)"),
        // PageDown: the next group (/pool).
        ("Next", "layer /pool/MaxPool (16x16x20)"),
        ("Prior", "layer /Relu (16x32x40)"),
        // Convolutions only: the first conv's page shows it after its ReLU.
        ("f", "view convolutions only"),
        ("f", "view all nodes"),
        ("s", "saved convscope-Relu.png"),
    ] {
        v.key(key);
        v.expect(line);
    }
    v.key("End");
    let pred = v.expect_prefix("page predictions (top ");
    assert!(pred.ends_with(')'), "{pred}");
    // A click on a node in the panel (/layer1/conv1/Conv, under layer1 › conv1) jumps there.
    // The pointer first rests there so the panel has drawn it hovered (a loaded machine
    // may need a second try).
    let mut clicked = None;
    for _ in 0..3 {
        xdotool(&["mousemove", "--window", &v.wid, "100", "270", "sleep", "0.3", "click", "1"]);
        clicked = v.wait_prefix("panel ", Duration::from_secs(10));
        if clicked.is_some() {
            break;
        }
    }
    let clicked = clicked.unwrap_or_else(|| panic!("a click in the node panel jumped nowhere; saw {:?}", v.seen));
    let name = clicked.trim_start_matches("panel ").to_string();
    v.expect_prefix(&format!("layer {name} ("));
    v.key("p");
    v.expect("panel off");
    v.quit();
    assert!(dir.join("convscope-Relu.png").exists());
}
