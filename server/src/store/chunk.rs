//! The compressed chunk: how a run of one series' raw points is stored in the history file.
//! Pure functions over bytes, no I/O; `chunks` stores them.
//!
//! Timestamps are one interval when they are regular, else delta-of-deltas as in Facebook's
//! Gorilla. Values are stored as
//! integers when they are decimals, which is what agents send (two decimals at most for rates
//! and percentages, whole bytes for sizes): the integer differences between neighbours are
//! small, and so is their code. Values that are not short decimals (NaN, infinities, floats
//! with many digits) fall back to Gorilla's XOR coding, and a chunk of one repeated value
//! stores the value once. Every chunk is lossless: a value decodes to the same bits it was
//! encoded from, which the encoder checks before choosing the decimal coding.
//!
//! # Format (version 1)
//!
//! ```text
//! u8      version (1)
//! varint  n, the number of points (1 ..= MAX_POINTS)
//! varint  zigzag(t0), the first point's time (Unix seconds)
//! varint  the interval between all the points' times, or 0 when they are not regular
//! u8      value coding: 0 constant, 1 decimal, 2 xor
//!   0     f64 bits (u64 LE): every point's value
//!   1     u8 scale e (value = integer / 10^e), varint zigzag(i0) (the first integer),
//!         varint step g (every integer is i0 + a multiple of g), u8 order << 6 | rice k
//!         and for order 3, varint zigzag(center)
//!   2     f64 bits (u64 LE): the first value
//! bits    (most significant bit first, zero-padded to a byte) n − 1 time codes when the
//!         times are not regular, then for codings 1 and 2, n − 1 value codes
//! ```
//!
//! **Times**: an agent's samples come at a fixed interval, so most chunks store it once and
//! their times cost nothing per point. Otherwise (a restart, a gap, a replayed spool merged
//! in) each time is a delta-of-delta code, `dod = (tᵢ − tᵢ₋₁) − (tᵢ₋₁ − tᵢ₋₂)`, the delta
//! before the first being 0: `0` for 0, `10` + 7 bits, `110` + 9 bits, `1110` + 12 bits
//! (two's complement), `1111` + 64 bits — Gorilla's buckets, one bit per regular time.
//!
//! **Decimal value codes**: with `wᵢ = (iᵢ − i0) / g`, the residual is `wᵢ` (order 0, mostly
//! the first value: an idle rate at 0 with bursts), `wᵢ − wᵢ₋₁` (order 1, a wandering gauge),
//! the delta-of-delta (order 2, a steady climb such as an uptime) or `wᵢ − center` (order 3,
//! noise around a level, the center being the mean of the chunk), whichever is cheapest for
//! the chunk. Residuals are zigzag mapped to unsigned and Rice coded with parameter k (the
//! cheapest of 0 and the few around log2 of the mean): `q = u >> k` as q one-bits and a zero,
//! then the k low bits; a `q` of [`RICE_ESCAPE`] or more is written as that many one-bits and
//! the 64 bits of `u`. The step g takes out a common factor, such as the 1024 of sizes read in
//! KiB. The scale e is the smallest for which every value of the chunk decodes to its own
//! bits; the agent rounds rates and percentages to two decimals, so e is 0 or 2 in practice.
//!
//! **XOR value codes** (Gorilla): `x = bits(vᵢ) ^ bits(vᵢ₋₁)`; `0` when x is 0; `10` + the
//! meaningful bits when they fit the previous window of leading and trailing zeros; else `11`,
//! 6 bits of leading zeros, 6 bits of (meaningful length − 1), the meaningful bits.

use std::fmt;

/// The most points a chunk holds; see [`CHUNK_POINTS`](super::chunks::CHUNK_POINTS) for the
/// size the store aims at. The decoder refuses more, so a damaged header cannot make it
/// allocate without bound.
pub const MAX_POINTS: usize = 4096;
/// A Rice quotient this large is written as an escape and 64 raw bits instead.
pub const RICE_ESCAPE: u64 = 20;
/// The finest decimal scale tried: values with more decimals use the XOR coding.
const MAX_SCALE: usize = 12;
const VERSION: u8 = 1;
const CONSTANT: u8 = 0;
const DECIMAL: u8 = 1;
const XOR: u8 = 2;
/// Exact powers of ten (every one up to 1e22 is exact in f64).
const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];
/// Integers of magnitude below this are exact in f64.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0; // 2^53

/// Why a chunk could not be decoded (it was damaged, or written by something else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "damaged chunk: {}", self.0)
    }
}

impl std::error::Error for ChunkError {}

/// Encodes points, which must be in strictly increasing time order, 1 ..= [`MAX_POINTS`] of
/// them (the caller splits longer runs).
pub fn encode(points: &[(i64, f64)]) -> Vec<u8> {
    let Some(&(t0, v0)) = points.first() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(16 + points.len() * 2);
    out.push(VERSION);
    put_varint(&mut out, points.len() as u64);
    put_varint(&mut out, zigzag(t0));
    let mut bits = BitWriter::default();
    match regular_interval(points) {
        Some(every) => put_varint(&mut out, every),
        None => {
            put_varint(&mut out, 0);
            let mut previous_delta = 0i64;
            for pair in points.windows(2) {
                let delta = pair[1].0.wrapping_sub(pair[0].0);
                put_dod(&mut bits, delta.wrapping_sub(previous_delta));
                previous_delta = delta;
            }
        }
    }
    if points.iter().all(|p| p.1.to_bits() == v0.to_bits()) {
        out.push(CONSTANT);
        out.extend_from_slice(&v0.to_bits().to_le_bytes());
    } else if let Some(decimal) = Decimal::encode(points) {
        out.push(DECIMAL);
        decimal.write(&mut out, &mut bits);
    } else {
        out.push(XOR);
        out.extend_from_slice(&v0.to_bits().to_le_bytes());
        put_xor(&mut bits, points);
    }
    out.extend_from_slice(&bits.finish());
    out
}

/// Decodes a whole chunk.
#[cfg(test)]
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let mut out = Vec::new();
    decode_into(bytes, &mut out)?;
    Ok(out)
}

/// Appends a chunk's points to `out`; on error `out` is left as it was.
pub fn decode_into(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
    let start = out.len();
    let result = decode_appending(bytes, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn decode_appending(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
    let mut reader = ByteReader { bytes, at: 0 };
    if reader.byte()? != VERSION {
        return Err(ChunkError("unknown version"));
    }
    let n = reader.count()?;
    let t0 = unzigzag(reader.varint()?);
    let every = reader.varint()?;
    let coding = reader.byte()?;
    let first = out.len();
    out.reserve(n);
    // The value coding's parameters come before the bit stream, which holds the times first.
    let params = match coding {
        CONSTANT | XOR => ValueParams::Bits(reader.u64_le()?),
        DECIMAL => ValueParams::Decimal(Decimal::read(&mut reader)?),
        _ => return Err(ChunkError("unknown value coding")),
    };
    let mut bits = BitReader::new(reader.rest());
    let mut t = t0;
    let mut delta = 0i64;
    out.push((t0, 0.0));
    for _ in 1..n {
        delta = if every == 0 {
            delta.wrapping_add(get_dod(&mut bits)?)
        } else {
            every as i64
        };
        t = t.wrapping_add(delta);
        out.push((t, 0.0));
    }
    let points = out.get_mut(first..).ok_or(ChunkError("internal"))?;
    match (coding, params) {
        (CONSTANT, ValueParams::Bits(b)) => {
            let v = f64::from_bits(b);
            points.iter_mut().for_each(|p| p.1 = v);
        }
        (XOR, ValueParams::Bits(b)) => get_xor(&mut bits, b, points)?,
        (DECIMAL, ValueParams::Decimal(d)) => d.read_values(&mut bits, points)?,
        _ => return Err(ChunkError("internal")),
    }
    Ok(())
}

/// The one interval between all the points' times, if there is one (and it is positive).
fn regular_interval(points: &[(i64, f64)]) -> Option<u64> {
    let mut pairs = points.windows(2).map(|p| p[1].0.checked_sub(p[0].0));
    let every = pairs.next()??;
    let every_u = u64::try_from(every).ok().filter(|&e| e > 0)?;
    pairs.all(|d| d == Some(every)).then_some(every_u)
}

enum ValueParams {
    Bits(u64),
    Decimal(Decimal),
}

/// The decimal coding's parameters (see the module doc).
#[derive(Debug, Clone, Copy)]
struct Decimal {
    scale: u8,
    first: i64,
    step: u64,
    order: u8,
    rice: u8,
    /// Order 3 only: the level the values are noise around.
    center: i64,
}

impl Decimal {
    /// The decimal coding of these values, if every one is a short decimal (decodes to the
    /// very same bits).
    fn encode(points: &[(i64, f64)]) -> Option<EncodedDecimal> {
        let mut scale = 0usize;
        for &(_, v) in points {
            scale = scale.max(min_scale(v)?);
        }
        let p = POW10[scale];
        let mut ints = Vec::with_capacity(points.len());
        for &(_, v) in points {
            let s = (v * p).round();
            // (v is finite: min_scale said so.)
            if s.abs() >= EXACT_INTEGERS {
                return None;
            }
            #[allow(clippy::cast_possible_truncation)]
            let i = s as i64;
            #[allow(clippy::cast_precision_loss)]
            let back = i as f64 / p;
            if back.to_bits() != v.to_bits() {
                return None;
            }
            ints.push(i);
        }
        let first = *ints.first()?;
        let step = ints
            .iter()
            .fold(0u64, |g, &i| gcd(g, i.abs_diff(first)))
            .max(1);
        let step_i = i64::try_from(step).ok()?;
        let w: Vec<i64> = ints.iter().map(|&i| (i - first) / step_i).collect();
        let center = mean(w.get(1..).unwrap_or_default());
        let mut best: Option<(u64, u8, u8, Vec<u64>)> = None;
        for order in 0..4u8 {
            let u: Vec<u64> = residuals(&w, order, center).map(zigzag).collect();
            let (rice, mut cost) = best_rice(&u);
            if order == 3 {
                cost += 8 * varint_len(zigzag(center));
            }
            if best.as_ref().map_or(true, |b| cost < b.0) {
                best = Some((cost, order, rice, u));
            }
        }
        let (_, order, rice, codes) = best?;
        Some(EncodedDecimal {
            params: Decimal {
                scale: u8::try_from(scale).ok()?,
                first,
                step,
                order,
                rice,
                center,
            },
            codes,
        })
    }

    fn read(reader: &mut ByteReader<'_>) -> Result<Decimal, ChunkError> {
        let scale = reader.byte()?;
        if usize::from(scale) > MAX_SCALE {
            return Err(ChunkError("decimal scale out of range"));
        }
        let first = unzigzag(reader.varint()?);
        let step = reader.varint()?;
        let packed = reader.byte()?;
        let order = packed >> 6;
        let center = if order == 3 {
            unzigzag(reader.varint()?)
        } else {
            0
        };
        Ok(Decimal {
            scale,
            first,
            step,
            order,
            rice: packed & 63,
            center,
        })
    }

    fn read_values(
        &self,
        bits: &mut BitReader<'_>,
        points: &mut [(i64, f64)],
    ) -> Result<(), ChunkError> {
        let p = POW10[usize::from(self.scale).min(MAX_SCALE)];
        let step = self.step as i64;
        let mut w = 0i64;
        let mut delta = 0i64;
        let mut iter = points.iter_mut();
        if let Some(first) = iter.next() {
            #[allow(clippy::cast_precision_loss)]
            let v = self.first as f64 / p;
            first.1 = v;
        }
        for point in iter {
            let r = unzigzag(get_rice(bits, self.rice)?);
            match self.order {
                0 => w = r,
                1 => w = w.wrapping_add(r),
                2 => {
                    delta = delta.wrapping_add(r);
                    w = w.wrapping_add(delta);
                }
                _ => w = r.wrapping_add(self.center),
            }
            let i = self.first.wrapping_add(w.wrapping_mul(step));
            #[allow(clippy::cast_precision_loss)]
            let v = i as f64 / p;
            point.1 = v;
        }
        Ok(())
    }
}

/// [`Decimal`] parameters with the zigzagged residuals to Rice code.
struct EncodedDecimal {
    params: Decimal,
    codes: Vec<u64>,
}

impl EncodedDecimal {
    fn write(&self, out: &mut Vec<u8>, bits: &mut BitWriter) {
        let p = &self.params;
        out.push(p.scale);
        put_varint(out, zigzag(p.first));
        put_varint(out, p.step);
        out.push(p.order << 6 | p.rice);
        if p.order == 3 {
            put_varint(out, zigzag(p.center));
        }
        for &u in &self.codes {
            put_rice(bits, u, p.rice);
        }
    }
}

/// The residuals of `w` (whose first element is 0), one per element after the first: of
/// order 0, 1 or 2, or (3) around `center`.
fn residuals(w: &[i64], order: u8, center: i64) -> impl Iterator<Item = i64> + '_ {
    let mut previous = 0i64;
    let mut previous_delta = 0i64;
    w.iter().skip(1).map(move |&x| {
        let delta = x - previous;
        let r = match order {
            0 => x,
            1 => delta,
            2 => delta - previous_delta,
            _ => x - center,
        };
        previous = x;
        previous_delta = delta;
        r
    })
}

/// The Rice parameter that codes `u` in the fewest bits, and that number of bits. Tries 0 (for
/// mostly-zero runs with rare bursts) and the few around log2 of the mean.
fn best_rice(u: &[u64]) -> (u8, u64) {
    if u.is_empty() {
        return (0, 0);
    }
    let sum: u128 = u.iter().map(|&x| u128::from(x)).sum();
    let mean = sum / u.len() as u128;
    let around = (128 - mean.leading_zeros()).min(63);
    let mut best = (0u8, rice_cost(u, 0));
    for k in around.saturating_sub(2)..=(around + 1).min(63) {
        let k = u8::try_from(k).unwrap_or(63);
        let cost = rice_cost(u, k);
        if cost < best.1 {
            best = (k, cost);
        }
    }
    best
}

fn rice_cost(u: &[u64], k: u8) -> u64 {
    u.iter()
        .map(|&x| {
            let q = x >> k;
            if q < RICE_ESCAPE {
                q + 1 + u64::from(k)
            } else {
                RICE_ESCAPE + 64
            }
        })
        .sum()
}

fn put_rice(bits: &mut BitWriter, u: u64, k: u8) {
    let q = u >> k;
    if q < RICE_ESCAPE {
        bits.put_ones(q);
        bits.put(0, 1);
        if k > 0 {
            bits.put(u & ((1u64 << k) - 1), k);
        }
    } else {
        bits.put_ones(RICE_ESCAPE);
        bits.put(u, 64);
    }
}

fn get_rice(bits: &mut BitReader<'_>, k: u8) -> Result<u64, ChunkError> {
    let mut q = 0u64;
    while q < RICE_ESCAPE && bits.bit()? {
        q += 1;
    }
    if q == RICE_ESCAPE {
        return bits.get(64);
    }
    if k == 0 {
        return Ok(q);
    }
    let low = bits.get(k.min(63))?;
    Ok(q.wrapping_shl(u32::from(k)) | low)
}

/// The fewest decimals `v` needs to decode exactly, or `None` past [`MAX_SCALE`].
fn min_scale(v: f64) -> Option<usize> {
    if !v.is_finite() {
        return None;
    }
    (0..=MAX_SCALE).find(|&e| {
        let p = POW10[e];
        let s = (v * p).round();
        if s.abs() >= EXACT_INTEGERS {
            return false;
        }
        #[allow(clippy::cast_possible_truncation)]
        let i = s as i64;
        #[allow(clippy::cast_precision_loss)]
        let back = i as f64 / p;
        back.to_bits() == v.to_bits()
    })
}

/// The rounded mean (0 for none).
fn mean(w: &[i64]) -> i64 {
    let sum: i128 = w.iter().map(|&x| i128::from(x)).sum();
    let n = i128::try_from(w.len()).unwrap_or(i128::MAX).max(1);
    i64::try_from((sum + n / 2).div_euclid(n)).unwrap_or(0)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn put_dod(bits: &mut BitWriter, dod: i64) {
    match dod {
        0 => bits.put(0, 1),
        -64..=63 => {
            bits.put(0b10, 2);
            bits.put(dod as u64, 7);
        }
        -256..=255 => {
            bits.put(0b110, 3);
            bits.put(dod as u64, 9);
        }
        -2048..=2047 => {
            bits.put(0b1110, 4);
            bits.put(dod as u64, 12);
        }
        _ => {
            bits.put(0b1111, 4);
            bits.put(dod as u64, 64);
        }
    }
}

fn get_dod(bits: &mut BitReader<'_>) -> Result<i64, ChunkError> {
    let mut ones = 0;
    while ones < 4 && bits.bit()? {
        ones += 1;
    }
    let width = match ones {
        0 => return Ok(0),
        1 => 7,
        2 => 9,
        3 => 12,
        _ => 64,
    };
    Ok(sign_extend(bits.get(width)?, width))
}

fn sign_extend(value: u64, width: u8) -> i64 {
    if width >= 64 {
        return value as i64;
    }
    let shift = 64 - u32::from(width);
    ((value << shift) as i64) >> shift
}

fn put_xor(bits: &mut BitWriter, points: &[(i64, f64)]) {
    // The window of meaningful bits of the previous XOR: (leading zeros, length).
    let mut window: Option<(u32, u32)> = None;
    for pair in points.windows(2) {
        let x = pair[1].1.to_bits() ^ pair[0].1.to_bits();
        if x == 0 {
            bits.put(0, 1);
            continue;
        }
        let leading = x.leading_zeros().min(63);
        let trailing = x.trailing_zeros();
        match window {
            Some((lead, len)) if leading >= lead && trailing >= 64 - lead - len => {
                bits.put(0b10, 2);
                bits.put(x >> (64 - lead - len), len as u8);
            }
            _ => {
                let len = 64 - leading - trailing;
                bits.put(0b11, 2);
                bits.put(u64::from(leading), 6);
                bits.put(u64::from(len - 1), 6);
                bits.put(x >> trailing, len as u8);
                window = Some((leading, len));
            }
        }
    }
}

fn get_xor(
    bits: &mut BitReader<'_>,
    first: u64,
    points: &mut [(i64, f64)],
) -> Result<(), ChunkError> {
    let mut previous = first;
    let mut window: Option<(u32, u32)> = None;
    let mut iter = points.iter_mut();
    if let Some(p) = iter.next() {
        p.1 = f64::from_bits(first);
    }
    for point in iter {
        if bits.bit()? {
            let (lead, len) = if bits.bit()? {
                let lead = bits.get(6)? as u32;
                let len = bits.get(6)? as u32 + 1;
                if lead + len > 64 {
                    return Err(ChunkError("xor window out of range"));
                }
                window = Some((lead, len));
                (lead, len)
            } else {
                window.ok_or(ChunkError("xor window reused before set"))?
            };
            let meaningful = bits.get(len as u8)?;
            previous ^= meaningful << (64 - lead - len);
        }
        point.1 = f64::from_bits(previous);
    }
    Ok(())
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn varint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct ByteReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ByteReader<'a> {
    fn byte(&mut self) -> Result<u8, ChunkError> {
        let b = *self.bytes.get(self.at).ok_or(ChunkError("cut short"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ChunkError("varint too long"))
    }

    fn count(&mut self) -> Result<usize, ChunkError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if (1..=MAX_POINTS).contains(&n) => Ok(n),
            _ => Err(ChunkError("point count out of range")),
        }
    }

    fn u64_le(&mut self) -> Result<u64, ChunkError> {
        let end = self.at + 8;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(ChunkError("cut short"))?;
        let mut b = [0u8; 8];
        b.copy_from_slice(slice);
        self.at = end;
        Ok(u64::from_le_bytes(b))
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }
}

/// Bits, most significant first, packed into bytes.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits pending in `acc`'s low end.
    acc: u64,
    len: u32,
}

impl BitWriter {
    /// Writes the low `width` (≤ 64) bits of `value`.
    fn put(&mut self, value: u64, width: u8) {
        let width = u32::from(width);
        if width == 0 {
            return;
        }
        if width > 32 {
            self.put(value >> 32, (width - 32) as u8);
            self.put(value & 0xffff_ffff, 32);
            return;
        }
        let value = value & ((1u64 << width) - 1);
        self.acc = (self.acc << width) | value;
        self.len += width;
        while self.len >= 8 {
            self.len -= 8;
            self.bytes.push((self.acc >> self.len) as u8);
        }
        self.acc &= (1u64 << self.len) - 1;
    }

    fn put_ones(&mut self, count: u64) {
        let mut left = count;
        while left > 0 {
            let n = left.min(32);
            self.put((1u64 << n) - 1, n as u8);
            left -= n;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            let pad = 8 - self.len;
            self.bytes.push((self.acc << pad) as u8);
        }
        self.bytes
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    /// The next bit, counted from the start.
    at: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, at: 0 }
    }

    fn bit(&mut self) -> Result<bool, ChunkError> {
        let byte = *self
            .bytes
            .get(self.at / 8)
            .ok_or(ChunkError("bits cut short"))?;
        let bit = (byte >> (7 - self.at % 8)) & 1 == 1;
        self.at += 1;
        Ok(bit)
    }

    /// Reads `width` (≤ 64) bits as an unsigned number.
    fn get(&mut self, width: u8) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        let mut left = u32::from(width.min(64));
        while left > 0 {
            let byte = *self
                .bytes
                .get(self.at / 8)
                .ok_or(ChunkError("bits cut short"))?;
            let offset = (self.at % 8) as u32;
            let available = 8 - offset;
            let take = available.min(left);
            let bits = (u64::from(byte) >> (available - take)) & ((1u64 << take) - 1);
            v = (v << take) | bits;
            self.at += take as usize;
            left -= take;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(points: &[(i64, f64)]) -> Vec<u8> {
        let bytes = encode(points);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), points.len());
        for (a, b) in points.iter().zip(&back) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "{} vs {}", a.1, b.1);
        }
        bytes
    }

    fn coding(bytes: &[u8]) -> u8 {
        let mut r = ByteReader { bytes, at: 1 };
        r.count().unwrap();
        r.varint().unwrap();
        r.varint().unwrap();
        r.byte().unwrap()
    }

    fn series(n: usize, every: i64, mut value: impl FnMut(usize) -> f64) -> Vec<(i64, f64)> {
        (0..n)
            .map(|i| (1_764_000_000 + every * i as i64, value(i)))
            .collect()
    }

    #[test]
    fn a_constant_series_costs_its_header() {
        let points = series(120, 30, |_| 137_438_953_472.0);
        let bytes = round_trip(&points);
        assert_eq!(coding(&bytes), CONSTANT);
        // The header alone: regular times and one value.
        assert!(bytes.len() <= 18, "{}", bytes.len());
    }

    #[test]
    fn two_decimal_values_are_coded_as_integers() {
        // A noisy percentage as the agent sends it (two decimals).
        let mut rng = fastrand::Rng::with_seed(7);
        let points = series(120, 1, |_| (2000.0 + rng.f64() * 600.0).round() / 100.0);
        let bytes = round_trip(&points);
        assert_eq!(coding(&bytes), DECIMAL);
        // ~600 possible values: about 10-11 bits each; XOR would need ~50.
        assert!(bytes.len() < 120 * 12 / 8 + 24, "{}", bytes.len());
    }

    #[test]
    fn steady_climbs_cost_a_bit_per_value() {
        let points = series(240, 1, |i| 3_456_789.0 + i as f64);
        let bytes = round_trip(&points);
        // One bit per value (its delta-of-delta is 0), times are regular.
        assert!(bytes.len() <= 18 + 240 / 8, "{}", bytes.len());
    }

    #[test]
    fn a_common_step_is_taken_out() {
        // Memory in KiB pages: multiples of 4096 wandering by a few pages.
        let mut rng = fastrand::Rng::with_seed(3);
        let mut v = 64.0 * 1024.0 * 1024.0 * 1024.0;
        let points = series(120, 1, |_| {
            v += 4096.0 * f64::from(rng.i32(-20..=20));
            v
        });
        let bytes = round_trip(&points);
        assert!(bytes.len() < 120 * 8 / 8 + 24, "{}", bytes.len());
    }

    #[test]
    fn mostly_zero_with_bursts() {
        let points = series(120, 1, |i| if i % 17 == 3 { 1_234_567.89 } else { 0.0 });
        let bytes = round_trip(&points);
        assert!(bytes.len() < 120 / 8 + 7 * 16 + 24, "{}", bytes.len());
    }

    #[test]
    fn anything_else_round_trips_through_xor() {
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            1.0 / 3.0,
            std::f64::consts::PI,
            1e300,
            -5e-324,
        ];
        let points = series(specials.len(), 30, |i| specials[i]);
        round_trip(&points);
        let mut rng = fastrand::Rng::with_seed(11);
        let noise = series(200, 1, |_| rng.f64() * 1e6);
        assert_eq!(coding(&round_trip(&noise)), XOR);
    }

    #[test]
    fn irregular_and_extreme_times_round_trip() {
        let times = [
            i64::MIN,
            -1,
            0,
            1,
            2,
            64,
            1000,
            100_000,
            1_764_000_000,
            1_764_000_001,
            i64::MAX - 1,
            i64::MAX,
        ];
        let points: Vec<(i64, f64)> = times.iter().map(|&t| (t, 1.5)).collect();
        round_trip(&points);
        let mut rng = fastrand::Rng::with_seed(5);
        let mut t = 1_764_000_000i64;
        let jittery: Vec<(i64, f64)> = (0..500)
            .map(|i| {
                t += rng.i64(1..=5000);
                (t, i as f64)
            })
            .collect();
        round_trip(&jittery);
    }

    #[test]
    fn random_values_of_every_kind_round_trip() {
        let mut rng = fastrand::Rng::with_seed(42);
        for case in 0..2000 {
            let n = rng.usize(1..=300);
            let kind = case % 6;
            let mut level = rng.f64() * 1e6;
            let points: Vec<(i64, f64)> = (0..n)
                .map(|i| {
                    let v = match kind {
                        0 => f64::from_bits(rng.u64(..)),
                        1 => (rng.f64() * 1e9).round() / 100.0,
                        2 => f64::from(rng.i32(..)),
                        3 => {
                            level += rng.f64() - 0.5;
                            (level * 1000.0).round() / 1000.0
                        }
                        4 => rng.i64(-(1 << 52)..(1 << 52)) as f64,
                        _ => [0.0, -0.0, 1.0, f64::NAN][rng.usize(0..4)],
                    };
                    (i as i64 * rng.i64(1..=3) + i as i64 * 30, v)
                })
                .collect();
            let mut sorted = points.clone();
            sorted.dedup_by_key(|p| p.0);
            round_trip(&sorted);
        }
    }

    #[test]
    fn damaged_chunks_are_errors_never_panics() {
        let mut rng = fastrand::Rng::with_seed(9);
        let good = encode(&series(100, 30, |i| (i as f64 * 1.37).round() / 100.0));
        let xor = encode(&series(100, 30, |i| i as f64 / 7.0));
        for bytes in [&good, &xor] {
            for cut in 0..bytes.len() {
                // Cut short: an error (or, for a cut inside the padding, the same points).
                let _ = decode(&bytes[..cut]);
            }
            for _ in 0..2000 {
                let mut damaged = bytes.clone();
                let i = rng.usize(0..damaged.len());
                damaged[i] ^= 1 << rng.u32(0..8);
                let _ = decode(&damaged);
            }
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[2, 1, 0]).is_err());
        // A header claiming more points than a chunk may hold.
        let mut huge = vec![VERSION];
        put_varint(&mut huge, MAX_POINTS as u64 + 1);
        assert_eq!(decode(&huge), Err(ChunkError("point count out of range")));
        let mut out = vec![(1, 1.0)];
        assert!(decode_into(&good[..good.len() / 2], &mut out).is_err());
        assert_eq!(out, [(1, 1.0)]);
    }

    #[test]
    fn bit_writer_and_reader_agree() {
        let mut w = BitWriter::default();
        let items: Vec<(u64, u8)> = (1..=64u8)
            .map(|width| (u64::MAX >> (64 - u32::from(width)) ^ 0x5555, width))
            .collect();
        for &(v, width) in &items {
            w.put(v, width);
        }
        w.put_ones(70);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for &(v, width) in &items {
            let mask = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            assert_eq!(r.get(width).unwrap(), v & mask, "width {width}");
        }
        for _ in 0..70 {
            assert!(r.bit().unwrap());
        }
    }
}
