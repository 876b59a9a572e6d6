"""A baseline JPEG encoder in Numba that writes the bytes libjpeg-turbo writes for ``convert``'s clean images.

ImageMagick writes ``NAME-clean.jpg`` through libjpeg(-turbo) at quality 92, 4:4:4, with optimised Huffman
tables; Pillow drives the same library with the same settings, but holds Python's GIL while it encodes, so
the frames rendered in threads wait for each other there. This encoder does, step by step, what libjpeg-turbo
does for those settings, in integer arithmetic that has one result (the format leaves no choice to the
encoder once these are fixed):

- RGB to YCbCr with jccolor.c's 16-bit fixed-point tables (gray images are coded as they are);
- edges padded by repeating the last column and row to whole 8x8 blocks (jcsample.c, jcprepct.c);
- the accurate integer DCT (jfdctint.c, ``JDCT_ISLOW``) on samples less 128;
- quantisation by jcdctmgr.c's reciprocals of the quality-92 tables (jcparam.c's tables, scaled);
- Huffman tables built from the image's own statistics (jchuff.c's ``jpeg_gen_optimal_table``), one
  interleaved baseline scan, bytes 0xFF stuffed, the last byte padded with 1-bits;
- the markers in libjpeg's order: SOI, JFIF APP0, COM, DQT, SOF0, DHT, SOS, data, EOI.

A block whose samples are all alike (the black of a clean image outside the mask) has one DCT coefficient,
64 times its level, known without a transform: such blocks skip the DCT. The kernels release the GIL.
:func:`magicmask.engines.native.jpeg_bytes` uses this encoder when most blocks are alike, and Pillow
(libjpeg-turbo's SIMD code, faster on busy images) otherwise; tests compare the two byte for byte.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

_OPTIONS = dict(nogil=True, cache=True)
MAX_COMMENT = 65533  # the most bytes a COM marker holds
MAX_SIDE = 65500  # libjpeg's JPEG_MAX_DIMENSION: it refuses larger images

# jpeg_natural_order: the zigzag sequence of coefficients, as natural (row-major) indices
ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
], dtype=np.int64)

# jcparam.c: the tables of the JPEG standard's Annex K, natural order
LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)
CHROMINANCE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
], dtype=np.int64)


def quant_table(basic: np.ndarray, quality: int) -> np.ndarray:
    """jcparam.c's jpeg_set_quality with force_baseline: the table scaled for ``quality`` (1..100)."""
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - quality * 2
    return np.clip((basic * scale + 50) // 100, 1, 255)


def reciprocals(table: np.ndarray) -> np.ndarray:
    """jcdctmgr.c's compute_reciprocal for the islow DCT's divisors (``8 * q``): ``(3, 64)`` rows of
    reciprocal, correction and shift, so that ``((|t| + correction) * reciprocal) >> shift`` quantises."""
    out = np.empty((3, 64), dtype=np.int64)
    for i, q in enumerate(table):
        divisor = int(q) << 3
        b = divisor.bit_length() - 1
        r = 16 + b
        fq, fr = divmod(1 << r, divisor)
        c = divisor // 2
        if fr == 0:  # a power of two: one bit too many for 16 bits
            fq >>= 1
            r -= 1
        elif fr <= divisor // 2:
            c += 1
        else:
            fq += 1
        out[:, i] = fq, c, r
    return out


def _ycc_table() -> np.ndarray:
    """jccolor.c's rgb_ycc_tab: 8 rows of 256 fixed-point products (SCALEBITS 16)."""
    fix = lambda x: int(x * 65536 + 0.5)  # noqa: E731
    i = np.arange(256, dtype=np.int64)
    half, offset = 1 << 15, 128 << 16
    return np.stack([
        fix(0.29900) * i, fix(0.58700) * i, fix(0.11400) * i + half,  # Y
        -fix(0.16874) * i, -fix(0.33126) * i, fix(0.5) * i + offset + half - 1,  # Cb (the last also R of Cr)
        -fix(0.41869) * i, -fix(0.08131) * i,  # Cr
    ])


YCC = _ycc_table()


@njit(**_OPTIONS)
def _descale(x, n):
    return (x + (1 << (n - 1))) >> n


@njit(inline="always", **_OPTIONS)
def _fdct_pass(block, start, stride, columns):
    """One pass of jfdctint.c's jpeg_fdct_islow on the 8 samples ``block[start + k * stride]``: rows first
    (results scaled up by 4, PASS1_BITS), then ``columns`` (that scaling removed, 8 left)."""
    tmp0 = block[start] + block[start + 7 * stride]
    tmp7 = block[start] - block[start + 7 * stride]
    tmp1 = block[start + stride] + block[start + 6 * stride]
    tmp6 = block[start + stride] - block[start + 6 * stride]
    tmp2 = block[start + 2 * stride] + block[start + 5 * stride]
    tmp5 = block[start + 2 * stride] - block[start + 5 * stride]
    tmp3 = block[start + 3 * stride] + block[start + 4 * stride]
    tmp4 = block[start + 3 * stride] - block[start + 4 * stride]
    tmp10 = tmp0 + tmp3
    tmp13 = tmp0 - tmp3
    tmp11 = tmp1 + tmp2
    tmp12 = tmp1 - tmp2
    if columns:
        block[start] = _descale(tmp10 + tmp11, 2)
        block[start + 4 * stride] = _descale(tmp10 - tmp11, 2)
        bits = 15  # CONST_BITS + PASS1_BITS
    else:
        block[start] = (tmp10 + tmp11) << 2
        block[start + 4 * stride] = (tmp10 - tmp11) << 2
        bits = 11  # CONST_BITS - PASS1_BITS
    z1 = (tmp12 + tmp13) * 4433  # FIX_0_541196100
    block[start + 2 * stride] = _descale(z1 + tmp13 * 6270, bits)
    block[start + 6 * stride] = _descale(z1 - tmp12 * 15137, bits)
    z1 = tmp4 + tmp7
    z2 = tmp5 + tmp6
    z3 = tmp4 + tmp6
    z4 = tmp5 + tmp7
    z5 = (z3 + z4) * 9633
    tmp4 = tmp4 * 2446
    tmp5 = tmp5 * 16819
    tmp6 = tmp6 * 25172
    tmp7 = tmp7 * 12299
    z1 = -z1 * 7373
    z2 = -z2 * 20995
    z3 = -z3 * 16069 + z5
    z4 = -z4 * 3196 + z5
    block[start + 7 * stride] = _descale(tmp4 + z1 + z3, bits)
    block[start + 5 * stride] = _descale(tmp5 + z2 + z4, bits)
    block[start + 3 * stride] = _descale(tmp6 + z2 + z3, bits)
    block[start + stride] = _descale(tmp7 + z1 + z4, bits)


@njit(**_OPTIONS)
def _fdct_islow(block):
    """jfdctint.c's jpeg_fdct_islow in place on 64 level-shifted samples (int64), results scaled by 8."""
    for row in range(8):
        _fdct_pass(block, row * 8, 1, False)
    for column in range(8):
        _fdct_pass(block, column, 8, True)


@njit(**_OPTIONS)
def _quantise(value, recip, table, i):
    """jcdctmgr.c's quantize of one coefficient by reciprocal multiplication."""
    if value < 0:
        return -(((-value + recip[table, 1, i]) * recip[table, 0, i]) >> recip[table, 2, i])
    return ((value + recip[table, 1, i]) * recip[table, 0, i]) >> recip[table, 2, i]


@njit(**_OPTIONS)
def _bits(value):
    """The number of bits of |value| (JPEG's magnitude category)."""
    if value < 0:
        value = -value
    n = 0
    while value:
        n += 1
        value >>= 1
    return n


@njit(**_OPTIONS)
def alike_blocks(samples, alike):
    """Mark in ``alike`` (rows // 8, columns // 8) the whole 8x8 blocks of ``samples`` (rows, columns, channels)
    whose pixels are all alike, and return how many there are.

    Each band of 8 rows is compared with its first row, sample by sample along the whole band (loops that
    vectorise), then each block's part of that first row with its own first pixel.
    """
    rows, columns, channels = samples.shape
    lines = samples.reshape(rows, columns * channels)
    width = columns * channels
    differ = np.empty(width, dtype=np.uint8)  # per sample of the band: the bits where a row differs from the first
    count = 0
    for by in range(alike.shape[0]):
        first = lines[by * 8]
        for j in range(width):
            differ[j] = 0
        for v in range(1, 8):
            line = lines[by * 8 + v]
            for j in range(width):  # no early exit: the ORs vectorise
                differ[j] |= line[j] ^ first[j]
        for bx in range(alike.shape[1]):
            start = bx * 8 * channels
            bits = 0
            for j in range(start, start + 8 * channels):
                bits |= differ[j]
            for j in range(start + channels, start + 8 * channels):  # the first row's pixels alike
                bits |= first[j] ^ first[j - channels]
            flat = 1 if bits == 0 else 0
            alike[by, bx] = flat
            count += flat
    return count


@njit(**_OPTIONS)
def coefficients(samples, alike, ycc, recip, zigzag, coefs, last, counts):
    """Quantised coefficients of every block, in zigzag order, and the symbol counts of every Huffman table.

    ``samples`` (rows, columns, 1 or 3) uint8; ``alike``: :func:`alike_blocks`'s marks; ``coefs`` (block rows,
    block columns, components, 64) int16,
    written up to ``last`` (block rows, block columns, components), the zigzag index of each block's last
    non-zero coefficient (0 when there is none past the DC); ``counts`` (4, 257): DC luma, AC luma, DC
    chroma, AC chroma. A block whose samples are all alike needs no DCT.
    """
    rows, columns, channels = samples.shape
    block_rows, block_columns, components = coefs.shape[0], coefs.shape[1], coefs.shape[2]
    block = np.empty((components, 64), dtype=np.int64)
    last_dc = np.zeros(components, dtype=np.int64)
    for by in range(block_rows):
        for bx in range(block_columns):
            y0, x0 = by * 8, bx * 8
            flat_block = y0 + 8 <= rows and x0 + 8 <= columns and alike[by, bx]
            for v in range(1 if flat_block else 8):
                y = min(y0 + v, rows - 1)
                for u in range(1 if flat_block else 8):
                    x = min(x0 + u, columns - 1)
                    if channels == 1:
                        block[0, v * 8 + u] = np.int64(samples[y, x, 0]) - 128
                    else:
                        r = samples[y, x, 0]
                        g = samples[y, x, 1]
                        b = samples[y, x, 2]
                        block[0, v * 8 + u] = ((ycc[0, r] + ycc[1, g] + ycc[2, b]) >> 16) - 128
                        block[1, v * 8 + u] = ((ycc[3, r] + ycc[4, g] + ycc[5, b]) >> 16) - 128
                        block[2, v * 8 + u] = ((ycc[5, r] + ycc[6, g] + ycc[7, b]) >> 16) - 128
            for c in range(components):
                table = 0 if c == 0 else 1
                out = coefs[by, bx, c]
                work = block[c]
                same = flat_block
                if not same:
                    same = True
                    for i in range(1, 64):
                        if work[i] != work[0]:
                            same = False
                            break
                if same:  # a flat block: the DCT gives 64 times its level, and nothing else
                    out[0] = _quantise(64 * work[0], recip, table, 0)
                    last[by, bx, c] = 0
                else:
                    _fdct_islow(work)
                    end = 0
                    for k in range(64):
                        i = zigzag[k]
                        out[k] = _quantise(work[i], recip, table, i)
                        if out[k] != 0:
                            end = k
                    last[by, bx, c] = end
                dc = counts[2 * table]
                ac = counts[2 * table + 1]
                dc[_bits(np.int64(out[0]) - last_dc[c])] += 1
                last_dc[c] = out[0]
                run = 0
                for k in range(1, last[by, bx, c] + 1):
                    value = np.int64(out[k])
                    if value == 0:
                        run += 1
                    else:
                        while run > 15:
                            ac[0xF0] += 1
                            run -= 16
                        ac[(run << 4) + _bits(value)] += 1
                        run = 0
                if last[by, bx, c] < 63:
                    ac[0] += 1


@njit(**_OPTIONS)
def optimal_table(counts, bits, values):
    """jchuff.c's jpeg_gen_optimal_table: code lengths from symbol counts, limited to 16 bits.

    ``counts`` (257,) is left as it is; ``bits`` (17,) gets the number of codes of each length, ``values`` the
    symbols by code length then value. Returns the number of symbols.
    """
    freq = counts.copy()
    codesize = np.zeros(257, dtype=np.int64)
    others = np.full(257, -1, dtype=np.int64)
    freq[256] = 1  # a reserved code point, so that no real code is all ones
    while True:
        c1 = -1
        v = 1000000000
        for i in range(257):  # the smallest non-zero count; ties: the larger symbol
            if freq[i] and freq[i] <= v:
                v = freq[i]
                c1 = i
        c2 = -1
        v = 1000000000
        for i in range(257):
            if freq[i] and freq[i] <= v and i != c1:
                v = freq[i]
                c2 = i
        if c2 < 0:
            break
        freq[c1] += freq[c2]
        freq[c2] = 0
        codesize[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            codesize[c1] += 1
        others[c1] = c2
        codesize[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            codesize[c2] += 1
    lengths = np.zeros(33, dtype=np.int64)
    for i in range(257):
        if codesize[i] > 32:  # libjpeg stops here too ("Huffman code size table overflow")
            raise ValueError("a Huffman code longer than 32 bits")
        if codesize[i]:
            lengths[codesize[i]] += 1
    for i in range(32, 16, -1):
        while lengths[i] > 0:
            j = i - 2
            while lengths[j] == 0:
                j -= 1
            lengths[i] -= 2
            lengths[i - 1] += 1
            lengths[j + 1] += 2
            lengths[j] -= 1
    i = 16
    while lengths[i] == 0:
        i -= 1
    lengths[i] -= 1  # the reserved code point goes
    for i in range(17):
        bits[i] = lengths[i]
    p = 0
    for i in range(1, 33):
        for j in range(256):
            if codesize[j] == i:
                values[p] = j
                p += 1
    return p


@njit(**_OPTIONS)
def codes(bits, values, code_of, size_of):
    """jchuff.c's jpeg_make_c_derived_tbl: canonical codes of ``values`` and their lengths, from the number
    of codes of each length (a table's row of ``bits``, ``values``, ``code_of`` and ``size_of``)."""
    code = 0
    p = 0
    for length in range(1, 17):
        for _ in range(bits[length]):
            code_of[values[p]] = code
            size_of[values[p]] = length
            code += 1
            p += 1
        code <<= 1


@njit(inline="always", **_OPTIONS)
def _put(out, n, buffer, pending, bits, count):
    """Append the low ``count`` bits of ``bits`` to the bit buffer (``pending`` bits of ``buffer``) and move its
    whole bytes to ``out`` from ``n`` on, each 0xFF followed by 0x00. Returns the buffer, its bits and ``n``."""
    buffer = (buffer << count) | bits
    pending += count
    while pending >= 8:
        pending -= 8
        byte = (buffer >> pending) & 0xFF
        out[n] = byte
        n += 1
        if byte == 0xFF:
            out[n] = 0
            n += 1
    return buffer & ((1 << pending) - 1), pending, n


@njit(**_OPTIONS)
def entropy_code(coefs, last, code_of, size_of, out):
    """The scan's bytes into ``out``: every block's DC difference and AC runs with the tables' codes and
    their lengths (``code_of``, ``size_of``: (4, 256), from :func:`codes`), 0xFF stuffed, padded with
    1-bits. Returns the number of bytes written."""
    block_rows, block_columns, components = coefs.shape[0], coefs.shape[1], coefs.shape[2]
    last_dc = np.zeros(components, dtype=np.int64)
    buffer = np.int64(0)  # pending bits, the oldest first, in the low ``pending`` bits
    pending = 0
    n = 0
    for by in range(block_rows):
        for bx in range(block_columns):
            for c in range(components):
                table = 0 if c == 0 else 2
                block = coefs[by, bx, c]
                end = last[by, bx, c]
                for k in range(end + 1):
                    value = np.int64(block[k])
                    if k == 0:
                        diff = value - last_dc[c]
                        last_dc[c] = value
                        size = _bits(diff)
                        symbol_table = table
                        symbol = size
                        run = 0
                        value = diff
                    elif value == 0:
                        run += 1
                        continue
                    else:
                        while run > 15:  # 16 zeros: ZRL
                            buffer, pending, n = _put(out, n, buffer, pending, code_of[table + 1, 0xF0], size_of[table + 1, 0xF0])
                            run -= 16
                        size = _bits(value)
                        symbol_table = table + 1
                        symbol = (run << 4) + size
                        run = 0
                    buffer, pending, n = _put(out, n, buffer, pending, code_of[symbol_table, symbol], size_of[symbol_table, symbol])
                    if size:
                        if value < 0:
                            value -= 1  # the one's complement of |value|, in its low bits
                        buffer, pending, n = _put(out, n, buffer, pending, value & ((1 << size) - 1), size)
                if end < 63:  # end of block
                    buffer, pending, n = _put(out, n, buffer, pending, code_of[table + 1, 0], size_of[table + 1, 0])
    if pending:  # the last byte filled with 1-bits
        buffer, pending, n = _put(out, n, buffer, pending, (1 << (8 - pending)) - 1, 8 - pending)
    return n


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


class Encoder:
    """Quality-``quality`` 4:4:4 JPEGs with optimised Huffman tables, as libjpeg-turbo writes them."""

    def __init__(self, quality: int):
        self.tables = [quant_table(LUMINANCE, quality), quant_table(CHROMINANCE, quality)]
        self.recip = np.stack([reciprocals(table) for table in self.tables])

    def encode(self, samples: np.ndarray, density: tuple[int, int, int] = (0, 1, 1), comment: bytes = b"", alike: np.ndarray | None = None) -> bytes:
        """JPEG bytes of 8-bit ``samples`` (rows, columns, 1 or 3): JFIF with ``density`` (unit, x, y) and
        ``comment`` (a COM marker when not empty). ``alike``: :func:`alike_blocks`'s marks, if made."""
        rows, columns, channels = samples.shape
        if not (0 < rows <= MAX_SIDE and 0 < columns <= MAX_SIDE and channels in (1, 3) and samples.dtype == np.uint8):
            raise ValueError(f"cannot encode {samples.dtype} samples of shape {samples.shape} as baseline JPEG")
        samples = np.ascontiguousarray(samples)
        if alike is None:
            alike = np.empty((rows // 8, columns // 8), dtype=np.uint8)
            alike_blocks(samples, alike)
        components = 1 if channels == 1 else 3
        coefs = np.empty((-(-rows // 8), -(-columns // 8), components, 64), dtype=np.int16)
        last = np.empty(coefs.shape[:3], dtype=np.int8)
        counts = np.zeros((4, 257), dtype=np.int64)
        coefficients(samples, alike, YCC, self.recip, ZIGZAG, coefs, last, counts)
        used = 2 if components == 1 else 4
        bits = np.zeros((4, 17), dtype=np.int64)
        values = np.zeros((4, 256), dtype=np.int64)
        sizes = np.zeros(4, dtype=np.int64)
        code_of = np.zeros((4, 256), dtype=np.int64)
        size_of = np.zeros((4, 256), dtype=np.int64)
        for t in range(used):
            sizes[t] = optimal_table(counts[t], bits[t], values[t])
            codes(bits[t], values[t], code_of[t], size_of[t])
        extra = np.where(np.arange(4)[:, None] % 2, np.arange(256) & 15, np.arange(256))  # AC: size in the low 4 bits
        total = int((counts[:, :256] * (size_of + extra)).sum())  # the scan's bits: every symbol's code and extra bits
        scan = np.empty(2 * (total // 8) + 16, dtype=np.uint8)  # stuffing at most doubles it
        length = entropy_code(coefs, last, code_of, size_of, scan)
        unit, x_density, y_density = density
        parts = [b"\xff\xd8", _segment(0xE0, b"JFIF\0" + struct.pack(">BBBHHBB", 1, 1, unit, x_density, y_density, 0, 0))]
        if comment:
            parts.append(_segment(0xFE, comment))
        for t in range(1 if components == 1 else 2):
            parts.append(_segment(0xDB, bytes([t]) + bytes(self.tables[t][ZIGZAG].astype(np.uint8))))
        ids = range(1, components + 1)
        frame = struct.pack(">BHHB", 8, rows, columns, components) + b"".join(bytes([i, 0x11, 0 if i == 1 else 1]) for i in ids)
        parts.append(_segment(0xC0, frame))
        for t in range(used):  # DC then AC of the luma table, then of the chroma table
            parts.append(_segment(0xC4, bytes([(t % 2) << 4 | t // 2]) + bytes(bits[t, 1:].astype(np.uint8)) + bytes(values[t, : sizes[t]].astype(np.uint8))))
        scan_header = bytes([components]) + b"".join(bytes([i, 0x00 if i == 1 else 0x11]) for i in ids) + b"\x00\x3f\x00"
        parts.append(_segment(0xDA, scan_header))
        parts.append(scan[:length].tobytes())
        parts.append(b"\xff\xd9")
        return b"".join(parts)
