#!/usr/bin/env bash
# The wheels a lent GPU needs for experiments/gpu_session.sh, in .whl/ (ignored by git; the device tool's
# `carry: [".whl"]`). The device has Python 3.12 with torch and transformers but not hydra, omegaconf, soundfile,
# soxr, wandb or the judges. A call carries at most 64 MiB with the checkout (~31 MB), so three wheels are slimmed:
# wandb without its parquet reader (exports only), silero-vad without its ONNX models (the judge loads the JIT
# one), pocketsphinx without its 27 MB English LM (the judges use the phone LM, the aligner none), built here
# for 3.12 (PyPI has no 3.12 wheel of 5.1.1). Praat (11 MB) and Whisper's model (~75 MB) do not fit: their
# judges are off or named as not heard. Needs a Python 3.12 here (PY312) to build pocketsphinx.
#   bash experiments/gpu_wheels.sh && du -sh .whl      # then: run(command="bash experiments/gpu_session.sh checks", carry=[".whl"])
set -euo pipefail
PY=${PY:-.venv/bin/python}; PY312=${PY312:-$(ls -d /root/.pyenv/versions/3.12*/bin/python 2>/dev/null | head -1)}; PY312=${PY312:-python3.12}
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
rm -rf .whl && mkdir .whl
version() { "$PY" -m pip show "$1" 2>/dev/null | awk '/^Version/{print $2}'; }
# the versions this checkout's .venv runs, for CPython 3.12 on x86-64
for name in hydra-core omegaconf soundfile soxr silero-vad wandb pydantic pydantic-core annotated-types \
    typing-inspection setproctitle platformdirs cwevals distro sniffio \
    opentelemetry-api opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-common \
    opentelemetry-proto opentelemetry-semantic-conventions opentelemetry-exporter-http-transport \
    opentelemetry-exporter-otlp-common googleapis-common-protos; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$name==$(version "$name")"
done
"$PY" -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==$(version antlr4-python3-runtime)"   # an sdist only
"$PY312" -m pip wheel -q --no-deps -w .whl "pocketsphinx==$(version pocketsphinx)"
zip -q -d .whl/wandb-*.whl 'wandb/bin/librust_parquet_ffi.so'
zip -q -d .whl/silero_vad-*.whl 'silero_vad/data/*.onnx'
zip -q -d .whl/pocketsphinx-*.whl 'pocketsphinx/model/en-us/en-us.lm.bin'
echo "gpu_wheels: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"
