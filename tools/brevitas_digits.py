#!/usr/bin/env python3
"""Train a small Brevitas network on the 8x8 digits and export it as QONNX (the test model).

This is how ``tests/data/brevitas/`` was made; PyTorch and Brevitas are needed only here, never
to run or test wrpn-rtl. The network differs from wrpn-rtl's own on purpose, so the import is
tested on what Brevitas users write: an input normalized to [-1, 1] and quantized signed
(8 bits), per-output-channel 4-bit weights, batch norm, 3- and 4-bit ReLU activations, a
padded second convolution, and a linear head with a 32-bit quantized bias (logits out).
Rounding is Brevitas' default (``torch.round``: half to even, QONNX ``ROUND``).

Run (in any Python with torch, brevitas, onnx and scikit-learn; not the project's venv)::

    python tools/brevitas_digits.py --out tests/data/brevitas

It writes ``digits_torchscript.onnx`` (PyTorch's TorchScript exporter) and
``digits_dynamo/model.onnx`` (the dynamo exporter, initializers as graph inputs, tensors in an
external ``model.onnx.data``), each with the network's own test accuracy (Brevitas, float
PyTorch arithmetic) in the ONNX metadata as ``test_accuracy``, and the versions used.

The split is the one wrpn-rtl uses (``wrpn_rtl.golden.train.load_digits_split``: images / 16,
20 % test, stratified, ``random_state=0``), repeated here so that torch needs nothing else.
"""
import argparse
from pathlib import Path

import numpy as np


def load_digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = (digits.images / 16.0)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=0.2, random_state=0,
        stratify=digits.target)
    return x_train, y_train, x_test, y_test


def build():
    import torch.nn as nn
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFloat, Int32Bias

    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
            self.conv1 = qnn.QuantConv2d(1, 16, 3, padding=0, bias=False, weight_bit_width=4,
                                         weight_scaling_per_output_channel=True)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu1 = qnn.QuantReLU(bit_width=3, return_quant_tensor=True)
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = qnn.QuantConv2d(16, 24, 3, padding=1, bias=False, weight_bit_width=3)
            self.bn2 = nn.BatchNorm2d(24)
            self.relu2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(24 * 3 * 3, 10, bias=True, weight_bit_width=4,
                                      bias_quant=Int32Bias)

        def forward(self, x):
            x = self.inp(x)
            x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
            x = self.relu2(self.bn2(self.conv2(x)))
            return self.fc(x.flatten(1))

    return DigitsNet()


def main():
    import onnx
    import torch
    import brevitas
    from brevitas.export import export_qonnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/data/brevitas"))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load_digits_split()

    def tensor(x):                      # (N, 8, 8, 1) in [0, 1] -> (N, 1, 8, 8) in [-1, 1]
        return torch.tensor(x.transpose(0, 3, 1, 2) * 2 - 1, dtype=torch.float32)

    xt, yt = tensor(x_train), torch.tensor(y_train)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        logits = model(tensor(x_test))
        logits = logits.value if hasattr(logits, "value") else logits
        accuracy = float((logits.argmax(1).numpy() == y_test).mean())
    print(f"test accuracy (Brevitas, PyTorch float arithmetic): {accuracy:.4f}")

    props = {"test_accuracy": f"{accuracy:.6f}",
             "trained_by": f"tools/brevitas_digits.py --epochs {args.epochs} --seed {args.seed}",
             "versions": f"torch {torch.__version__}, brevitas {brevitas.__version__}",
             "input": "digits images / 16 * 2 - 1, NCHW (N, 1, 8, 8)"}
    args.out.mkdir(parents=True, exist_ok=True)
    example = tensor(x_test[:1])
    (args.out / "digits_dynamo").mkdir(exist_ok=True)
    for name, dynamo in (("digits_torchscript.onnx", False), ("digits_dynamo/model.onnx", True)):
        path = args.out / name
        export_qonnx(model, input_t=example, export_path=str(path), dynamo=dynamo)
        exported = onnx.load(str(path))
        onnx.helper.set_model_props(exported, props)
        if dynamo:
            onnx.save(exported, str(path), save_as_external_data=True,
                      all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
        else:
            onnx.save(exported, str(path))
        print(f"wrote {path}")
    np.save(args.out / "test_inputs.npy", tensor(x_test).numpy())
    np.save(args.out / "test_labels.npy", y_test)
    print(f"wrote {args.out / 'test_inputs.npy'} and test_labels.npy")


if __name__ == "__main__":
    main()
