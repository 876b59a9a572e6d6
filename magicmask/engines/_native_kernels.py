"""Numba kernels of the native engine: ImageMagick 6.9.11 Q16 arithmetic, step by step.

Every kernel works on Quantum values (0..65535) held as float64 where ImageMagick uses double, and
rounds with :func:`clamp_to_quantum` where ImageMagick stores a Quantum. Kernels release the GIL
(``nogil``), are cached on disk (``cache``), and never use ``fastmath``: the order and kind of every
floating-point operation is part of the result.

Images are NumPy arrays ``(rows, columns, channels)`` of ``uint8`` or ``uint16`` as read from the TIFF,
with ``scale`` 257 for 8-bit samples (ImageMagick's ScaleCharToQuantum) and 1 for 16-bit ones; a
one-channel (gray) image stands for R = G = B.
"""

from __future__ import annotations

import numpy as np
from numba import njit

QUANTUM_RANGE = 65535.0
QUANTUM_SCALE = 1.0 / 65535.0  # ImageMagick's QuantumScale: (double) 1.0/(double) QuantumRange

# Rec. 709 luma weights, as GetPixelIntensity (double constants) and GetPixelLuma (float constants) use them.
RED_WEIGHT = 0.212656
GREEN_WEIGHT = 0.715158
BLUE_WEIGHT = 0.072186
RED_WEIGHT_F = float(np.float32(0.212656))
GREEN_WEIGHT_F = float(np.float32(0.715158))
BLUE_WEIGHT_F = float(np.float32(0.072186))

_OPTIONS = dict(nogil=True, cache=True)


@njit(**_OPTIONS)
def clamp_to_quantum(value):
    """ImageMagick's ClampToQuantum (Q16, no HDRI): <= 0 -> 0, >= 65535 -> 65535, else trunc(value + 0.5)."""
    if value <= 0.0:
        return 0
    if value >= QUANTUM_RANGE:
        return 65535
    return int(value + 0.5)


@njit(**_OPTIONS)
def scale_quantum_to_char(quantum):
    """ImageMagick's ScaleQuantumToChar (Q16): ((q + 128) - ((q + 128) >> 8)) >> 8."""
    q = quantum + 128
    return (q - (q >> 8)) >> 8


@njit(**_OPTIONS)
def difference(background, background_scale, frame, frame_scale, out):
    """``-compose difference -composite`` of opaque images: ``out = |frame - background|`` per channel (RGB)."""
    rows, columns = out.shape[0], out.shape[1]
    last_b = background.shape[2] - 1
    last_f = frame.shape[2] - 1
    for y in range(rows):
        for x in range(columns):
            for c in range(3):
                b = np.int64(background[y, x, min(c, last_b)]) * background_scale
                f = np.int64(frame[y, x, min(c, last_f)]) * frame_scale
                out[y, x, c] = b - f if b >= f else f - b


@njit(inline="always", **_OPTIONS)
def grown(top, bottom, left, right, y, x):
    """The bounding box ``(top, bottom, left, right)`` grown to hold pixel ``(y, x)``, visited row by row
    (so ``y`` is never above ``top`` once set). Inlined into the kernels using it."""
    if x < left:
        left = x
    if x > right:
        right = x
    if y < top:
        top = y
    return top, y, left, right


@njit(inline="always", **_OPTIONS)
def difference_intensity_at(background, background_scale, frame, frame_scale, y, x, last_b, last_f):
    """The intensity of ``|frame - background|`` at one pixel, in Quantum, as a double: the difference per
    channel (Quantum values, the last channel repeated for gray images), then ``0.212656*R + 0.715158*G +
    0.072186*B`` summed in that order, as ImageMagick's intensity does. Inlined into the kernels using it."""
    d0 = 0.0
    d1 = 0.0
    d2 = 0.0
    for c in range(3):
        b = np.int64(background[y, x, min(c, last_b)]) * background_scale
        f = np.int64(frame[y, x, min(c, last_f)]) * frame_scale
        d = float(b - f if b >= f else f - b)
        if c == 0:
            d0 = d
        elif c == 1:
            d1 = d
        else:
            d2 = d
    return RED_WEIGHT * d0 + GREEN_WEIGHT * d1 + BLUE_WEIGHT * d2


@njit(**_OPTIONS)
def difference_threshold(background, background_scale, frame, frame_scale, threshold, out):
    """The difference composite followed by ``-threshold``, fused: one gray Quantum per pixel.

    ``intensity = 0.212656*R + 0.715158*G + 0.072186*B`` (double, in that order) of the difference;
    ``intensity <= threshold`` -> 0, else 65535 (BilevelImage with the default channels).

    Returns ``(top, bottom, left, right)``: the bounding box (inclusive) of the pixels set to 65535;
    ``top > bottom`` when there is none.
    """
    rows, columns = out.shape[0], out.shape[1]
    top, bottom, left, right = rows, -1, columns, -1
    last_b = background.shape[2] - 1
    last_f = frame.shape[2] - 1
    for y in range(rows):
        for x in range(columns):
            intensity = difference_intensity_at(background, background_scale, frame, frame_scale, y, x, last_b, last_f)
            if intensity <= threshold:
                out[y, x] = 0
            else:
                out[y, x] = 65535
                top, bottom, left, right = grown(top, bottom, left, right, y, x)
    return top, bottom, left, right


@njit(**_OPTIONS)
def threshold_rgb(image, threshold, out):
    """``-threshold`` of an RGB Quantum image (rows, columns, 3) into a gray one (rows, columns)."""
    rows, columns = out.shape[0], out.shape[1]
    for y in range(rows):
        for x in range(columns):
            intensity = RED_WEIGHT * float(image[y, x, 0]) + GREEN_WEIGHT * float(image[y, x, 1]) + BLUE_WEIGHT * float(image[y, x, 2])
            out[y, x] = 0 if intensity <= threshold else 65535


@njit(**_OPTIONS)
def threshold_gray(image, threshold, out):
    """``-threshold`` of an image with R = G = B (held as one channel): the luma of (v, v, v), not v itself."""
    rows, columns = out.shape[0], out.shape[1]
    for y in range(rows):
        for x in range(columns):
            v = float(image[y, x])
            intensity = RED_WEIGHT * v + GREEN_WEIGHT * v + BLUE_WEIGHT * v
            out[y, x] = 0 if intensity <= threshold else 65535


BLOCK = 64  # columns per block: the blurs fill blocks whose window holds one value without summing


@njit(**_OPTIONS)
def _uniform_windows(row, half, uniform, value):
    """``uniform[b]`` = whether all the samples a blur of reach ``half`` reads for block ``b``'s columns
    (columns ``b*BLOCK - half`` up to ``(b+1)*BLOCK - 1 + half``) are equal, and ``value[b]`` their value.

    The window is cut at the row's ends: the pixels the blur repeats beyond an edge are the edge pixel,
    already inside, so they add no new value.
    """
    columns = row.shape[0]
    for b in range(uniform.shape[0]):
        window = row[max(0, b * BLOCK - half) : min(columns, (b + 1) * BLOCK + half)]
        lo = window[0]
        hi = window[0]
        for j in range(window.shape[0]):  # no early exit: min and max vectorise
            lo = min(lo, window[j])
            hi = max(hi, window[j])
        uniform[b] = lo == hi
        value[b] = lo


@njit(**_OPTIONS)
def _alike(uniform, value, a, b):
    """Whether blocks ``a`` and ``b`` are both mixed, or both uniform with the same value (one span)."""
    if uniform[a]:
        return uniform[b] and value[b] == value[a]
    return not uniform[b]


@njit(**_OPTIONS)
def _uniform_result(kernel, value, known):
    """The blur of a pixel whose whole window holds ``value``: the dense sum, the same products added
    in the same order from 0.0, then rounded. Cached in ``known`` (-1 = not yet computed)."""
    if known[value] < 0:
        n = kernel.shape[0]
        sample = float(value)
        total = 0.0
        for u in range(n):
            total += kernel[n - 1 - u] * sample
        known[value] = clamp_to_quantum(total)
    return known[value]


@njit(**_OPTIONS)
def blur_rows(image, kernel, out):
    """One horizontal pass of ``-blur`` (ConvolveMorphology with a 1xN kernel), rounded to Quantum.

    ``out[y, x] = sum over u of kernel[n-1-u] * image[y, x - n//2 + u]`` summed from u = 0 up, from 0.0
    (the bias), with the border pixel repeated beyond the edges (the edge virtual-pixel method).
    Blocks of columns whose window holds one value v (0 outside the moving areas, 65535 inside solid
    foreground) are filled with the sum of one such pixel, computed once: every pixel of the block
    sums the same products in the same order, so the result is the same.
    """
    rows, columns = image.shape[0], image.shape[1]
    n = kernel.shape[0]
    half = n // 2
    blocks = (columns + BLOCK - 1) // BLOCK
    uniform = np.empty(blocks, dtype=np.bool_)  # whether each block's window in the row holds one value
    value = np.empty(blocks, dtype=image.dtype)  # and which
    known = np.full(65536, -1, dtype=np.int32)  # results of uniform windows, by value (any Quantum)
    padded = np.empty(columns + n - 1, dtype=np.float64)
    acc = np.empty(columns, dtype=np.float64)
    for y in range(rows):
        row = image[y]
        _uniform_windows(row, half, uniform, value)
        b = 0
        while b < blocks:  # spans of blocks alike: one value, or sums over one zero-based view
            end = b + 1
            while end < blocks and _alike(uniform, value, b, end):
                end += 1
            x0 = b * BLOCK
            x1 = min(columns, end * BLOCK)
            width = x1 - x0
            target = out[y, x0:x1]  # zero-based views: loops Numba can vectorise
            if uniform[b]:
                result = _uniform_result(kernel, value[b], known)
                for j in range(width):
                    target[j] = result
            else:
                for i in range(x0, x1 + n - 1):
                    padded[i] = float(row[min(max(i - half, 0), columns - 1)])
                sums = acc[x0:x1]
                for j in range(width):
                    sums[j] = 0.0
                for u in range(n):
                    k = kernel[n - 1 - u]
                    source = padded[x0 + u : x1 + u]
                    for j in range(width):
                        sums[j] += k * source[j]
                for j in range(width):
                    target[j] = clamp_to_quantum(sums[j])
            b = end


@njit(**_OPTIONS)
def blur_columns(image, kernel, out):
    """One vertical pass of ``-blur`` (the Nx1 kernel, ``blur:...+90``), rounded to Quantum.

    ``out[y, x] = sum over v of kernel[n-1-v] * image[y - n//2 + v, x]``, summed from v = 0 up. Blocks
    of columns whose window (the block's columns in rows y - n//2 up to y + n//2, edge rows repeated)
    holds one value are filled with the sum of one such pixel, as in :func:`blur_rows`.
    """
    rows, columns = image.shape[0], image.shape[1]
    n = kernel.shape[0]
    half = n // 2
    blocks = (columns + BLOCK - 1) // BLOCK
    # run[r, b]: how many rows up to row r hold one and the same value in block b's columns (0: row r
    # does not), so a window of rows is uniform when the run at its last row covers it.
    row_uniform = np.empty(blocks, dtype=np.bool_)
    row_value = np.empty((rows, blocks), dtype=image.dtype)
    run = np.empty((rows, blocks), dtype=np.int32)
    for y in range(rows):
        _uniform_windows(image[y], 0, row_uniform, row_value[y])
        for b in range(blocks):
            if not row_uniform[b]:
                run[y, b] = 0
            elif y > 0 and run[y - 1, b] > 0 and row_value[y - 1, b] == row_value[y, b]:
                run[y, b] = run[y - 1, b] + 1
            else:
                run[y, b] = 1
    uniform = np.empty(blocks, dtype=np.bool_)  # whether each block's window at row y holds one value
    known = np.full(65536, -1, dtype=np.int32)  # results of uniform windows, by value (any Quantum)
    acc = np.empty(columns, dtype=np.float64)
    for y in range(rows):
        top, bottom = max(y - half, 0), min(y + half, rows - 1)  # the window's rows, edge rows repeated
        value = row_value[bottom]
        for b in range(blocks):
            uniform[b] = run[bottom, b] > bottom - top
        b = 0
        while b < blocks:
            end = b + 1
            while end < blocks and _alike(uniform, value, b, end):
                end += 1
            x0 = b * BLOCK
            x1 = min(columns, end * BLOCK)
            width = x1 - x0
            target = out[y, x0:x1]
            if uniform[b]:
                result = _uniform_result(kernel, value[b], known)
                for j in range(width):
                    target[j] = result
            else:
                sums = acc[x0:x1]
                for j in range(width):
                    sums[j] = 0.0
                for v in range(n):
                    k = kernel[n - 1 - v]
                    source = image[min(max(y - half + v, 0), rows - 1), x0:x1]
                    for j in range(width):
                        sums[j] += k * float(source[j])
                for j in range(width):
                    target[j] = clamp_to_quantum(sums[j])
            b = end


@njit(**_OPTIONS)
def gray_luma_quantum(image, out):
    """The gray sample ImageMagick's TIFF coder stores for a pixel with R = G = B = v:
    ClampToQuantum(GetPixelLuma) with float constants (equal to v for every v, kept for fidelity)."""
    rows, columns = out.shape[0], out.shape[1]
    for y in range(rows):
        for x in range(columns):
            v = float(image[y, x])
            out[y, x] = clamp_to_quantum(RED_WEIGHT_F * v + GREEN_WEIGHT_F * v + BLUE_WEIGHT_F * v)


@njit(**_OPTIONS)
def quantum_to_char(image, out):
    """ScaleQuantumToChar of every sample (any shape, flattened views)."""
    flat_in = image.ravel()
    flat_out = out.ravel()
    for i in range(flat_in.shape[0]):
        flat_out[i] = scale_quantum_to_char(np.int64(flat_in[i]))


@njit(**_OPTIONS)
def read_back_8bit(mask, mask8, read_back):
    """The 8-bit mask file's samples (``mask8``) and the Quantum values ``convert`` reads back (``257 * m``)."""
    rows, columns = mask.shape[0], mask.shape[1]
    for y in range(rows):
        for x in range(columns):
            m = scale_quantum_to_char(np.int64(mask[y, x]))
            mask8[y, x] = m
            read_back[y, x] = m * 257


@njit(**_OPTIONS)
def multiply_flatten(frame, frame_scale, mask, out):
    """``convert FRAME MASK -compose multiply -flatten`` for an opaque frame, as 8-bit JPEG samples.

    The frame composed onto the white canvas is the frame itself (65535*((QS*f)*(QS*65535)) rounds to f
    for every f); the mask is then multiplied in: ClampToQuantum(65535.0*((QS*m)*(QS*f))), and the
    result scaled to 8 bits (ScaleQuantumToChar) as the JPEG coder does. Returns whether every pixel
    has R = G = B at Quantum depth (ImageMagick then writes a one-component JPEG).
    """
    rows, columns = out.shape[0], out.shape[1]
    channels = frame.shape[2]
    gray = True
    for y in range(rows):
        for x in range(columns):
            sca = QUANTUM_SCALE * float(mask[y, x])
            first = 0
            for c in range(channels):
                dca = QUANTUM_SCALE * float(np.int64(frame[y, x, c]) * frame_scale)
                q = clamp_to_quantum(QUANTUM_RANGE * (sca * dca))
                if c == 0:
                    first = q
                elif q != first:
                    gray = False
                out[y, x, c] = scale_quantum_to_char(q)
    return gray


@njit(**_OPTIONS)
def fold_lighten(canvas, frame, frame_scale):
    """``-compose lighten``: canvas = max(canvas, frame) per channel (Quantum)."""
    rows, columns = canvas.shape[0], canvas.shape[1]
    last = frame.shape[2] - 1
    for y in range(rows):
        for x in range(columns):
            for c in range(3):
                v = np.uint16(np.int64(frame[y, x, min(c, last)]) * frame_scale)
                if v > canvas[y, x, c]:
                    canvas[y, x, c] = v


@njit(**_OPTIONS)
def fold_darken(canvas, frame, frame_scale):
    """``-compose darken``: canvas = min(canvas, frame) per channel (Quantum)."""
    rows, columns = canvas.shape[0], canvas.shape[1]
    last = frame.shape[2] - 1
    for y in range(rows):
        for x in range(columns):
            for c in range(3):
                v = np.uint16(np.int64(frame[y, x, min(c, last)]) * frame_scale)
                if v < canvas[y, x, c]:
                    canvas[y, x, c] = v


@njit(**_OPTIONS)
def is_gray(image):
    """True when every pixel of an RGB image has R = G = B (ImageMagick's IsImageGray)."""
    rows, columns = image.shape[0], image.shape[1]
    for y in range(rows):
        for x in range(columns):
            if image[y, x, 0] != image[y, x, 1] or image[y, x, 1] != image[y, x, 2]:
                return False
    return True


@njit(**_OPTIONS)
def packbits_rows(data, out, ends):
    """PackBits-encode every row of ``data`` (rows, bytes) as libtiff's PackBitsEncode does, row by row.

    ``out`` must hold ``rows * (bytes + bytes // 32 + 8)`` bytes; ``ends[r]`` receives the end offset of
    row ``r``. Returns the total length.
    """
    base, literal, run, literal_run = 0, 1, 2, 3
    rows, length = data.shape[0], data.shape[1]
    op = 0
    for r in range(rows):
        state = base
        last_literal = 0
        i = 0
        while i < length:
            b = data[r, i]
            i += 1
            n = 1
            while i < length and data[r, i] == b:
                n += 1
                i += 1
            while True:  # libtiff's "again:"
                if state == base:
                    if n > 1:
                        state = run
                        if n > 128:
                            out[op] = 129  # (uint8) -127
                            out[op + 1] = b
                            op += 2
                            n -= 128
                            continue
                        out[op] = (256 - (n - 1)) & 0xFF
                        out[op + 1] = b
                        op += 2
                    else:
                        last_literal = op
                        out[op] = 0
                        out[op + 1] = b
                        op += 2
                        state = literal
                    break
                elif state == literal:
                    if n > 1:
                        state = literal_run
                        if n > 128:
                            out[op] = 129
                            out[op + 1] = b
                            op += 2
                            n -= 128
                            continue
                        out[op] = (256 - (n - 1)) & 0xFF
                        out[op + 1] = b
                        op += 2
                    else:
                        out[last_literal] += 1
                        if out[last_literal] == 127:
                            state = base
                        out[op] = b
                        op += 1
                    break
                elif state == run:
                    if n > 1:
                        if n > 128:
                            out[op] = 129
                            out[op + 1] = b
                            op += 2
                            n -= 128
                            continue
                        out[op] = (256 - (n - 1)) & 0xFF
                        out[op + 1] = b
                        op += 2
                    else:
                        last_literal = op
                        out[op] = 0
                        out[op + 1] = b
                        op += 2
                        state = literal
                    break
                else:  # literal followed by a run: maybe merge literal-run-literal into one literal
                    if n == 1 and out[op - 2] == 255 and out[last_literal] < 126:
                        out[last_literal] += 2
                        state = base if out[last_literal] == 127 else literal
                        out[op - 2] = out[op - 1]
                    else:
                        state = run
                    continue
        ends[r] = op
    return op


@njit(**_OPTIONS)
def multiply_tables(frame_scale):
    """:func:`multiply_flatten` for every pair of an 8-bit mask sample ``m`` (read back as ``257 * m``) and a
    frame sample ``f``: ``(quantum[m, f], char[m, f])``, the Quantum result and its JPEG sample."""
    quantum = np.empty((256, 256), dtype=np.uint16)
    char = np.empty((256, 256), dtype=np.uint8)
    for m in range(256):
        sca = QUANTUM_SCALE * float(m * 257)
        for f in range(256):
            dca = QUANTUM_SCALE * float(np.int64(f) * frame_scale)
            q = clamp_to_quantum(QUANTUM_RANGE * (sca * dca))
            quantum[m, f] = q
            char[m, f] = scale_quantum_to_char(q)
    return quantum, char


@njit(**_OPTIONS)
def multiply_flatten_8bit(frame, mask8, quantum, char, out):
    """:func:`multiply_flatten` of an 8-bit frame by an 8-bit mask file's samples, by table look-up
    (tables from :func:`multiply_tables`: the same arithmetic). Returns whether R = G = B everywhere."""
    rows, columns = out.shape[0], out.shape[1]
    channels = frame.shape[2]
    gray = True
    for y in range(rows):
        for x in range(columns):
            m = mask8[y, x]
            if m == 0:  # quantum[0, f] = char[0, f] = 0 for every f
                for c in range(channels):
                    out[y, x, c] = 0
                continue
            first = quantum[m, frame[y, x, 0]]
            for c in range(channels):
                f = frame[y, x, c]
                out[y, x, c] = char[m, f]
                if gray and c > 0 and quantum[m, f] != first:
                    gray = False
    return gray


@njit(**_OPTIONS)
def unpack_strips(data, offsets, counts, sizes, packbits, out):
    """Decode a TIFF's strips from the file's bytes ``data`` into ``out`` (flat uint8), one after the other.

    ``sizes[s]`` is the number of bytes strip ``s`` must decode to; ``packbits`` selects PackBits (as
    libtiff's PackBitsDecode: a count byte n < 128 copies n + 1 bytes, n > 128 repeats the next byte
    257 - n times, 128 does nothing), else the strips are copied. Returns False, leaving ``out``
    partly written, when a strip lies outside ``data`` or does not decode to exactly its size.
    """
    position = 0
    for s in range(offsets.shape[0]):
        i = offsets[s]
        end = i + counts[s]
        stop = position + sizes[s]
        if i < 0 or end > data.shape[0] or stop > out.shape[0]:
            return False
        if not packbits:
            if counts[s] < sizes[s]:
                return False
            out[position:stop] = data[i : i + sizes[s]]
            position = stop
            continue
        while i < end and position < stop:
            n = np.int64(data[i])
            i += 1
            if n < 128:
                n += 1
                if i + n > end or position + n > stop:
                    return False
                out[position : position + n] = data[i : i + n]
                i += n
                position += n
            elif n > 128:
                n = 257 - n
                if i >= end or position + n > stop:
                    return False
                value = data[i]
                i += 1
                for j in range(n):
                    out[position + j] = value
                position += n
        if position != stop:
            return False
    return position == out.shape[0]


@njit(**_OPTIONS)
def intensity_tables():
    """``(red[d], green[d], blue[d])``: each weight times ``float(257 * d)`` for every 8-bit difference ``d``,
    the products :func:`difference_threshold` forms for 8-bit images (``|257*b - 257*f| = 257*|b - f|``)."""
    red = np.empty(256, dtype=np.float64)
    green = np.empty(256, dtype=np.float64)
    blue = np.empty(256, dtype=np.float64)
    for d in range(256):
        v = float(d * 257)
        red[d] = RED_WEIGHT * v
        green[d] = GREEN_WEIGHT * v
        blue[d] = BLUE_WEIGHT * v
    return red, green, blue


@njit(**_OPTIONS)
def difference_threshold_8bit(background, frame, red, green, blue, threshold, out):
    """:func:`difference_threshold` of two 8-bit RGB images, the products looked up in
    :func:`intensity_tables` and summed in the same order: the same doubles, the same result and box."""
    rows, columns = out.shape[0], out.shape[1]
    top, bottom, left, right = rows, -1, columns, -1
    for y in range(rows):
        b = background[y]
        f = frame[y]
        o = out[y]
        for x in range(columns):
            d0 = abs(np.int32(b[x, 0]) - np.int32(f[x, 0]))
            d1 = abs(np.int32(b[x, 1]) - np.int32(f[x, 1]))
            d2 = abs(np.int32(b[x, 2]) - np.int32(f[x, 2]))
            intensity = red[d0] + green[d1] + blue[d2]
            if intensity <= threshold:
                o[x] = 0
            else:
                o[x] = 65535
                top, bottom, left, right = grown(top, bottom, left, right, y, x)
    return top, bottom, left, right


@njit(inline="always", **_OPTIONS)
def _kth_counted(counts, low, kth):
    """The ``kth`` smallest (0-based) of the values a 256-bin histogram ``counts`` holds, none below ``low``."""
    seen = 0
    v = np.int64(low)
    while True:
        seen += counts[v]
        if seen > kth:
            return v
        v += 1


@njit(**_OPTIONS)
def lower_median_8bit(stack, kth, out):
    """For every column ``p`` of ``stack`` (``n x m`` uint8: ``n`` frames' samples side by side), the
    ``kth`` smallest of ``stack[:, p]`` (0-based) into ``out[p]``, by counting: exact, as a sort would give.

    One 256-bin histogram is filled, walked from the column's smallest value and emptied again per column:
    about 3 n steps for a column of nearly equal values (a background), at most n + 256.
    """
    n, m = stack.shape
    counts = np.zeros(256, dtype=np.int64)
    for p in range(m):
        low = 255
        for i in range(n):
            v = stack[i, p]
            counts[v] += 1
            if v < low:
                low = v
        out[p] = _kth_counted(counts, low, kth)
        for i in range(n):
            counts[stack[i, p]] = 0


@njit(**_OPTIONS)
def difference_map_threshold(background, background_scale, frame, frame_scale, limit, out):
    """The difference composite followed by a per-pixel threshold, fused: one gray Quantum per pixel.

    ``convert BG FRAME -compose difference -composite -colorspace gray MAP -compose minus_src -composite
    -threshold 0``: the intensity of the difference (as :func:`difference_threshold` forms it) is stored as
    a gray Quantum, ``g = ClampToQuantum(intensity)``; the map's Quantum ``limit[y, x]`` is subtracted,
    clipped at 0, and what stays above 0 becomes 65535: ``g > limit`` -> 65535, else 0.

    Returns the bounding box of the pixels set, as :func:`difference_threshold`.
    """
    rows, columns = out.shape[0], out.shape[1]
    top, bottom, left, right = rows, -1, columns, -1
    last_b = background.shape[2] - 1
    last_f = frame.shape[2] - 1
    for y in range(rows):
        for x in range(columns):
            gray = clamp_to_quantum(difference_intensity_at(background, background_scale, frame, frame_scale, y, x, last_b, last_f))
            if gray <= np.int64(limit[y, x]):
                out[y, x] = 0
            else:
                out[y, x] = 65535
                top, bottom, left, right = grown(top, bottom, left, right, y, x)
    return top, bottom, left, right


@njit(**_OPTIONS)
def difference_map_threshold_8bit(background, frame, red, green, blue, limit, out):
    """:func:`difference_map_threshold` of two 8-bit RGB images, the products looked up in
    :func:`intensity_tables` and summed in the same order: the same doubles, the same result and box."""
    rows, columns = out.shape[0], out.shape[1]
    top, bottom, left, right = rows, -1, columns, -1
    for y in range(rows):
        b = background[y]
        f = frame[y]
        o = out[y]
        lim = limit[y]
        for x in range(columns):
            d0 = abs(np.int32(b[x, 0]) - np.int32(f[x, 0]))
            d1 = abs(np.int32(b[x, 1]) - np.int32(f[x, 1]))
            d2 = abs(np.int32(b[x, 2]) - np.int32(f[x, 2]))
            gray = clamp_to_quantum(red[d0] + green[d1] + blue[d2])
            if gray <= np.int64(lim[x]):
                o[x] = 0
            else:
                o[x] = 65535
                top, bottom, left, right = grown(top, bottom, left, right, y, x)
    return top, bottom, left, right


@njit(**_OPTIONS)
def difference_intensity(background, background_scale, frame, frame_scale, to_char, out):
    """The difference's intensity as ``-colorspace gray`` stores it, per pixel, into ``out`` (rows, columns).

    ``ClampToQuantum(0.212656*|R| + 0.715158*|G| + 0.072186*|B|)`` of ``frame - background`` on Quantum
    values (gray images stand for R = G = B; a fourth channel, alpha, is ignored), scaled to 8 bits
    (ScaleQuantumToChar) when ``to_char``.
    """
    rows, columns = out.shape[0], out.shape[1]
    channels_b = background.shape[2]
    channels_f = frame.shape[2]
    last_b = 0 if channels_b < 3 else 2
    last_f = 0 if channels_f < 3 else 2
    for y in range(rows):
        for x in range(columns):
            gray = clamp_to_quantum(difference_intensity_at(background, background_scale, frame, frame_scale, y, x, last_b, last_f))
            out[y, x] = scale_quantum_to_char(gray) if to_char else gray


FIXED_SHIFT = 40
"""The binary point of :func:`intensity_fixed_tables`."""


def intensity_fixed_tables():
    """``(red, green, blue, offset)``: :func:`intensity_tables` in fixed point, for 8-bit intensities.

    ``min(255, (red[d0] + green[d1] + blue[d2] + offset) >> FIXED_SHIFT)`` is
    ``ScaleQuantumToChar(ClampToQuantum(red[d0] + green[d1] + blue[d2]))`` of the float tables, for every
    ``(d0, d1, d2)`` (checked for all 16.7 million by the tests): ScaleQuantumToChar(q) is
    ``floor((q + 128) / 257)`` and ClampToQuantum(S) is ``trunc(S + 0.5)``, so the 8-bit value is
    ``floor((S + 128.5) / 257)``, here with each product divided by 257 and scaled by ``2**FIXED_SHIFT``.
    """
    red, green, blue = intensity_tables()
    scale = 2.0**FIXED_SHIFT / 257
    fixed = [np.round(table * scale).astype(np.int64) for table in (red, green, blue)]
    return fixed[0], fixed[1], fixed[2], int(round(128.5 * scale))


@njit(**_OPTIONS)
def difference_spread_8bit(background, stack, red, green, blue, offset, kth, out, total):
    """Per pixel ``p``, the ``kth`` smallest (0-based) over ``n`` frames of :func:`difference_intensity`
    (scaled to 8 bits) of ``stack[:, p]`` against ``background[p]`` into ``out[p]``, and every intensity counted into ``total``
    (256 bins): ``background`` ``(m, 3)``, ``stack`` ``(n, m, 3)`` (8-bit RGB), ``out`` ``(m,)``; the
    products from :func:`intensity_fixed_tables` (``red, green, blue, offset``).

    The intensities are counted as they are made (:func:`lower_median_8bit`'s histogram walk), never stored
    beyond one pixel's ``n``; the histogram is emptied into ``total`` over its occupied range, or value by
    value when that range is wider than ``n``.
    """
    n, m = stack.shape[0], stack.shape[1]
    counts = np.zeros(256, dtype=np.int64)
    seen_values = np.empty(n, dtype=np.uint8)
    for p in range(m):
        b0, b1, b2 = np.int32(background[p, 0]), np.int32(background[p, 1]), np.int32(background[p, 2])
        low, high = 255, 0
        for i in range(n):
            d0 = abs(b0 - np.int32(stack[i, p, 0]))
            d1 = abs(b1 - np.int32(stack[i, p, 1]))
            d2 = abs(b2 - np.int32(stack[i, p, 2]))
            v = min((red[d0] + green[d1] + blue[d2] + offset) >> FIXED_SHIFT, 255)
            seen_values[i] = v
            counts[v] += 1
            low = min(low, v)
            high = max(high, v)
        out[p] = _kth_counted(counts, low, kth)
        if high - low < n:
            for v in range(low, high + 1):
                total[v] += counts[v]
                counts[v] = 0
        else:
            for i in range(n):
                v = seen_values[i]
                total[v] += counts[v]
                counts[v] = 0
