"""Regenerate the file list in SpineAILib/CMakeLists.txt after adding or removing modules.

Usage: python tools/update_cmake_lists.py   (Testing/test_slicer_layer.py fails until run)
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    cmake = ROOT / "SpineAILib" / "CMakeLists.txt"
    files = sorted(
        p.relative_to(ROOT / "SpineAILib").as_posix()
        for p in (ROOT / "SpineAILib").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    body = "".join(f"  {f}\n" for f in files)
    text = re.sub(r"(set\(SPINEAILIB_PYTHON_SCRIPTS\n)(.*?)(  \))", lambda m: m.group(1) + body + m.group(3),
                  cmake.read_text(encoding="utf-8"), flags=re.S)
    cmake.write_text(text, encoding="utf-8")
    print(f"{cmake.relative_to(ROOT)}: {len(files)} files")


if __name__ == "__main__":
    main()
