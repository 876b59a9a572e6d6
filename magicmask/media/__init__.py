"""ffmpeg for magicmask: probing a video, extracting its keyframes, decoding every frame raw, encoding video.

One module each: :mod:`~magicmask.media.ffmpeg` (finding and running ffmpeg, its messages),
:mod:`~magicmask.media.probe` (ffprobe: streams, frame times, keyframe counts), :mod:`~magicmask.media.extract`
(the blog's keyframe command), :mod:`~magicmask.media.decode` (the raw pipe) and :mod:`~magicmask.media.encode`
(H.264 out). Nothing else in magicmask starts ffmpeg.
"""
