"""Submitting a tile batch to SLURM: render the sbatch templates of configs/slurm/ and call ``sbatch``.

``tiles-array.sbatch`` is an array over the plan's tiles (``--array=0-(n-1)%parallel``; each task runs
``python -m massmap tiles run RUN``, index from $SLURM_ARRAY_TASK_ID); ``tiles-merge.sbatch`` runs
``massmap tiles merge`` once all of them succeeded (``--dependency=afterok:ARRAY``). Templates mark
their fields as @NAME@; the rendered scripts are kept in RUN/slurm/ next to the task logs. With
``only`` (tile indices), only those tasks are submitted (the array spec is the list).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from massmap.errors import InputError

TEMPLATES = Path(__file__).resolve().parents[2] / "configs" / "slurm"  # in a clone of the repository


def render(template: str, **fields: Any) -> str:
    """``template`` with every @NAME@ replaced by ``fields[name.lower()]`` (InputError on a field left)."""
    out = template
    for name, value in fields.items():
        out = out.replace(f"@{name.upper()}@", str(value))
    left = sorted(set(re.findall(r"@([A-Z_]+)@", out)))
    if left:
        raise InputError(f"sbatch template field(s) without a value: {', '.join(left)}")
    return out


def _sbatch(script: Path, *args: str) -> str:
    exe = shutil.which("sbatch")
    if exe is None:
        raise InputError("sbatch is not on PATH: SLURM is not installed here (see docs/cluster.md)")
    res = subprocess.run([exe, "--parsable", *args, str(script)], capture_output=True, text=True)
    if res.returncode != 0:
        raise InputError(f"sbatch {script.name} failed: {(res.stderr or res.stdout).strip().splitlines()[-1]}")
    return res.stdout.strip().split(";")[0]


JOB_DEFAULTS = {"cpus": 1, "mem_per_cpu": "2G", "time": "04:00:00", "extra": "", "nodes": 1, "tasks_per_node": 1,
                "gpus": 1}


def submit_job(template: str | Path, fields: dict[str, Any], script_dir: str | Path, extra: Sequence[str] = (),
               dependency: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Render a job template (fields @NAME@ from ``fields``, JOB_DEFAULTS and the interpreter) into
    ``script_dir`` and submit it; ``dry_run`` only renders. Returns the script path and the job id."""
    template = Path(template)
    if not template.is_file():
        raise InputError(f"sbatch template '{template}' does not exist")
    values = {**JOB_DEFAULTS, "python": sys.executable, **fields}
    values["extra"] = "\n".join(f"#SBATCH {e}" for e in extra)
    values.setdefault("log", str(Path(script_dir).resolve() / (template.stem + "-%j.log")))
    script = Path(script_dir) / template.name
    script.write_text(render(template.read_text(), **values))
    out = {"script": str(script)}
    if not dry_run:
        out["job"] = _sbatch(script, *([f"--dependency=afterok:{dependency}"] if dependency else []))
    return out


def submit_tiles(run_dir: str | Path, n_tiles: int, output: str | Path, *, only: Sequence[int] | None = None,
                 parallel: int = 64, cpus: int = 1, mem_per_cpu: str = "2G", time: str = "04:00:00",
                 extra: Sequence[str] = (), overwrite: bool = False, merge: bool = True,
                 templates: str | Path | None = None) -> dict[str, Any]:
    """Submit the array (and the dependent merge job); returns the job ids and the rendered scripts."""
    run_dir = Path(run_dir).resolve()
    folder = Path(templates) if templates is not None else TEMPLATES
    if not (folder / "tiles-array.sbatch").exists():
        raise InputError(f"no sbatch templates in '{folder}' (tiles-array.sbatch, tiles-merge.sbatch); "
                         "pass --templates configs/slurm from a clone of massmap")
    if only is None:
        spec = f"0-{n_tiles - 1}"
    else:
        bad = [i for i in only if not 0 <= i < n_tiles]
        if bad:
            raise InputError(f"task index {bad[0]} is out of range: the plan has {n_tiles} tiles")
        spec = ",".join(str(i) for i in sorted(set(only)))
    scripts = run_dir / "slurm"
    scripts.mkdir(exist_ok=True)
    common = dict(run=run_dir, cpus=cpus, mem_per_cpu=mem_per_cpu, time=time)
    job = submit_job(folder / "tiles-array.sbatch", {**common, "array": f"{spec}%{parallel}"}, scripts, extra)
    out = {"array_job": job["job"], "array_script": job["script"]}
    if merge:
        job = submit_job(folder / "tiles-merge.sbatch", {**common, "output": Path(output).resolve(),
                                                         "overwrite": "--overwrite" if overwrite else ""},
                         scripts, extra, dependency=out["array_job"])
        out.update(merge_job=job["job"], merge_script=job["script"])
    return out
