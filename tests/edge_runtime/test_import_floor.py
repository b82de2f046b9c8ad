"""The runtime floor: edge_runtime imports numpy, opencv, onnxruntime, click and the stdlib only."""

import ast
import subprocess
import sys

from clitools import ROOT

ALLOWED = {"numpy", "cv2", "onnxruntime", "click", "edge_runtime"}


def test_edge_runtime_imports_only_the_floor():
    offenders = []
    for path in (ROOT / "edge_runtime").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names and top != "__future__":
                    offenders.append(f"{path.name}: {name}")
    assert not offenders, offenders


def test_edge_run_help_and_import_never_load_torch():
    code = (
        "import sys\n"
        "import edge_runtime, edge_runtime.cli, edge_runtime.eval_cli\n"
        "from edge_runtime.cli import edge_run\n"
        "try:\n    edge_run.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'train', 'export', 'paho', 'pymodbus', 'edge_line'))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
    assert "--camera" in out.stdout
