"""Assemble README.md from the sections in docs/sections/ (one file per part of the project), in reading order."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["00-intro", "report", "00b-setup", "01-results", "02-overview", "core-math", "core-torch", "baselines",
         "eval", "taskbank", "layers", "layers-peers"]

parts = []
for name in ORDER:
    path = ROOT / "docs" / "sections" / f"{name}.md"
    if path.is_file():
        parts.append(path.read_text(encoding="utf-8").strip() + "\n")
extra = sorted(p.stem for p in (ROOT / "docs" / "sections").glob("*.md") if p.stem not in ORDER)
for name in extra:
    parts.append((ROOT / "docs" / "sections" / f"{name}.md").read_text(encoding="utf-8").strip() + "\n")
(ROOT / "README.md").write_text("\n".join(parts), encoding="utf-8")
print("README.md:", sum(len(p.splitlines()) for p in parts), "lines from", len(parts), "sections")
