//! The viewer end to end under X (Xvfb in CI): launch on a fixture, drive it with xdotool
//! (Right ×3, Left, S, Esc), check the log lines, that the saved PNG equals the export of
//! that layer, and a clean exit.

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

#[test]
fn viewer_flips_layers_saves_and_quits() {
    let have_x = std::env::var("DISPLAY").is_ok() && Command::new("xdotool").arg("version").output().is_ok();
    if !have_x {
        assert!(!required(), "CONVSCOPE_REQUIRE_GPU=1 but no DISPLAY/xdotool for the viewer test");
        eprintln!("skipping: no X display or xdotool");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_convscope");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = fixture("chelsea_face_96x96.png");

    // The reference: export of the same image and seed.
    let st = Command::new(bin).arg("export").arg(&img).arg("--out").arg(dir.join("export")).status().unwrap();
    assert!(st.success());

    let mut child = Command::new(bin)
        .arg(&img)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("launch viewer");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("viewer: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut expect = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    seen.push(l.clone());
                    if l == want {
                        return;
                    }
                }
                Err(_) => panic!("viewer never printed {want:?}; saw {seen:?}"),
            }
        }
    };
    expect("layer input (3x96x96)");
    let pid = child.id().to_string();
    let wid = xdotool(&["search", "--sync", "--onlyvisible", "--pid", &pid]);
    let wid = wid.lines().next().expect("viewer window").to_string();
    xdotool(&["windowfocus", "--sync", &wid]);
    for (key, line) in [
        ("Right", "layer conv1 (12x92x92)"),
        ("Right", "layer conv2 (24x88x88)"),
        ("Right", "layer conv3 (48x84x84)"),
        ("Left", "layer conv2 (24x88x88)"),
        ("s", "saved convscope-conv2.png"),
        ("k", "kernels conv2"),
        ("s", "saved convscope-conv2-kernels.png"),
        ("k", "kernels off conv2"),
        ("n", "look per-layer min-max viridis"),
        ("Escape", "quit"),
    ] {
        xdotool(&["key", "--window", &wid, key]);
        expect(line);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "viewer did not exit after Esc");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "viewer exit status {status}");
    let saved = image::open(dir.join("convscope-conv2.png")).unwrap().to_rgba8();
    let exported = image::open(dir.join("export/conv2.png")).unwrap().to_rgba8();
    assert!(saved == exported, "saved view differs from the export of conv2");
    let kernels = image::open(dir.join("convscope-conv2-kernels.png")).unwrap().to_rgba8();
    let convscope::network::Op::Conv(c) = &convscope::network::Network::tutorial(0).layers[1].op else {
        panic!("conv2 is a conv")
    };
    assert!(kernels == convscope::kernels::render(c, None), "saved kernels differ from the kernels view");
}
