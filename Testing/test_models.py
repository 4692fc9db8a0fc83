"""Model registry: card + weights, sha256 verification, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from SpineAILib.errors import ModelError
from SpineAILib.models import ModelCard, list_models, load_card, load_model, write_card
from SpineAILib.models.registry import default_models_dir

KWARGS = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, "channels": [4, 8], "strides": [2]}


@pytest.fixture
def tiny_model(tmp_path):
    from SpineAILib.networks import build_network

    torch.manual_seed(0)
    net = build_network("monai.UNet", **KWARGS).eval()
    # Shipped weights are fp16 to stay small; loading converts back to fp32.
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()},
               tmp_path / "tiny.pt")
    card = ModelCard(name="tiny", task="test", architecture="monai.UNet", weights="tiny.pt", sha256="",
                     architecture_kwargs=KWARGS, metrics={"dice": 0.5}, training={"seed": 0})
    write_card(card, tmp_path)
    return net, tmp_path


def test_load_verified_model(tiny_model):
    net, d = tiny_model
    model, card = load_model("tiny", "cpu", models_dir=d)
    assert card.task == "test" and len(card.sha256) == 64
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net.half().float()(x), atol=1e-3, rtol=1e-3)
    assert [c.name for c in list_models(d)] == ["tiny"]


def test_corrupt_weights_are_refused(tiny_model):
    _, d = tiny_model
    with open(d / "tiny.pt", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelError, match="corrupt or was replaced: sha256"):
        load_model("tiny", models_dir=d)


def test_missing_pieces_give_clear_errors(tiny_model, tmp_path):
    _, d = tiny_model
    (d / "tiny.pt").unlink()
    with pytest.raises(ModelError, match="Weights file for model 'tiny' is missing"):
        load_model("tiny", models_dir=d)
    with pytest.raises(ModelError, match="Model card not found.*Models available there: tiny"):
        load_card("other", d)
    (d / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_card(d / "bad.json")
    (d / "partial.json").write_text(json.dumps({"name": "partial", "task": "x"}), encoding="utf-8")
    with pytest.raises(ModelError, match="lacks required field.*architecture"):
        load_card(d / "partial.json")


def test_wrong_architecture(tiny_model):
    _, d = tiny_model
    card = json.loads((d / "tiny.json").read_text(encoding="utf-8"))
    card["architecture"] = "no.SuchNet"
    (d / "tiny.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match="Unknown architecture 'no.SuchNet'; registered: monai"):
        load_model("tiny", models_dir=d)
    card["architecture"] = "monai.UNet"
    card["architecture_kwargs"] = {**KWARGS, "channels": [8, 16]}
    (d / "tiny.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match="do not fit architecture"):
        load_model("tiny", models_dir=d)


def test_default_models_dir(monkeypatch, tmp_path):
    assert default_models_dir().parts[-2:] == ("Resources", "Models")
    monkeypatch.setenv("SPINEAI_MODELS", str(tmp_path))
    assert default_models_dir() == tmp_path


def test_refresh_card_metrics_keeps_the_weights(tmp_path):
    """`spineai export vertebrae metrics`: the CT cards' evaluation comes from the
    benchmark reports; weights, sha256 and training record stay as they were."""
    import json
    import shutil

    from SpineAILib.models import default_models_dir, load_card
    from SpineAILib.models.registry import verify_weights
    from SpineAILib.vertebrae.export import refresh_card_metrics

    models = tmp_path / "models"
    models.mkdir()
    for name in ("vertebra_detection", "vertebra_identification"):
        card = load_card(name)
        shutil.copyfile(default_models_dir() / f"{name}.json", models / f"{name}.json")
        shutil.copyfile(default_models_dir() / card.weights, models / card.weights)
    bench = tmp_path / "benchmarks"
    (bench / "vertebrae_phantoms").mkdir(parents=True)
    (bench / "vertebrae_real").mkdir()
    summary = {"all": {"n": 10, "id_rate": 0.5}}
    (bench / "vertebrae_phantoms" / "vertebrae_eval.json").write_text(
        json.dumps({"machine": {"commit": "abc1234"}, "summary": summary, "cases": [{"case": "phantom_5000"}] * 3}),
        encoding="utf-8")
    (bench / "vertebrae_real" / "vertebrae_eval.json").write_text(
        json.dumps({"cases": [{"case": "real1", "summary": {"all": {"n": 3, "id_rate": 0.0}}}]}), encoding="utf-8")
    before = load_card(models / "vertebra_detection.json")
    written = refresh_card_metrics(models, bench)
    assert sorted(p.name for p in written) == ["vertebra_detection.json", "vertebra_identification.json"]
    after = load_card(models / "vertebra_detection.json")
    ev = after.metrics["evaluation"]
    assert ev["held_out_phantoms_3"] == summary and ev["real_samples"] == {"real1": {"n": 3, "id_rate": 0.0}}
    assert ev["measured"] == {"commit": "abc1234"}
    assert after.sha256 == before.sha256 and after.training == before.training
    verify_weights(after)
