"""DDP with 2 CPU processes (gloo), launched in a subprocess so Lightning can re-run the script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gdsynth.models.folder import load_model_folder
from tests.fixtures.training import TINY

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from gdsynth.data.subjects import TrainingExam
from gdsynth.training.config import load_config
from gdsynth.training.run import RunOptions, train_run

spec = json.loads(Path(sys.argv[1]).read_text())
exams = [TrainingExam(id=e["id"], paths={k: Path(v) for k, v in e["paths"].items()},
                      truth=Path(e["truth"])) for e in spec["exams"]]
cfg = load_config(spec["config"])
cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.accelerator = "ddp", 2, "cpu"
cfg.trainer.max_steps = 2
result = train_run(exams, Path(spec["run"]), cfg, RunOptions(verbose=True))  # Lightning banners shown
print("RESULT", result.steps, result.model_dir)
"""


def test_ddp_two_cpu_processes(cohort, tmp_path):
    spec = {"config": str(TINY), "run": str(tmp_path / "run"),
            "exams": [{"id": e.id, "paths": {k: str(v) for k, v in e.paths.items()},
                       "truth": str(e.truth)} for e in cohort]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "spec.json")],
                          capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT 2" in proc.stdout
    assert "distributed_backend=gloo" in proc.stderr or "All distributed processes" in proc.stderr
    generator, card = load_model_folder(tmp_path / "run" / "model")
    assert card.training["steps"] == 2
