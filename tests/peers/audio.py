#!/usr/bin/env python3
"""Test tones for Amico's interop tests: make them, and find them in recordings.

Only the standard library (``wave``, ``math``, ``array``), no sox.

As a module::

    import audio
    audio.write_tone("/tmp/a.wav", 440.0, seconds=2.0)
    result = audio.analyze("/tmp/received.wav", 440.0)
    result["present"]   # True / False

As a command line (prints one JSON object on stdout)::

    audio.py tone OUT.wav --hz 440 [--seconds 2] [--amplitude 0.3] [--rate 8000]
    audio.py analyze FILE.wav --hz 440 [--ratio 10] [--floor 1e-4] [--neighbours 312,568]
                              [--block-ms 100] [--min-present-secs 1.0]

``analyze`` exits 0 when the tone is present, 1 when it is absent, 2 on an error.

How the verdict works: the recording is cut in blocks (100 ms by default). In each
block a Hann-windowed Goertzel filter measures the power at the expected frequency
and at two neighbouring, non-harmonic frequencies (0.71x and 1.29x by default). The
power is normalised so that a sine of amplitude A (full scale = 1.0) measures A**2.
A block "has the tone" when its power at the frequency is at least ``ratio`` times
the larger neighbour power and at least ``floor``. The tone is present in the file
when the blocks that have it add up to at least ``min_present_secs`` (default 1 s),
or to half the recording if that is shorter.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import sys
import wave

DEFAULT_RATE = 8000
DEFAULT_AMPLITUDE = 0.3
DEFAULT_RATIO = 10.0
# Power of a sine of amplitude 0.01 (-40 dBFS).
DEFAULT_FLOOR = 1e-4
DEFAULT_BLOCK_MS = 100
DEFAULT_MIN_PRESENT_SECS = 1.0
NEIGHBOUR_FACTORS = (0.71, 1.29)
# Longest recording analysed, so that a runaway file cannot stall a test.
MAX_ANALYSED_SECS = 600


def write_tone(
    path: str,
    hz: float,
    seconds: float = 2.0,
    amplitude: float = DEFAULT_AMPLITUDE,
    rate: int = DEFAULT_RATE,
) -> str:
    """Write a mono 16-bit PCM WAV holding a sine at ``hz``.

    A whole number of seconds with an integer frequency holds a whole number of
    cycles, so the file loops without a click.
    """
    if not 0 < hz < rate / 2:
        raise ValueError(f"tone {hz} Hz is outside (0, {rate / 2}) Hz")
    if not 0 < amplitude <= 1:
        raise ValueError(f"amplitude {amplitude} is outside (0, 1]")
    if not 0 < seconds <= 3600:
        raise ValueError(f"duration {seconds} s is outside (0, 3600] s")
    n = int(round(seconds * rate))
    peak = amplitude * 32767.0
    step = 2.0 * math.pi * hz / rate
    samples = array.array("h", (int(round(peak * math.sin(step * i))) for i in range(n)))
    if sys.byteorder != "little":
        samples.byteswap()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def read_wav(path: str) -> tuple[list[float], int]:
    """Read a 16-bit PCM WAV as mono floats in [-1, 1] (channels are averaged)."""
    with wave.open(path, "rb") as w:
        channels = w.getnchannels()
        width = w.getsampwidth()
        rate = w.getframerate()
        frames = min(w.getnframes(), MAX_ANALYSED_SECS * rate)
        raw = w.readframes(frames)
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM is supported (sample width {width})")
    data = array.array("h")
    data.frombytes(raw[: len(raw) - len(raw) % 2])
    if sys.byteorder != "little":
        data.byteswap()
    if channels == 1:
        return [s / 32768.0 for s in data], rate
    mono = []
    for i in range(0, len(data) - channels + 1, channels):
        mono.append(sum(data[i : i + channels]) / (32768.0 * channels))
    return mono, rate


def _hann(n: int) -> list[float]:
    if n == 1:
        return [1.0]
    return [0.5 - 0.5 * math.cos(2.0 * math.pi * i / (n - 1)) for i in range(n)]


def goertzel_power(
    samples: list[float], rate: int, hz: float, window: list[float] | None = None
) -> float:
    """Power of ``samples`` at ``hz``: a sine of amplitude A measures about A**2.

    Works at any frequency (not only bin centres). With ``window`` the samples are
    weighted first and the result is normalised by the window's sum.
    """
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2.0 * math.cos(2.0 * math.pi * hz / rate)
    s1 = s2 = 0.0
    if window is None:
        for x in samples:
            s0 = x + coeff * s1 - s2
            s2 = s1
            s1 = s0
        norm = n
    else:
        for x, w in zip(samples, window):
            s0 = x * w + coeff * s1 - s2
            s2 = s1
            s1 = s0
        norm = sum(window)
    mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return max(mag2, 0.0) * 4.0 / (norm * norm)


def neighbours_of(hz: float) -> tuple[float, float]:
    """The two default comparison frequencies for ``hz`` (not harmonics of it)."""
    return (hz * NEIGHBOUR_FACTORS[0], hz * NEIGHBOUR_FACTORS[1])


def analyze_samples(
    samples: list[float],
    rate: int,
    hz: float,
    ratio: float = DEFAULT_RATIO,
    floor: float = DEFAULT_FLOOR,
    neighbours: tuple[float, float] | None = None,
    block_ms: int = DEFAULT_BLOCK_MS,
    min_present_secs: float = DEFAULT_MIN_PRESENT_SECS,
) -> dict:
    """Verdict on whether a tone at ``hz`` is in ``samples``; see the module doc."""
    if neighbours is None:
        neighbours = neighbours_of(hz)
    for f in (hz, *neighbours):
        if not 0 < f < rate / 2:
            raise ValueError(f"frequency {f} Hz is outside (0, {rate / 2}) Hz")
    block = max(1, int(rate * block_ms / 1000))
    window = _hann(block)
    blocks = len(samples) // block
    duration = len(samples) / rate if rate else 0.0
    sum_tone = sum_n1 = sum_n2 = 0.0
    present_blocks = 0
    max_tone = 0.0
    for b in range(blocks):
        chunk = samples[b * block : (b + 1) * block]
        p = goertzel_power(chunk, rate, hz, window)
        n1 = goertzel_power(chunk, rate, neighbours[0], window)
        n2 = goertzel_power(chunk, rate, neighbours[1], window)
        sum_tone += p
        sum_n1 += n1
        sum_n2 += n2
        max_tone = max(max_tone, p)
        if p >= floor and p >= ratio * max(n1, n2):
            present_blocks += 1
    mean = (lambda s: s / blocks) if blocks else (lambda s: 0.0)
    block_secs = block / rate
    present_secs = present_blocks * block_secs
    needed = min(min_present_secs, 0.5 * blocks * block_secs)
    present = blocks > 0 and present_blocks > 0 and present_secs + 1e-9 >= needed
    return {
        "hz": hz,
        "present": bool(present),
        "power": mean(sum_tone),
        "max_block_power": max_tone,
        "neighbours_hz": [neighbours[0], neighbours[1]],
        "neighbour_power": [mean(sum_n1), mean(sum_n2)],
        "ratio": ratio,
        "floor": floor,
        "duration": round(duration, 3),
        "present_secs": round(present_secs, 3),
        "blocks": blocks,
        "present_blocks": present_blocks,
        "rate": rate,
    }


def analyze(path: str, hz: float, **kwargs) -> dict:
    """Read ``path`` and run :func:`analyze_samples` on it; adds ``file``."""
    samples, rate = read_wav(path)
    result = analyze_samples(samples, rate, hz, **kwargs)
    result["file"] = path
    return result


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Make test tones and find them in WAV files.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tone", help="write a sine WAV (mono, 16-bit)")
    t.add_argument("out")
    t.add_argument("--hz", type=float, required=True)
    t.add_argument("--seconds", type=float, default=2.0)
    t.add_argument("--amplitude", type=float, default=DEFAULT_AMPLITUDE)
    t.add_argument("--rate", type=int, default=DEFAULT_RATE)
    a = sub.add_parser("analyze", help="is a tone present in a WAV? exit 0 yes, 1 no")
    a.add_argument("file")
    a.add_argument("--hz", type=float, required=True)
    a.add_argument("--ratio", type=float, default=DEFAULT_RATIO)
    a.add_argument("--floor", type=float, default=DEFAULT_FLOOR)
    a.add_argument("--neighbours", help="two frequencies, comma-separated")
    a.add_argument("--block-ms", type=int, default=DEFAULT_BLOCK_MS)
    a.add_argument("--min-present-secs", type=float, default=DEFAULT_MIN_PRESENT_SECS)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "tone":
            write_tone(args.out, args.hz, args.seconds, args.amplitude, args.rate)
            print(json.dumps({"file": args.out, "hz": args.hz, "seconds": args.seconds,
                              "amplitude": args.amplitude, "rate": args.rate}))
            return 0
        neighbours = None
        if args.neighbours:
            parts = [float(x) for x in args.neighbours.split(",")]
            if len(parts) != 2:
                raise ValueError("--neighbours takes exactly two frequencies")
            neighbours = (parts[0], parts[1])
        result = analyze(args.file, args.hz, ratio=args.ratio, floor=args.floor,
                         neighbours=neighbours, block_ms=args.block_ms,
                         min_present_secs=args.min_present_secs)
        print(json.dumps(result))
        return 0 if result["present"] else 1
    except (OSError, ValueError, EOFError, wave.Error) as e:
        print(json.dumps({"error": str(e)}))
        return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
