"""fer-edge train: data readers, models, augmentation, loss weights, loop, checkpoints, resume, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from fer_edge import data as D  # noqa: E402
from fer_edge.classes import EMOTIONS  # noqa: E402
from fer_edge.cli import main as cli_main  # noqa: E402
from fer_edge.runtime.errors import FerEdgeError  # noqa: E402
from fer_edge.runtime.metadata import ModelMeta  # noqa: E402
from fer_edge.train import models as M  # noqa: E402
from fer_edge.train.augment import AugmentConfig, BatchAugment, normalize, random_homographies, warp  # noqa: E402
from fer_edge.train.checkpoint import META_FIELDS, load_checkpoint, runtime_meta  # noqa: E402
from fer_edge.train.engine import TrainConfig, Trainer, class_weights, train  # noqa: E402

from train_data import BACKBONES, FERPLUS, make_subset, write_fer2013_csv  # noqa: E402

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    return make_subset(tmp_path_factory.mktemp("fer") / "data", n_train=12, n_val=6)


def quick_cfg(data: Path, out: Path, arch: str = "cnn", **over) -> TrainConfig:
    kw = dict(data=str(data), arch=arch, epochs=1, out=str(out), batch_size=28, eval_batch_size=64, quiet=True,
              threads=2, command=["test"])
    kw.update(over)
    return TrainConfig(**kw)


# ---- loss weights ------------------------------------------------------------------------------------

def test_class_weights_formula():
    counts = [10, 20, 30, 40, 0, 50, 50]
    w = class_weights(counts).double().numpy()
    n, k = 200, 7
    expect = [n / (k * c) if c else 0.0 for c in counts]
    np.testing.assert_allclose(w, expect, rtol=1e-6)
    # all classes present: the sample-weighted mean weight is exactly 1
    c2 = np.array([5, 1, 7, 3, 9, 2, 4])
    w2 = class_weights(c2).double().numpy()
    assert abs((w2 * c2).sum() / c2.sum() - 1.0) < 1e-6
    np.testing.assert_allclose(class_weights([3] * 7).numpy(), np.ones(7))


# ---- data ------------------------------------------------------------------------------------------

def test_image_folder_reader(subset):
    logs = []
    ds = D.read_image_folder(subset / "train", EMOTIONS, root=subset, log=logs.append)
    assert ds.images.shape == (84, 48, 48) and ds.images.dtype == np.uint8
    assert ds.counts().tolist() == [12] * 7
    assert ds.paths[0].startswith("train/angry/") and not logs
    tr, va = D.load_train_val(subset, log=None)
    assert len(tr) == 84 and len(va) == 42 and tr.fingerprint() == ds.fingerprint()


def test_csv_reader_agrees_with_image_folder(subset, tmp_path):
    csv_path = write_fer2013_csv(subset, tmp_path / "fer2013.csv")
    tr_csv, va_csv = D.load_train_val(csv_path, log=None)
    tr_dir, va_dir = D.load_train_val(subset, log=None)
    for a, b in ((tr_csv, tr_dir), (va_csv, va_dir)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.fingerprint() == b.fingerprint()
    with pytest.raises(FerEdgeError, match="PrivateTest"):
        D.read_fer2013_csv(csv_path, "PrivateTest", log=None)


def test_csv_reader_codes_and_bad_rows(tmp_path):
    px = " ".join(["7"] * 64)
    p = tmp_path / "fer2013.csv"
    p.write_text(f"emotion,pixels,Usage\n4,{px},Training\n6,{px},Training\n9,{px},Training\n0,1 2 3,Training\n"
                 f"3,{px},PublicTest\n")
    logs = []
    ds = D.read_fer2013_csv(p, "Training", log=logs.append)
    assert [EMOTIONS[i] for i in ds.labels] == ["sad", "neutral"]
    assert ds.images.shape == (2, 8, 8) and "2 bad row(s)" in logs[0]
    q = tmp_path / "other.csv"
    q.write_text("label,image\n1,2\n")
    with pytest.raises(FerEdgeError, match="not a fer2013.csv"):
        D.read_fer2013_csv(q, "Training")


@pytest.mark.skipif(not FERPLUS.is_file(), reason="FER+ votes not found")
def test_ferplus_majority_and_soft(subset):
    import csv

    votes = {r["path"]: r for r in csv.DictReader(open(FERPLUS))}
    ds = D.read_image_folder(subset / "train", root=subset, log=None)
    maj = D.apply_ferplus(ds, FERPLUS, "majority", log=None)
    soft = D.apply_ferplus(ds, FERPLUS, "soft", log=None)
    names = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy", "neutral": "neutral",
             "sadness": "sad", "surprise": "surprise"}
    checked = 0
    for i, rel in enumerate(ds.paths):
        r = votes.get(rel)
        v = np.array([float(r[k]) for k in names]) if r else np.zeros(7)
        vec = np.zeros(7)
        for k, name in names.items():
            vec[EMOTIONS.index(name)] = float(r[k]) if r else 0.0
        if vec.sum() == 0:
            assert maj.labels[i] == ds.labels[i]
            assert soft.soft[i, ds.labels[i]] == 1.0
            continue
        top = np.flatnonzero(vec == vec.max())
        assert maj.labels[i] == (ds.labels[i] if ds.labels[i] in top else top[0])
        np.testing.assert_allclose(soft.soft[i], vec / vec.sum(), rtol=1e-6)
        checked += int(v.sum() > 0)
    assert checked > 40


def test_data_errors(subset, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(subset, bad)
    shutil.rmtree(bad / "train" / "disgust")
    with pytest.raises(FerEdgeError, match="missing class folder.*disgust"):
        D.load_train_val(bad, log=None)
    (bad / "train" / "disgust").mkdir()
    (bad / "train" / "contempt").mkdir()
    with pytest.raises(FerEdgeError, match="unknown class folder.*contempt"):
        D.load_train_val(bad, log=None)
    (bad / "train" / "contempt").rmdir()
    (bad / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    logs = []
    ds = D.read_image_folder(bad / "train", root=bad, log=logs.append)
    assert len(ds) == 72 and "skipped 1 unreadable image" in logs[0] and "broken.jpg" in logs[0]
    empty = tmp_path / "empty" / "train"
    for c in EMOTIONS:
        (empty / c).mkdir(parents=True)
    with pytest.raises(FerEdgeError, match="empty split"):
        D.read_image_folder(empty, log=None)
    with pytest.raises(FerEdgeError, match="needs a train/ folder"):
        D.load_train_val(tmp_path / "empty" / "train", log=None)
    with pytest.raises(FerEdgeError, match="does not exist"):
        D.load_train_val(tmp_path / "nowhere", log=None)


def test_cli_train_bad_data_exit_2(subset, tmp_path, capsys):
    rc = cli_main(["train", "--data", str(tmp_path / "nowhere"), "--arch", "cnn", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("fer-edge: error: data") and err.count("\n") == 1
    rc = cli_main(["train", "--data", str(subset), "--arch", "no_such_net", "--out", str(tmp_path / "r")])
    assert rc == 2 and "unknown architecture 'no_such_net'" in capsys.readouterr().err


# ---- augmentation ------------------------------------------------------------------------------------

def test_identity_warp_is_exact():
    x = torch.rand(3, 1, 48, 48)
    ident = torch.eye(3).expand(3, 3, 3).clone()
    torch.testing.assert_close(warp(x, ident), x, atol=1e-5, rtol=0)
    flip = ident.clone()
    flip[:, 0, 0] = -1
    torch.testing.assert_close(warp(x, flip), x.flip(-1), atol=1e-5, rtol=0)


def test_batch_augment_shapes_and_switches():
    imgs = torch.randint(0, 256, (16, 48, 48), dtype=torch.uint8)
    out = BatchAugment(AugmentConfig(), 3, 0.5, 0.25)(imgs, torch.Generator().manual_seed(0))
    assert out.shape == (16, 3, 48, 48) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], out[:, 2])  # gray replicated
    off = BatchAugment(AugmentConfig(enabled=False), 1, 0.5, 0.25)(imgs)
    torch.testing.assert_close(off, normalize(imgs, 1, 0.5, 0.25))
    h = random_homographies(8, AugmentConfig(flip=False, rotate=0, scale=(1.0, 1.0), shift=0, perspective=0), "cpu")
    torch.testing.assert_close(h, torch.eye(3).expand(8, 3, 3))


# ---- models ----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("arch", ["cnn", "mobilenetv3", "vit"])
def test_overfit_fixed_batch(subset, arch):
    """The loss falls on one fixed small batch (no augmentation): the model and loss are wired right."""
    torch.manual_seed(0)
    ds = D.read_image_folder(subset / "train", root=subset, log=None).subset(np.arange(0, 84, 6))
    kw = M.model_kwargs_for(arch, 7, 1, 48)
    model = M.build_model(kw).train()
    x = normalize(torch.from_numpy(ds.images), 1, 0.5, 0.25)
    y = torch.from_numpy(ds.labels)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3 if arch != "vit" else 5e-4, weight_decay=0)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.6 * losses[0], losses


def test_vit_preset_patch_and_size():
    kw = M.model_kwargs_for("vit", 7, 1, 48)
    assert kw == {"arch": "vit_tiny_patch16_224", "num_classes": 7, "in_chans": 1, "patch_size": 6, "img_size": 48}
    with pytest.raises(FerEdgeError, match="patch size"):
        M.model_kwargs_for("vit", 7, 1, 50)
    lite = M.model_kwargs_for("vit-lite", 7, 1)
    assert lite["patch_size"] == 8 and lite["depth"] == 6 and lite["img_size"] == 48
    model = M.build_model(lite).eval()
    assert len(model.blocks) == 6 and model.patch_embed.num_patches == 36
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    conv = M.model_kwargs_for("vit-conv", 7, 1)
    assert conv["arch"] == "vit_convstem" and conv["patch_size"] == 8
    model = M.build_model(conv).eval()
    strides = [m.stride[0] for m in model.patch_embed.proj if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 2, 2, 1] and model.patch_embed.num_patches == 36 and len(model.blocks) == 6
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    with pytest.raises(FerEdgeError, match="power-of-two patch size"):
        M.build_model(M.model_kwargs_for("vit-conv", 7, 1, 48) | {"patch_size": 6})


def test_freezing_groups():
    model = M.build_model(M.model_kwargs_for("mobilenetv3", 7, 1))
    head = M.head_param_names(model)
    assert head == {"classifier.weight", "classifier.bias"}
    M.set_trainable(model, None, head_only=True)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head
    M.set_trainable(model, 1, head_only=False)
    train = {n for n, p in model.named_parameters() if p.requires_grad}
    assert head < train and any(n.startswith("blocks.6.") for n in train)
    assert not any(n.startswith(("blocks.5.", "conv_stem")) for n in train)
    M.set_trainable(model, None, head_only=False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.skipif(not (BACKBONES / "mobilenetv2_100").is_dir(), reason="backbone weights not found")
def test_local_weights_adapt_first_conv():
    from safetensors.torch import load_file

    f = next((BACKBONES / "mobilenetv2_100").glob("*.safetensors"))
    sd = load_file(str(f))
    model = M.build_model({"arch": "mobilenetv2_100", "num_classes": 7, "in_chans": 1})
    M.load_weights(model, f)
    torch.testing.assert_close(model.conv_stem.weight, sd["conv_stem.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.blocks[3][0].conv_pw.weight, sd["blocks.3.0.conv_pw.weight"])
    assert model.classifier.out_features == 7
    other = M.build_model({"arch": "mobilenetv3_large_100", "num_classes": 7, "in_chans": 1})
    with pytest.raises(FerEdgeError, match="does not fit this architecture"):
        M.load_weights(other, f)


def test_pretrained_offline_fails_fast(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(M, "_hub_reachable", lambda timeout=3.0: False)
    t = time.perf_counter()
    with pytest.raises(FerEdgeError, match="--pretrained"):
        M.build_model(M.model_kwargs_for("mobilenetv3", 7, 1), pretrained=True)
    assert time.perf_counter() - t < 20


# ---- the loop, checkpoints, resume -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("arch", ["cnn", "mobilenetv3", "vit"])
def test_train_one_epoch_and_reload(subset, tmp_path, arch):
    out = tmp_path / "run"
    t = Trainer(quick_cfg(subset, out, arch, channels=3 if arch == "vit" else 1))
    t.setup()
    res = t.fit()
    t.dist.close()
    for f in ("best.pt", "last.pt", "metrics.csv", "metrics.json"):
        assert (out / f).is_file()
    assert res["history"][0]["epoch"] == 1 and 0 <= res["best"]["val_accuracy"] <= 1
    model, card = load_checkpoint(out / "best.pt")
    assert not model.training
    meta = ModelMeta.from_dict(runtime_meta(card))
    assert meta.classes == EMOTIONS and meta.input_size == (48, 48) and meta.channels == t.cfg.channels
    assert card["crop_margin"] == 0.1 and card["output"] == "logits" and card["color"] == "gray"
    for k in (*META_FIELDS, "arch", "training_data_fingerprint", "metrics", "command", "versions", "git_commit",
              "created"):
        assert k in card
    assert card["training_data_fingerprint"] == t.fingerprint and card["command"] == ["test"]
    x = torch.randn(5, t.cfg.channels, 48, 48)
    t.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), t.model(x), rtol=0, atol=0)
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "val_accuracy" in header and "images_per_s" in header


@pytest.mark.slow
def test_resume_matches_uninterrupted(subset, tmp_path, monkeypatch):
    """Interrupt after epoch 1, --resume, and get exactly the weights of an uninterrupted 2-epoch run."""
    cfg = dict(epochs=2, ema=0.9, scheduler="cosine", optimizer="sgd", lr=0.01)
    full = train(quick_cfg(subset, tmp_path / "full", **cfg))
    assert len(full["history"]) == 2

    calls = {"n": 0}
    real = Trainer._write_metrics

    def crash_after_first(self):
        real(self)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_write_metrics", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(quick_cfg(subset, tmp_path / "cut", **cfg))
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = train(quick_cfg(subset, tmp_path / "cut", resume=True, **cfg))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0, msg=k)
    assert a["history"][1]["train_loss"] == b["history"][1]["train_loss"]


def test_resume_from_release_carries_the_schedule(subset, tmp_path, capsys):
    """A run's last.pt as a release folder (what checkpoints/ keeps across sessions) carries the schedule on:
    epoch numbers, history and the learning rate at the step follow the uninterrupted run; best.pt is refused."""
    from fer_edge.train import release

    cfg = dict(epochs=3, ema=0.9, scheduler="cosine", optimizer="sgd", lr=0.01, max_steps=3, warmup_epochs=0)
    full = train(quick_cfg(subset, tmp_path / "full", **cfg))
    first = train(quick_cfg(subset, tmp_path / "one", **{**cfg, "epochs": 1}))
    assert len(first["history"]) == 1
    assert release.main([str(tmp_path / "one" / "last.pt"), str(tmp_path / "rel")]) == 0
    assert "resumable" in capsys.readouterr().out
    card = json.loads((tmp_path / "rel" / "model_card.json").read_text())
    assert card["resume"]["global_step"] == 3 and card["epoch"] == 1

    t = Trainer(quick_cfg(subset, tmp_path / "on", **cfg, resume_from=str(tmp_path / "rel")))
    t.setup()
    assert t.start_epoch == 2 and t.global_step == 3
    # the learning rate of the 3-epoch schedule after step 3 (the 1-epoch run's cosine had ended at its floor)
    assert t.opt.param_groups[0]["lr"] == pytest.approx(full["history"][0]["lr"], rel=1e-6)
    assert first["history"][0]["lr"] < 0.5 * full["history"][0]["lr"]
    res = t.fit()
    t.dist.close()
    assert [h["epoch"] for h in res["history"]] == [1, 2, 3]
    assert res["history"][0] == first["history"][0]

    assert release.main([str(tmp_path / "one" / "best.pt"), str(tmp_path / "rel_best")]) == 0
    with pytest.raises(FerEdgeError, match="no training state"):
        train(quick_cfg(subset, tmp_path / "x", **cfg, resume_from=str(tmp_path / "rel_best")))
    with pytest.raises(FerEdgeError, match="trained as"):
        train(quick_cfg(subset, tmp_path / "y", **{**cfg, "arch": "mobilenetv3"}, resume_from=str(tmp_path / "rel")))
    with pytest.raises(FerEdgeError, match="without --resume"):
        train(quick_cfg(subset, tmp_path / "z", **cfg, resume=True, resume_from=str(tmp_path / "rel")))
    assert release.main([str(tmp_path / "missing.pt"), str(tmp_path / "r2")]) == 2


def test_resume_from_on_the_command_line(subset, tmp_path):
    """`fer-edge train --resume-from`: a missing folder and a folder without training state are one clear line."""
    from conftest import assert_clean_error, run_cli

    base = ["train", "--data", str(subset), "--arch", "cnn", "--epochs", "2", "--batch-size", "28", "--max-steps", "1",
            "--threads", "1", "--quiet"]
    assert_clean_error(run_cli(*base, "--resume-from", str(tmp_path / "none"), "--out", str(tmp_path / "a")),
                       "does not exist")
    p = run_cli(*base[:6], "1", *base[7:], "--out", str(tmp_path / "one"))
    assert p.returncode == 0, p.stderr
    from fer_edge.train import release

    assert release.main([str(tmp_path / "one" / "best.pt"), str(tmp_path / "rel")]) == 0
    assert_clean_error(run_cli(*base, "--resume-from", str(tmp_path / "rel"), "--out", str(tmp_path / "b")),
                       "--resume-from", "no training state")
    assert release.main([str(tmp_path / "one" / "last.pt"), str(tmp_path / "rel")]) == 0
    p = run_cli(*base, "--resume-from", str(tmp_path / "rel"), "--out", str(tmp_path / "c"))
    assert p.returncode == 0, p.stderr
    assert [h["epoch"] for h in json.loads((tmp_path / "c" / "metrics.json").read_text())["epochs"]] == [1, 2]


def test_resume_other_arch_is_an_error(subset, tmp_path):
    train(quick_cfg(subset, tmp_path / "r", max_steps=1))
    with pytest.raises(FerEdgeError, match="--resume"):
        train(quick_cfg(subset, tmp_path / "r", arch="mobilenetv3", resume=True, epochs=2))
    with pytest.raises(FerEdgeError, match="last.pt does not exist"):
        train(quick_cfg(subset, tmp_path / "none", resume=True))


def test_checkpoint_errors(subset, tmp_path):
    train(quick_cfg(subset, tmp_path / "r", max_steps=1))
    best = tmp_path / "r" / "best.pt"
    with pytest.raises(FerEdgeError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(FerEdgeError, match="not a readable fer-edge checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(FerEdgeError, match="holds a 'cnn' model, not 'mobilenetv3_large_100'"):
        load_checkpoint(best, expect_arch="mobilenetv3_large_100")
    ck = torch.load(best, weights_only=True)
    ck["arch"] = ck["model_kwargs"]["arch"] = ck["model_card"]["arch"] = "mobilenetv3_large_100"
    torch.save(ck, tmp_path / "other.pt")
    with pytest.raises(FerEdgeError, match="do not fit architecture 'mobilenetv3_large_100'"):
        load_checkpoint(tmp_path / "other.pt")


def test_train_options_smoke(subset, tmp_path):
    """Plateau + label smoothing + balanced sampler + soft FER+ + no class weights + clip + amp on CPU."""
    over = dict(scheduler="plateau", label_smoothing=0.1, balanced_sampler=True, class_weights=False,
                clip_grad=1.0, amp=True, channels_last=True, select_metric="macro_f1", epochs=2, patience=1,
                max_steps=1)
    if FERPLUS.is_file():
        over.update(ferplus=str(FERPLUS), ferplus_mode="soft")
    res = train(quick_cfg(subset, tmp_path / "r", **over))
    assert 1 <= len(res["history"]) <= 2
    assert (tmp_path / "r" / "best.pt").is_file()


def test_transfer_schedule_freezes_then_unfreezes(subset, tmp_path):
    t = Trainer(quick_cfg(subset, tmp_path / "r", arch="mobilenetv3", freeze_epochs=1, unfreeze_last=2, epochs=2,
                          max_steps=1))
    t.setup()
    stem0 = t.model.conv_stem.weight.detach().clone()
    last0 = t.model.blocks[-1][0].conv.weight.detach().clone()
    t.train_epoch(1)
    assert torch.equal(stem0, t.model.conv_stem.weight) and torch.equal(last0, t.model.blocks[-1][0].conv.weight)
    t.train_epoch(2)
    assert torch.equal(stem0, t.model.conv_stem.weight)
    assert not torch.equal(last0, t.model.blocks[-1][0].conv.weight)
    lrs = {g["name"]: g["lr"] for g in t.opt.param_groups}
    assert abs(lrs["backbone"] / lrs["head"] - 0.1) < 1e-9


@pytest.mark.slow
def test_ddp_gloo_two_ranks(subset, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                        "-m", "fer_edge", "train", "--data", str(subset), "--arch", "cnn", "--epochs", "1",
                        "--out", str(out), "--batch-size", "28", "--threads", "1", "--quiet"],
                       capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv", "metrics.json"]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert sorted(ck["rng_per_rank"]) == [0, 1]
    # both ranks trained on disjoint halves: 84 images -> 42 per rank -> all 84 seen
    assert ck["history"][0]["train_images"] == 84
    load_checkpoint(out / "best.pt")


# ---- zero-initialised head, distillation ------------------------------------------------------------

def test_zero_init_head_gives_uniform_predictions():
    model = M.build_model(M.model_kwargs_for("mobilenetv3", 7, 1)).eval()
    with torch.no_grad():
        assert model(torch.randn(4, 1, 48, 48)).abs().max() > 0
        M.zero_init_head(model)
        torch.testing.assert_close(model(torch.randn(4, 1, 48, 48)), torch.zeros(4, 7))


def test_distillation_loss_is_kl_at_temperature():
    from fer_edge.train.distill import distillation_loss

    s = torch.randn(6, 7)
    assert distillation_loss(s, torch.softmax(s / 2.0, 1), 2.0).abs() < 1e-6  # same distribution: zero
    t = torch.softmax(torch.randn(6, 7), 1)
    expect = (t * (t.log() - torch.log_softmax(s / 3.0, 1))).sum(1).mean() * 9.0
    torch.testing.assert_close(distillation_loss(s, t, 3.0), expect)


def test_openvino_teacher_runs_fp32_layers_in_fp32_without_amp(tiny_ir):
    """Without --amp an OpenVINO IR teacher is compiled with INFERENCE_PRECISION_HINT f32 (OpenVINO would run its
    FP32 layers in bf16 on CPUs with AMX or AVX512-BF16); with --amp OpenVINO chooses, as autocast does in torch."""
    import openvino as ov

    from fer_edge.train.distill import Teachers

    t = Teachers([str(tiny_ir)], EMOTIONS, torch.device("cpu"), 0.5, 0.25)
    assert t.models[0][0].clf.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    fast = Teachers([str(tiny_ir)], EMOTIONS, torch.device("cpu"), 0.5, 0.25, exact=False)
    chosen = fast.models[0][0].clf.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert chosen == ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")


@pytest.mark.slow
def test_distil_from_teachers_of_other_shapes(subset, tmp_path):
    """A 1-channel 48 px student learns from a 3-channel 64 px teacher and a 1-channel one (an ensemble)."""
    from fer_edge.train.distill import Teachers

    t3 = train(quick_cfg(subset, tmp_path / "t3", channels=3, input_size=64, max_steps=1))
    t1 = train(quick_cfg(subset, tmp_path / "t1", max_steps=1))
    assert t3["best"] and t1["best"]
    teachers = [str(tmp_path / "t3" / "best.pt"), str(tmp_path / "t1" / "best.pt")]
    res = train(quick_cfg(subset, tmp_path / "s", teacher=teachers, distill_alpha=0.7, distill_temperature=3.0,
                          zero_init_head=True, max_steps=2))
    assert np.isfinite(res["history"][0]["train_loss"])
    # the ensemble's probabilities are the mean of each teacher run on its own input size and channels
    ens = Teachers(teachers, EMOTIONS, torch.device("cpu"), 0.5, 0.25)
    x = normalize(torch.from_numpy(D.read_image_folder(subset / "val", root=subset, log=None).images[:4]), 1,
                  0.5, 0.25)
    got = ens.probs(x, 3.0)
    torch.testing.assert_close(got.sum(1), torch.ones(4))
    single = [Teachers([p], EMOTIONS, torch.device("cpu"), 0.5, 0.25).probs(x, 3.0) for p in teachers]
    torch.testing.assert_close(got, (single[0] + single[1]) / 2)
    m3, card3 = load_checkpoint(teachers[0])
    raw = torch.nn.functional.interpolate(x * 0.25 + 0.5, size=(64, 64), mode="bilinear", antialias=True)
    mean = torch.tensor(card3["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(card3["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(single[0], torch.softmax(m3((raw.expand(-1, 3, -1, -1) - mean) / std) / 3.0, 1))
    with pytest.raises(FerEdgeError, match="distill-alpha"):
        train(quick_cfg(subset, tmp_path / "bad", teacher=teachers, distill_alpha=0.0))
