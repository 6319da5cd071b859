"""Time-frequency front ends as torch modules, so they run on the device with the encoder.

``LogMel`` (``mel``): plain torch, ``torch.stft`` and a mel filterbank built here. ``CQT``
(``cqt``): a constant-Q transform, nnAudio's octave-by-octave implementation behind our
interface. Time is the last axis: ``(..., num_samples) -> (..., num_bins, num_frames)``.
"""

from musicssl.features.cqt import C1_HZ, CQT, nnaudio_cqt
from musicssl.features.mel import LogMel, hz_to_mel, mel_filterbank, mel_to_hz

__all__ = ["C1_HZ", "CQT", "LogMel", "hz_to_mel", "mel_filterbank", "mel_to_hz", "nnaudio_cqt"]
