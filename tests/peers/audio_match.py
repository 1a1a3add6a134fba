#!/usr/bin/env python3
"""Find Amico's prompts in what a phone recorded: is a prompt WAV in a recording, and where?

Needs numpy (pinned in ``tests/peers/requirements.txt``; the Rust tests install that file
into ``target/peers-venv``, whose ``bin/python`` can run this script).

As a command line (prints one JSON object on stdout)::

    audio_match.py RECORDING.wav PROMPT.wav [--threshold 0.65] [--slip-ms 60]
    audio_match.py RECORDING.wav --all PROMPT.wav... [--threshold 0.65] [--slip-ms 60]
    audio_match.py --self-test [--prompts DIR]

One prompt gives::

    {"found": true, "score": 0.9979, "offset_secs": 5.464, "end_secs": 5.804,
     "occurrences": [5.464, 12.918], "prompt": "prompts/it/n-3.wav", "name": "n-3",
     "recording": "rec.wav", "threshold": 0.65, "lead_trimmed_secs": 0.05}

``score`` is the best score anywhere, ``offset_secs`` and ``end_secs`` where that best
match's speech starts and ends in the recording (seconds from its start; the prompt's
own leading silence, ``lead_trimmed_secs``, is not counted), ``occurrences`` the start of
every separate match at or above the threshold, in time order (an announcement repeated
while the caller waits).

``--all`` gives, for the prompts in the order given::

    {"found": true, "in_order": true, "order": ["welcome", "you-are-number", "n-3"],
     "matches": [{"found": true, "score": ..., "offset_secs": ..., "end_secs": ...,
                  "occurrences": [...], "prompt": ..., "name": "welcome",
                  "lead_trimmed_secs": ...}, ...],
     "recording": "rec.wav", "threshold": 0.65}

``found``: every prompt was found. ``in_order``: one occurrence of each can be picked so
that each starts after the one before (the earliest each time), so repeated announcements
still count. ``order``: the names found, by their first occurrence.

Exit status: 0 when the prompt is found (``--all``: every prompt is found and they
occur in the order given), 1 when not, 2 on an error (unreadable file, bad argument; the
JSON is then ``{"error": "..."}``). ``--self-test`` prints a table and exits 0 when present
and absent prompts are clearly apart, 1 if not.

As a module::

    import audio_match
    result = audio_match.find("rec.wav", "prompts/it/welcome.wav")
    result["found"], result["score"], result["offset_secs"]
    audio_match.find_all("rec.wav", ["prompts/it/you-are-number.wav", "prompts/it/n-3.wav"])

How the score works
-------------------
Both files are read as mono floats; a recording at another sample rate is resampled to
the prompt's rate. The prompt is trimmed of its leading and trailing silence (the speech
is what is searched for) and cut into pieces of about 80 ms (PIECE_SECS). For each piece
the normalised cross-correlation (the Pearson correlation of the piece with the recording
window of the same length) is computed at every position of the recording with FFTs, and
its absolute value taken, so that a path that inverts polarity still matches. Pieces much
quieter than the prompt's loudest (PIECE_FLOOR_DB: pauses, breaths) are left out. The
prompt's score at a position is the power mean (SCORE_POWER = -3, between the harmonic
mean and the minimum) of its pieces' values there, each piece at its own place: all of
the prompt must be there, so a word that only shares a syllable with the prompt scores
low. In a prompt of two seconds or more each piece may slip up to ``slip_ms`` (60 ms)
from its place, so that a jitter buffer that dropped or inserted a frame or two inside a
long announcement costs little. To keep this quick, the pieces are scored only near the
peaks of the whole prompt's correlation with the recording (one FFT): its CANDIDATES best
peaks and any other at or above CANDIDATE_FLOOR. A prompt takes about 0.1 s (a word) to
0.3 s (a long announcement) per minute of recording.

G.711 keeps the waveform (it is a logarithmic quantiser, signal to noise ratio about
38 dB), so a prompt that went through the μ-law or A-law round trip, a level change and
low-level noise scores about 0.97-1.0. Other speech and music correlate only by accident
and score about 0.05-0.35. DEFAULT_THRESHOLD (0.65) sits between. ``--self-test``
measures both sides on the generated prompts and fails if any present case scores below
threshold + SELF_TEST_MARGIN or any absent one above threshold - SELF_TEST_MARGIN. The
closest absent cases are short numbers that share a syllable with a word in the
recording (espeak-ng's "thirty-one" against a recorded "twenty-one", "eighty" against
"city"): up to about 0.5. To tell which number was announced, search the candidates
(``--all``) and take the best score at the expected place.

Windows of the recording quieter than FLOOR_DBFS (digital silence) are treated as that
level, so that silence never matches by dividing by almost zero.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import wave
from pathlib import Path

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write("audio_match.py needs numpy: pip install -r tests/peers/requirements.txt\n")
    raise SystemExit(2)

#: Score at or above which a prompt counts as present (see the module doc).
DEFAULT_THRESHOLD = 0.65
#: How far (ms) each piece of a long prompt may slip from its place in the prompt.
DEFAULT_SLIP_MS = 60.0
#: Target length of the pieces a prompt is cut into (they are one to two of these).
PIECE_SECS = 0.08
#: Pieces with less energy than this, relative to the loudest piece, are left out.
PIECE_FLOOR_DB = -20.0
#: Prompts shorter than this (after trimming) are matched rigidly, without slip.
SLIP_MIN_SECS = 2.0
#: The exponent of the power mean that combines the pieces' values (-1 is the harmonic
#: mean; lower gets closer to the minimum).
SCORE_POWER = -3.0
#: How many of the whole prompt's best correlation peaks are scored closely, at least.
CANDIDATES = 8
#: Any further peak of the whole prompt's correlation at or above this is scored too.
CANDIDATE_FLOOR = 0.3
#: The most peaks scored closely (a long recording full of one repeated prompt).
MAX_CANDIDATES = 400
#: Peaks closer than this (s) count as one (twice the slip for long prompts).
CANDIDATE_SPACING_SECS = 0.05
#: Each peak is scored this far (s) either side (the slip, for long prompts).
CANDIDATE_RADIUS_SECS = 0.01
#: A piece's value is never taken below this, so that the power mean stays finite.
SCORE_FLOOR = 1e-3
#: Prompt edges quieter than this, relative to the prompt's peak, are trimmed.
TRIM_DB = -45.0
#: Recording windows are never taken as quieter than this RMS (dBFS).
FLOOR_DBFS = -70.0
#: --self-test fails unless every present score is at least threshold + margin and every
#: absent score at most threshold - margin.
SELF_TEST_MARGIN = 0.1
#: Longest recording analysed, so that a runaway file cannot stall a test.
MAX_RECORDING_SECS = 900


class AudioError(Exception):
    """A file that cannot be read or analysed; the CLI exits 2 with its message."""


# ----------------------------------------------------------------------------- files


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """Reads a PCM WAV (8, 16, 24 or 32-bit; any channel count, mixed to mono).

    Returns (sample rate, float64 samples with full scale = 1.0).
    """
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            channels = w.getnchannels()
            width = w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as e:
        raise AudioError(f"{path}: not a readable PCM WAV ({e})") from e
    if width == 1:
        data = (np.frombuffer(frames, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0
    elif width == 3:
        raw = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        data = ints.astype(np.float64) / 8388608.0
    elif width == 4:
        data = np.frombuffer(frames, dtype="<i4").astype(np.float64) / 2147483648.0
    else:
        raise AudioError(f"{path}: unsupported sample width {width} bytes")
    if channels > 1:
        data = data[: len(data) // channels * channels].reshape(-1, channels).mean(axis=1)
    return rate, data


def write_wav(path: str | Path, samples: np.ndarray, rate: int = 8000) -> None:
    """Writes mono 16-bit PCM (samples with full scale = 1.0 are clipped to it)."""
    ints = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(ints.tobytes())


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of a whole signal (FFT, spectrum cut or zero-padded)."""
    if from_rate == to_rate or len(samples) == 0:
        return samples
    count = max(1, round(len(samples) * to_rate / from_rate))
    spectrum = np.fft.rfft(samples)
    bins = count // 2 + 1
    if len(spectrum) >= bins:
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), complex)])
    return np.fft.irfft(spectrum, count) * (count / len(samples))


# ----------------------------------------------------------------------------- G.711

_MULAW_BIAS = 0x84
_MULAW_CLIP = 8159
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def mulaw_encode(samples: np.ndarray) -> np.ndarray:
    """ITU-T G.711 μ-law: float samples (full scale 1.0) to 8-bit codes.

    The CCITT/Sun reference algorithm on the 14 most significant bits, as amico-media's
    encoder tables are built.
    """
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _MULAW_CLIP) + (_MULAW_BIAS >> 2)
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, magnitude)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """ITU-T G.711 μ-law: 8-bit codes to float samples (full scale 1.0)."""
    code = ~codes.astype(np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.float64) / 32768.0


_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """ITU-T G.711 A-law: float samples (full scale 1.0) to 8-bit codes."""
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, pcm)
    shift = np.where(segment < 2, 1, segment)
    value = (np.minimum(segment, 7) << 4) | ((pcm >> shift) & 0x0F)
    value = np.where(segment >= 8, 0x7F, value)
    return ((value ^ mask) & 0xFF).astype(np.uint8)


def alaw_decode(codes: np.ndarray) -> np.ndarray:
    """ITU-T G.711 A-law: 8-bit codes to float samples (full scale 1.0)."""
    value = codes.astype(np.int32) ^ 0x55
    t = (value & 0x0F) << 4
    segment = (value & 0x70) >> 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(value & 0x80, t, -t).astype(np.float64) / 32768.0


def mulaw_round_trip(samples: np.ndarray) -> np.ndarray:
    """What a μ-law (PCMU) leg does to audio: encode and decode."""
    return mulaw_decode(mulaw_encode(samples))


def alaw_round_trip(samples: np.ndarray) -> np.ndarray:
    """What an A-law (PCMA) leg does to audio: encode and decode."""
    return alaw_decode(alaw_encode(samples))


# ----------------------------------------------------------------------------- matching


def trim(samples: np.ndarray, rate: int) -> tuple[int, np.ndarray]:
    """Drops leading and trailing silence (10 ms blocks below TRIM_DB of the peak).

    Returns (samples dropped at the start, the rest).
    """
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if peak == 0.0:
        return 0, samples
    block = max(1, rate // 100)
    count = len(samples) // block
    if count == 0:
        return 0, samples
    blocks = samples[: count * block].reshape(count, block)
    loud = np.flatnonzero(np.max(np.abs(blocks), axis=1) >= peak * 10 ** (TRIM_DB / 20))
    start = int(loud[0]) * block
    end = min(len(samples), (int(loud[-1]) + 1) * block)
    return start, samples[start:end]


def _max_filter(values: np.ndarray, reach: int) -> np.ndarray:
    """out[..., i] = max(values[..., i - reach : i + reach + 1]) along the last axis."""
    if reach <= 0:
        return values
    width = 2 * reach + 1
    pad = [(0, 0)] * (values.ndim - 1) + [(reach, reach)]
    running = np.pad(values, pad, constant_values=-np.inf)
    span = 1
    while span * 2 <= width:
        running = np.maximum(running[..., :-span], running[..., span:])
        span *= 2
    rest = width - span
    count = values.shape[-1]
    return np.maximum(running[..., :count], running[..., rest : rest + count])


class Recording:
    """A recording prepared for searching: samples, prefix sums and cached spectra."""

    def __init__(self, samples: np.ndarray, rate: int, name: str = "recording"):
        limit = MAX_RECORDING_SECS * rate
        self.samples = samples[:limit]
        self.rate = rate
        self.name = name
        self.cumsum = np.concatenate([[0.0], np.cumsum(self.samples)])
        self.cumsum2 = np.concatenate([[0.0], np.cumsum(self.samples**2)])
        self._spectra: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, path: str | Path, rate: int | None = None) -> Recording:
        """Reads a WAV, resampled to `rate` if given and different."""
        file_rate, samples = read_wav(path)
        if rate is not None and rate != file_rate:
            samples = resample(samples, file_rate, rate)
            file_rate = rate
        return cls(samples, file_rate, str(path))

    def _spectrum(self, size: int) -> np.ndarray:
        if size not in self._spectra:
            self._spectra[size] = np.fft.rfft(self.samples, size)
        return self._spectra[size]

    def correlate(self, piece: np.ndarray) -> np.ndarray:
        """|Normalised cross-correlation| of `piece` at every start in the recording."""
        m = len(piece)
        n = len(self.samples)
        if n < m:
            return np.zeros(1)
        centred = piece - piece.mean()
        norm = float(np.sqrt(np.sum(centred**2)))
        if norm == 0.0:
            return np.zeros(n - m + 1)
        size = 1 << math.ceil(math.log2(n + m))
        product = self._spectrum(size) * np.conj(np.fft.rfft(centred / norm, size))
        numerator = np.fft.irfft(product, size)[: n - m + 1]
        sums = self.cumsum[m:] - self.cumsum[:-m]
        sums2 = self.cumsum2[m:] - self.cumsum2[:-m]
        variance = sums2 - sums * sums / m
        floor = m * 10 ** (FLOOR_DBFS / 10)
        return np.abs(numerator) / np.sqrt(np.maximum(variance, floor))


def _pieces(prompt: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """The prompt's pieces (start, end) that take part in the score (see the module doc)."""
    count = max(1, int(len(prompt) // (PIECE_SECS * rate)))
    bounds = np.linspace(0, len(prompt), count + 1).astype(int)
    pieces = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    energies = [float(np.sum((prompt[a:b] - prompt[a:b].mean()) ** 2)) for a, b in pieces]
    loudest = max(energies)
    return [
        piece
        for piece, energy in zip(pieces, energies)
        if energy > 0 and energy >= loudest * 10 ** (PIECE_FLOOR_DB / 10)
    ]


def _candidates(whole: np.ndarray, spacing: int) -> list[int]:
    """Where to score the prompt closely: the CANDIDATES best peaks of the whole prompt's
    correlation, and every further one at or above CANDIDATE_FLOOR (at most
    MAX_CANDIDATES), peaks closer than `spacing` counting as one."""
    # The best position in each block of `spacing` starts, then the blocks' best first.
    blocks = -(-len(whole) // spacing)
    padded = np.full(blocks * spacing, -np.inf)
    padded[: len(whole)] = whole
    tops = np.argmax(padded.reshape(blocks, spacing), axis=1) + np.arange(blocks) * spacing
    chosen: list[int] = []
    for index in tops[np.argsort(-whole[tops], kind="stable")]:
        if len(chosen) >= MAX_CANDIDATES:
            break
        if len(chosen) >= CANDIDATES and whole[index] < CANDIDATE_FLOOR:
            break
        chosen.append(int(index))
    return chosen


def _score_near(
    recording: Recording,
    prompt: np.ndarray,
    pieces: list[tuple[int, int]],
    centre: int,
    radius: int,
    slip: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores the prompt at every start in centre ± radius.

    Returns (starts, scores with each piece allowed to slip, scores with every piece in
    place). The first score gives the verdict; the second places it, since letting pieces
    slip flattens the top of the curve over twice the slip.
    """
    x = recording.samples
    last = len(x) - len(prompt)
    low, high = max(0, centre - radius), min(last, centre + radius)
    first, final = max(0, low - slip), min(last, high + slip)
    lags = final - first + 1
    longest = max(end - start for start, end in pieces)
    size = 1 << math.ceil(math.log2(lags + longest - 1))
    windows = np.zeros((len(pieces), lags + longest - 1))
    kernels = np.zeros((len(pieces), longest))
    lengths = np.empty(len(pieces), dtype=np.int64)
    starts = np.empty(len(pieces), dtype=np.int64)
    for row, (start, end) in enumerate(pieces):
        piece = prompt[start:end] - prompt[start:end].mean()
        kernels[row, : end - start] = piece / np.sqrt(np.sum(piece**2))
        window = x[first + start : final + end]
        windows[row, : len(window)] = window
        lengths[row] = end - start
        starts[row] = start
    spectra = np.fft.rfft(windows, size) * np.conj(np.fft.rfft(kernels, size))
    numerators = np.fft.irfft(spectra, size)[:, :lags]
    offsets = first + starts[:, None] + np.arange(lags)[None, :]
    ends = offsets + lengths[:, None]
    sums = recording.cumsum[ends] - recording.cumsum[offsets]
    sums2 = recording.cumsum2[ends] - recording.cumsum2[offsets]
    variance = sums2 - sums * sums / lengths[:, None]
    floor = lengths[:, None] * 10 ** (FLOOR_DBFS / 10)
    values = np.abs(numerators) / np.sqrt(np.maximum(variance, floor))
    wanted = slice(low - first, high - first + 1)

    def power_mean(curves: np.ndarray) -> np.ndarray:
        clipped = np.maximum(curves[:, wanted], SCORE_FLOOR)
        return np.mean(clipped**SCORE_POWER, axis=0) ** (1 / SCORE_POWER)

    rigid = power_mean(values)
    slipped = power_mean(_max_filter(values, slip)) if slip else rigid
    return np.arange(low, high + 1), slipped, rigid


def _peaks(
    starts: np.ndarray,
    scores: np.ndarray,
    rank: np.ndarray,
    best: int,
    threshold: float,
    spacing: int,
) -> list[int]:
    """Starts of separate peaks of `scores` at or above the threshold, at least `spacing`
    apart: the best match first, then others placed where `rank` is highest."""
    above = np.flatnonzero(scores >= threshold)
    peaks: list[int] = [int(starts[best])] if scores[best] >= threshold else []
    for index in above[np.argsort(-rank[above], kind="stable")]:
        start = int(starts[index])
        if all(abs(start - peak) >= spacing for peak in peaks):
            peaks.append(start)
    return sorted(peaks)


def match(
    recording: Recording,
    prompt_path: str | Path,
    threshold: float = DEFAULT_THRESHOLD,
    slip_ms: float = DEFAULT_SLIP_MS,
) -> dict:
    """Searches one prompt in a prepared recording; returns the JSON-ready verdict."""
    rate, samples = read_wav(prompt_path)
    if rate != recording.rate:
        samples = resample(samples, rate, recording.rate)
    lead, speech = trim(samples, recording.rate)
    if len(speech) == 0 or not np.any(speech):
        raise AudioError(f"{prompt_path}: the prompt is silent")
    rate = recording.rate
    slip = round(slip_ms * rate / 1000) if len(speech) >= SLIP_MIN_SECS * rate else 0
    if len(recording.samples) < len(speech):
        recording = Recording(
            np.concatenate([recording.samples, np.zeros(len(speech) - len(recording.samples))]),
            rate,
            recording.name,
        )
    # The whole prompt's correlation says where to look; the pieces give the score there.
    whole = recording.correlate(speech)
    spacing = max(2 * slip, int(CANDIDATE_SPACING_SECS * rate))
    radius = max(slip, int(CANDIDATE_RADIUS_SECS * rate))
    pieces = _pieces(speech, rate)
    parts = [
        _score_near(recording, speech, pieces, centre, radius, slip)
        for centre in _candidates(whole, spacing)
    ]
    starts = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    rigid = np.concatenate([p[2] for p in parts])
    # Within a hair of the best score, the start where the pieces line up unslipped.
    near = scores >= scores.max() - 0.005
    index = int(np.argmax(np.where(near, rigid, -np.inf)))
    best = int(starts[index])
    score = float(scores[index])
    occurrences = _peaks(starts, scores, scores + 0.01 * rigid, index, threshold, len(speech))
    return {
        "found": score >= threshold,
        "score": round(score, 4),
        "offset_secs": round(best / recording.rate, 3),
        "end_secs": round((best + len(speech)) / recording.rate, 3),
        "occurrences": [round(p / recording.rate, 3) for p in occurrences],
        "prompt": str(prompt_path),
        "name": Path(prompt_path).stem,
        "recording": recording.name,
        "threshold": threshold,
        "lead_trimmed_secs": round(lead / recording.rate, 3),
    }


def _prompt_rate(prompt_path: str | Path) -> int:
    return read_wav(prompt_path)[0]


def find(
    recording_path: str | Path,
    prompt_path: str | Path,
    threshold: float = DEFAULT_THRESHOLD,
    slip_ms: float = DEFAULT_SLIP_MS,
) -> dict:
    """Is the prompt in the recording, and where? See the module doc for the JSON."""
    recording = Recording.load(recording_path, _prompt_rate(prompt_path))
    return match(recording, prompt_path, threshold, slip_ms)


def order_of(matches: list[dict]) -> tuple[bool, list[str]]:
    """Whether the matches occur in the order given, and the names by first occurrence.

    In order means one occurrence of each prompt can be picked so that each starts after
    the previous one's start (earliest possible pick each time), so that announcements
    repeated every few seconds still count.
    """
    position = -math.inf
    in_order = True
    for m in matches:
        later = [o for o in m["occurrences"] if o > position]
        if not m["found"] or not later:
            in_order = False
            break
        position = later[0]
    found = [m for m in matches if m["found"] and m["occurrences"]]
    names = [m["name"] for m in sorted(found, key=lambda m: m["occurrences"][0])]
    return in_order, names


def find_all(
    recording_path: str | Path,
    prompt_paths: list[str | Path],
    threshold: float = DEFAULT_THRESHOLD,
    slip_ms: float = DEFAULT_SLIP_MS,
) -> dict:
    """Searches several prompts; reports each, and whether they occur in the order given."""
    if not prompt_paths:
        raise AudioError("--all needs at least one prompt")
    recording = Recording.load(recording_path, _prompt_rate(prompt_paths[0]))
    matches = [match(recording, p, threshold, slip_ms) for p in prompt_paths]
    in_order, names = order_of(matches)
    for m in matches:
        del m["recording"], m["threshold"]
    return {
        "found": all(m["found"] for m in matches),
        "in_order": in_order,
        "order": names,
        "matches": matches,
        "recording": recording.name,
        "threshold": threshold,
    }


# ----------------------------------------------------------------------------- self-test


def _default_prompts_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "prompts"


def self_test(prompts_dir: Path, threshold: float, slip_ms: float) -> int:
    """Builds phone-like recordings from the generated prompts and scores known cases.

    Each recording: 1.5 s of comfort noise (-65 dBFS), 3 s of music on hold, prompts, 2 s
    of music; then 6 dB quieter, white noise at -50 dBFS added, and through G.711 μ-law
    (or A-law). Present cases: the prompts in the recording, also after a jitter buffer
    slipped two frames, after A-law, after a 16 kHz recorder. Absent cases: a few named
    prompts of the same language, the other language, silence, music, and then every
    other prompt of the catalogue (numbers included) against the same recording, of which
    the highest are shown. Returns 1 unless every present case scores at least threshold
    + SELF_TEST_MARGIN and every absent one at most threshold - SELF_TEST_MARGIN.
    """
    rng = np.random.default_rng(20090101)
    rate = 8000

    def load(name: str) -> np.ndarray:
        path = prompts_dir / name
        file_rate, samples = read_wav(path)
        if file_rate != rate:
            raise AudioError(f"{path}: {file_rate} Hz, expected {rate}")
        return samples

    music = load("music/default.wav")

    def noise(secs: float, dbfs: float) -> np.ndarray:
        return rng.normal(0.0, 10 ** (dbfs / 20), int(secs * rate))

    def phone(parts: list[np.ndarray], law=mulaw_round_trip) -> np.ndarray:
        signal = np.concatenate([noise(1.5, -65.0), music[: 3 * rate], *parts, music[: 2 * rate]])
        signal = signal * 10 ** (-6 / 20) + noise(len(signal) / rate, -50.0)
        return law(signal)

    def slipped(samples: np.ndarray) -> np.ndarray:
        # A jitter buffer that dropped one 20 ms frame at a third of the prompt and
        # inserted 40 ms of silence at two thirds.
        third = len(samples) // 3
        frame = rate // 50
        return np.concatenate(
            [
                samples[:third],
                samples[third + frame : 2 * third],
                np.zeros(2 * frame),
                samples[2 * third :],
            ]
        )

    shown: list[tuple[bool, float, str]] = []
    swept: list[float] = []

    def check(label: str, recording: Recording, prompt: str, present: bool) -> dict:
        verdict = match(recording, prompts_dir / prompt, threshold, slip_ms)
        shown.append((present, verdict["score"], f"{prompt} in {label}"))
        return verdict

    sequence = ["welcome", "you-are-number", "n-21", "in-queue", "periodic-1"]
    for lang, other in (("it", "en"), ("en", "it")):
        label = f"{lang}/[{' '.join(sequence)}] (μ-law)"
        recording = Recording(phone([load(f"{lang}/{n}.wav") for n in sequence]), rate, label)
        verdicts = [check(label, recording, f"{lang}/{n}.wav", True) for n in sequence]
        in_order, _ = order_of(verdicts)
        reversed_order, _ = order_of(list(reversed(verdicts)))
        welcome_at = verdicts[0]["offset_secs"]
        # The welcome's speech starts after the noise, the music and its own lead silence.
        expected = 1.5 + 3.0 + verdicts[0]["lead_trimmed_secs"]
        if not in_order or reversed_order or abs(welcome_at - expected) > 0.01:
            print(
                f"FAIL {label}: in order {in_order}, reversed in order {reversed_order}, "
                f"welcome at {welcome_at} s, expected {expected:.3f} s"
            )
            return 1
        for absent in ("periodic-2", "survey", "goodbye", "n-28", "minutes"):
            check(label, recording, f"{lang}/{absent}.wav", False)
        check(label, recording, f"{other}/welcome.wav", False)
        check(label, recording, f"{other}/periodic-1.wav", False)
        rest = []
        for path in sorted((prompts_dir / lang).glob("*.wav")):
            if path.stem not in sequence:
                score = match(recording, path, threshold, slip_ms)["score"]
                rest.append((score, path.stem))
                swept.append(score)
        rest.sort(reverse=True)
        top = ", ".join(f"{name} {score:.3f}" for score, name in rest[:5])
        print(f"absent  {len(rest)} other {lang} prompts in {label}: highest {top}")

        alaw = Recording(
            phone([load(f"{lang}/menu.wav")], law=alaw_round_trip), rate, f"{lang}/[menu] (A-law)"
        )
        check(alaw.name, alaw, f"{lang}/menu.wav", True)
        check(alaw.name, alaw, f"{lang}/survey.wav", False)

        slip = Recording(
            phone([slipped(load(f"{lang}/periodic-1.wav"))]),
            rate,
            f"{lang}/[periodic-1] with a frame dropped and two inserted",
        )
        check(slip.name, slip, f"{lang}/periodic-1.wav", True)

        wide = resample(phone([load(f"{lang}/callback-intro.wav")]), rate, 16000)
        wide_recording = Recording(
            resample(wide, 16000, rate), rate, f"{lang}/[callback-intro] recorded at 16 kHz"
        )
        check(wide_recording.name, wide_recording, f"{lang}/callback-intro.wav", True)

        silence = Recording(mulaw_round_trip(noise(20.0, -65.0)), rate, "comfort noise")
        music_only = Recording(phone([music]), rate, "music on hold")
        for prompt in ("welcome", "n-1", "about", "periodic-1"):
            check(silence.name, silence, f"{lang}/{prompt}.wav", False)
            check(music_only.name, music_only, f"{lang}/{prompt}.wav", False)

    for present, score, text in shown:
        print(f"{'present' if present else 'absent '} {score:.3f}  {text}")
    present_scores = [score for present, score, _ in shown if present]
    absent_scores = [score for present, score, _ in shown if not present] + swept
    low = min(present_scores)
    high = max(absent_scores)
    ok = low >= threshold + SELF_TEST_MARGIN and high <= threshold - SELF_TEST_MARGIN
    print(
        f"self-test: {len(present_scores)} present (lowest {low:.3f}), "
        f"{len(absent_scores)} absent (highest {high:.3f}), threshold {threshold}, "
        f"margin {SELF_TEST_MARGIN}: {'ok' if ok else 'FAIL: not clearly apart'}"
    )
    return 0 if ok else 1


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Find prompt WAVs in a recorded call (normalised cross-correlation).",
        epilog="Prints JSON. Exit 0 found (--all: all found, in order), 1 not, 2 error.",
    )
    parser.add_argument("recording", nargs="?", help="the recorded WAV")
    parser.add_argument("prompt", nargs="?", help="the prompt WAV to look for")
    parser.add_argument("--all", nargs="+", metavar="PROMPT", help="several prompts, in order")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--slip-ms", type=float, default=DEFAULT_SLIP_MS)
    parser.add_argument("--self-test", action="store_true", help="score the built-in cases")
    parser.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="prompt folder for --self-test (default: the repo's prompts/)",
    )
    args = parser.parse_args(argv)
    try:
        if args.self_test:
            return self_test(args.prompts or _default_prompts_dir(), args.threshold, args.slip_ms)
        if not args.recording:
            parser.error("a recording is needed")
        if args.all:
            if args.prompt:
                parser.error("give the prompts after --all, not before")
            result = find_all(args.recording, args.all, args.threshold, args.slip_ms)
            ok = result["found"] and result["in_order"]
        else:
            if not args.prompt:
                parser.error("a prompt is needed (or --all PROMPT...)")
            result = find(args.recording, args.prompt, args.threshold, args.slip_ms)
            ok = result["found"]
    except AudioError as e:
        print(json.dumps({"error": str(e)}))
        sys.stderr.write(f"audio_match.py: {e}\n")
        return 2
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
