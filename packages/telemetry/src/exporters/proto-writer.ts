/**
 * A protobuf writer over one growable Buffer, for the OTLP span encoder (otlp-span-encoder.ts).
 *
 * Why hand-written: @opentelemetry/otlp-transformer has exactly this writer inside, but exports only whole-request
 * serializers (ReadableSpan[] → bytes), and the point of encoding at span end is to encode one span into a batch
 * that is framed later. protobufjs could encode too, but only from an intermediate object per span, which is the
 * garbage this path exists to avoid. The wire format written is the same as the SDK's (same field order, minimal
 * varints, a length byte reserved and widened when a message turns out ≥ 128 bytes), which the tests check
 * byte for byte against ProtobufTraceSerializer.
 */
/** Strings up to this many UTF-16 units are tried as ASCII in JavaScript first (string()). */
const SHORT_STRING = 64;

/** The value of each hex digit by character code (0–9, a–f, A–F); 0 for anything else (ids arrive validated). */
const HEX_VALUE = new Uint8Array(128);
for (let d = 0; d < 10; d++) HEX_VALUE[48 + d] = d;
for (let d = 0; d < 6; d++) HEX_VALUE[97 + d] = HEX_VALUE[65 + d] = 10 + d;

/**
 * A Buffer over an ArrayBuffer of its own, never a slice of Node's shared pool (which Buffer.allocUnsafe uses for
 * small sizes): a finished request's buffer can then be transferred to the exporter thread as it is.
 */
function allocate(bytes: number): Buffer {
  return Buffer.from(new ArrayBuffer(bytes));
}

export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  /** `initial`: the size of a new buffer, or a buffer to write over (used again: its old bytes are overwritten). */
  constructor(initial: number | ArrayBuffer = 64 * 1024) {
    this.buf = typeof initial === 'number' ? allocate(initial) : Buffer.from(initial);
  }

  ensure(bytes: number): void {
    const needed = this.pos + bytes;
    if (needed <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < needed) size *= 2;
    const grown = allocate(size);
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** Field tag: (field << 3) | wire type; every field number tiergate writes is < 16, one byte. */
  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  /** An unsigned varint, or a negative integer as its 64-bit two's complement (10 bytes), like int64 fields. */
  varint(value: number): void {
    this.ensure(10);
    const b = this.buf;
    if (value >= 0 && value <= 0xffffffff) {
      let v = value >>> 0;
      while (v > 127) {
        b[this.pos++] = (v & 127) | 128;
        v >>>= 7;
      }
      b[this.pos++] = v;
      return;
    }
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / 4294967296) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / 4294967296) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    while (high > 0 || low > 127) {
      b[this.pos++] = (low & 127) | 128;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    b[this.pos++] = low & 127;
  }

  fixed32(value: number): void {
    this.ensure(4);
    this.#u32(value, this.pos);
    this.pos += 4;
  }

  fixed64(low: number, high: number): void {
    this.ensure(8);
    this.#u32(low, this.pos);
    this.#u32(high, this.pos + 4);
    this.pos += 8;
  }

  /** Little-endian uint32 at `at`, stored byte by byte: Buffer#writeUInt32LE range-checks its value per call. */
  #u32(value: number, at: number): void {
    const b = this.buf;
    b[at] = value;
    b[at + 1] = value >>> 8;
    b[at + 2] = value >>> 16;
    b[at + 3] = value >>> 24;
  }

  double(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** A length-delimited UTF-8 string. */
  string(value: string): void {
    const n = value.length;
    // Reserve the worst case (3 bytes per UTF-16 unit) and a length prefix, write, then fix the prefix.
    this.ensure(n * 3 + 5);
    const start = this.begin();
    // Span names, attribute keys and most values are short ASCII: copied here byte by byte, which is cheaper than
    // a call into Buffer#write's native UTF-8 encoder. Anything else (or long) goes to the encoder from the start.
    if (n <= SHORT_STRING) {
      const b = this.buf;
      let pos = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) break;
        b[pos++] = c;
      }
      if (i === n) {
        this.pos = pos;
        this.end(start);
        return;
      }
    }
    this.pos += this.buf.write(value, this.pos, 'utf8');
    this.end(start);
  }

  /** A length-delimited byte string. */
  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** A length-delimited hex id (trace/span id) as its bytes (decoded here: ids are 16 or 32 characters). */
  hexBytes(hex: string): void {
    const n = hex.length >>> 1;
    this.varint(n);
    this.ensure(n);
    const b = this.buf;
    let pos = this.pos;
    for (let i = 0; i < hex.length; i += 2) b[pos++] = (HEX_VALUE[hex.charCodeAt(i)]! << 4) | HEX_VALUE[hex.charCodeAt(i + 1)]!;
    this.pos = pos;
  }

  /** Starts a length-delimited field's payload: one length byte reserved, returns where it is. */
  begin(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the payload begun at `start`: writes its length, widening the reserved byte when it needs more. */
  end(start: number): void {
    const length = this.pos - start - 1;
    if (length < 128) {
      this.buf[start] = length;
      return;
    }
    const size = length < 16384 ? 2 : length < 2097152 ? 3 : length < 268435456 ? 4 : 5;
    this.ensure(size - 1);
    this.buf.copyWithin(start + size, start + 1, this.pos);
    this.pos += size - 1;
    let v = length;
    let p = start;
    while (v > 127) {
      this.buf[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.buf[p] = v;
  }

  /** Appends a few already-encoded bytes (a cached field): a loop, cheaper than TypedArray#set's call for tens of bytes. */
  small(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    const b = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) b[pos++] = bytes[i] as number;
    this.pos = pos;
  }

  /** Appends raw, already-encoded bytes. */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** A copy of what was written (the writer is then reused). */
  copy(): Uint8Array {
    return Uint8Array.prototype.slice.call(this.buf, 0, this.pos);
  }

  reset(): void {
    this.pos = 0;
  }
}
