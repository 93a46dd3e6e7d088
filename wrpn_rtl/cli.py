"""The ``wrpn-rtl`` command line.

Subcommands
-----------
``demo``
    The main job on the built-in default: train the default WRPN digits CNN (fixed seed, fixed
    split), run the golden integer model and the float quantized model on every test image,
    check they agree bit for bit, generate the streaming accelerator (Verilog in ``DIR``), and
    run test images through it in Amaranth's simulator, bit-exact against the golden model.
``train``
    Train a WRPN network on the bundled digits and write a model file.
``golden``
    Run a model file's golden model on the digits test set.
``bench mvu``
    Synthesize the MVU beside the naive dot product and the fabric limit (iCE40 UP5K,
    ECP5-25k, generic CMOS) and write ``DIR/mvu.json`` and ``DIR/mvu.md``.
``bench window`` / ``bench conv``
    Representative sliding windows / convolution layers: buffer bits, logic, BRAM, Fmax, and
    cycles per frame measured in simulation against expected (``DIR/window.*``, ``DIR/conv.*``).

Exit status is 0 only when everything asked for succeeded.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__

__all__ = ["main"]


class CommandError(Exception):
    """A user-facing failure: printed as ``wrpn-rtl: error: ...`` with exit status 1."""


def _progress(args, message):
    if not args.json:
        print(message, file=sys.stderr, flush=True)


def _common(parser):
    parser.add_argument("--out", type=Path, default=Path("build"),
                        help="output folder (default: build/)")
    parser.add_argument("--json", action="store_true",
                        help="print a machine-readable summary on stdout")


def _network_flags(parser):
    parser.add_argument("--wbits", type=int, default=2, help="weight bits (default 2)")
    parser.add_argument("--abits", type=int, default=4, help="activation bits (default 4)")
    parser.add_argument("--width", type=float, default=2.0,
                        help="WRPN width multiplier of hidden layers (default 2)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")


def _check_positive(name, value):
    if value <= 0:
        raise CommandError(f"{name} must be > 0, not {value!r}")


def _train_default(args):
    from .golden import zoo
    from .golden.train import TrainConfig, accuracy, float_accuracy, load_digits_split, train
    _check_positive("--epochs", args.epochs)
    _check_positive("--width", args.width)
    try:
        spec = zoo.digits_cnn(width=args.width, weight_bits=args.wbits, act_bits=args.abits)
    except (TypeError, ValueError) as error:
        raise CommandError(str(error)) from None
    x_train, y_train, x_test, y_test = load_digits_split()
    started = time.monotonic()

    def report(epoch, loss, acc):
        if (epoch + 1) % 10 == 0 or epoch == 0:
            _progress(args, f"  epoch {epoch + 1:3d}/{args.epochs}: loss {loss:.3f}, "
                            f"train accuracy {acc:.3f}")

    _progress(args, f"training w{args.wbits}a{args.abits} x{args.width:g} WRPN digits CNN "
                    f"({len(x_train)} train / {len(x_test)} test images)")
    result = train(spec, x_train, y_train, TrainConfig(epochs=args.epochs, seed=args.seed),
                   progress=report)
    network = result.network
    network.metadata.update(name="digits_cnn", wbits=args.wbits, abits=args.abits,
                            test_accuracy=accuracy(network, x_test, y_test))
    _progress(args, f"  trained in {time.monotonic() - started:.1f} s")
    _progress(args, "training the full-precision baseline (float weights and activations)")
    baseline = train(spec, x_train, y_train,
                     TrainConfig(epochs=args.epochs, seed=args.seed, float_model=True,
                                 learning_rate=0.01))
    network.metadata["float_test_accuracy"] = float_accuracy(spec, baseline.params, x_test, y_test)
    return network, (x_test, y_test)


def _golden_check(network, images, labels):
    """Run both golden paths on ``images``; return a summary dict (mismatches must be 0)."""
    import numpy as np
    from .golden import execute, execute_float
    ref = execute(network, network.quantize_input(images))
    flt = execute_float(network, images)
    mismatches = {}
    for layer, a, b in zip(network.layers, ref.outputs, flt.outputs):
        if layer.is_logits:
            a = a * layer.output.scale
        mismatches[layer.name] = int(np.count_nonzero(a != b))
    return {
        "images": int(len(images)),
        "accuracy": float((ref.classes == labels).mean()),
        "float_path_accuracy": float((flt.classes == labels).mean()),
        "mismatches_by_layer": mismatches,
        "class_mismatches": int(np.count_nonzero(ref.classes != flt.classes)),
    }


def cmd_train(args):
    from .golden import save_network
    network, _ = _train_default(args)
    path = args.out / "model.npz"
    save_network(network, path)
    summary = {"model": str(path), **{k: network.metadata[k] for k in
                                       ("test_accuracy", "float_test_accuracy")}}
    _progress(args, f"wrote {path}: test accuracy {summary['test_accuracy']:.4f} "
                    f"(full precision {summary['float_test_accuracy']:.4f})")
    return summary


def cmd_golden(args):
    from .golden import ModelFileError, load_network
    from .golden.train import load_digits_split
    try:
        network = load_network(args.model)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    _, _, x_test, y_test = load_digits_split()
    summary = _golden_check(network, x_test, y_test)
    _print_golden(args, summary)
    if summary["class_mismatches"] or any(summary["mismatches_by_layer"].values()):
        raise CommandError("the integer and float golden paths disagree")
    return summary


def _print_golden(args, summary):
    bad = sum(summary["mismatches_by_layer"].values()) + summary["class_mismatches"]
    _progress(args, f"golden model on {summary['images']} test images: accuracy "
                    f"{summary['accuracy']:.4f}; integer vs float path mismatches: {bad}")


def _rtl_check(args, network, x_test, y_test):
    """Generate the accelerator, write its Verilog, and run test images through it in
    Amaranth's simulator against the golden model."""
    import numpy as np
    from .accelerator import Accelerator, simple_foldings
    from .export import write_verilog
    from .golden import execute
    from .sim.amaranth_stream import run_stream
    count = min(args.images, len(x_test))
    foldings = simple_foldings(network)
    _progress(args, "generating the accelerator (PE x SIMD per layer: "
              + ", ".join(f"{f.pe}x{f.simd}" for f in foldings) + ")")
    verilog = write_verilog(Accelerator(network, foldings=foldings), args.out / "digits_cnn.v",
                            name="digits_cnn")
    dut = Accelerator(network, foldings=foldings)
    codes = network.quantize_input(x_test[:count])
    golden = execute(network, codes)
    expected = golden.outputs[-1].reshape(count, -1)
    pe = foldings[-1].pe
    _progress(args, f"simulating {count} test images through the RTL (Amaranth simulator)")
    words, cycles = run_stream(dut, codes.reshape(-1, 1).tolist(), expected.size // pe,
                               width=pe, max_cycles=count * dut.cycles_per_image * 4 + 5000)
    logits = np.array(words).reshape(count, -1)
    return {"verilog": str(verilog), "rtl_images": count,
            "rtl_mismatches": int(np.count_nonzero(logits != expected)),
            "rtl_accuracy": float((logits.argmax(axis=1) == y_test[:count]).mean()),
            "rtl_cycles_per_image": cycles / count,
            "expected_cycles_per_image": dut.cycles_per_image,
            "foldings": [[f.pe, f.simd] for f in foldings]}


def cmd_demo(args):
    from .golden import save_network
    if args.images < 1:
        raise CommandError(f"--images must be >= 1, not {args.images}")
    network, (x_test, y_test) = _train_default(args)
    path = args.out / "model.npz"
    save_network(network, path)
    summary = _golden_check(network, x_test, y_test)
    summary.update(model=str(path), float_test_accuracy=network.metadata["float_test_accuracy"])
    _print_golden(args, summary)
    summary.update(_rtl_check(args, network, x_test, y_test))
    if not args.json:
        rows = [("network", f"digits CNN, w{args.wbits}a{args.abits}, width x{args.width:g}"),
                ("layers", " -> ".join(f"{type(l).__name__.replace('Quant', '')}"
                                       f"{l.out_shape}" for l in network.layers)),
                ("test accuracy (integer golden)", f"{summary['accuracy']:.4f}"),
                ("test accuracy (float quantized)", f"{summary['float_path_accuracy']:.4f}"),
                ("test accuracy (full precision)", f"{summary['float_test_accuracy']:.4f}"),
                ("integer vs float mismatches", str(sum(summary["mismatches_by_layer"].values())
                                                    + summary["class_mismatches"])),
                ("model file", str(path)),
                ("RTL (Verilog)", summary["verilog"]),
                (f"RTL vs golden on {summary['rtl_images']} test images",
                 f"{summary['rtl_mismatches']} mismatching logits, accuracy "
                 f"{summary['rtl_accuracy']:.4f}"),
                ("RTL cycles per image (expected)",
                 f"{summary['rtl_cycles_per_image']:.0f} ({summary['expected_cycles_per_image']})")]
        print("\n| what | value |\n|---|---|")
        for key, value in rows:
            print(f"| {key} | {value} |")
    if summary["class_mismatches"] or any(summary["mismatches_by_layer"].values()):
        raise CommandError("the integer and float golden paths disagree")
    if summary["rtl_mismatches"]:
        raise CommandError(f"the RTL disagrees with the golden model on "
                           f"{summary['rtl_mismatches']} logits")
    return summary


def cmd_bench(args):
    from .synth.bench import run_mvu_bench
    from .synth.bench_layers import run_layer_bench
    from .tools import ToolMissing
    progress = lambda text: _progress(args, text)   # noqa: E731
    try:
        if args.what == "mvu":
            report = run_mvu_bench(args.out, quick=args.quick, progress=progress)
        else:
            report = run_layer_bench(args.what, args.out, quick=args.quick, progress=progress)
    except ToolMissing as error:
        raise CommandError(str(error)) from None
    if not args.json:
        print((args.out / f"{args.what}.md").read_text())
    return report


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wrpn-rtl",
        description="Streaming RTL for wide reduced-precision neural networks (WRPN), "
                    "verified bit-exact against a NumPy golden model.")
    parser.add_argument("--version", action="version", version=f"wrpn-rtl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="the main job on the built-in default network")
    _common(demo)
    _network_flags(demo)
    demo.add_argument("--images", type=int, default=20,
                      help="test images simulated through the RTL (default 20)")
    demo.set_defaults(run=cmd_demo)
    train = sub.add_parser("train", help="train a WRPN digits CNN and write a model file")
    _common(train)
    _network_flags(train)
    train.set_defaults(run=cmd_train)
    golden = sub.add_parser("golden", help="run a model file's golden model on the digits test set")
    _common(golden)
    golden.add_argument("--model", type=Path, required=True, help="model file (.npz)")
    golden.set_defaults(run=cmd_golden)
    bench = sub.add_parser("bench", help="synthesis benchmarks against baselines")
    bench.add_argument("what", choices=["mvu", "window", "conv"], help="what to benchmark")
    _common(bench)
    bench.add_argument("--quick", action="store_true",
                       help="a small subset (mvu: PE=1, w/a 1/1 2/2 4/4; window/conv: two "
                            "layers on iCE40)")
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        summary = args.run(args)
    except CommandError as error:
        print(f"wrpn-rtl: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
