"""``wrpn-rtl infer``: images through the design on a board (or the simulated board), every
output checked against the golden model, the labels, the link's rate and the on-chip rate
from the self-test."""
import time

import numpy as np

from wrpn_rtl.job.common import StepError, quiet

__all__ = ["expected_identity", "run_infer"]


def expected_identity(accelerator):
    """The :class:`~wrpn_rtl.board.host.Identity` the board must report for
    ``accelerator``."""
    from wrpn_rtl.board.host import Identity
    from wrpn_rtl.compiler.manifest import output_fields, output_words_per_image
    network = accelerator.network
    return Identity(int(np.prod(network.input_shape)), network.input_bits,
                    output_words_per_image(accelerator),
                    sum(width for width, _ in output_fields(accelerator)),
                    accelerator.cycles_per_image)


def run_infer(client, accelerator, codes, *, labels=None, selftest_codes=None, clock_hz=None,
              progress=quiet):
    """Every image of ``codes`` through the board behind ``client``
    (:class:`~wrpn_rtl.board.client.BoardClient`), then the self-test.

    Parameters
    ----------
    codes : ndarray
        Input codes ``(N, H, W, C)``.
    labels : ndarray or None
        True labels, for the accuracy.
    selftest_codes : ndarray or None
        The images the board holds for its self-test (as built), to check its CRC.
    clock_hz : float or None
        The board's clock, for the on-chip images per second.

    Returns
    -------
    dict
        ``images``, ``mismatches`` (images whose output words differ from golden) and the
        first few ``mismatched`` image indices, ``labels`` (the board's, for a classifier),
        ``accuracy`` and ``golden_accuracy`` (with labels), ``link_images_per_second``,
        ``selftest`` (cycles, images, CRC check, cycles per image, images per second at
        ``clock_hz``), ``repairs`` (requests sent again, and why).

    Raises
    ------
    StepError
        The board runs another design (its identity named beside this one's), or the link
        failed for good.
    """
    from wrpn_rtl import golden as g
    from wrpn_rtl.board import protocol
    from wrpn_rtl.board.host import outputs_crc, word_fields
    from wrpn_rtl.compiler.manifest import expected_outputs, output_fields
    network = accelerator.network
    fields = output_fields(accelerator)
    wanted = expected_identity(accelerator)
    try:
        identity = client.identity()
        if identity != wanted:
            raise StepError(f"the board runs another design: it reports {identity}, this "
                            f"design is {wanted} (build it with the same flags, or give its "
                            f"--design)")
        trace = g.execute(network, codes)
        expected = expected_outputs(accelerator, trace.outputs[-1])
        per_image = len(expected) // len(codes)
        outputs, mismatched = [], []
        started = time.monotonic()
        for index, image in enumerate(codes):
            words = [word_fields(word, fields)
                     for word in client.infer(image.ravel(), identity)]
            outputs.append(words)
            if words != expected[index * per_image:(index + 1) * per_image]:
                mismatched.append(index)
            if (index + 1) % 50 == 0:
                progress(f"  {index + 1} of {len(codes)} images answered")
        link_seconds = time.monotonic() - started
        report = client.selftest()
    except protocol.LinkError as error:
        raise StepError(f"the host link failed: {error}") from None
    summary = {"images": len(codes), "mismatches": len(mismatched),
               "mismatched": mismatched[:10], "bit_exact": not mismatched,
               "link_seconds": round(link_seconds, 3),
               "link_images_per_second": round(len(codes) / link_seconds, 1),
               "repairs": list(client.repairs)}
    if accelerator.classifies:
        board_labels = np.array([words[0][-1] for words in outputs])
        summary["labels"] = board_labels.tolist()
        summary["golden_labels"] = trace.classes.tolist()
        if labels is not None:
            summary["accuracy"] = float((board_labels == labels).mean())
            summary["golden_accuracy"] = float((trace.classes == labels).mean())
    selftest = {"cycles": report.cycles, "images": report.images, "crc": report.crc,
                "cycles_per_image": round(report.cycles / max(1, report.images), 1),
                "expected_cycles_per_image": accelerator.cycles_per_image}
    if selftest_codes is not None:
        held = np.asarray(selftest_codes).reshape((-1,) + tuple(network.input_shape))
        crc = outputs_crc(expected_outputs(accelerator, g.execute(network, held).outputs[-1]),
                          fields)
        selftest["crc_matches_golden"] = crc == report.crc
    if clock_hz:
        selftest["clock_mhz"] = round(clock_hz / 1e6, 3)
        selftest["images_per_second"] = round(clock_hz * report.images / report.cycles)
    summary["selftest"] = selftest
    return summary


def infer_markdown(summary):
    """The report of :func:`run_infer` as Markdown."""
    selftest = summary["selftest"]
    rows = [("images", summary["images"]),
            ("bit-exact against golden", "yes" if summary["bit_exact"] else
             f"no: {summary['mismatches']} images differ (first: {summary['mismatched']})")]
    if "accuracy" in summary:
        rows.append(("accuracy (labels)", f"{summary['accuracy']:.4f} (golden "
                                          f"{summary['golden_accuracy']:.4f})"))
    rows.append(("over the link", f"{summary['link_images_per_second']:,} images/s"))
    rows.append(("self-test on chip", f"{selftest['images']} images in {selftest['cycles']:,} "
                                      f"cycles ({selftest['cycles_per_image']} per image, "
                                      f"{selftest['expected_cycles_per_image']} expected)"))
    if "crc_matches_golden" in selftest:
        rows.append(("self-test outputs", "match golden (CRC)" if
                     selftest["crc_matches_golden"] else "DIFFER from golden (CRC)"))
    if "images_per_second" in selftest:
        rows.append(("on-chip rate", f"{selftest['images_per_second']:,} images/s at "
                                     f"{selftest['clock_mhz']} MHz"))
    if summary["repairs"]:
        rows.append(("link repairs", f"{len(summary['repairs'])}: {summary['repairs'][0]}"))
    lines = ["| what | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    if "labels" in summary:
        lines += ["", "labels: " + " ".join(map(str, summary["labels"][:40]))
                  + (" ..." if len(summary["labels"]) > 40 else "")]
    return "# wrpn-rtl infer\n\n" + "\n".join(lines) + "\n"
