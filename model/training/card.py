"""MODEL_CARD.md from a model's config.json: intended use, data, settings, metrics, limits."""

from __future__ import annotations


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def model_card(config: dict) -> str:
    t = config.get("training", {})
    signs = config["signs"]
    lines = [
        f"# Model card: {config.get('name', 'dermsev model')}",
        "",
        "## Intended use",
        "Decision support for scoring the severity of skin disease from photographs, sign by sign "
        f"({', '.join(signs)}), on a 0..{config['max_score']:g} scale, for clinicians who check every "
        "score. Not a medical device; not for diagnosis.",
        "",
    ]
    if config.get("synthetic"):
        lines += ["**Trained on synthetic images (`dermsev synth`). Not for clinical use.** It shows how the "
                  "tool works; its numbers say nothing about real photographs.", ""]
    n = t.get("n_images", {})
    lines += [
        "## Training data",
        f"- dataset: `{t.get('dataset', '?')}`",
        f"- images: train {n.get('train', 0)}, val {n.get('val', 0)}, test {n.get('test', 0)}; "
        f"patients {t.get('n_patients', '?')} (splits grouped by patient)",
        f"- channels: {', '.join(config['channels'])}",
        "",
        "## Model and settings",
        f"- U-Net, encoder `{config['architecture']['encoder']}` (random init, no pretrained weights), "
        f"FiLM tabular branch: {config['architecture']['film']}, channel mixing: {config['architecture']['mixing']}",
        f"- per-pixel severity regression (MAE), thresholds {config['thresholds']} -> labels {config['labels']}",
        f"- input size {config['input']['size']} px; epochs run {t.get('epochs_run', '?')} (best {t.get('best_epoch', '?')}); "
        f"precision {t.get('precision', '?')}; training throughput {_f(t.get('train_images_per_s'))} images/s",
        f"- {_photos_as(config)}",
        "",
        "## Validation metrics (working resolution)",
        "| sign | pixel MAE | pixel acc | image MAE | image acc | QWK | affected Dice |",
        "|---|---|---|---|---|---|---|",
    ]
    vm = t.get("val_metrics", {})
    for name, m in list(vm.get("per_sign", {}).items()) + [("mean", vm.get("mean", {}))]:
        lines.append(f"| {name} | {_f(m.get('pixel_mae'))} | {_f(m.get('pixel_accuracy'))} | {_f(m.get('image_mae'))} | "
                     f"{_f(m.get('image_accuracy'))} | {_f(m.get('qwk'))} | {_f(m.get('affected_dice'))} |")
    cv = t.get("cross_validation")
    if cv:
        lines += ["", f"## Cross-validation ({len(cv['folds'])} folds, grouped by patient)",
                  "| metric | mean | sd |", "|---|---|---|"]
        for k, v in cv["summary"].items():
            if k not in ("fold", "n_heldout"):
                lines.append(f"| {k} | {v['mean']:.3f} | {v['sd']:.3f} |")
    if config.get("channel_importance"):
        lines += ["", "## Channel importance (learned mixing weights)", "| channel | weight |", "|---|---|"]
        lines += [f"| {c} | {w:.3f} |" for c, w in config["channel_importance"].items()]
    lines += [
        "",
        "## Limits",
        "- Scores photographs, not patients: lighting, camera, skin type and body site change the numbers.",
        "- Dermatologists' own per-sign scores differ from their consensus by about 0.24-0.55 (0-3 scale).",
        "- Check performance by Fitzpatrick skin type on your own data (`dermsev evaluate` reports it).",
        "",
    ]
    return "\n".join(lines)


def add_test_metrics(model_dir, metrics_json) -> None:
    """Append an `evaluate --json` result (e.g. on a fresh test set) to MODEL_DIR/MODEL_CARD.md."""
    import json
    from pathlib import Path

    res = json.loads(Path(metrics_json).read_text())
    card = Path(model_dir) / "MODEL_CARD.md"
    text = card.read_text().split("\n## Test metrics")[0].rstrip("\n")
    lines = ["", "", f"## Test metrics ({res['n_images']} held-out images, full resolution; from {Path(metrics_json).name})",
             "| sign | pixel MAE | pixel acc | image MAE | image acc | QWK | affected Dice |", "|---|---|---|---|---|---|---|"]
    for name, m in [*res["per_sign"].items(), ("mean", res["mean"])]:
        lines.append(f"| {name} | {_f(m.get('pixel_mae'))} | {_f(m.get('pixel_accuracy'))} | {_f(m.get('image_mae'))} | "
                     f"{_f(m.get('image_accuracy'))} | {_f(m.get('qwk'))} | {_f(m.get('affected_dice'))} |")
    skin = res.get("skin") or {}
    if skin.get("dice") is not None:
        lines += ["", f"Skin (what the affected area is a fraction of) against the true skin masks: Dice {skin['dice']:.3f}."]
    if "by_fitzpatrick" in res:
        lines += ["", "| Fitzpatrick type | images | pixel MAE | image MAE | QWK |", "|---|---|---|---|---|"]
        for t, m in res["by_fitzpatrick"].items():
            lines.append(f"| {t} | {m['n_images']} | {_f(m.get('pixel_mae'))} | {_f(m.get('image_mae'))} | {_f(m.get('qwk'))} |")
        gap = res.get("skin_type_gap", {})
        if gap.get("pixel_mae_ratio_dark_to_light") is not None:
            lines.append(f"\nDark (V-VI) over light (I-II) skin: pixel MAE ratio {gap['pixel_mae_ratio_dark_to_light']:.2f}, "
                         f"image MAE ratio {gap['image_mae_ratio_dark_to_light']:.2f}.")
    card.write_text(text + "\n".join(lines) + "\n")


def _photos_as(config: dict) -> str:
    """How the training photos were prepared, which `predict` repeats by default."""
    inp = config.get("input", {})
    wb = (config.get("training", {}).get("settings") or {}).get("white_balance", "none")
    if wb == "none":
        how = "photos as taken in training" + ("; predict white-balances towards the stored training colour"
                                               if inp.get("white_reference") else "")
    else:
        how = f"photos white-balanced ({wb}) in training and by predict"
    if inp.get("normalise_exposure"):
        how += ", exposure brought to the training photos' median"
    return how
