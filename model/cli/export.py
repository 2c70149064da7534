"""`dermsev export MODEL_DIR`: write MODEL_DIR/model.onnx, checked against torch."""

from __future__ import annotations

from model.cli.common import resolve_model


def add_parser(sub) -> None:
    ex = sub.add_parser("export", help="write MODEL_DIR/model.onnx")
    ex.add_argument("model_dir")


def run(args) -> None:
    from model.inference.export import export_onnx

    print(f"wrote {export_onnx(resolve_model(args.model_dir))}")
