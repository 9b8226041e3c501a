#!/usr/bin/env bash
# On a machine with a real GPU (not CI): convscope's tests, peers and parity on that GPU.
#
# usage: tools/gpu_check.sh BIN TESTS_DIR OUT
#   BIN        a release `convscope` built elsewhere (its path as the test binaries expect it)
#   TESTS_DIR  test binaries from `cargo test --release --no-run`, renamed to their test names
#   OUT        folder for the logs (one per stage and per test binary)
# Each stage has its own time limit, so one that hangs leaves the others' results.
# Stages: adapter · peers on single convs and the chain (PyTorch on CUDA, TF32 off) · every
# register block on each shape beside the autotuned one · whole networks against PyTorch ·
# the GPU test binaries · torchvision networks node by node against onnxruntime.
set -u
BIN=$1 TESTS=$2 OUT=$3
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
stage() { # name limit_s command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%T))"
    # Through bash so that a stage can be one of the functions below (exported).
    timeout "$limit" bash -c '"$@"' _ "$@" >"$OUT/$name.log" 2>&1
    echo "rc=$? $(date +%T)"
    tail -n "${TAIL:-30}" "$OUT/$name.log"
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$OUT/gpu.txt"
grep -m1 "model name" /proc/cpuinfo | tee -a "$OUT/gpu.txt"
export CONVSCOPE_REQUIRE_GPU=1
stage adapter 45 "$BIN" bench --shape 64,64,3,56x56,1,1 --runs 5
stage peers 90 python3 "$HERE/peers/compare.py" "$BIN" --rounds 3 --runs 20 --torch-device cuda
export BIN TESTS OUT
sweep() {
    for s in 64,64,3,56x56,1,1 64,256,1,56x56 128,128,3,28x28,1,1 256,256,3,14x14,1,1 512,512,3,7x7,1,1 \
        1024,256,1,14x14 12,24,5,221x396 24,48,5,217x392; do
        "$BIN" bench --runs 20 --shape "$s"
        args=()
        for b in 8x1 4x2 8x2 16x2 4x4 4x2l8 8x2l8 8x2s 1x1k4 1x2k4 1x2k8 1x4k8 1x1k16 1x2k16 1x4k16 1x1k32 \
            1x2k32 1x1k64; do args+=(--block "$b"); done
        "$BIN" bench --runs 20 --shape "$s" "${args[@]}"
    done
}
export -f sweep
TAIL=100 stage blocks 90 sweep
tests() {
    local rc=0
    for t in "$TESTS"/*; do
        local name log
        name=$(basename "$t")
        log="$OUT/test-$name.log"
        echo "--- $name"
        "$t" --test-threads 16 >"$log" 2>&1 || rc=1
        grep -E "FAILED|^test result|panicked" "$log" | head -20
    done
    return $rc
}
export -f tests
TAIL=80 stage tests 150 tests
stage models 90 python3 "$HERE/peers/torchvision_bench.py" "$BIN" /tmp/tvb --device cuda --rounds 3
stage chain1080 30 "$BIN" bench --size 1080x1920 --runs 10
slowest() {
    for n in resnet18 efficientnet_b0; do "$BIN" bench --model "/tmp/tvb/$n.onnx" --runs 10 --nodes 10; done
}
export -f slowest
TAIL=60 stage slowest 40 slowest
stage parity 90 python3 "$HERE/torchvision_check.py" "$BIN" /tmp/tvc ${PARITY_NETS:-resnet18 mobilenet_v3_small}
