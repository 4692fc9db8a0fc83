"""Build hook (the project metadata is in pyproject.toml): a built wheel carries the shipped
models (Resources/Models: fp16 weights and their cards) as SpineAILib/_models, where
SpineAILib.models.default_models_dir() finds them in an installed package, and the terminology
context (Resources/Terminology) as SpineAILib/_terminology."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "Resources" / "Models"
TERMINOLOGY = Path(__file__).resolve().parent / "Resources" / "Terminology"


class BuildPyWithModels(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "SpineAILib" / "_models"
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(MODELS.glob("*")):
            if f.suffix in (".pt", ".npz", ".json"):
                self.copy_file(str(f), str(target / f.name))
        target = Path(self.build_lib) / "SpineAILib" / "_terminology"
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(TERMINOLOGY.glob("*.term.json")):
            self.copy_file(str(f), str(target / f.name))


setup(cmdclass={"build_py": BuildPyWithModels})
