"""The ``cxrexplain`` command answers ``--help`` and ``--version`` without importing TensorFlow
or Keras, and keeps TensorFlow's and absl's log lines off by default (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from tiny_models import conv_gap_dense

import cxrexplain as cx
from cxrexplain.cli import _prepare_environment

HELP_COMMANDS = [
    ["--help"], ["--version"], ["demo", "--help"], ["train", "--help"], ["predict", "--help"],
    ["explain", "--help"], ["evaluate", "--help"], ["audit", "--help"],
    ["lungs", "train", "--help"], ["lungs", "--help"], ["methods", "--help"],
]
NOISE = ["oneDNN", "cuda", "cpu_feature_guard", "absl::InitializeLog"]

# Runs the command as ``python -m cxrexplain`` does (runpy imports the package, then
# ``cxrexplain.__main__``), then reports which heavy modules were imported.
PROBE = """
import runpy, sys
sys.argv = ["cxrexplain", *sys.argv[1:]]
try:
    runpy.run_module("cxrexplain", run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
heavy = sorted(m for m in ("tensorflow", "keras", "cv2", "matplotlib") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
sys.exit(code)
"""


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("args", HELP_COMMANDS, ids=" ".join)
def test_help_and_version_import_no_tensorflow(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                            text=True, timeout=120, check=False, env=_clean_env())
    assert result.returncode == 0, result.stderr
    expected = f"cxrexplain {cx.__version__}" if args == ["--version"] else "usage: cxrexplain"
    assert expected in result.stdout
    assert "HEAVY=\n" in result.stdout, result.stdout.splitlines()[-1]
    assert result.stderr == ""


def test_python_dash_m_help() -> None:
    result = subprocess.run([sys.executable, "-m", "cxrexplain", "--help"], capture_output=True,
                            text=True, timeout=120, check=False, env=_clean_env())
    assert result.returncode == 0, result.stderr
    assert "usage: cxrexplain" in result.stdout
    assert "--debug" in result.stdout
    assert result.stderr == ""


def test_console_script_help() -> None:
    script = Path(sys.executable).with_name("cxrexplain")
    if not script.is_file():
        pytest.skip("the cxrexplain console script is not installed next to the interpreter")
    code = PROBE.replace('runpy.run_module("cxrexplain", run_name="__main__", alter_sys=True)',
                         f"runpy.run_path({str(script)!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True,
                            text=True, timeout=120, check=False, env=_clean_env())
    assert result.returncode == 0, result.stderr
    assert "usage: cxrexplain" in result.stdout
    assert "HEAVY=\n" in result.stdout


def test_the_command_loads_facade_names_on_use() -> None:
    code = PROBE.replace("heavy = ", "import cxrexplain as cx; cx.GradCAM; heavy = ")
    result = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True,
                            text=True, timeout=300, check=False,
                            env=_clean_env() | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert "HEAVY=" in result.stdout and "tensorflow" in result.stdout


def test_a_library_import_stays_eager(tmp_path: Path) -> None:
    # ``import cxrexplain`` still registers the Keras custom objects: a raw Keras load of a
    # model with cxrexplain layers works right after it
    from cxrexplain.models.layers import ImagenetPreprocessing

    path = tmp_path / "custom.keras"
    keras.Sequential([keras.Input((8, 8, 3)), ImagenetPreprocessing(),
                      keras.layers.GlobalAveragePooling2D()]).save(path)
    code = (f"import sys, cxrexplain, keras; keras.models.load_model({str(path)!r}); "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=False,
                            env=_clean_env() | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_overlay_stays_the_function_in_the_command() -> None:
    # in the command the facade is lazy; the deprecated module name ``cxrexplain.overlay`` (the
    # drawing package's former name) must not turn ``cx.overlay`` into a module
    code = PROBE.replace("heavy = ", """import cxrexplain as cx, cxrexplain.overlay, warnings
print('OVERLAY', callable(cx.overlay), 'NoSuchName' in dir(cx), set(cx.__all__) <= set(dir(cx)))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    from cxrexplain.overlay import colorize
from cxrexplain.drawing import colorize as drawn
print('ALIAS', colorize is drawn, [w.category.__name__ for w in caught], callable(cx.overlay))
heavy = """)
    result = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True,
                            text=True, timeout=300, check=False,
                            env=_clean_env() | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert "OVERLAY True False True" in result.stdout
    assert "ALIAS True ['DeprecationWarning'] True" in result.stdout
    with pytest.raises(AttributeError):
        cx.NoSuchName  # noqa: B018


def test_deprecated_overlay_module_in_a_library() -> None:
    import cxrexplain.overlay  # noqa: F401 (the deprecated name imports)

    from cxrexplain import drawing

    alias = sys.modules["cxrexplain.overlay"]
    assert callable(cx.overlay) and cx.overlay is drawing.overlay
    with pytest.warns(DeprecationWarning, match=r"cxrexplain\.drawing"):
        from cxrexplain.overlay import save_overlay
    assert save_overlay is drawing.save_overlay
    assert set(drawing.__all__) <= set(dir(alias))
    assert cx.overlay is drawing.overlay  # importing the alias bound nothing in the package
    with pytest.raises(AttributeError):
        alias.__path__  # noqa: B018 (a module, not a package: no second copy of drawing's)


def test_prepare_environment_quiets_tensorflow_by_default() -> None:
    env: dict[str, str] = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert _prepare_environment(False, env) is True
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR",
                   "TF_ENABLE_ONEDNN_OPTS": "1"}


def test_debug_keeps_tensorflow_logs() -> None:
    env: dict[str, str] = {}
    assert _prepare_environment(True, env) is False
    assert env == {}


def test_user_setting_is_kept() -> None:
    env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert _prepare_environment(False, env) is False
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "0"}


@pytest.fixture(scope="module")
def model_and_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("quiet")
    model = conv_gap_dense(2, "softmax", size=32, padding="same")
    path = cx.Classifier(model, ["NORMAL", "PNEUMONIA"]).save(folder / "m.keras")
    image = folder / "a.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (40, 48), np.uint8))
    return path, image


def test_command_stderr_has_no_tensorflow_lines(model_and_image: tuple[Path, Path]) -> None:
    model, image = model_and_image
    result = subprocess.run([sys.executable, "-m", "cxrexplain", "predict", str(model),
                             str(image)], capture_output=True, text=True, timeout=300,
                            check=False, env=_clean_env())
    assert result.returncode == 0, result.stderr
    assert "a.png" in result.stdout
    noisy = [line for line in result.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, result.stderr
